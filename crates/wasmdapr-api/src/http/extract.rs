//! What every block of the HTTP API reads the same way, in one place: the
//! checks made before routing (API token, declared body size), and the
//! extractors handlers take — [`Body`] and [`Json`] under the body limit,
//! [`QueryParams`] for Dapr's query string — each refusing with Dapr's
//! error answer. Handlers never see a rejection of their own to map.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasmdapr_runtime::error::echo;
use wasmdapr_runtime::state::{Concurrency, Consistency, Metadata};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{HttpError, HttpResult, HttpState};
use crate::config::{API_TOKEN_HEADER, ApiToken};

// ---------------------------------------------------------------- middleware

/// The requests daprd lets through without the API token: `GET` of its two
/// health endpoints, matched exactly on the raw path. Nothing is exempt by
/// prefix: an unknown path under `/v1.0/healthz/` with a `dapr-app-id`
/// header is a service invocation, which must not escape the token.
/// (daprd also trims slashes before comparing, because its router
/// strips them too; this router does not, so `/v1.0/healthz/` would be
/// an invocation here and is not exempt either.)
fn exempt_from_api_token(request: &Request) -> bool {
    request.method() == axum::http::Method::GET
        && matches!(
            request.uri().path(),
            "/v1.0/healthz" | "/v1.0/healthz/outbound"
        )
}

/// Dapr's API token: when configured, every request but the health checks
/// must carry it in `dapr-api-token`.
pub(super) async fn require_api_token(
    State(token): State<Option<ApiToken>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &token {
        let exempt = exempt_from_api_token(&request);
        let given = request
            .headers()
            .get(API_TOKEN_HEADER)
            .map(HeaderValue::as_bytes);
        if !exempt && !token.matches(given) {
            return HttpError(ApiError::new(
                ErrorKind::Unauthorized,
                "authorization failed: the dapr-api-token header is missing or invalid",
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// Refuses a request whose `Content-Length` exceeds the limit before its body
/// is read; bodies without a length are cut off by `DefaultBodyLimit`.
pub(super) async fn refuse_declared_oversize(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return HttpError(too_large(limit)).into_response();
    }
    next.run(request).await
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::BodyTooLarge,
        format!("the request body is larger than the maximum of {limit} bytes"),
    )
}

// ---------------------------------------------------------------- extractors

/// The request body, read under the API's body limit: a body over it is
/// Dapr's `ERR_BODY_TOO_LARGE`, one that cannot be read a malformed request.
pub(super) struct Body(pub(super) Bytes);

impl FromRequest<HttpState> for Body {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &HttpState) -> HttpResult<Self> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    HttpError(too_large(state.max_body_size))
                } else {
                    HttpError(ApiError::malformed(format!(
                        "failed to read the request body: {}",
                        rejection.body_text()
                    )))
                }
            })
    }
}

/// A JSON request body, read as [`Body`]; JSON that does not parse into
/// `T` is a malformed request. (axum's own `Json` also insists on a JSON
/// content type, which Dapr's clients do not always send.)
pub(super) struct Json<T>(pub(super) T);

impl<T: DeserializeOwned> FromRequest<HttpState> for Json<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &HttpState) -> HttpResult<Self> {
        let Body(body) = Body::from_request(request, state).await?;
        serde_json::from_slice(&body).map(Json).map_err(|e| {
            HttpError(ApiError::malformed(format!(
                "failed to parse the request body as JSON: {e}"
            )))
        })
    }
}

/// The query string parameters Dapr reads: `metadata.<name>`,
/// `consistency`, `concurrency`; others are ignored, as daprd does.
#[derive(Default)]
pub(super) struct QueryParams {
    pub(super) metadata: Metadata,
    pub(super) consistency: Consistency,
    pub(super) concurrency: Concurrency,
}

impl QueryParams {
    /// A JSON body's `metadata` object with the query's `metadata.<name>`
    /// over it: a request's metadata when it may come from both.
    pub(super) fn metadata_over(self, body: Option<HashMap<String, Scalar>>) -> Metadata {
        let mut metadata = metadata_of(body);
        metadata.extend(self.metadata);
        metadata
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> HttpResult<Self> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                HttpError(ApiError::malformed(format!(
                    "invalid query string: {}",
                    e.body_text()
                )))
            })?;
        let mut params = QueryParams::default();
        for (name, value) in pairs {
            if let Some(key) = name.strip_prefix("metadata.") {
                params.metadata.insert(key.to_owned(), value);
            } else if name == "consistency" {
                params.consistency = consistency(&value)?;
            } else if name == "concurrency" {
                params.concurrency = concurrency(&value)?;
            }
        }
        Ok(params)
    }
}

/// A `concurrency` of the query string or of a state item's `options`.
pub(super) fn concurrency(value: &str) -> Result<Concurrency, ApiError> {
    match value {
        "" => Ok(Concurrency::Unspecified),
        "first-write" => Ok(Concurrency::FirstWrite),
        "last-write" => Ok(Concurrency::LastWrite),
        other => Err(ApiError::malformed(format!(
            "concurrency `{}` is not first-write or last-write",
            echo(other)
        ))),
    }
}

/// A `consistency` of the query string or of a state item's `options`.
pub(super) fn consistency(value: &str) -> Result<Consistency, ApiError> {
    match value {
        "" => Ok(Consistency::Unspecified),
        "eventual" => Ok(Consistency::Eventual),
        "strong" => Ok(Consistency::Strong),
        other => Err(ApiError::malformed(format!(
            "consistency `{}` is not eventual or strong",
            echo(other)
        ))),
    }
}

/// A metadata or ETag value: Dapr's JSON has strings, but clients write
/// `"ttlInSeconds": 60` too, so scalars are accepted as their text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    pub(super) fn into_string(self) -> String {
        match self {
            Scalar::String(s) => s,
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A JSON body's `metadata` object as the runtime's metadata (absent is
/// empty).
pub(super) fn metadata_of(map: Option<HashMap<String, Scalar>>) -> Metadata {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_string()))
        .collect()
}
