//! Service invocation on the wire: [`SidecarClient`], the runtime's
//! [`RemoteInvoker`] over HTTP (one sidecar calling another's
//! `/v1.0/invoke/{id}/method/{method}`), and the translations the HTTP and
//! gRPC front doors and [`crate::RemoteDapr`] share (the verbs of Dapr's
//! `HTTPExtension`, HTTP status → gRPC code).
//!
//! The hop is HTTP/1.1 over a pooled keep-alive connection: on loopback it
//! costs tens of microseconds, and it reaches the other sidecar's public
//! API, where that sidecar's own routing, token check and app channel apply.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dapr::dapr::proto::common::v1::http_extension::Verb;
use http::{HeaderValue, Method};
use tonic::Code;
use wasmdapr_runtime::invoke::HopError;
use wasmdapr_runtime::{ApiError, AppId, InvokeRequest, InvokeResponse, RemoteInvoker};

use crate::config::API_TOKEN_HEADER;

/// The verb of a gRPC `HTTPExtension`; `NONE` (no extension) is `POST`, as
/// Dapr delivers such calls to HTTP apps.
pub fn verb_from_grpc(verb: i32) -> Result<Method, ApiError> {
    Ok(
        match Verb::try_from(verb)
            .map_err(|_| ApiError::malformed(format!("{verb} is not an HTTPExtension verb")))?
        {
            Verb::None | Verb::Post => Method::POST,
            Verb::Get => Method::GET,
            Verb::Head => Method::HEAD,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
            Verb::Connect => Method::CONNECT,
            Verb::Options => Method::OPTIONS,
            Verb::Trace => Method::TRACE,
            Verb::Patch => Method::PATCH,
        },
    )
}

/// The `HTTPExtension` verb of `method`; verbs the proto has no value for
/// are refused.
pub fn verb_to_grpc(method: &Method) -> Result<Verb, ApiError> {
    Ok(match *method {
        Method::GET => Verb::Get,
        Method::HEAD => Verb::Head,
        Method::POST => Verb::Post,
        Method::PUT => Verb::Put,
        Method::DELETE => Verb::Delete,
        Method::CONNECT => Verb::Connect,
        Method::OPTIONS => Verb::Options,
        Method::TRACE => Verb::Trace,
        Method::PATCH => Verb::Patch,
        ref other => {
            return Err(ApiError::malformed(format!(
                "the verb {other} cannot be sent over gRPC service invocation"
            )));
        }
    })
}

/// The gRPC code of an app's non-2xx HTTP status (the mapping of gRPC's
/// HTTP/JSON transcoding, read backwards).
pub fn grpc_code_for_http(status: u16) -> Code {
    match status {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        416 => Code::OutOfRange,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Unknown,
    }
}

/// The gRPC metadata key carrying the app's HTTP status, as Dapr sets it.
pub const HTTP_STATUS_METADATA: &str = "dapr-http-status";

/// Calls other sidecars' invocation API over HTTP.
#[derive(Clone, Debug)]
pub struct SidecarClient {
    client: reqwest::Client,
    api_token: Option<HeaderValue>,
    max_body_size: usize,
}

/// Why a [`SidecarClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the client for service invocation: {0}")]
pub struct ClientError(String);

impl SidecarClient {
    /// A client sending `api_token` as `dapr-api-token` on every hop: the
    /// other sidecar's HTTP API checks it like any caller's, so sidecars of
    /// one deployment share `DAPR_API_TOKEN` (or set none). Answers larger
    /// than `max_body_size` (`--max-body-size`) are refused, not buffered.
    pub fn new(api_token: Option<&str>, max_body_size: usize) -> Result<Self, ClientError> {
        let api_token = api_token
            .filter(|t| !t.is_empty())
            .map(|t| {
                HeaderValue::from_str(t)
                    .map_err(|_| ClientError("the API token is not a valid header value".into()))
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            // Sidecars talk directly; a proxy from the environment would
            // see (and could stall) every call between apps.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(Self {
            client,
            api_token,
            max_body_size,
        })
    }
}

#[async_trait]
impl RemoteInvoker for SidecarClient {
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
        let url = format!(
            "http://{address}/v1.0/invoke/{app}/method{}",
            request.path_and_query()
        );
        let mut headers = request.headers;
        if let Some(token) = &self.api_token {
            headers.insert(API_TOKEN_HEADER, token.clone());
        }
        let response = self
            .client
            .request(request.verb, &url)
            .headers(headers)
            .body(request.body)
            .send()
            .await
            .map_err(|e| error(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, self.max_body_size)
            .await
            .map_err(|e| error(format!("reading the answer: {e}")))?;
        let mut answer = http::Response::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// The body of `response`, refused as soon as it is known to exceed
/// `limit` bytes (by its `Content-Length`, or while it streams in), so a
/// peer cannot make this process buffer an unbounded answer.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, String> {
    let too_large = || format!("the answer is larger than the maximum of {limit} bytes");
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// reqwest's error with its causes, which say what actually failed
/// ("connection refused").
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every proto verb maps to its HTTP method and back; NONE is POST.
    #[test]
    fn verbs_round_trip() {
        for verb in 1..=9 {
            let method = verb_from_grpc(verb).unwrap();
            assert_eq!(verb_to_grpc(&method).unwrap() as i32, verb);
        }
        assert_eq!(verb_from_grpc(0).unwrap(), Method::POST);
        assert!(verb_from_grpc(42).is_err());
        assert!(verb_to_grpc(&Method::from_bytes(b"PURGE").unwrap()).is_err());
    }
}
