//! The metadata API, `GET /v1.0/metadata`, and the sidecar's own life:
//! health (`/v1.0/healthz`, `/v1.0/healthz/outbound`) and `/v1.0/shutdown`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use super::{HttpResult, HttpState, json_response};

/// The metadata, health and shutdown routes.
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .route("/v1.0/shutdown", post(shutdown))
}

/// A component in `GET /v1.0/metadata`.
#[derive(Serialize)]
struct ComponentJson {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    version: String,
    capabilities: Vec<String>,
}

/// `GET /v1.0/metadata`, with Dapr's field names; the building blocks this
/// runtime does not have yet are present and empty, as in a Dapr sidecar
/// without them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataJson {
    id: String,
    runtime_version: String,
    enabled_features: Vec<String>,
    actors: Vec<Value>,
    components: Vec<ComponentJson>,
    extended: HashMap<String, String>,
    subscriptions: Vec<Value>,
    http_endpoints: Vec<Value>,
}

async fn metadata(State(s): State<HttpState>) -> HttpResult<Response> {
    let m = s.api.metadata().await?;
    let body = MetadataJson {
        id: m.id,
        runtime_version: m.runtime_version,
        enabled_features: Vec::new(),
        actors: Vec::new(),
        components: m
            .components
            .into_iter()
            .map(|c| ComponentJson {
                name: c.name,
                kind: c.kind,
                version: c.version,
                capabilities: c.capabilities,
            })
            .collect(),
        extended: HashMap::new(),
        subscriptions: Vec::new(),
        http_endpoints: Vec::new(),
    };
    Ok(json_response(&body))
}

/// 204 once the sidecar is ready, its app included (when it has one).
async fn healthz(State(s): State<HttpState>) -> HttpResult<StatusCode> {
    s.api.ready()?;
    Ok(StatusCode::NO_CONTENT)
}

/// 204 as soon as the APIs are up: what an app calls to know it can use
/// Dapr before it is itself ready.
async fn healthz_outbound() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Answers first, then asks the process to stop: the caller gets its 204
/// before the listeners close.
async fn shutdown(State(s): State<HttpState>) -> StatusCode {
    tracing::info!("shutdown requested through the HTTP API");
    let api = s.api.clone();
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        api.shutdown();
    });
    StatusCode::NO_CONTENT
}
