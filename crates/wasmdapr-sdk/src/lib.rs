//! The Rust guest SDK of wasmdapr, for apps built with
//! `cargo build --target wasm32-wasip2`: typed clients for the Dapr building
//! blocks over the WIT imports of `wit/`, served in-process by the host.
//!
//! # Layout
//!
//! The clients arrive with the WIT package (state first); until then an app
//! is an ordinary WASI program, like `examples/hello`.

#![deny(missing_docs)]
