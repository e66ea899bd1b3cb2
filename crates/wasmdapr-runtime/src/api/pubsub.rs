//! [`PubSubApi`]: the publishing half of the pub/sub building block as the
//! doors call it. Requests carry what the caller sent (the body, its
//! content type, metadata, the caller's trace context); the implementation
//! checks names and scopes, builds the CloudEvents envelope and publishes.

use async_trait::async_trait;

use crate::error::ApiError;
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

/// One entry of a bulk publish, as the caller sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPublishEntry {
    /// Its id, required and unique within the request.
    pub entry_id: String,
    /// The event's bytes (the doors turn a JSON `event` into bytes by its
    /// content type).
    pub event: Vec<u8>,
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
