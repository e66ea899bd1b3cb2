//! The Dapr building blocks of wasmdapr, independent of any transport and of
//! Wasm: every front door (the HTTP API, the gRPC API, the WIT imports of
//! guests) is a thin translation onto this crate.
//!
//! # Layout
//!
//! - [`app_id`]: [`AppId`], the validated identity of an app, which names it
//!   to Dapr (service invocation targets, state key prefixes, component scopes).

#![deny(missing_docs)]

pub mod app_id;

pub use app_id::AppId;
