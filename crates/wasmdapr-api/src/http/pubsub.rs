//! The publish API: `POST|PUT /v1.0/publish/{pubsub}/{topic…}` (the topic
//! is the rest of the path, `/` included) and bulk publish on
//! `/v1.0/publish/bulk/…` and `/v1.0-alpha1/publish/bulk/…`, with daprd's
//! bodies: the raw body and its `Content-Type` for one event, a JSON array
//! of `{entryId, event, contentType, metadata}` for a bulk, whose failures
//! answer 500 `{"failedEntries": […], "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"}`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wasmdapr_runtime::ErrorKind;
use wasmdapr_runtime::api::{
    BulkEvent, BulkPublishEntry, BulkPublishError, BulkPublishEvent, PublishEvent, TraceContext,
};

use super::extract::{Body, QueryParams};
use super::{HttpError, HttpResult, HttpState};

/// The publish routes.
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1.0/publish/{*target}", post(publish).put(publish))
        .route("/v1.0/publish/bulk/{*target}", post(bulk).put(bulk))
        .route("/v1.0-alpha1/publish/bulk/{*target}", post(bulk).put(bulk))
}

/// `{pubsub}/{topic…}`: the name up to the first `/`, the topic after it
/// (either may be empty: the runtime answers daprd's errors for those).
fn split(target: &str) -> (String, String) {
    match target.split_once('/') {
        Some((name, topic)) => (name.to_owned(), topic.to_owned()),
        None => (target.to_owned(), String::new()),
    }
}

async fn publish(
    State(s): State<HttpState>,
    Path(target): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    Body(body): Body,
) -> HttpResult<StatusCode> {
    let (pubsub_name, topic) = split(&target);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    s.api
        .publish_event(PublishEvent {
            pubsub_name,
            topic,
            data: body.to_vec(),
            content_type,
            metadata: params.metadata,
            trace: TraceContext::from_headers(&headers),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One entry of a bulk publish body, as daprd reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    #[serde(default)]
    entry_id: String,
    #[serde(default)]
    event: Option<Box<RawValue>>,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
}

/// A failed bulk publish as daprd answers it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkFailureJson {
    failed_entries: Vec<FailedEntryJson>,
    error_code: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailedEntryJson {
    entry_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

async fn bulk(
    State(s): State<HttpState>,
    Path(target): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<StatusCode, Response> {
    let (pubsub_name, topic) = split(&target);
    // Entries that do not parse are the runtime's to refuse, after the
    // checks daprd makes first (component, topic, metadata).
    let (entries, malformed_body) = match serde_json::from_slice::<Vec<EntryJson>>(&body) {
        Ok(entries) => (entries, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let entries =
        entries
            .into_iter()
            .map(|entry| BulkPublishEntry {
                entry_id: entry.entry_id,
                event: BulkEvent::Json(entry.event.unwrap_or_else(|| {
                    RawValue::from_string("null".into()).expect("null is JSON")
                })),
                content_type: entry.content_type,
                metadata: entry.metadata,
            })
            .collect();
    let published = s
        .api
        .bulk_publish_event(BulkPublishEvent {
            pubsub_name,
            topic,
            entries,
            metadata: params.metadata,
            trace: TraceContext::from_headers(&headers),
            malformed_body,
        })
        .await;
    match published {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(BulkPublishError {
            error,
            failed_entries,
        }) if error.kind == ErrorKind::PubSubPublishMessage => {
            tracing::warn!(code = error.code(), message = %error.message, "bulk publish failed");
            let body = BulkFailureJson {
                failed_entries: failed_entries
                    .into_iter()
                    .map(|f| FailedEntryJson {
                        entry_id: f.entry_id,
                        error: f.error,
                    })
                    .collect(),
                error_code: error.code(),
            };
            let body = serde_json::to_vec(&body).unwrap_or_default();
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response())
        }
        Err(e) => Err(HttpError(e.error).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pub/sub name is the first segment, the topic all the rest.
    #[test]
    fn targets_split_at_the_first_slash() {
        assert_eq!(
            split("pubsub/orders/eu"),
            ("pubsub".into(), "orders/eu".into())
        );
        assert_eq!(split("pubsub"), ("pubsub".into(), String::new()));
        assert_eq!(split("/t"), (String::new(), "t".into()));
    }
}
