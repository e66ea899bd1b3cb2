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
//! | any | `/v1.0/invoke/{app-id}/method/{method…}` | the app's own status |
//! | any | any other path with a `dapr-app-id` header | the app's own status |
//! | `GET` | `/v1.0/metadata` | 200 |
//! | `PUT` | `/v1.0/metadata/{key}` (the body is the value) | 204 |
//! | `GET` | `/v1.0/healthz` | 204, or 500 `ERR_HEALTH_NOT_READY` while the app is awaited |
//! | `GET` | `/v1.0/healthz/outbound` | 204 |
//! | `POST` | `/v1.0/shutdown` | 204, then shutdown |

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tower_http::trace::TraceLayer;
use wasmdapr_runtime::api::prelude::*;
use wasmdapr_runtime::api::{AppConnectionProperties, BulkStateItem};
use wasmdapr_runtime::error::echo;
use wasmdapr_runtime::state::query::QueryResponse;
use wasmdapr_runtime::state::{
    Concurrency, Consistency, DeleteRequest, GetRequest, Metadata, Operation, SetRequest,
    StateOptions, Ttl,
};
use wasmdapr_runtime::{ApiError, ErrorKind, InvokeRequest, InvokeResponse};

use crate::config::{API_TOKEN_HEADER, ApiConfig, ApiToken};

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
        .layer(middleware::from_fn_with_state(token, require_api_token))
        .layer(TraceLayer::new_for_http())
}

/// The API's routes, behind [`router`]'s token check.
fn routes(api: Arc<dyn DaprApi>, config: ApiConfig) -> Router {
    let state = HttpState {
        api,
        max_body_size: config.max_body_size,
    };
    Router::new()
        .route("/v1.0/state/{store}", post(save_state).put(save_state))
        .route(
            "/v1.0/state/{store}/bulk",
            post(get_bulk_state)
                .put(get_bulk_state)
                // A key may be called `bulk` or `transaction`: the fixed
                // routes win for POST/PUT, so GET/DELETE are routed here too.
                .get(get_fixed_key)
                .delete(delete_fixed_key),
        )
        .route(
            "/v1.0/state/{store}/transaction",
            post(transact_state)
                .put(transact_state)
                .get(get_fixed_key)
                .delete(delete_fixed_key),
        )
        .route(
            "/v1.0/state/{store}/{key}",
            get(get_state).delete(delete_state),
        )
        .route(
            "/v1.0-alpha1/state/{store}/query",
            post(query_state).put(query_state),
        )
        .route("/v1.0/invoke/{app_id}/method/{*method}", any(invoke))
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/metadata/{key}", axum::routing::put(set_metadata))
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .route("/v1.0/shutdown", post(shutdown))
        .fallback(invoke_by_header)
        // Innermost first: chunked bodies are cut off while being read…
        .layer(DefaultBodyLimit::max(config.max_body_size))
        // …and declared lengths are refused before a byte of body is read
        // (after the token check of `router`).
        .layer(middleware::from_fn_with_state(
            config.max_body_size,
            refuse_declared_oversize,
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

// ---------------------------------------------------------------- errors

/// An [`ApiError`] as Dapr's HTTP error response.
struct HttpError(ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

/// Dapr's error body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error_code: &'a str,
    message: &'a str,
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        error_code: code,
        message,
    })
    .unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response()
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = e.code(), message = %e.message, "request failed");
        } else {
            tracing::debug!(code = e.code(), message = %e.message, "request refused");
        }
        error_response(status, e.code(), &e.message)
    }
}

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
async fn require_api_token(
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
async fn refuse_declared_oversize(
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

// ---------------------------------------------------------------- input

impl HttpState {
    /// The body, or the reason it could not be read (too large, cut off).
    fn body(&self, body: Result<Bytes, BytesRejection>) -> HttpResult<Bytes> {
        body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                HttpError(too_large(self.max_body_size))
            } else {
                HttpError(ApiError::malformed(format!(
                    "failed to read the request body: {}",
                    rejection.body_text()
                )))
            }
        })
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> HttpResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        HttpError(ApiError::malformed(format!(
            "failed to parse the request body as JSON: {e}"
        )))
    })
}

/// The query string parameters Dapr reads: `metadata.<name>`,
/// `consistency`, `concurrency`.
#[derive(Default)]
struct QueryParams {
    metadata: Metadata,
    consistency: Consistency,
    concurrency: Concurrency,
}

