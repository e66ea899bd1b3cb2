//! The Dapr front doors of wasmdapr: the HTTP API v1.0 (axum) and the gRPC
//! API `dapr.proto.runtime.v1.Dapr` (tonic), both thin translations onto the
//! runtime's [`DaprApi`](wasmdapr_runtime::DaprApi). Dapr semantics (scopes,
//! key prefixes, ETags, the error table) live in the runtime; this crate only
//! moves requests and answers between the wire and that trait.
//!
//! # Layout
//!
//! Each front door is a folder with one file per building block
//! (`state.rs`, `invoke.rs`, `metadata.rs`) and a `mod.rs` that holds what
//! the blocks share and joins them: a new block is one file per door and
//! one line in each `mod.rs`.
//!
//! - [`config`]: [`ApiConfig`], what both servers share (API token, body
//!   limit), and [`ApiToken`], the constant-time token check.
//! - [`http`]: the Dapr HTTP API: [`http::router`] for tests and embedding,
//!   [`http::serve_http`] for the binary; its extractors (body limit, JSON
//!   bodies, the `metadata.<name>` query) are shared by every block.
//! - [`grpc`]: the Dapr gRPC API: [`grpc::GrpcApi`] implements the generated
//!   `Dapr` service trait, dispatching to the blocks' files;
//!   [`grpc::service`] wraps it with the token check and size limit;
//!   [`grpc::serve_grpc`] serves it.
//! - `error`: the runtime's `ApiError` on the wire, one place per door:
//!   HTTP bodies, gRPC statuses with Dapr's rich details, and statuses of a
//!   remote sidecar read back.
//! - [`invoke`]: service invocation on the wire, shared by every door (the
//!   HTTPExtension verbs, HTTP status → gRPC code, the
//!   `common.v1.InvokeRequest` both ways, content types).
//! - [`internal`]: the internal endpoint between sidecars (gRPC
//!   `dapr.proto.internals.v1.ServiceInvocation/CallLocal` over mutual TLS):
//!   [`internal::serve_internal`], [`internal::InternalClient`] (the
//!   runtime's `RemoteInvoker`), SPIFFE identities and the certificates of
//!   `wasmdapr certs`.
//! - [`http_app`]: [`HttpApp`], the app channel to an ordinary process on
//!   `--app-port`, with its readiness probe.
//! - [`grpc_app`]: [`GrpcApp`], the same for an app speaking Dapr's
//!   `AppCallback` gRPC service (`--app-protocol grpc`).
//! - [`remote`]: [`RemoteDapr`], the `DaprApi` of another sidecar over gRPC,
//!   one file per block like the doors.
//! - [`server`]: the accept loop of the public HTTP servers (this API's and
//!   a served app's): timeouts, a connection bound, survival of `EMFILE`.
//!
//! This crate depends on `wasmdapr-runtime` and knows no Wasm and no backend.

#![deny(missing_docs)]

pub mod config;
mod error;
pub mod grpc;
pub mod grpc_app;
pub mod http;
pub mod http_app;
pub mod internal;
pub mod invoke;
pub mod remote;
pub mod server;

pub use config::{ApiConfig, ApiToken};
pub use grpc::serve_grpc;
pub use grpc_app::GrpcApp;
pub use http::serve_http;
pub use http_app::HttpApp;
pub use internal::InternalClient;
pub use remote::RemoteDapr;
pub use server::ServerLimits;
