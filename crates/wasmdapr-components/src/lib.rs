//! Backends of the Dapr building blocks (state stores, pub/sub brokers,
//! bindings, secret stores, …), one module per backend, each implementing the
//! runtime's trait for its kind and registered with the runtime's component
//! registry by the binary.
//!
//! # Layout
//!
//! Backends arrive with their building blocks; this crate knows no HTTP API
//! and no Wasm, and depends only on `wasmdapr-runtime`.

#![deny(missing_docs)]
