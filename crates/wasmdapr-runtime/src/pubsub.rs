//! The pub/sub building block: the [`PubSub`] trait every broker backend
//! implements, the messages the runtime hands it and receives from it, and
//! what all backends share: the CloudEvents envelope Dapr builds
//! ([`cloudevent`]) and the topic scopes of a component ([`scopes`]).
//!
//! A backend moves bytes: it never sees app ids, scopes or CloudEvents.
//! The runtime builds the envelope before [`PubSub::publish`] and decides,
//! per subscription, the consumer group (the app id, or the component's
//! `consumerID`), so replicas of one app share a topic's events and
//! different apps each get every event.
//!
//! # Delivery contract
//!
//! [`PubSub::subscribe`] hands each message to a [`MessageHandler`] and acks
//! it to the broker only after the handler returned `Ok`: a handler error
//! (or a handler still running when the process dies) leaves the message
//! unacked, and a backend that declares [`PubSubFeatures::redelivery`]
//! delivers it again (at-least-once). Redeliveries carry a growing
//! [`ReceivedMessage::attempt`], so the runtime can bound retries and
//! dead-letter a poison event without the backend's help.

pub mod cloudevent;
pub mod scopes;
pub mod subscriptions;

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

pub use crate::state::Metadata;
pub use scopes::TopicScopes;

/// One message to publish: the bytes as they go to the broker (a
/// CloudEvent's JSON, or the raw payload) and the request's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    /// The topic, as given (it may contain `/`).
    pub topic: String,
    /// The bytes to store.
    pub data: Vec<u8>,
    /// The content type of `data` (`application/cloudevents+json` for an
    /// envelope), for brokers that carry one.
    pub content_type: Option<String>,
    /// Request metadata (`rawPayload`, `ttlInSeconds`, broker options, …).
    pub metadata: Metadata,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkMessageEntry {
    /// The caller's id of the entry, unique within the request.
    pub entry_id: String,
    /// The bytes to store.
    pub event: Vec<u8>,
    /// Their content type.
    pub content_type: String,
    /// The entry's metadata.
    pub metadata: Metadata,
}

/// A bulk publish to one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPublishRequest {
    /// The topic.
    pub topic: String,
    /// The entries, in the caller's order.
    pub entries: Vec<BulkMessageEntry>,
    /// The request's metadata.
    pub metadata: Metadata,
}

/// An entry a bulk publish could not publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its `entry_id`.
    pub entry_id: String,
    /// Why.
    pub error: String,
}

/// A subscription to one topic on behalf of one consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The topic.
    pub topic: String,
    /// The consumer group: subscriptions of one group share the topic's
    /// messages (each goes to one of them), different groups each get
    /// every message. The runtime passes the app id.
    pub consumer_group: String,
    /// Subscription metadata.
    pub metadata: Metadata,
}

/// A message as a subscription receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The broker's id of the message (a stream id, a sequence number):
    /// the same on every redelivery.
    pub id: String,
    /// The topic it was published to.
    pub topic: String,
    /// The bytes as published.
    pub data: Vec<u8>,
    /// The metadata the broker carried with it (empty for brokers that
    /// carry none).
    pub metadata: Metadata,
    /// 1 for the first delivery, then one more for each redelivery (as far
    /// as the broker counts them).
    pub attempt: u32,
}

/// Why a handler did not take a message: it is not acked, and is
/// redelivered by backends that can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// What a subscription hands each message to. `Ok` acks the message to the
/// broker; `Err` leaves it unacked (to be redelivered).
pub trait MessageHandler: Send + Sync + 'static {
    /// Processes one message.
    fn handle(&self, message: ReceivedMessage) -> BoxFuture<'static, Result<(), HandlerError>>;
}

impl<F, Fut> MessageHandler for F
where
    F: Fn(ReceivedMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(&self, message: ReceivedMessage) -> BoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(self(message))
    }
}

/// A running subscription. [`Subscription::close`] stops it: no new message
/// is taken, the handlers already running finish (and their acks are
/// made), and whatever is not acked stays with the broker. Dropping it
/// stops it too, without waiting.
pub struct Subscription {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Subscription {
    /// A subscription whose work is `task`, which must end soon after
    /// `stop` turns `true`.
    pub fn new(stop: tokio::sync::watch::Sender<bool>, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            stop,
            task: Some(task),
        }
    }

