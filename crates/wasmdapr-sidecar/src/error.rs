//! [`SidecarError`]: why a sidecar could not start, or stopped.

use std::net::SocketAddr;

use wasmdapr_runtime::nameresolution::NameResolutionError;
use wasmdapr_runtime::{ChannelError, ComponentError};

/// Why the sidecar could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// Component configuration.
    #[error(transparent)]
    Components(#[from] ComponentError),
    /// A port could not be opened.
    #[error("cannot listen on {addr} for the Dapr {api} API: {source}")]
    Listen {
        /// HTTP or gRPC.
        api: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The app on `--app-port` could not be set up.
    #[error("the app: {0}")]
    App(#[from] ChannelError),
    /// The app could not be announced in (or withdrawn from) name resolution.
    #[error(transparent)]
    NameResolution(#[from] NameResolutionError),
    /// The identity of `--enable-mtls` is missing or unusable.
    #[error("mTLS: {0}")]
    Mtls(String),
    /// A server failed while running.
    #[error("the Dapr {api} API stopped: {message}")]
    Serve {
        /// HTTP or gRPC.
        api: &'static str,
        /// Why.
        message: String,
    },
}
