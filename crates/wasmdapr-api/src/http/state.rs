//! The state API: `/v1.0/state/{store}…` and the alpha query route, with
//! Dapr's JSON shapes for items, bulk answers and query results.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use wasmdapr_runtime::ApiError;
use wasmdapr_runtime::api::BulkStateItem;
use wasmdapr_runtime::error::echo;
use wasmdapr_runtime::state::query::QueryResponse;
use wasmdapr_runtime::state::{
    DeleteRequest, GetRequest, Metadata, Operation, SetRequest, StateOptions, Ttl,
};

use super::extract::{Json, QueryParams, Scalar, concurrency, consistency, metadata_of};
use super::{HttpResult, HttpState, json_response};

/// The state routes.
pub(super) fn routes() -> Router<HttpState> {
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

/// Keys are the runtime's to check (empty, or forging another app's
/// prefix), with the error it gives every door.
impl StateItemJson {
    fn into_set(self) -> Result<SetRequest, ApiError> {
        let metadata = metadata_of(self.metadata);
        let value = value_bytes(self.value.as_deref(), &metadata);
        Ok(SetRequest {
            key: self.key,
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
            key: self.key,
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

async fn save_state(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    params: QueryParams,
    Json(items): Json<Vec<StateItemJson>>,
) -> HttpResult<StatusCode> {
    // Keys and TTLs are the runtime's to check, every item before any is
    // written, so a bad item does not leave the ones before it saved.
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
    params: QueryParams,
) -> HttpResult<Response> {
    read_one(&s, &store, key, params).await
}

/// `GET /v1.0/state/{store}/bulk` and `…/transaction`: keys that happen to
/// have the name of a fixed route.
async fn get_fixed_key(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    params: QueryParams,
    request: axum::http::Uri,
) -> HttpResult<Response> {
    let key = fixed_key(&request);
    read_one(&s, &store, key, params).await
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
    params: QueryParams,
    headers: HeaderMap,
) -> HttpResult<StatusCode> {
    delete_one(&s, &store, key, params, &headers).await
}

/// `DELETE /v1.0/state/{store}/bulk` and `…/transaction`.
async fn delete_fixed_key(
    State(s): State<HttpState>,
    Path(store): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> HttpResult<StatusCode> {
    let key = fixed_key(&uri);
    delete_one(&s, &store, key, params, &headers).await
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
    params: QueryParams,
    Json(request): Json<BulkGetJson>,
) -> HttpResult<Response> {
    let metadata = params.metadata_over(request.metadata);
    let parallelism = usize::try_from(request.parallelism).unwrap_or(0);
    let items = s
        .api
        .get_bulk_state(&store, request.keys, parallelism, metadata)
        .await?;
    Ok(json_response(&BulkAnswer(&items)))
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
    params: QueryParams,
    Json(request): Json<TransactionJson>,
) -> HttpResult<StatusCode> {
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
    let metadata = params.metadata_over(request.metadata);
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
    params: QueryParams,
    Json(query): Json<Value>,
) -> HttpResult<Response> {
    let response = s.api.query_state(&store, query, params.metadata).await?;
    Ok(json_response(&QueryResponseJson::from(response)))
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
