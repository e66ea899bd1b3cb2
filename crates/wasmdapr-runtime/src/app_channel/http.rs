//! Dapr's HTTP app protocol, written once for every app reached with HTTP
//! requests ([`HttpAppChannel`]: the Wasm app served in-process, a process
//! on `--app-port`), as daprd speaks it (`pkg/channel/http`,
//! `pkg/runtime/subscription/postman/http`, `GetSubscriptionsHTTP`):
//!
//! - an invocation is the request itself;
//! - the programmatic subscriptions are the answer to `GET /dapr/subscribe`
//!   (`Content-Type: application/json`, `dapr-app-id`): 404 is none;
//! - an event is a `POST` of the CloudEvent, as the broker holds it, to its
//!   route, with `Content-Type: application/cloudevents+json`, the
//!   message's metadata and `pubsubname` as headers and the delivery's
//!   `traceparent`; the answer is read by [`app_verdict`];
//! - a batch is one `POST` of a `BulkSubscribeMessage`
//!   (`Content-Type: application/json`), answered per entry by
//!   [`bulk_verdicts`].

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use super::{
    AppChannel, AppRequest, AppResponse, AppVerdict, BulkEvent, BulkEvents, ChannelError,
    SubscriptionsError, TopicEvent,
};
use crate::app_id::AppId;
use crate::pubsub::Metadata;
use crate::pubsub::cloudevent::CLOUDEVENT_CONTENT_TYPE;
use crate::pubsub::subscriptions::{AppSubscription, parse_programmatic};

/// An app reached with HTTP requests. Implementing `call` makes it an
/// [`AppChannel`] speaking Dapr's HTTP app protocol.
#[async_trait]
pub trait HttpAppChannel: Send + Sync + 'static {
    /// Delivers one request to the app and returns its answer.
    async fn call(&self, request: AppRequest) -> Result<AppResponse, ChannelError>;
}

#[async_trait]
impl<T: HttpAppChannel> AppChannel for T {
    async fn invoke(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        self.call(request).await
    }

