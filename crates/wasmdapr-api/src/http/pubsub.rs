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

/// One entry of a bulk publish body, as daprd reads it: Go's
/// `encoding/json` matches field names case-insensitively (an exact match
/// first), and the JavaScript SDK writes `entryID`, so `entryId`,
/// `entryID` and `EntryId` are all the entry id.
struct EntryJson {
    entry_id: String,
    event: Option<Box<RawValue>>,
    content_type: String,
    metadata: Option<HashMap<String, String>>,
}

impl<'de> Deserialize<'de> for EntryJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let fields = HashMap::<String, Box<RawValue>>::deserialize(deserializer)?;
        let field = |name: &str| {
            fields.get(name).or_else(|| {
                fields
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value)
            })
        };
        // `null` leaves a Go field at its zero value.
        let parse = |name: &str| -> Result<Option<&RawValue>, D::Error> {
            Ok(field(name).map(|v| &**v).filter(|v| v.get() != "null"))
        };
        let string = |name: &str| -> Result<String, D::Error> {
            parse(name)?
                .map(|v| serde_json::from_str::<String>(v.get()).map_err(D::Error::custom))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(EntryJson {
            entry_id: string("entryId")?,
            event: field("event").cloned(),
            content_type: string("contentType")?,
            metadata: parse("metadata")?
                .map(|v| serde_json::from_str(v.get()).map_err(D::Error::custom))
                .transpose()?,
        })
    }
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

    /// Entry fields match case-insensitively, as Go's JSON does (the
    /// JavaScript SDK sends `entryID`); a field of the wrong type fails the
    /// body.
    #[test]
    fn entry_fields_match_like_go() {
        let entries: Vec<EntryJson> = serde_json::from_str(
            r#"[{"entryID":"a","EVENT":{"x":1},"contenttype":"application/json","Metadata":{"k":"v"}},
                {"entryId":"b","entryID":"ignored","event":null,"metadata":null}]"#,
        )
        .unwrap();
        assert_eq!(entries[0].entry_id, "a");
        assert_eq!(entries[0].event.as_ref().unwrap().get(), r#"{"x":1}"#);
        assert_eq!(entries[0].content_type, "application/json");
        assert_eq!(entries[0].metadata.as_ref().unwrap()["k"], "v");
        assert_eq!(entries[1].entry_id, "b");
        assert!(entries[1].metadata.is_none());
        assert!(serde_json::from_str::<Vec<EntryJson>>(r#"[{"entryId":1}]"#).is_err());
        assert!(serde_json::from_str::<Vec<EntryJson>>(r#"[{"metadata":{"k":1}}]"#).is_err());
    }

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
