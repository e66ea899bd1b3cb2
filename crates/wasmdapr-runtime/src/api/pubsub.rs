//! [`PubSubApi`]: the publishing half of the pub/sub building block as the
//! doors call it. Requests carry what the caller sent (the body, its
//! content type, metadata, the caller's trace context); the implementation
//! checks names and scopes, builds the CloudEvents envelope and publishes.

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::pubsub::cloudevent;
use crate::pubsub::{FailedEntry, Metadata};

/// The W3C trace context a publish arrived with (`traceparent` and
/// `tracestate` headers or gRPC metadata), continued in the envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// The caller's `traceparent`, if any (a malformed one starts a new trace).
    pub traceparent: Option<String>,
    /// The caller's `tracestate`, if any.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context in `headers` (HTTP headers, or gRPC metadata as headers).
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        TraceContext {
            traceparent: get(crate::invoke::TRACEPARENT),
            tracestate: get(crate::invoke::TRACESTATE),
        }
    }
}

/// One event to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishEvent {
    /// The pub/sub component's name.
    pub pubsub_name: String,
    /// The topic (the rest of the HTTP path; it may contain `/`).
    pub topic: String,
    /// The body.
    pub data: Vec<u8>,
    /// The body's content type (empty: none, `text/plain` in the envelope).
    pub content_type: String,
    /// Request metadata (`rawPayload`, `ttlInSeconds`, `cloudevent.*`, …).
    pub metadata: Metadata,
    /// The caller's trace context.
    pub trace: TraceContext,
}

/// A bulk entry's event as the caller sent it.
#[derive(Debug, Clone)]
pub enum BulkEvent {
    /// Bytes used as they are (gRPC).
    Bytes(Vec<u8>),
    /// A JSON value (the HTTP body's `event`), turned into bytes by the
    /// entry's content type as daprd's `ConvertEventToBytes` does: a base64
    /// string for `application/octet-stream`, a string for text and XML,
    /// the JSON itself for JSON and CloudEvents; anything else is refused
    /// (`ERR_PUBSUB_EVENTS_SER`).
    Json(Box<RawValue>),
}

impl Default for BulkEvent {
    fn default() -> Self {
        BulkEvent::Bytes(Vec::new())
    }
}

impl PartialEq for BulkEvent {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (BulkEvent::Bytes(a), BulkEvent::Bytes(b)) => a == b,
            (BulkEvent::Json(a), BulkEvent::Json(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Eq for BulkEvent {}

/// daprd's `errContentTypeMismatch`.
const CONTENT_TYPE_MISMATCH: &str = "error: mismatch between contentType and event";

impl BulkEvent {
    /// The event's bytes for `content_type` (see [`BulkEvent::Json`]), or
    /// why they cannot be made, worded as daprd words it.
    pub fn into_bytes(self, content_type: &str) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let json = match self {
            BulkEvent::Bytes(bytes) => return Ok(bytes),
            BulkEvent::Json(json) => json,
        };
        let as_string = || {
            serde_json::from_str::<String>(json.get()).map_err(|_| CONTENT_TYPE_MISMATCH.to_owned())
        };
        if cloudevent::is_binary(content_type) {
            base64::engine::general_purpose::STANDARD
                .decode(as_string()?)
                .map_err(|e| {
                    format!("error: unable to decode base64 application/octect-stream data: {e}")
                })
        } else if cloudevent::is_string(content_type) {
            as_string().map(String::into_bytes)
        } else if cloudevent::is_json(content_type) || cloudevent::is_cloudevent(content_type) {
            Ok(cloudevent::compact(json.get()).into_bytes())
        } else {
            Err(CONTENT_TYPE_MISMATCH.to_owned())
        }
    }
}

/// One entry of a bulk publish, as the caller sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPublishEntry {
    /// Its id, required and unique within the request.
    pub entry_id: String,
    /// The event.
    pub event: BulkEvent,
    /// The event's content type.
    pub content_type: String,
    /// The entry's own metadata, over the request's. `None` (no `metadata`
    /// object) gives the entry no metadata at all, not the request's: daprd
    /// merges only when the entry has some.
    pub metadata: Option<Metadata>,
}

/// A bulk publish to one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPublishEvent {
    /// The pub/sub component's name.
    pub pubsub_name: String,
    /// The topic.
    pub topic: String,
    /// The entries, in order.
    pub entries: Vec<BulkPublishEntry>,
    /// Request metadata.
    pub metadata: Metadata,
    /// The caller's trace context (each entry gets a span of its own).
    pub trace: TraceContext,
    /// Why the HTTP body could not be read as entries, if it could not:
    /// the runtime answers daprd's `ERR_PUBSUB_EVENTS_SER` for it, after
    /// the checks daprd makes first (component, topic, metadata).
    pub malformed_body: Option<String>,
}

/// Why a bulk publish failed: the error, and the entries the broker did not
/// take (empty when nothing was published because the request was refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct BulkPublishError {
    /// The error (`ERR_PUBSUB_PUBLISH_MESSAGE` when entries failed).
    pub error: ApiError,
    /// The entries that were not published.
    pub failed_entries: Vec<FailedEntry>,
}

impl From<ApiError> for BulkPublishError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            failed_entries: Vec::new(),
        }
    }
}

/// The most entries one bulk publish may carry; more is refused as
/// `ERR_PUBSUB_EVENTS_SER` before anything is published. daprd bounds them
/// only by its body size; every entry becomes an envelope held in memory
/// until the broker took them all, so the count is bounded here too.
pub const MAX_BULK_PUBLISH_ENTRIES: usize = 10_000;

/// Publishing events.
#[async_trait]
pub trait PubSubApi: Send + Sync + 'static {
    /// Publishes one event (wrapped in a CloudEvent unless `rawPayload`).
    async fn publish_event(&self, event: PublishEvent) -> Result<(), ApiError>;

    /// Publishes many events to one topic, each in its own envelope.
    async fn bulk_publish_event(&self, event: BulkPublishEvent) -> Result<(), BulkPublishError>;
}
