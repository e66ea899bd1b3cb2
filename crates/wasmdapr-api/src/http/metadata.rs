//! The metadata API, `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`,
//! and the sidecar's own life:
//! health (`/v1.0/healthz`, `/v1.0/healthz/outbound`) and `/v1.0/shutdown`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::Value;
use wasmdapr_runtime::ApiError;
use wasmdapr_runtime::api::AppConnectionProperties;

use super::extract::Body;
use super::{HttpResult, HttpState, json_response};

/// The metadata, health and shutdown routes.
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/metadata/{key}", put(set_metadata))
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

/// `GET /v1.0/metadata`, with daprd's field names (its `metadataResponse`);
/// the building blocks this runtime does not have yet are present and
/// empty, as in a Dapr sidecar without them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataJson {
    id: String,
    runtime_version: String,
    enabled_features: Vec<String>,
    actors: Vec<Value>,
    components: Vec<ComponentJson>,
    extended: BTreeMap<String, String>,
    subscriptions: Vec<Value>,
    http_endpoints: Vec<Value>,
    app_connection_properties: AppConnectionJson,
}

/// `appConnectionProperties`: daprd leaves out the fields it does not have
/// (`omitempty`), so a sidecar without an app shows the protocol only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppConnectionJson {
    #[serde(skip_serializing_if = "is_zero")]
    port: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    channel_address: String,
    #[serde(skip_serializing_if = "is_zero")]
    max_concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<AppHealthJson>,
}

/// `appConnectionProperties.health`, `omitempty` as in daprd.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppHealthJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    health_check_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    health_probe_interval: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    health_probe_timeout: String,
    #[serde(skip_serializing_if = "is_zero_i32")]
    health_threshold: i32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

impl From<AppConnectionProperties> for AppConnectionJson {
    fn from(p: AppConnectionProperties) -> Self {
        Self {
            port: u32::from(p.port),
            protocol: p.protocol,
            channel_address: p.channel_address,
            max_concurrency: p.max_concurrency,
            health: p.health.map(|h| AppHealthJson {
                health_check_path: h.health_check_path,
                health_probe_interval: h.health_probe_interval,
                health_probe_timeout: h.health_probe_timeout,
                health_threshold: h.health_threshold,
            }),
        }
    }
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
        extended: m.extended,
        subscriptions: Vec::new(),
        http_endpoints: Vec::new(),
        app_connection_properties: m.app_connection.into(),
    };
    Ok(json_response(&body))
}

/// `PUT /v1.0/metadata/{key}`: the raw body is the attribute's value (as
/// daprd reads it, not JSON); 204. A value that is not UTF-8 is refused,
/// since attributes are strings on both doors.
async fn set_metadata(
    State(s): State<HttpState>,
    Path(key): Path<String>,
    Body(body): Body,
) -> HttpResult<StatusCode> {
    let value = std::str::from_utf8(&body)
        .map_err(|_| ApiError::malformed("a metadata value must be UTF-8 text"))?;
    s.api.set_metadata(&key, value).await?;
    Ok(StatusCode::NO_CONTENT)
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