    /// A stop signal and the receiver a backend's task watches.
    pub fn signal() -> (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::watch::Receiver<bool>,
    ) {
        tokio::sync::watch::channel(false)
    }

    /// Stops the subscription and waits for its task to end.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
            && error.is_panic()
        {
            tracing::warn!(%error, "pub/sub subscription task panicked");
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// What a broker backend does, declared once and checked by the conformance
/// suite (a backend claims nothing it lacks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubSubFeatures {
    /// The broker expires messages by `ttlInSeconds` itself (Dapr's
    /// `MESSAGE_TTL`); otherwise the runtime writes `expiration` into the
    /// envelope.
    pub message_ttl: bool,
    /// [`PubSub::bulk_publish`] is one broker operation, not a loop.
    pub bulk_publish: bool,
    /// A message whose handler failed, or was never acked, is delivered
    /// again (at-least-once).
    pub redelivery: bool,
    /// Messages survive a restart of the process (published and not yet
    /// acked ones are delivered after it).
    pub durable: bool,
    /// One subscription receives a topic's messages in publish order
    /// (until a redelivery).
    pub ordered: bool,
    /// The metadata of a publish reaches its subscribers
    /// ([`ReceivedMessage::metadata`]); brokers without message headers
    /// (MQTT 3) carry none.
    pub carries_metadata: bool,
}

impl PubSubFeatures {
    /// Dapr's names of the features, for the metadata API.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.message_ttl {
            names.push("MESSAGE_TTL");
        }
        if self.bulk_publish {
            names.push("BULK_PUBLISH");
        }
        names
    }
}

/// Errors of a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// The request cannot be served as given.
    #[error("{0}")]
    InvalidRequest(String),
    /// The component was closed.
    #[error("the pub/sub component is closed")]
    Closed,
    /// The broker failed (connection lost, server error, …).
    #[error("{0}")]
    Backend(String),
}

/// A pub/sub broker backend.
///
/// Implementations are shared (`Arc<dyn PubSub>`) and safe to call
/// concurrently. See the module's "Delivery contract".
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// What this broker does.
    fn features(&self) -> PubSubFeatures;

    /// Publishes one message; `Ok` once the broker holds it (for durable
    /// brokers: once it would survive a crash).
    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError>;

    /// Publishes many messages to one topic, in order; the entries that
    /// failed are returned (none: all were published).
    ///
    /// The default publishes each entry with [`PubSub::publish`], one after
    /// the other (Dapr's default publishes them in parallel, in no order;
    /// here they reach the broker in the caller's order), and stops trying
    /// once the broker fails for an entry: the rest fail with its error
    /// rather than wait for it once each.
    async fn bulk_publish(&self, request: BulkPublishRequest) -> Vec<FailedEntry> {
        let mut failed = Vec::new();
        let mut broken: Option<PubSubError> = None;
        for entry in request.entries {
            if let Some(error) = &broken {
                failed.push(FailedEntry {
                    entry_id: entry.entry_id,
                    error: error.to_string(),
                });
                continue;
            }
            let published = self
                .publish(PublishRequest {
                    topic: request.topic.clone(),
                    data: entry.event,
                    content_type: Some(entry.content_type),
                    metadata: entry.metadata,
                })
                .await;
            if let Err(error) = published {
                failed.push(FailedEntry {
                    entry_id: entry.entry_id,
                    error: error.to_string(),
                });
                if !matches!(error, PubSubError::InvalidRequest(_)) {
                    broken = Some(error);
                }
            }
        }
        failed
    }

    /// Starts delivering the messages of `request.topic` for
    /// `request.consumer_group` to `handler` (see the module's "Delivery
    /// contract"), until the returned [`Subscription`] is closed.
    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError>;

    /// Closes the component: publishes after this fail with
    /// [`PubSubError::Closed`]. Subscriptions are closed by their owners.
    async fn close(&self) -> Result<(), PubSubError> {
        Ok(())
    }
}
