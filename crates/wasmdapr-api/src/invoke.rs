//! Service invocation on the wire: the translations the HTTP and gRPC
//! front doors, the internal endpoint and [`crate::RemoteDapr`] share (the
//! verbs of Dapr's `HTTPExtension`, HTTP status → gRPC code), and reading
//! an app's bounded answer. The hop between sidecars is in
//! [`crate::internal`].

use bytes::Bytes;
use dapr::dapr::proto::common::v1::http_extension::Verb;
use http::Method;
use tonic::Code;
use wasmdapr_runtime::{ApiError, InvokeRequest};

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

/// `request` as the `common.v1.InvokeRequest` both gRPC clients send (to a
/// real sidecar's `InvokeService`, to another sidecar's `CallLocal`): the
/// body as an `Any`, its content type, and the verb and query in the
/// `HTTPExtension`; the headers are given back for the caller to send as
/// metadata. Verbs the proto has no value for are refused.
pub fn invoke_message(
    request: InvokeRequest,
) -> Result<
    (
        dapr::dapr::proto::common::v1::InvokeRequest,
        http::HeaderMap,
    ),
    ApiError,
> {
    use dapr::dapr::proto::common::v1 as common;
    let verb = verb_to_grpc(&request.verb)?;
    let content_type = content_type(&request.headers);
    let message = common::InvokeRequest {
        method: request.method,
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: request.body.to_vec(),
        }),
        content_type,
        http_extension: Some(common::HttpExtension {
            verb: verb as i32,
            querystring: request.query.unwrap_or_default(),
        }),
    };
    Ok((message, request.headers))
}

/// The runtime's [`InvokeRequest`] of a `common.v1.InvokeRequest` received
/// over gRPC (`InvokeService`, the internal `CallLocal`) with the call's
/// `headers`, the reverse of [`invoke_message`]: the verb and query from
/// the `HTTPExtension`, the body from `data` (its bytes, whatever the
/// `Any`'s type), and the message's content type, when it has one, over
/// the headers'.
pub fn invoke_request(
    message: dapr::dapr::proto::common::v1::InvokeRequest,
    mut headers: http::HeaderMap,
) -> Result<InvokeRequest, ApiError> {
    let extension = message.http_extension.unwrap_or_default();
    let verb = verb_from_grpc(extension.verb)?;
    set_content_type(&mut headers, &message.content_type);
    Ok(InvokeRequest {
        method: message.method,
        verb,
        query: Some(extension.querystring).filter(|q| !q.is_empty()),
        headers,
        body: message.data.map(|d| d.value).unwrap_or_default().into(),
    })
}

/// The `Content-Type` of `headers` as the proto's `content_type` string
/// (empty when absent or not text).
pub fn content_type(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Sets `headers`' `Content-Type` from a proto's `content_type` string; an
/// empty or invalid one leaves the headers as they are.
pub fn set_content_type(headers: &mut http::HeaderMap, content_type: &str) {
    if !content_type.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(content_type)
    {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
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

/// An error with its causes, which say what actually failed ("connection
/// refused", "unknown issuer").
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
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
