//! Name resolution backends: how a sidecar finds the sidecar of another app
//! id. Each implements the runtime's
//! [`NameResolver`](wasmdapr_runtime::NameResolver) and is registered by
//! [`crate::register`] as `nameresolution.<component>`, the type a
//! Configuration's `spec.nameResolution.component` names.
//!
//! - [`sqlite`]: `nameresolution.sqlite`, a shared SQLite file with
//!   heartbeats, for processes on one machine (the default).

pub mod sqlite;
