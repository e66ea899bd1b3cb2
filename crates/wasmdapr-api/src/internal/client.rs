//! [`InternalClient`]: the runtime's `RemoteInvoker` over the internal
//! endpoint of other sidecars (gRPC `CallLocal`, mutual TLS).

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};
use wasmdapr_runtime::invoke::HopError;
use wasmdapr_runtime::{AppId, InvokeRequest, InvokeResponse, RemoteInvoker};

use super::identity::SidecarIdentity;
use super::{
    CALL_LOCAL_PATH, ENVELOPE_ALLOWANCE, InternalInvokeRequest, InternalInvokeResponse,
    headers_to_map, map_to_headers,
};
use crate::invoke::{describe, invoke_message};

/// Calls other sidecars' internal endpoints as `identity`. One HTTP/2
/// connection per (address, app) is kept and multiplexed; each is bound to
/// the SPIFFE id of the app it was opened for, so a connection to a
/// sidecar that turns out to serve another app (a stale name resolution
/// entry, a rogue process on the port) fails its handshake.
pub struct InternalClient {
    identity: SidecarIdentity,
    max_body_size: usize,
    channels: Mutex<HashMap<(String, AppId), Channel>>,
}

impl std::fmt::Debug for InternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalClient")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl InternalClient {
    /// A client presenting `identity`; answers larger than `max_body_size`
    /// (`--max-body-size`) are refused.
    pub fn new(identity: SidecarIdentity, max_body_size: usize) -> Self {
        Self {
            identity,
            max_body_size,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The channel to `app`'s sidecar at `address`, opened on first use.
    fn channel(&self, address: &str, app: &AppId) -> Result<Channel, String> {
        let key = (address.to_owned(), app.clone());
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let config = self
            .identity
            .client_config(self.identity.peer(app))
            .map_err(|e| e.to_string())?;
        let connector = TlsConnector::from(config);
        let target = address.to_owned();
        let connect = tower::service_fn(move |_: http::Uri| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let tls = connector
                    .connect(SidecarIdentity::server_name(), tcp)
                    .await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("`{address}` is not an address: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(connect);
        channels.insert(key, channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl RemoteInvoker for InternalClient {
    async fn invoke(
        &self,
        address: &str,
        app: &AppId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, HopError> {
        let error = |reason: String| HopError {
            app: app.to_string(),
            address: address.to_owned(),
            reason,
        };
        let (message, headers) = invoke_message(request).map_err(|e| error(e.message))?;
        let message = InternalInvokeRequest {
            ver: 1,
            metadata: headers_to_map(&headers),
            message: Some(message),
        };
        let channel = self.channel(address, app).map_err(error)?;
        let limit = self.max_body_size.saturating_add(ENVELOPE_ALLOWANCE);
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX);
        grpc.ready().await.map_err(|e| error(describe(&e)))?;
        let codec =
            tonic_prost::ProstCodec::<InternalInvokeRequest, InternalInvokeResponse>::default();
        let path = http::uri::PathAndQuery::from_static(CALL_LOCAL_PATH);
        let answer = grpc
            .unary(tonic::Request::new(message), path, codec)
            .await
            .map_err(|status| error(describe_status(&status)))?
            .into_inner();
        let InternalInvokeResponse {
            status,
            headers,
            message,
            ..
        } = answer;
        let code = status.map_or(200, |s| s.code);
        let code = u16::try_from(code)
            .ok()
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .ok_or_else(|| error(format!("the sidecar answered the status {code}")))?;
        let message = message.unwrap_or_default();
        let body = message.data.map(|d| d.value).unwrap_or_default();
        if body.len() > self.max_body_size {
            return Err(error(format!(
                "the answer is larger than the maximum of {} bytes",
                self.max_body_size
            )));
        }
        let mut response = http::Response::new(bytes::Bytes::from(body));
        *response.status_mut() = code;
        *response.headers_mut() = map_to_headers(headers);
        if !message.content_type.is_empty()
            && !response.headers().contains_key(http::header::CONTENT_TYPE)
            && let Ok(value) = http::HeaderValue::from_str(&message.content_type)
        {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    }
}

/// A gRPC status of the other sidecar (its refusal, or a transport failure)
/// with its causes.
fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&describe(source));
    }
    text
}
