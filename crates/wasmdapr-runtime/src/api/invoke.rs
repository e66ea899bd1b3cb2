//! [`InvokeApi`]: service invocation as the doors call it. Its types
//! ([`InvokeRequest`], [`InvokeResponse`]) live in [`crate::invoke`] with
//! the routing they drive.

use async_trait::async_trait;

use crate::error::ApiError;
pub use crate::invoke::{InvokeRequest, InvokeResponse};

/// Service invocation.
#[async_trait]
pub trait InvokeApi: Send + Sync + 'static {
    /// Invokes `request` on the app `app_id` (service invocation): this
    /// runtime's own app through its app channel, another app through its
    /// sidecar. The app's answer, whatever its status, is `Ok` and unchanged;
    /// `Err` is `ERR_DIRECT_INVOKE` when it could not be delivered.
    async fn invoke(
        &self,
        app_id: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError>;
}
