//! [`AppChannel`]: how the runtime reaches the app it serves, to deliver
//! service invocations (and, later, pub/sub events and binding events).
//!
//! Dapr's app protocol is HTTP-shaped (a method, a path, headers, a body), so
//! a delivery is an [`http::Request`] with the whole body in memory (bounded
//! by `--max-body-size` at every front door). The `http` crate is plain data
//! types; the runtime still knows no transport. Two implementations exist:
//! the Wasm app served in-process by the host (`WasmApp`, in `wasmdapr-host`)
//! and an ordinary process on `--app-port` (`HttpApp`, in `wasmdapr-api`).
//!
//! The app's own answer, whatever its status (404, 500, …), is an `Ok`
//! response passed back to the caller unchanged, as Dapr does. An `Err` means
//! the app could not answer at all.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::ApiError;

/// A delivery to the app. The URI is the app-side path and query
/// (`/method/name?x=1`), without scheme or authority.
pub type AppRequest = http::Request<Bytes>;

/// The app's answer.
pub type AppResponse = http::Response<Bytes>;

/// Why an app could not answer a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Every slot is taken and the wait queue is full (`--max-concurrency`):
    /// the caller should retry after the given time (HTTP 503 `Retry-After`).
    #[error("app '{app}' is at its concurrency limit; retry after {retry_after:?}")]
    Busy {
        /// The app.
        app: String,
        /// A hint for the caller.
        retry_after: Duration,
    },
    /// The app did not answer within its limit (`--timeout`; HTTP 504).
    #[error("app '{app}' did not answer within {limit:?}")]
    Timeout {
        /// The app.
        app: String,
        /// The limit.
        limit: Duration,
    },
    /// The app failed while answering (a trap, a memory limit, a broken
    /// connection) or cannot be reached (not listening, not healthy).
    #[error("app '{app}' failed: {reason}")]
    Failed {
        /// The app.
        app: String,
        /// What happened, for humans.
        reason: String,
    },
}

impl From<ChannelError> for ApiError {
    /// A failed delivery of a service invocation is Dapr's
    /// `ERR_DIRECT_INVOKE`, naming the app and the cause as daprd words it.
    fn from(error: ChannelError) -> Self {
        let (ChannelError::Busy { app, .. }
        | ChannelError::Timeout { app, .. }
        | ChannelError::Failed { app, .. }) = &error;
        crate::invoke::invoke_error(app, &error)
    }
}

/// The app behind this runtime, as Dapr's app channel.
#[async_trait]
pub trait AppChannel: Send + Sync + 'static {
    /// Delivers one request to the app and returns its answer.
    async fn call(&self, request: AppRequest) -> Result<AppResponse, ChannelError>;
}
