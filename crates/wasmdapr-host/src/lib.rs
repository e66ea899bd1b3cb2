//! The Wasmtime host of wasmdapr.
//!
//! It runs WASI preview 1 modules and WASI preview 2 components, each with
//! only the capabilities it was granted, under per-instance memory and time
//! limits, from compiled code that is cached on disk so a second start does
//! not compile.
//!
//! # Layout
//!
//! - [`engine`]: the one shared [`wasmtime::Engine`] (pooling allocator,
//!   copy-on-write memory images, epoch interruption) and its epoch ticker.
//! - [`artifact`]: file format detection, the on-disk compiled-code cache and
//!   precompiled `.cwasm` artifacts.
//! - [`capabilities`]: what a guest is granted (args, env, directories, stdio);
//!   deny by default, sockets refused.
//! - [`dapr`]: the host side of `wit/`, the Dapr imports of guests, served
//!   by the granted [`wasmdapr_runtime::DaprApi`].
//! - [`allowed_hosts`]: `--allow-host` entries, parsed once and matched by
//!   scheme, host and port.
//! - [`outbound`]: `wasi:http` outbound requests under an
//!   [`OutboundPolicy`]: allowed hosts, in-flight and time limits, and the
//!   embedded Dapr sidecar served in-process.
//! - [`experimental_http`]: the legacy `wasi_experimental_http` ABI of
//!   preview 1 modules (the prototype's AssemblyScript apps), over the same
//!   outbound policy.
//! - [`limits`]: memory (a store limiter) and time limits.
//! - `app`: [`Host`] loads and links apps into [`App`]s; [`App::run`] runs one
//!   to completion and sorts its end into an exit code or a [`HostError`].
//! - [`wasm_app`]: [`WasmApp`] serves an app that exports
//!   `wasi:http/incoming-handler`, a fresh instance per request, bounded in
//!   concurrency, time and memory; it is the runtime's `AppChannel`.
//! - `p1_writev`: a preview 1 `fd_write` that writes every buffer it is given.
//! - [`error`]: [`HostError`], every way loading or running can fail.

#![deny(missing_docs)]

pub mod allowed_hosts;
mod app;
pub mod artifact;
pub mod capabilities;
pub mod dapr;
pub mod engine;
pub mod error;
pub mod experimental_http;
pub mod limits;
pub mod outbound;
mod p1_writev;
pub mod wasm_app;

pub use allowed_hosts::{AllowedHost, AllowedHosts};
pub use app::{App, Host, HostConfig};
pub use artifact::{ArtifactCache, ArtifactSource};
pub use capabilities::{Capabilities, DirGrant, EnvVar, Output};
pub use engine::EngineConfig;
pub use error::HostError;
pub use limits::{ByteSize, Limits};
pub use outbound::{LocalDapr, LocalHttp, OutboundPolicy, RemoteDaprHttp};
pub use wasm_app::{WasmApp, WasmAppConfig};