    async fn subscriptions(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<AppSubscription>, SubscriptionsError> {
        let request = http::Request::get("/dapr/subscribe")
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("dapr-app-id", app_id.as_str())
            .body(Bytes::new())
            .expect("a valid request");
        let answer = self.call(request).await?;
        match answer.status() {
            http::StatusCode::NOT_FOUND => {
                tracing::debug!("the app has no /dapr/subscribe: no programmatic subscription");
                Ok(Vec::new())
            }
            status if status.is_success() => parse_programmatic(answer.body())
                .map_err(|error| SubscriptionsError::Refused(error.to_string())),
            status => Err(SubscriptionsError::Refused(format!(
                "GET /dapr/subscribe answered {status}"
            ))),
        }
    }

    async fn deliver_event(&self, event: TopicEvent) -> Result<AppVerdict, ChannelError> {
        let request = match event_request(event) {
            Ok(request) => request,
            Err(reason) => return Ok(AppVerdict::Retry(reason)),
        };
        let answer = self.call(request).await?;
        Ok(app_verdict(answer.status().as_u16(), answer.body()))
    }

    async fn deliver_bulk(&self, events: BulkEvents) -> Result<Vec<AppVerdict>, ChannelError> {
        let ids: Vec<String> = events.entries.iter().map(|e| e.entry_id.clone()).collect();
        let request = match bulk_request(events) {
            Ok(request) => request,
            Err(reason) => return Ok(vec![AppVerdict::Retry(reason); ids.len()]),
        };
        let answer = self.call(request).await?;
        Ok(bulk_verdicts(answer.status().as_u16(), answer.body(), &ids))
    }
}

/// The path of a route: routes may be written without the leading `/`.
fn route_uri(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// `builder` with the message's metadata as headers (its own
/// `Content-Length` and `Content-Type` left out, as daprd does; names or
/// values that are no valid header are skipped).
fn with_metadata(
    mut builder: http::request::Builder,
    metadata: &Metadata,
) -> http::request::Builder {
    for (key, value) in metadata {
        if key.eq_ignore_ascii_case("content-length") || key.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    builder
}

/// The `POST` of one event to its route.
fn event_request(event: TopicEvent) -> Result<AppRequest, String> {
    let mut builder = with_metadata(http::Request::post(route_uri(&event.path)), &event.metadata)
        .header("pubsubname", event.pubsub.as_str())
        .header(http::header::CONTENT_TYPE, CLOUDEVENT_CONTENT_TYPE);
    if let Some(traceparent) = &event.traceparent {
        builder = builder.header("traceparent", traceparent.as_str());
        if let Some(state) = event.tracestate.as_deref().filter(|s| !s.is_empty())
            && let Ok(value) = http::HeaderValue::from_str(state)
        {
            builder = builder.header("tracestate", value);
        }
    }
    builder
        .body(event.body)
        .map_err(|e| format!("the route `{}` is no valid request path: {e}", event.path))
}

/// The `POST` of a batch: daprd's `BulkSubscribeMessage`
/// (`{id, type, topic, pubsubname, metadata, entries: [{entryId, event,
/// metadata, contentType}]}`); a raw entry's event is its bytes in base64.
fn bulk_request(events: BulkEvents) -> Result<AppRequest, String> {
    let entries: Vec<serde_json::Value> = events
        .entries
        .iter()
        .map(|entry| {
            let event = match &entry.event {
                BulkEvent::CloudEvent(event) => event.clone(),
                BulkEvent::Raw(bytes) => serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                ),
            };
            serde_json::json!({
                "entryId": entry.entry_id,
                "event": event,
                "metadata": entry.metadata,
                "contentType": entry.content_type,
            })
        })
        .collect();
    let body = serde_json::json!({
        "id": events.id,
        "type": BULK_EVENT_TYPE,
        "topic": events.topic,
        "pubsubname": events.pubsub,
        "metadata": events.metadata,
        "entries": entries,
    });
    let mut builder = with_metadata(
        http::Request::post(route_uri(&events.path)),
        &events.metadata,
    )
    .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(traceparent) = &events.traceparent {
        builder = builder.header("traceparent", traceparent.as_str());
    }
    builder
        .body(Bytes::from(serde_json::to_vec(&body).expect("JSON")))
        .map_err(|e| format!("the route `{}` is no valid request path: {e}", events.path))
}

/// The `type` of a batch (components-contrib's `DefaultBulkEventType`).
pub const BULK_EVENT_TYPE: &str = "com.dapr.event.sent.bulk";

/// daprd's reading of an HTTP app's answer to an event: 2xx with an empty
/// or non-JSON body, or JSON without a string `status`, or `SUCCESS` (or
/// `""`) is success; `RETRY` or any other status string (case-sensitive) retries;
/// `DROP` drops; 404 drops; any other status retries.
pub fn app_verdict(status: u16, body: &[u8]) -> AppVerdict {
    if status == 404 {
        return AppVerdict::Drop("the app answered 404".into());
    }
    if !(200..300).contains(&status) {
        return AppVerdict::Retry(format!("the app answered {status}"));
    }
    #[derive(Deserialize)]
    struct Answer {
        status: Option<serde_json::Value>,
    }
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return AppVerdict::Success;
    };
    match answer.status {
        None => AppVerdict::Success,
        Some(serde_json::Value::String(s)) => match s.as_str() {
            "" | "SUCCESS" => AppVerdict::Success,
            "DROP" => AppVerdict::Drop("the app answered DROP".into()),
            "RETRY" => AppVerdict::Retry("the app answered RETRY".into()),
            other => AppVerdict::Retry(format!("the app answered an unknown status `{other}`")),
        },
        // daprd decodes the body into a struct with a string `status`: a
        // status of another JSON type fails that decode, which it reads as
        // success.
        Some(_) => AppVerdict::Success,
    }
}

/// daprd's reading of an HTTP app's answer to a batch (`DeliverBulk`): a
/// 2xx answer is `{"statuses": [{"entryId", "status"}]}`, read per entry:
/// `SUCCESS` acks, `DROP` drops, `RETRY`, an empty or unknown status, or no
/// status at all for an entry retries it (unknown entry ids are ignored);
/// a 2xx body that is no such JSON retries all; 404 drops all (not
/// dead-lettered, as daprd); any other status retries all. One verdict per
/// id of `ids`, in order.
pub fn bulk_verdicts(status: u16, body: &[u8], ids: &[String]) -> Vec<AppVerdict> {
    if status == 404 {
        return vec![AppVerdict::Unhandled("the app answered 404 to the batch".into()); ids.len()];
    }
    if !(200..300).contains(&status) {
        return vec![
            AppVerdict::Retry(format!("the app answered {status} to the batch"));
            ids.len()
        ];
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "entryId", default)]
        entry_id: String,
        #[serde(default)]
        status: String,
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        statuses: Vec<Entry>,
    }
    let answer = match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => answer,
        Err(error) => {
            return vec![
                AppVerdict::Retry(format!(
                    "the app's answer to the batch cannot be read: {error}"
                ));
                ids.len()
            ];
        }
    };
    let statuses: std::collections::HashMap<&str, &str> = answer
        .statuses
        .iter()
        .map(|e| (e.entry_id.as_str(), e.status.as_str()))
        .collect();
    ids.iter()
        .map(|id| match statuses.get(id.as_str()) {
            Some(&"SUCCESS") => AppVerdict::Success,
            Some(&"DROP") => AppVerdict::Drop(format!("the app answered DROP for entry {id}")),
            Some(&"RETRY") | Some(&"") => {
                AppVerdict::Retry(format!("the app answered RETRY for entry {id}"))
            }
            Some(other) => AppVerdict::Retry(format!(
                "the app answered an unknown status `{other}` for entry {id}"
            )),
            None => AppVerdict::Retry(format!("the app did not answer for entry {id}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// daprd's table of app answers.
    #[test]
    fn verdicts() {
        use AppVerdict::*;
        assert_eq!(app_verdict(200, b""), Success);
        assert_eq!(app_verdict(204, b"not json"), Success);
        assert_eq!(app_verdict(200, br#"{"status":"SUCCESS"}"#), Success);
        assert_eq!(app_verdict(200, br#"{"status":""}"#), Success);
        assert_eq!(app_verdict(200, br#"{"other":1}"#), Success);
        assert_eq!(app_verdict(200, br#"{"status":5}"#), Success);
        assert!(matches!(
            app_verdict(200, br#"{"status":"RETRY"}"#),
            Retry(_)
        ));
        assert!(matches!(
            app_verdict(200, br#"{"status":"success"}"#),
            Retry(_)
        ));
        assert!(matches!(app_verdict(200, br#"{"status":"DROP"}"#), Drop(_)));
        assert!(matches!(app_verdict(404, b""), Drop(_)));
        assert!(matches!(app_verdict(500, b""), Retry(_)));
        assert!(matches!(
            app_verdict(400, br#"{"status":"SUCCESS"}"#),
            Retry(_)
        ));
    }

    /// daprd's table of answers to a batch: per entry, missing or empty
    /// retries, unknown ids ignored; 404 drops all; other statuses and
    /// unreadable bodies retry all.
    #[test]
    fn bulk_answers() {
        use AppVerdict::*;
        let ids: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let body = br#"{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"DROP"},
            {"entryId":"c","status":"RETRY"},{"entryId":"d","status":""},{"entryId":"zz","status":"SUCCESS"}]}"#;
        let got = bulk_verdicts(200, body, &ids);
        assert_eq!(got[0], Success);
        assert!(matches!(got[1], Drop(_)));
        assert!(got[2..].iter().all(|v| matches!(v, Retry(_))), "{got:?}");
        assert!(
            bulk_verdicts(404, b"", &ids)
                .iter()
                .all(|v| matches!(v, Unhandled(_)))
        );
        assert!(
            bulk_verdicts(500, body, &ids)
                .iter()
                .all(|v| matches!(v, Retry(_)))
        );
        assert!(
            bulk_verdicts(200, b"not json", &ids)
                .iter()
                .all(|v| matches!(v, Retry(_)))
        );
        assert!(
            bulk_verdicts(
                200,
                br#"{"statuses":[{"entryId":"a","status":"success"}]}"#,
                &ids[..1]
            )
            .iter()
            .all(|v| matches!(v, Retry(_))),
            "statuses are case-sensitive"
        );
    }
}
