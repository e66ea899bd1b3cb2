//! [`RemoteDapr`]: the [`DaprApi`] of a Dapr sidecar in another process — a
//! real `daprd` or another `wasmdapr sidecar` — spoken to over Dapr's gRPC
//! API. A host handed this instead of the local runtime forwards every call,
//! and the caller sees the same values and the same [`ApiError`]s (Dapr's
//! error code travels in the `ErrorInfo` detail and is mapped back through
//! the runtime's one error table), so guests cannot tell the difference.
//!
//! # Layout
//!
//! Each building block's calls are inherent methods of [`RemoteDapr`] in
//! the block's file (`state`, `pubsub`, `invoke`, `metadata` with shutdown), with
//! the names and signatures of the [`DaprApi`] methods; the trait impl
//! here only dispatches to them.

mod invoke;
mod metadata;
mod pubsub;
mod state;

use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::config::API_TOKEN_HEADER;
use crate::error::api_error;

/// Why the remote sidecar could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the Dapr sidecar at {endpoint}: {message}")]
pub struct RemoteError {
    /// The endpoint as given.
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
}

/// A Dapr sidecar reached over gRPC.
#[derive(Clone)]
pub struct RemoteDapr {
    client: DaprClient<Channel>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl RemoteDapr {
    /// Connects to `endpoint` (`http://host:port`, as `DAPR_GRPC_ENDPOINT`),
    /// sending `api_token` as `dapr-api-token` on every call when given.
    /// Connects eagerly, so a wrong endpoint fails at start.
    pub async fn connect(endpoint: &str, api_token: Option<&str>) -> Result<Self, RemoteError> {
        let error = |message: String| RemoteError {
            endpoint: endpoint.to_owned(),
            message,
        };
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| error(format!("not a valid endpoint URL ({e})")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| error(format!("cannot connect ({e})")))?;
        let token = api_token
            .map(|t| {
                t.parse()
                    .map_err(|_| error("the API token is not a valid header value".into()))
            })
            .transpose()?;
        Ok(Self {
            client: DaprClient::new(channel),
            token,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(API_TOKEN_HEADER, token.clone());
        }
        request
    }
}
