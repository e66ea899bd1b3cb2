//! The Dapr front doors of wasmdapr: the HTTP API v1.0 (axum) and the gRPC
//! API `dapr.proto.runtime.v1.Dapr` (tonic), both thin translations onto the
//! runtime's `DaprApi`, plus the remote client that forwards to a real Dapr
//! sidecar.
//!
//! # Layout
//!
//! The HTTP and gRPC servers arrive with the first building block (state);
//! this crate depends on `wasmdapr-runtime` and knows no Wasm.

#![deny(missing_docs)]
