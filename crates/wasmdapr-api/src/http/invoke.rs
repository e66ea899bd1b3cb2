//! Service invocation: `/v1.0/invoke/{app-id}/method/{method…}`, and any
//! other path carrying the target app's id in a `dapr-app-id` header (the
//! router's fallback).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use wasmdapr_runtime::{InvokeRequest, InvokeResponse};

use super::extract::Body;
use super::{HttpResult, HttpState, not_found};

/// The invocation route; invocation by header is the router's fallback,
/// [`by_header`].
pub(super) fn routes() -> Router<HttpState> {
    Router::new().route("/v1.0/invoke/{app_id}/method/{*method}", any(invoke))
}

/// The header naming the target app of an invocation on any path.
const APP_ID_HEADER: &str = "dapr-app-id";

/// `/v1.0/invoke/{app-id}/method/{method…}`, every verb. The method is taken
/// from the raw path, still percent-encoded, so the app receives exactly the
/// path the caller wrote.
async fn invoke(
    State(s): State<HttpState>,
    Path((app_id, _)): Path<(String, String)>,
    verb: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Body(body): Body,
) -> HttpResult<Response> {
    let method = uri
        .path()
        .splitn(6, '/')
        .nth(5)
        .unwrap_or_default()
        .to_owned();
    invoke_app(&s, &app_id, verb, method, &uri, headers, body).await
}

/// Any path Dapr's API does not have, with a `dapr-app-id` header (or the
/// `dapr-app-id:<id>@` basic-auth user Dapr also reads), is an invocation of
/// that path on that app; without one it is a 404.
pub(super) async fn by_header(State(s): State<HttpState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get(APP_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| basic_auth_app_id(&parts.headers));
    let Some(app_id) = target else {
        return not_found(Request::from_parts(parts, body)).await;
    };
    let (method, uri, mut headers) = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    // The extractor, so the body limit and its errors are the other routes'.
    let body = match Body::from_request(Request::from_parts(parts, body), &s).await {
        Ok(Body(body)) => body,
        Err(e) => return e.into_response(),
    };
    headers.remove(APP_ID_HEADER);
    let path = uri.path().trim_start_matches('/').to_owned();
    invoke_app(&s, &app_id, method, path, &uri, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The app id of `Authorization: Basic base64("dapr-app-id:<id>")`, the
/// form `http://dapr-app-id:<id>@localhost:3500/…` URLs produce.
fn basic_auth_app_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, id) = text.split_once(':')?;
    (user == APP_ID_HEADER && !id.is_empty()).then(|| id.to_owned())
}

async fn invoke_app(
    s: &HttpState,
    app_id: &str,
    verb: axum::http::Method,
    method: String,
    uri: &axum::http::Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    if basic_auth_app_id(&headers).is_some() {
        headers.remove(header::AUTHORIZATION);
    }
    let request = InvokeRequest {
        method,
        verb,
        query: uri.query().map(str::to_owned),
        headers,
        body,
    };
    let response: InvokeResponse = s.api.invoke(app_id, request).await?;
    Ok(response.map(axum::body::Body::from))
}
