//! The wasmdapr sidecar as a library: what `wasmdapr sidecar` and
//! `wasmdapr run` start, without the command line, so tests and other
//! embedders can start a sidecar from plain configuration.
//!
//! # Layout
//!
//! - [`config`]: [`SidecarConfig`] (ports, resources folders, the API's
//!   settings, the mTLS identity, where the machine-local state lives) and
//!   [`AppConnection`] (an app on `--app-port`). Plain data: the binary maps
//!   its flags and environment onto them.
//! - [`sidecar`]: [`Sidecar::start`] loads the components, builds the
//!   runtime and opens the HTTP, gRPC and internal front doors on their
//!   ports; [`Sidecar::wait`] and [`Sidecar::shutdown`] stop it;
//!   [`Sidecar::local_dapr`] is its HTTP API served in-process to a guest.
//! - `identity`: the sidecar's identity on the internal endpoint, given
//!   (`--enable-mtls`) or issued from the machine-local trust bundle.
//! - `name_resolution`: the name resolver of `--config`, else the shared
//!   SQLite default.
//! - `in_process`: the HTTP API's router as the host's
//!   [`LocalHttp`](wasmdapr_host::LocalHttp), with no socket in between.
//! - [`app_listener`]: a served Wasm app ([`ServedApp`]): the runtime's app
//!   channel, and on `--app-listen` a public HTTP server ([`AppListener`])
//!   where the app's limits read as HTTP statuses.
//! - [`error`]: [`SidecarError`], why a sidecar could not start or stopped.
//! - `signal`: Ctrl-C or SIGTERM, which end both.
//!
//! Dependency direction: this crate wires `wasmdapr-api`, `wasmdapr-host` and
//! `wasmdapr-components` over `wasmdapr-runtime`; only the binary is above it.

pub mod app_listener;
pub mod config;
pub mod error;
mod identity;
mod in_process;
mod name_resolution;
pub mod sidecar;
mod signal;

pub use app_listener::{AppListener, ServeConfig, ServeError, ServedApp};
pub use config::{AppConnection, EMBEDDED_DIR, MtlsConfig, SidecarConfig};
pub use error::SidecarError;
pub use sidecar::Sidecar;
pub use signal::termination;
