//! [`NameResolver`]: how a sidecar finds the sidecar of another app id, as
//! Dapr's name resolution components (mDNS, Kubernetes, SQLite, …). Each
//! backend implements this trait; `wasmdapr-components` has
//! `nameresolution.sqlite`.
//!
//! A sidecar registers its own app id with the address of its internal
//! endpoint (where other sidecars call it, over mutual TLS)
//! once it is ready, keeps the registration alive while it runs, and removes
//! it on a clean shutdown; other sidecars resolve ids to those addresses.

use async_trait::async_trait;

use crate::app_id::AppId;

/// A failure of the name resolution backend itself (its database cannot be
/// read or written); an unknown id is not an error but `Ok(None)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name resolution ({backend}) failed: {message}")]
pub struct NameResolutionError {
    /// The backend, e.g. `sqlite`.
    pub backend: &'static str,
    /// What went wrong.
    pub message: String,
}

/// A name resolution backend.
#[async_trait]
pub trait NameResolver: Send + Sync + 'static {
    /// The backend's name as in a Configuration's
    /// `spec.nameResolution.component` (`sqlite`), for messages.
    fn kind(&self) -> &'static str;

    /// Announces that `app` is served by the sidecar whose internal endpoint is
    /// at `address` (`host:port`), and keeps announcing it (heartbeats)
    /// until [`NameResolver::deregister`] or the process ends.
    async fn register(&self, app: &AppId, address: &str) -> Result<(), NameResolutionError>;

    /// The address of a live sidecar of `app`, or `None` when there is
    /// none. With several instances, successive calls spread over them.
    async fn resolve(&self, app: &AppId) -> Result<Option<String>, NameResolutionError>;

    /// Withdraws this process's registration (clean shutdown).
    async fn deregister(&self) -> Result<(), NameResolutionError>;
}
