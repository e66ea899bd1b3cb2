//! [`PubSubApi`]: the pub/sub building block as the doors call it.
//! Publishing requests carry what the caller sent (the body, its content
//! type, metadata, the caller's trace context); the implementation checks
//! names and scopes, builds the CloudEvents envelope and publishes.
//!
//! Streaming subscriptions ([`PubSubApi::subscribe_events`], daprd's
//! `SubscribeTopicEventsAlpha1`) hand a caller a topic's events one by one
//! as [`TopicEvent`]s and take its answer to each ([`EventStatus`]); the
//! gRPC door, the Wasm guests' `subscription` resource and a remote sidecar
//! all go through the one [`EventSubscription`].

use std::collections::HashSet;

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

    /// Opens a streaming subscription: the app (its consumer group) is
    /// subscribed to `request.topic` until the returned
    /// [`EventSubscription`] is dropped, and gets each event through it.
    async fn subscribe_events(
        &self,
        request: StreamSubscribeRequest,
    ) -> Result<EventSubscription, ApiError>;
}

/// A streaming subscription's request (daprd's
/// `SubscribeTopicEventsRequestInitialAlpha1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSubscribeRequest {
    /// The pub/sub component.
    pub pubsub_name: String,
    /// The topic.
    pub topic: String,
    /// Subscription metadata (`rawPayload`, broker options).
    pub metadata: Metadata,
    /// Where events answered [`EventStatus::Drop`] go (`None` or empty:
    /// nowhere, they are acked).
    pub dead_letter_topic: Option<String>,
}

/// An event as a streaming subscription delivers it: daprd's
/// `TopicEventRequest`, filled from the CloudEvent as daprd fills it
/// (`GRPCEnvelopeFromSubscriptionMessage`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicEvent {
    /// The CloudEvent `id`: what the answer names.
    pub id: String,
    /// `source`.
    pub source: String,
    /// `type`.
    pub event_type: String,
    /// `specversion`.
    pub spec_version: String,
    /// `datacontenttype`.
    pub data_content_type: String,
    /// The topic.
    pub topic: String,
    /// The pub/sub component.
    pub pubsub_name: String,
    /// The matched route (`/` for a streaming subscription).
    pub path: String,
    /// `data_base64` decoded; else `data` as its bytes (text and XML) or
    /// its JSON (JSON and CloudEvents content types); else empty.
    pub data: Vec<u8>,
    /// Every other CloudEvent attribute (`topic`, `pubsubname`,
    /// `traceparent`, `time`, custom extensions).
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// What the subscriber did with an event (daprd's `TopicEventResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Processed: acked.
    Success,
    /// Not processed: delivered again (or, once the delivery attempts are
    /// used up, to the dead-letter topic when there is one, as daprd does).
    Retry,
    /// Refused: acked, and sent to the dead-letter topic if there is one.
    Drop,
}

/// Where a subscriber's answers go: the local delivery waiting for them, or
/// a remote sidecar's stream.
pub trait EventResponder: Send + Sync + 'static {
    /// Answers the event `id`, which the subscription delivered and nobody
    /// answered yet.
    fn respond(&self, id: &str, status: EventStatus) -> Result<(), ApiError>;
}

/// How many delivered events one subscription of the local runtime may
/// leave unanswered at once; the next event is held back until one is
/// answered (a remote sidecar applies its own bound, and `RemoteDapr`
/// queues at most this many answers). daprd has no such bound (its brokers'
/// own concurrency bounds it); here it bounds the memory a subscriber that
/// never answers can make the host hold.
pub const MAX_UNANSWERED_EVENTS: usize = 1024;

/// An open streaming subscription. [`EventSubscription::next`] waits for
/// the next event, [`EventSubscription::respond`] answers one. Dropping it
/// ends the subscription: events delivered and not answered are
/// redelivered (to another subscriber of the app, or later).
pub struct EventSubscription {
    events: tokio::sync::mpsc::Receiver<Result<TopicEvent, ApiError>>,
    responder: Box<dyn EventResponder>,
    unanswered: HashSet<String>,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription")
            .field("unanswered", &self.unanswered.len())
            .finish_non_exhaustive()
    }
}

impl EventSubscription {
    /// A subscription whose events arrive on `events` (an `Err` ends it)
    /// and whose answers go to `responder`. Its producer ends it when
    /// `events` is closed, i.e. when this is dropped.
    pub fn new(
        events: tokio::sync::mpsc::Receiver<Result<TopicEvent, ApiError>>,
        responder: Box<dyn EventResponder>,
    ) -> Self {
        Self {
            events,
            responder,
            unanswered: HashSet::new(),
        }
    }

    /// The next event; `Ok(None)` once the subscription has ended (the
    /// runtime shuts down, the remote sidecar closed the stream). Waiting
    /// is cancel-safe: a `next` dropped before it returned loses no event.
    pub async fn next(&mut self) -> Result<Option<TopicEvent>, ApiError> {
        match self.events.recv().await {
            Some(Ok(event)) => {
                self.unanswered.insert(event.id.clone());
                Ok(Some(event))
            }
            Some(Err(error)) => {
                self.events.close();
                Err(error)
            }
            None => Ok(None),
        }
    }

    /// Answers the delivered event `id`. An id that was not delivered, or
    /// was answered already, is refused (`ERR_MALFORMED_REQUEST`): daprd
    /// logs and ignores such an answer, which callers may do with the error.
    pub fn respond(&mut self, id: &str, status: EventStatus) -> Result<(), ApiError> {
        if !self.unanswered.remove(id) {
            return Err(ApiError::malformed(format!(
                "no event with id {} awaits an answer on this subscription",
                crate::error::echo(id)
            )));
        }
        self.responder.respond(id, status)
    }

    /// How many delivered events have no answer yet.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }
}