impl QueryParams {
    fn parse(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> HttpResult<Self> {
        let Query(pairs) = query.map_err(|e| {
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

fn concurrency(value: &str) -> Result<Concurrency, ApiError> {
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

fn consistency(value: &str) -> Result<Consistency, ApiError> {
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
enum Scalar {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::String(s) => s,
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn metadata_of(map: Option<HashMap<String, Scalar>>) -> Metadata {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_string()))
        .collect()
}

/// `options` of a state item.
#[derive(Deserialize, Default)]
struct OptionsJson {
    #[serde(default)]
    concurrency: Option<String>,
    #[serde(default)]
    consistency: Option<String>,
}

impl OptionsJson {
    fn parse(options: Option<Self>) -> Result<StateOptions, ApiError> {
        let options = options.unwrap_or_default();
        Ok(StateOptions {
            concurrency: concurrency(options.concurrency.as_deref().unwrap_or(""))?,
            consistency: consistency(options.consistency.as_deref().unwrap_or(""))?,
        })
    }
}

/// One item of a save, or the request of a transaction operation.
#[derive(Deserialize)]
struct StateItemJson {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<Box<RawValue>>,
    #[serde(default)]
    etag: Option<Scalar>,
    #[serde(default)]
    metadata: Option<HashMap<String, Scalar>>,
    #[serde(default)]
    options: Option<OptionsJson>,
}

impl StateItemJson {
    fn key(&self) -> Result<String, ApiError> {
        if self.key.is_empty() {
            return Err(ApiError::malformed("a state item needs a non-empty `key`"));
        }
        Ok(self.key.clone())
    }

    fn into_set(self) -> Result<SetRequest, ApiError> {
        let key = self.key()?;
        let metadata = metadata_of(self.metadata);
        let value = value_bytes(self.value.as_deref(), &metadata);
        Ok(SetRequest {
            key,
            value,
            etag: self.etag.map(Scalar::into_string),
            options: OptionsJson::parse(self.options)?,
            metadata,
            // Parsed from the metadata by the runtime.
            ttl: Ttl::Unset,
        })
    }

    fn into_delete(self) -> Result<DeleteRequest, ApiError> {
        Ok(DeleteRequest {
            key: self.key()?,
            etag: self.etag.map(Scalar::into_string),
            options: OptionsJson::parse(self.options)?,
            metadata: metadata_of(self.metadata),
        })
    }
}

/// The bytes Dapr stores for a JSON `value`: its JSON text exactly as the
/// client sent it (a string keeps its quotes; an absent value is `null`),
/// except a string declared with a non-JSON `contentType`, which is stored
/// as its raw text.
fn value_bytes(value: Option<&RawValue>, metadata: &Metadata) -> Vec<u8> {
    let Some(value) = value else {
        return b"null".to_vec();
    };
    let text = value.get();
    let non_json = metadata
        .get("contentType")
        .is_some_and(|c| !c.to_ascii_lowercase().contains("json"));
    if non_json
        && text.starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(text)
    {
        return s.into_bytes();
    }
    text.as_bytes().to_vec()
}

/// Stored bytes as a JSON value of a response (`data` of bulk get and
/// query): JSON as it is, other UTF-8 text as a JSON string, other bytes as
/// a base64 JSON string. It serializes straight from the stored bytes, so
/// an answer holding many values is written without copying each first.
struct DataJson<'a>(&'a [u8]);

impl Serialize for DataJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => match serde_json::from_str::<&RawValue>(text) {
                Ok(json) => json.serialize(serializer),
                Err(_) => serializer.serialize_str(text),
            },
            Err(_) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
            }
        }
    }
}

/// [`DataJson`] as an owned JSON value.
fn data_json(bytes: &[u8]) -> Box<RawValue> {
    serde_json::value::to_raw_value(&DataJson(bytes)).expect("stored bytes always make JSON")
}

// ---------------------------------------------------------------- state

async fn save_state(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<StatusCode> {
    let params = QueryParams::parse(query)?;
    let body = s.body(body)?;
    let items: Vec<StateItemJson> = parse_json(&body)?;
    // Every item is checked before any is written, so a bad item does not
    // leave the ones before it saved.
    let mut requests = items
        .into_iter()
        .map(StateItemJson::into_set)
        .collect::<Result<Vec<_>, _>>()?;
    for request in &mut requests {
        for (k, v) in &params.metadata {
            request
                .metadata
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    s.api.save_state(&store, requests).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_state(
    State(s): State<HttpState>,
    Path((store, key)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> HttpResult<Response> {
    read_one(&s, &store, key, QueryParams::parse(query)?).await
}

/// `GET /v1.0/state/{store}/bulk` and `…/transaction`: keys that happen to
/// have the name of a fixed route.
async fn get_fixed_key(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    request: axum::http::Uri,
) -> HttpResult<Response> {
    let key = fixed_key(&request);
    read_one(&s, &store, key, QueryParams::parse(query)?).await
}

fn fixed_key(uri: &axum::http::Uri) -> String {
    uri.path().rsplit('/').next().unwrap_or_default().to_owned()
}

async fn read_one(
    s: &HttpState,
    store: &str,
    key: String,
    params: QueryParams,
) -> HttpResult<Response> {
    let content_type = params.metadata.get("contentType").cloned();
    let request = GetRequest {
        key,
        consistency: params.consistency,
        metadata: params.metadata,
    };
    let Some(value) = s.api.get_state(store, request).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut headers = HeaderMap::new();
    let content_type = content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Some(etag) = value
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    // Dapr returns the store's metadata (e.g. `ttlExpireTime`) as
    // `metadata.<name>` headers.
    for (name, v) in &value.metadata {
        if let (Ok(name), Ok(v)) = (
            HeaderName::try_from(format!("metadata.{name}")),
            HeaderValue::from_str(v),
        ) {
            headers.insert(name, v);
        }
    }
    Ok((StatusCode::OK, headers, value.data).into_response())
}

async fn delete_state(
    State(s): State<HttpState>,
    Path((store, key)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> HttpResult<StatusCode> {
    delete_one(&s, &store, key, QueryParams::parse(query)?, &headers).await
}

/// `DELETE /v1.0/state/{store}/bulk` and `…/transaction`.
async fn delete_fixed_key(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> HttpResult<StatusCode> {
    let key = fixed_key(&uri);
    delete_one(&s, &store, key, QueryParams::parse(query)?, &headers).await
}

async fn delete_one(
    s: &HttpState,
    store: &str,
    key: String,
    params: QueryParams,
    headers: &HeaderMap,
) -> HttpResult<StatusCode> {
    let etag = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::malformed("the If-Match header is not valid text"))?
                .to_owned(),
        ),
    };
    let request = DeleteRequest {
        key,
        etag,
        options: StateOptions {
            concurrency: params.concurrency,
            consistency: params.consistency,
        },
        metadata: params.metadata,
    };
    s.api.delete_state(store, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0/state/{store}/bulk`.
#[derive(Deserialize)]
struct BulkGetJson {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    parallelism: i64,
    #[serde(default)]
    metadata: Option<HashMap<String, Scalar>>,
}

/// One item of a bulk get answer, as Dapr writes it, borrowed from the
/// runtime's answer.
#[derive(Serialize)]
struct BulkItemJson<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<DataJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> From<&'a BulkStateItem> for BulkItemJson<'a> {
    fn from(item: &'a BulkStateItem) -> Self {
        let value = item.value.as_ref();
        BulkItemJson {
            key: &item.key,
            data: value.map(|v| DataJson(&v.data)),
            etag: value.and_then(|v| v.etag.as_deref()),
            metadata: value.map(|v| &v.metadata).filter(|m| !m.is_empty()),
            error: item.error.as_deref().filter(|e| !e.is_empty()),
        }
    }
}

/// A bulk get answer: the JSON array is written item by item from the
/// runtime's answer into the one response buffer (no intermediate copy of
/// the values).
struct BulkAnswer<'a>(&'a [BulkStateItem]);

impl Serialize for BulkAnswer<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(BulkItemJson::from))
    }
}

async fn get_bulk_state(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Response> {
    let params = QueryParams::parse(query)?;
    let body = s.body(body)?;
    let request: BulkGetJson = parse_json(&body)?;
    let mut metadata = metadata_of(request.metadata);
    metadata.extend(params.metadata);
    let parallelism = usize::try_from(request.parallelism).unwrap_or(0);
    let items = s
        .api
        .get_bulk_state(&store, request.keys, parallelism, metadata)
        .await?;
    Ok(json_response(&BulkAnswer(&items)))
}

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

/// `POST /v1.0/state/{store}/transaction`.
#[derive(Deserialize)]
struct TransactionJson {
    #[serde(default)]
    operations: Vec<TransactionOperationJson>,
    #[serde(default)]
    metadata: Option<HashMap<String, Scalar>>,
}

#[derive(Deserialize)]
struct TransactionOperationJson {
    operation: String,
    request: StateItemJson,
}

async fn transact_state(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<StatusCode> {
    let params = QueryParams::parse(query)?;
    let body = s.body(body)?;
    let request: TransactionJson = parse_json(&body)?;
    let operations = request
        .operations
        .into_iter()
        .map(|op| match op.operation.as_str() {
            "upsert" => op.request.into_set().map(Operation::Upsert),
            "delete" => op.request.into_delete().map(Operation::Delete),
            other => Err(ApiError::malformed(format!(
                "operation type `{}` is not supported (upsert, delete)",
                echo(other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut metadata = metadata_of(request.metadata);
    metadata.extend(params.metadata);
    s.api.transact_state(&store, operations, metadata).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One row of a query answer, as Dapr writes it.
#[derive(Serialize)]
struct QueryItemJson {
    key: String,
    data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

#[derive(Serialize)]
struct QueryResponseJson {
    results: Vec<QueryItemJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<QueryResponse> for QueryResponseJson {
    fn from(response: QueryResponse) -> Self {
        Self {
            results: response
                .results
                .into_iter()
                .map(|item| QueryItemJson {
                    key: item.key,
                    data: data_json(&item.data),
                    etag: item.etag,
                })
                .collect(),
            token: response.token.filter(|t| !t.is_empty()),
        }
    }
}

async fn query_state(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Response> {
    let params = QueryParams::parse(query)?;
    let body = s.body(body)?;
    let query: Value = parse_json(&body)?;
    let response = s.api.query_state(&store, query, params.metadata).await?;
    Ok(json_response(&QueryResponseJson::from(response)))
}

// ---------------------------------------------------------------- service invocation

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
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Response> {
    let method = uri
        .path()
        .splitn(6, '/')
        .nth(5)
        .unwrap_or_default()
        .to_owned();
    let body = s.body(body)?;
    invoke_app(&s, &app_id, verb, method, &uri, headers, body).await
}

/// Any path Dapr's API does not have, with a `dapr-app-id` header (or the
/// `dapr-app-id:<id>@` basic-auth user Dapr also reads), is an invocation of
/// that path on that app; without one it is a 404.
async fn invoke_by_header(State(s): State<HttpState>, request: Request) -> Response {
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
    let body = Bytes::from_request(Request::from_parts(parts, body), &()).await;
    let body = match s.body(body) {
        Ok(body) => body,
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

// ---------------------------------------------------------------- metadata, health, shutdown

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
    extended: std::collections::BTreeMap<String, String>,
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
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<StatusCode> {
    let body = s.body(body)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasmdapr_runtime::state::StateValue;

    /// Values are stored as their JSON text, except non-JSON strings.
    #[test]
    fn stored_bytes_follow_dapr() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let none = Metadata::new();
        let death_star = raw("\"Death Star\"");
        assert_eq!(value_bytes(Some(&death_star), &none), b"\"Death Star\"");
        let object = raw("{\"b\":1,\"a\":2}");
        assert_eq!(value_bytes(Some(&object), &none), b"{\"b\":1,\"a\":2}");
        assert_eq!(value_bytes(None, &none), b"null");
        let text: Metadata = [("contentType".into(), "text/plain".into())].into();
        assert_eq!(value_bytes(Some(&death_star), &text), b"Death Star");
        assert_eq!(value_bytes(Some(&object), &text), b"{\"b\":1,\"a\":2}");
        let json: Metadata = [("contentType".into(), "application/json".into())].into();
        assert_eq!(value_bytes(Some(&raw("\"x\"")), &json), b"\"x\"");
    }

    /// Response `data` is JSON as stored, else a string, else base64.
    #[test]
    fn data_as_json() {
        assert_eq!(data_json(b"{\"b\":1,\"a\":2}").get(), "{\"b\":1,\"a\":2}");
        assert_eq!(data_json(b" [1, 2] ").get(), "[1, 2]");
        assert_eq!(data_json(b"plain text").get(), "\"plain text\"");
        assert_eq!(data_json(b"say \"hi\"\n").get(), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(data_json(&[0xff, 0x00]).get(), "\"/wA=\"");
    }

    /// A bulk answer is Dapr's array: `data`/`etag`/`metadata` only for
    /// found keys, `error` only for failed ones.
    #[test]
    fn bulk_answer_as_dapr_writes_it() {
        let items = [
            BulkStateItem {
                key: "a".into(),
                value: Some(StateValue {
                    data: b"{\"n\":1}".to_vec(),
                    etag: Some("3".into()),
                    metadata: [("ttlExpireTime".into(), "2030-01-01T00:00:00Z".into())].into(),
                }),
                error: None,
            },
            BulkStateItem {
                key: "b".into(),
                value: None,
                error: None,
            },
            BulkStateItem {
                key: "c".into(),
                value: None,
                error: Some("down".into()),
            },
        ];
        let json = serde_json::to_string(&BulkAnswer(&items)).unwrap();
        assert_eq!(
            json,
            r#"[{"key":"a","data":{"n":1},"etag":"3","metadata":{"ttlExpireTime":"2030-01-01T00:00:00Z"}},{"key":"b"},{"key":"c","error":"down"}]"#
        );
    }
}
