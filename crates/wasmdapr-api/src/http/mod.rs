//! The Dapr HTTP API v1.0: Dapr's paths, JSON bodies, headers and status
//! codes, translated onto [`DaprApi`]. Errors answer
//! `{"errorCode": "ERR_…", "message": "…"}` with the status of the runtime's
//! error table, so SDKs that match on Dapr's codes work unchanged.
//!
//! | Method | Path | Success |
//! |---|---|---|
//! | `POST`/`PUT` | `/v1.0/state/{store}` | 204 |
//! | `GET` | `/v1.0/state/{store}/{key}` | 200 + `ETag`, or 204 when missing |
//! | `DELETE` | `/v1.0/state/{store}/{key}` (`If-Match`) | 204 |
//! | `POST`/`PUT` | `/v1.0/state/{store}/bulk` | 200 `[{key, data, etag}]` |
//! | `POST`/`PUT` | `/v1.0/state/{store}/transaction` | 204 |
//! | `POST`/`PUT` | `/v1.0-alpha1/state/{store}/query` | 200 `{results, token}` |
//! | `POST`/`PUT` | `/v1.0/publish/{pubsub}/{topic…}` | 204 |
//! | `POST`/`PUT` | `/v1.0/publish/bulk/{pubsub}/{topic…}` (and `/v1.0-alpha1/…`) | 204, or 500 `{failedEntries, errorCode}` |
//! | any | `/v1.0/invoke/{app-id}/method/{method…}` | the app's own status |
//! | any | any other path with a `dapr-app-id` header | the app's own status |
//! | `GET` | `/v1.0/metadata` | 200 |
//! | `GET` | `/v1.0/healthz` | 204, or 500 `ERR_HEALTH_NOT_READY` while the app is awaited |
//! | `GET` | `/v1.0/healthz/outbound` | 204 |
//! | `POST` | `/v1.0/shutdown` | 204, then shutdown |
//!
//! # Layout
//!
//! One file per building block, each with its routes and handlers:
//! [`state`], [`pubsub`], [`invoke`], [`metadata`] (with health and shutdown). What
//! every block reads the same way (the `metadata.<name>` query, the body
//! limit, JSON bodies) is in [`extract`], as axum extractors. A new block
//! is a new file with a `routes()` and one `.merge(…)` line in
//! [`router`]'s list below.

mod extract;
mod invoke;
mod metadata;
mod pubsub;
mod state;

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::trace::TraceLayer;
use wasmdapr_runtime::error::echo;
use wasmdapr_runtime::{ApiError, DaprApi, ErrorKind};

use crate::config::ApiConfig;
use crate::error::{HttpError, error_response};

/// What every handler shares.
#[derive(Clone)]
struct HttpState {
    api: Arc<dyn DaprApi>,
    max_body_size: usize,
}

/// The Dapr HTTP API over `api`, as an axum router (tests and embedders
/// serve it themselves; the binary calls [`serve_http`]).
pub fn router(api: Arc<dyn DaprApi>, config: ApiConfig) -> Router {
    let token = config.token();
    // The token is decided before routing: the routes are one service
    // behind the check, so no route, fallback or 405 answer is reached by a
    // request the check refuses (`Router::layer` alone runs per route).
    Router::new()
        .fallback_service(routes(api, config))
        .layer(middleware::from_fn_with_state(
            token,
            extract::require_api_token,
        ))
        .layer(TraceLayer::new_for_http())
}

/// The API's routes, behind [`router`]'s token check: every block's, then
/// invocation by header for any other path.
fn routes(api: Arc<dyn DaprApi>, config: ApiConfig) -> Router {
    let state = HttpState {
        api,
        max_body_size: config.max_body_size,
    };
    Router::new()
        .merge(state::routes())
        .merge(pubsub::routes())
        .merge(invoke::routes())
        .merge(metadata::routes())
        .fallback(invoke::by_header)
        // Innermost first: chunked bodies are cut off while being read…
        .layer(DefaultBodyLimit::max(config.max_body_size))
        // …and declared lengths are refused before a byte of body is read
        // (after the token check of `router`).
        .layer(middleware::from_fn_with_state(
            config.max_body_size,
            extract::refuse_declared_oversize,
        ))
        .with_state(state)
}

/// Serves the Dapr HTTP API on `listener` until `shutdown` resolves, then
/// lets in-flight requests finish; the connections are bounded and timed
/// as [`crate::server`] describes, by `config.server`.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    api: Arc<dyn DaprApi>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Dapr HTTP API listening");
    }
    let limits = config.server;
    crate::server::serve(listener, router(api, config), limits, shutdown).await
}

/// A JSON answer (200), or the error of a value that cannot be encoded.
fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => HttpError(ApiError::new(
            ErrorKind::StateGet,
            format!("failed to encode the response: {e}"),
        ))
        .into_response(),
    }
}

// ---------------------------------------------------------------- errors

type HttpResult<T> = Result<T, HttpError>;

/// Unknown paths: 404 with a JSON body naming the path, rather than an empty
/// answer a user has to guess about.
async fn not_found(request: Request) -> Response {
    let message = format!(
        "{} {} is not an API of this Dapr sidecar",
        echo(request.method().as_str()),
        echo(request.uri().path())
    );
    error_response(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", &message)
}
