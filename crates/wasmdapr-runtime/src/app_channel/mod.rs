//! [`AppChannel`]: how the runtime reaches the app it serves, at the level
//! of Dapr's blocks: a service invocation, the app's programmatic
//! subscriptions, one pub/sub event, a batch of events (bulk subscribe).
//!
//! Dapr speaks two app protocols, and the runtime knows neither:
//!
//! - HTTP ([`http`]): an invocation is the request itself,
//!   the subscriptions are `GET /dapr/subscribe`, an event is a `POST` of the
//!   CloudEvent to its route, a batch a `POST` of a `BulkSubscribeMessage`.
//!   Every app reached with HTTP requests implements [`HttpAppChannel`]
//!   (one `call`), and gets this mapping, written once: the Wasm app served
//!   in-process (`WasmApp`, in `wasmdapr-host`) and an ordinary process on
//!   `--app-port` (`HttpApp`, in `wasmdapr-api`).
//! - gRPC (`GrpcApp`, in `wasmdapr-api`): Dapr's `AppCallback` service,
//!   `OnInvoke`, `ListTopicSubscriptions`, `OnTopicEvent`,
//!   `OnBulkTopicEvent`.
//!
//! Invocations stay HTTP-shaped (a method, a path, headers, a body), as in
//! daprd, whose gRPC channel maps them onto `InvokeRequest`; an
//! [`AppRequest`] carries the whole body in memory (bounded by
//! `--max-body-size` at every front door). The app's own answer to an
//! invocation, whatever its status (404, 500, …), is an `Ok` response
//! passed back to the caller unchanged, as Dapr does. The answer to an event
//! is read by the channel into one status type, [`AppVerdict`], so the
//! delivery semantics (ack, retry, dead-letter) live once, in
//! `runtime::delivery`. An `Err` means the app could not answer at all.

pub mod http;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::app_id::AppId;
use crate::error::ApiError;
use crate::pubsub::Metadata;
use crate::pubsub::subscriptions::AppSubscription;
pub use crate::pubsub::subscriptions::AppVerdict;
pub use http::HttpAppChannel;

/// A delivery to the app. The URI is the app-side path and query
/// (`/method/name?x=1`), without scheme or authority.
pub type AppRequest = ::http::Request<Bytes>;

/// The app's answer.
pub type AppResponse = ::http::Response<Bytes>;

/// Why an app could not answer a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Every slot is taken and the wait queue is full (`--max-concurrency`):
    /// the caller should retry after the given time (HTTP 503 `Retry-After`).
    #[error("app '{app}' is at its concurrency limit; retry after {retry_after:?}")]
    Busy {
        /// The app.
        app: String,
        /// A hint for the caller.
        retry_after: Duration,
    },
    /// The app did not answer within its limit (`--timeout`; HTTP 504).
    #[error("app '{app}' did not answer within {limit:?}")]
    Timeout {
        /// The app.
        app: String,
        /// The limit.
        limit: Duration,
    },
    /// The app failed while answering (a trap, a memory limit, a broken
    /// connection) or cannot be reached (not listening, not healthy).
    #[error("app '{app}' failed: {reason}")]
    Failed {
        /// The app.
        app: String,
        /// What happened, for humans.
        reason: String,
    },
}

impl From<ChannelError> for ApiError {
    /// A failed delivery of a service invocation is Dapr's
    /// `ERR_DIRECT_INVOKE`, naming the app and the cause as daprd words it.
    fn from(error: ChannelError) -> Self {
        let (ChannelError::Busy { app, .. }
        | ChannelError::Timeout { app, .. }
        | ChannelError::Failed { app, .. }) = &error;
        crate::invoke::invoke_error(app, &error)
    }
}

/// One pub/sub event for the app, routed: the CloudEvent both as the app's
/// protocol needs it and as the broker holds it.
#[derive(Debug, Clone)]
pub struct TopicEvent {
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The route the subscription's rules chose (an HTTP path, or a gRPC
    /// app's `path`, possibly empty).
    pub path: String,
    /// The CloudEvent (a JSON object).
    pub event: serde_json::Value,
    /// The CloudEvent's bytes as stored on the broker (or the `rawPayload`
    /// envelope), which an HTTP app receives untouched.
    pub body: Bytes,
    /// The message's metadata, which the app receives as headers (HTTP) or
    /// call metadata (gRPC).
    pub metadata: Metadata,
    /// The delivery's own span, a child of the publisher's (`traceparent`).
    pub traceparent: Option<String>,
    /// The publisher's `tracestate`, passed along with it.
    pub tracestate: Option<String>,
}

/// A batch of events of one subscription for one route (bulk subscribe).
#[derive(Debug, Clone)]
pub struct BulkEvents {
    /// A fresh id of the batch.
    pub id: String,
    /// The pub/sub component.
    pub pubsub: String,
    /// The topic.
    pub topic: String,
    /// The route of every entry.
    pub path: String,
    /// The batch's metadata (daprd sends `pubsubName`).
    pub metadata: Metadata,
    /// The entries, in the order they arrived.
    pub entries: Vec<BulkEntry>,
    /// The delivery's span, a child of the first traced entry's.
    pub traceparent: Option<String>,
}

/// One entry of a [`BulkEvents`].
#[derive(Debug, Clone)]
pub struct BulkEntry {
    /// Its id in the batch; the app answers per entry id.
    pub entry_id: String,
    /// The event.
    pub event: BulkEvent,
    /// `application/cloudevents+json`, or the raw payload's content type.
    pub content_type: String,
    /// The message's metadata.
    pub metadata: Metadata,
}

/// The event of a bulk entry.
#[derive(Debug, Clone)]
pub enum BulkEvent {
    /// The CloudEvent (a JSON object).
    CloudEvent(serde_json::Value),
    /// A `rawPayload` subscription's bytes, as published.
    Raw(Bytes),
}

/// Why the app's programmatic subscriptions could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionsError {
    /// The app could not be reached; worth asking again.
    #[error(transparent)]
    Unreachable(#[from] ChannelError),
    /// The app answered, but not with subscriptions (an error status, an
    /// unreadable list); asking again would not help.
    #[error("{0}")]
    Refused(String),
}

/// The app behind this runtime, as Dapr's app channel.
#[async_trait]
pub trait AppChannel: Send + Sync + 'static {
    /// Delivers one service invocation and returns the app's answer.
    async fn invoke(&self, request: AppRequest) -> Result<AppResponse, ChannelError>;

    /// The app's programmatic subscriptions (`app_id` is this app, which
    /// daprd names to it). An app that has none to declare (HTTP 404, gRPC
    /// `UNIMPLEMENTED`) has none: `Ok` and empty.
    async fn subscriptions(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<AppSubscription>, SubscriptionsError>;

    /// Delivers one event; the app's answer as a verdict.
    async fn deliver_event(&self, event: TopicEvent) -> Result<AppVerdict, ChannelError>;

    /// Delivers a batch; one verdict per entry, in the entries' order
    /// (entries the app did not answer for are [`AppVerdict::Retry`]).
    async fn deliver_bulk(&self, events: BulkEvents) -> Result<Vec<AppVerdict>, ChannelError>;
}
