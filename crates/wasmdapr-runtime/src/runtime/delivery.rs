//! Delivering pub/sub events to the app, as daprd does for an HTTP app
//! (`pkg/runtime/subscription/subscription.go`,
//! `postman/http/http.go`): once the app channel is connected, the app's
//! subscriptions are collected (declarative resources in its scope, then
//! its `GET /dapr/subscribe` answer, see [`crate::pubsub::subscriptions`])
//! and each is started on its broker in the app's consumer group
//! ([`Runtime::subscribe`]). Every message is then:
//!
//! 1. read as a CloudEvent (a `rawPayload` subscription wraps the broker's
//!    bytes in one first, as daprd's `FromRawPayload`: `data_base64`);
//! 2. dropped if `expiration` is past (to the dead-letter topic when set);
//! 3. routed ([`Routing::route`]): no route drops it (acked, or
//!    dead-lettered), an expression that fails is a failed delivery;
//! 4. handed to the app channel ([`AppChannel::deliver_event`]: a `POST`
//!    of the CloudEvent to the route for an HTTP app, `OnTopicEvent` for a
//!    gRPC app) with a child span of the event's `traceparent`, bounded by
//!    [`DeliveryOptions::timeout`];
//! 5. acked, redelivered or dropped as the app's answer says (one
//!    [`AppVerdict`], whatever the protocol). A drop, or a failure once the message has been
//!    tried [`DeliveryOptions::dead_letter_after`] times, goes to the
//!    `deadLetterTopic` when there is one (the original bytes and metadata,
//!    then acked); otherwise a failure is a handler error, so the broker
//!    delivers the message again.
//!
//! A bulk subscription (`bulkSubscribe.enabled`) collects the messages the
//! broker hands it, as daprd's default bulk subscriber does, until
//! `maxMessagesCount` are waiting or the first has waited
//! `maxAwaitDurationMs`; steps 1–3 are taken per message, then each route's
//! messages go to the app as one batch ([`AppChannel::deliver_bulk`]), and
//! each message is settled by its entry's verdict as in step 5. Messages
//! are batched only as far as the broker hands out several at once (Redis
//! Streams' `concurrency`); a broker that waits for each answer makes
//! batches of one, as with daprd.
//!
//! A Wasm app is reached through the same [`AppChannel`] as an invocation:
//! one fresh instance per event, bounded by its `--max-concurrency`, a trap
//! or a limit being a failed delivery that is retried.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::Runtime;
use super::streaming::{StreamSink, topic_event};
use crate::app_channel::{
    AppChannel, AppVerdict, BulkEntry, BulkEvent, BulkEvents, SubscriptionsError, TopicEvent,
};
use crate::invoke::TraceParent;
use crate::pubsub::cloudevent::{CLOUDEVENT_CONTENT_TYPE, DEFAULT_SOURCE, DEFAULT_TYPE};
use crate::pubsub::subscriptions::{AppSubscription, BulkConfig, Routing, merge};
use crate::pubsub::{
    HandlerError, MessageHandler, Metadata, PubSub, PublishRequest, ReceivedMessage, Subscription,
};
use crate::resources::Subscription as DeclaredSubscription;

/// How events are delivered to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// The longest the app may take to answer one event; past it the
    /// delivery failed (and the event is delivered again). daprd bounds it
    /// only by a resiliency policy; an unbounded wait would let a hung app
    /// hold a broker lease forever, so here it is 60 s by default.
    pub timeout: Duration,
    /// With a `deadLetterTopic`, the delivery attempt whose failure sends
    /// the event there instead of back to the broker. 1 (the default) is
    /// daprd without a resiliency policy: the first failure dead-letters.
    pub dead_letter_after: u32,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            dead_letter_after: 1,
        }
    }
}

/// The running subscriptions of the app; [`AppSubscriptions::close`]
/// stops them.
#[derive(Debug, Default)]
pub struct AppSubscriptions {
    running: Vec<(String, String, Subscription)>,
}

impl AppSubscriptions {
    /// `(pubsub, topic)` of each running subscription.
    pub fn topics(&self) -> Vec<(String, String)> {
        self.running
            .iter()
            .map(|(p, t, _)| (p.clone(), t.clone()))
            .collect()
    }

    /// Stops every subscription; deliveries in flight finish first.
    pub async fn close(self) {
        for (_, _, subscription) in self.running {
            subscription.close().await;
        }
    }
}

/// How long a dead-letter publish may take (daprd's 30 s).
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts at asking the app for its subscriptions (daprd's built-in initialization
/// retries: 3 retries, from 500 ms, doubling).
const SUBSCRIBE_ATTEMPTS: u32 = 4;

impl Runtime {
    /// The app's programmatic subscriptions ([`AppChannel::subscriptions`]:
    /// `GET /dapr/subscribe`, `ListTopicSubscriptions`). An app that answers
    /// with none has none; an answer that cannot be used, or an app that
    /// cannot be reached after daprd's built-in retries, is none too,
    /// logged as an error, as in daprd. Each attempt waits at most
    /// `timeout` (the delivery timeout): an app that never answers must not
    /// keep the sidecar from starting its declared subscriptions and
    /// reporting ready.
    pub async fn programmatic_subscriptions(
        &self,
        channel: &dyn AppChannel,
        timeout: Duration,
    ) -> Vec<AppSubscription> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=SUBSCRIBE_ATTEMPTS {
            let error =
                match tokio::time::timeout(timeout, channel.subscriptions(&self.app_id)).await {
                    Ok(Ok(subscriptions)) => return subscriptions,
                    Ok(Err(SubscriptionsError::Refused(error))) => {
                        tracing::error!(%error, "the app's subscriptions are not applied");
                        return Vec::new();
                    }
                    Ok(Err(SubscriptionsError::Unreachable(error))) => error.to_string(),
                    Err(_) => format!("no answer within {timeout:?}"),
                };
            if attempt < SUBSCRIBE_ATTEMPTS {
                tracing::debug!(%error, "asking the app for its subscriptions failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            } else {
                tracing::error!(%error, "asking the app for its subscriptions failed: no programmatic subscription");
            }
        }
        Vec::new()
    }

    /// Collects the app's subscriptions (`declared` in its scope, then its
    /// programmatic ones) and starts each on its broker, delivering to
    /// `channel`: the app's channel, given before it is connected with
    /// [`Runtime::set_app_channel`] so that the sidecar reports ready only
    /// once the app is subscribed. A subscription that cannot start (unknown pub/sub, forbidden topic,
    /// broker error) is logged and left out; the others run.
    pub async fn start_app_subscriptions(
        &self,
        channel: Arc<dyn AppChannel>,
        declared: &[DeclaredSubscription],
        options: DeliveryOptions,
    ) -> AppSubscriptions {
        let mut started = AppSubscriptions::default();
        let programmatic = self
            .programmatic_subscriptions(&*channel, options.timeout)
            .await;
        for sub in merge(self.app_id.as_str(), declared, programmatic) {
            let (pubsub, topic) = (sub.pubsub_name.clone(), sub.topic.clone());
            match self.start_one(sub, channel.clone(), options).await {
                Ok(subscription) => {
                    tracing::info!(%pubsub, %topic, "subscribed");
                    started.running.push((pubsub, topic, subscription));
                }
                Err(error) => {
                    tracing::error!(%pubsub, %topic, %error, "the subscription is not started");
                }
            }
        }
        started
    }

    async fn start_one(
        &self,
        sub: AppSubscription,
        channel: Arc<dyn AppChannel>,
        options: DeliveryOptions,
    ) -> Result<Subscription, super::SubscribeError> {
        let metadata: Metadata = sub.metadata.clone().into_iter().collect();
        let raw = super::pubsub::raw_payload(&metadata).unwrap_or(false);
        let loaded = self
            .components
            .scoped::<dyn PubSub>(&sub.pubsub_name, &self.app_id)
            .map_err(|_| super::SubscribeError::NotFound(sub.pubsub_name.clone()))?;
        let dead_letter = sub.dead_letter_topic.clone().filter(|dlq| {
            let allowed = loaded.scopes().may_publish(self.app_id.as_str(), dlq);
            if !allowed {
                tracing::warn!(pubsub = %sub.pubsub_name, topic = %dlq, "the app may not publish to its dead-letter topic; none is used");
            }
            allowed
        });
        let delivery = Arc::new(Delivery {
            subscriber: Subscriber::App(channel),
            broker: loaded.component.clone(),
            pubsub: sub.pubsub_name.clone(),
            topic: sub.topic.clone(),
            routing: sub.routing,
            dead_letter,
            raw,
            options,
        });
        let handler: Arc<dyn MessageHandler> = match sub.bulk {
            Some(bulk) => Arc::new(BulkDelivery::start(delivery, bulk)),
            None => Arc::new(EventDelivery(delivery)),
        };
        self.subscribe(&sub.pubsub_name, &sub.topic, metadata, handler)
            .await
    }
}

/// The handler of one subscription: one message, one delivery to the app.
pub(super) struct EventDelivery(pub(super) Arc<Delivery>);

/// Who a subscription delivers to.
pub(super) enum Subscriber {
    /// The app, on its channel.
    App(Arc<dyn AppChannel>),
    /// A streaming subscriber, sent the event as a [`TopicEvent`](crate::api::pubsub::TopicEvent).
    Stream(Arc<StreamSink>),
}

/// What the deliveries of one subscription share.
pub(super) struct Delivery {
    pub(super) subscriber: Subscriber,
    pub(super) broker: Arc<dyn PubSub>,
    pub(super) pubsub: String,
    pub(super) topic: String,
    pub(super) routing: Routing,
    pub(super) dead_letter: Option<String>,
    pub(super) raw: bool,
    pub(super) options: DeliveryOptions,
}

/// What became of one message, before the dead-letter topic is considered.
pub(super) enum Outcome {
    Delivered,
    /// Acked without delivery (no route), nothing to dead-letter.
    Skipped,
    /// Acked without delivery (expired, or no route), sent to the
    /// dead-letter topic if there is one, as far as that works: daprd acks
    /// these whether or not the dead-letter publish succeeds.
    Discarded(String),
    Dropped(String),
    Failed(String),
    /// Not delivered because the subscriber went away (a streaming
    /// subscription closed, the runtime shuts down): left unacked for
    /// redelivery, never dead-lettered (daprd's `ErrSubscriptionClosed`).
    Abandoned(String),
}

impl MessageHandler for EventDelivery {
    fn handle(&self, message: ReceivedMessage) -> BoxFuture<'static, Result<(), HandlerError>> {
        let this = self.0.clone();
        Box::pin(async move { this.deliver(message).await })
    }
}

/// A message made ready for the app: read as a CloudEvent and routed.
struct Routed {
    path: String,
    event: serde_json::Value,
    body: Vec<u8>,
}

impl Delivery {
    async fn deliver(&self, message: ReceivedMessage) -> Result<(), HandlerError> {
        let outcome = match self.prepare(&message) {
            Ok(routed) => self.deliver_one(&message, routed).await,
            Err(outcome) => outcome,
        };
        self.settle(outcome, &message).await
    }

    /// Acks (`Ok`), dead-letters or hands back (`Err`, for redelivery) a
    /// message as its outcome says.
    async fn settle(
        &self,
        outcome: Outcome,
        message: &ReceivedMessage,
    ) -> Result<(), HandlerError> {
        let (reason, dead_letter_now, acked_anyway) = match outcome {
            Outcome::Delivered | Outcome::Skipped => return Ok(()),
            Outcome::Discarded(reason) => {
                tracing::warn!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, %reason, "event dropped");
                if let Some(dlq) = &self.dead_letter
                    && let Err(error) = self.to_dead_letter(dlq, message).await
                {
                    tracing::error!(%error, "the dropped event is lost");
                }
                return Ok(());
            }
            Outcome::Dropped(reason) => {
                tracing::warn!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, %reason, "event dropped");
                (reason, true, true)
            }
            Outcome::Abandoned(reason) => {
                tracing::debug!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, %reason, "event left for redelivery");
                return Err(HandlerError(reason));
            }
            Outcome::Failed(reason) => {
                tracing::warn!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, attempt = message.attempt, %reason, "event not delivered");
                let last = message.attempt >= self.options.dead_letter_after;
                (reason, last, false)
            }
        };
        match &self.dead_letter {
            Some(dlq) if dead_letter_now => self.to_dead_letter(dlq, message).await,
            // A drop without a dead-letter topic is acked.
            _ if acked_anyway => Ok(()),
            _ => Err(HandlerError(reason)),
        }
    }

    async fn to_dead_letter(
        &self,
        dlq: &str,
        message: &ReceivedMessage,
    ) -> Result<(), HandlerError> {
        let request = PublishRequest {
            topic: dlq.to_owned(),
            data: message.data.clone(),
            content_type: (!self.raw).then(|| CLOUDEVENT_CONTENT_TYPE.to_owned()),
            metadata: message.metadata.clone(),
        };
        match tokio::time::timeout(DEAD_LETTER_TIMEOUT, self.broker.publish(request)).await {
            Ok(Ok(())) => {
                tracing::info!(pubsub = %self.pubsub, topic = %self.topic, dead_letter_topic = %dlq, id = %message.id, "event sent to the dead-letter topic");
                Ok(())
            }
            Ok(Err(error)) => Err(HandlerError(format!(
                "cannot publish to the dead-letter topic {dlq}: {error}"
            ))),
            Err(_) => Err(HandlerError(format!(
                "publishing to the dead-letter topic {dlq} took longer than {DEAD_LETTER_TIMEOUT:?}"
            ))),
        }
    }

    /// Steps 1–3: the message as a CloudEvent, not expired, routed; or
    /// what became of it instead.
    fn prepare(&self, message: &ReceivedMessage) -> Result<Routed, Outcome> {
        let body = if self.raw {
            raw_envelope(&self.pubsub, &self.topic, message)
        } else {
            message.data.clone()
        };
        let event: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) | Err(_) => {
                return Err(Outcome::Failed(
                    "the message is not a JSON CloudEvent".into(),
                ));
            }
        };
        if let Ok(ce) = crate::pubsub::cloudevent::CloudEvent::from_json(&body)
            && ce.has_expired(SystemTime::now())
        {
            return Err(Outcome::Discarded("the event has expired".into()));
        }
        let path = match self.routing.route(&event) {
            Ok(Some(path)) => path.to_owned(),
            Ok(None) if self.dead_letter.is_some() => {
                return Err(Outcome::Discarded("no route matched the event".into()));
            }
            Ok(None) => {
                tracing::debug!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, "no route matched the event: dropped");
                return Err(Outcome::Skipped);
            }
            Err(error) => return Err(Outcome::Failed(format!("routing the event: {error}"))),
        };
        Ok(Routed { path, event, body })
    }

    /// Step 4 for one message.
    async fn deliver_one(&self, message: &ReceivedMessage, routed: Routed) -> Outcome {
        let channel = match &self.subscriber {
            Subscriber::App(channel) => channel,
            Subscriber::Stream(sink) => {
                return match topic_event(&self.pubsub, &self.topic, &routed.path, &routed.event) {
                    Ok(event) => sink.deliver(event).await,
                    Err(error) => Outcome::Failed(error),
                };
            }
        };
        let (traceparent, tracestate) = delivery_trace(&routed.event);
        let event = TopicEvent {
            pubsub: self.pubsub.clone(),
            topic: self.topic.clone(),
            path: routed.path,
            event: routed.event,
            body: Bytes::from(routed.body),
            metadata: message.metadata.clone(),
            traceparent,
            tracestate,
        };
        match tokio::time::timeout(self.options.timeout, channel.deliver_event(event)).await {
            Ok(Ok(verdict)) => self.outcome(verdict, &message.id),
            // Busy, timed out or failed: all retried.
            Ok(Err(error)) => Outcome::Failed(error.to_string()),
            Err(_) => Outcome::Failed(format!(
                "the app did not answer within {:?}",
                self.options.timeout
            )),
        }
    }

    /// What the app's verdict on one message makes of it.
    fn outcome(&self, verdict: AppVerdict, id: &str) -> Outcome {
        match verdict {
            AppVerdict::Success => Outcome::Delivered,
            AppVerdict::Retry(reason) => Outcome::Failed(reason),
            AppVerdict::Drop(reason) => Outcome::Dropped(reason),
            AppVerdict::Unhandled(reason) => {
                tracing::warn!(pubsub = %self.pubsub, topic = %self.topic, %id, %reason, "the app has no handler for the event: dropped");
                Outcome::Skipped
            }
        }
    }

    /// Delivers one batch of messages: each prepared, those routed sent to
    /// the app one batch per route, then each settled by its entry's
    /// verdict, and its handler told.
    async fn deliver_batch(&self, batch: Vec<Waiting>) {
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
        // Per route: the batch being built and the index of each entry's message.
        let mut routes: Vec<(BulkEvents, Vec<usize>)> = Vec::new();
        for (index, (message, _)) in batch.iter().enumerate() {
            let routed = match self.prepare(message) {
                Ok(routed) => routed,
                Err(outcome) => {
                    outcomes.push(Some(outcome));
                    continue;
                }
            };
            outcomes.push(None);
            let position = match routes.iter().position(|(b, _)| b.path == routed.path) {
                Some(position) => position,
                None => {
                    routes.push((
                        BulkEvents {
                            id: uuid::Uuid::new_v4().to_string(),
                            pubsub: self.pubsub.clone(),
                            topic: self.topic.clone(),
                            path: routed.path.clone(),
                            metadata: [("pubsubName".to_owned(), self.pubsub.clone())]
                                .into_iter()
                                .collect(),
                            entries: Vec::new(),
                            traceparent: None,
                        },
                        Vec::new(),
                    ));
                    routes.len() - 1
                }
            };
            let (events, indexes) = &mut routes[position];
            if events.traceparent.is_none() {
                events.traceparent = delivery_trace(&routed.event).0;
            }
            let (event, default_type) = if self.raw {
                (
                    BulkEvent::Raw(Bytes::from(message.data.clone())),
                    "application/octet-stream",
                )
            } else {
                (BulkEvent::CloudEvent(routed.event), CLOUDEVENT_CONTENT_TYPE)
            };
            events.entries.push(BulkEntry {
                entry_id: uuid::Uuid::new_v4().to_string(),
                event,
                content_type: message
                    .metadata
                    .get("content-type")
                    .filter(|c| !c.is_empty())
                    .map_or(default_type.to_owned(), Clone::clone),
                metadata: message.metadata.clone(),
            });
            indexes.push(index);
        }
        // Bulk subscriptions are the app's only: were a stream's messages
        // batched, they would be left undelivered (and so redelivered).
        let channel = match &self.subscriber {
            Subscriber::App(channel) => Some(channel),
            Subscriber::Stream(_) => None,
        };
        for (events, indexes) in routes {
            let Some(channel) = channel else { break };
            let count = indexes.len();
            let verdicts = match tokio::time::timeout(
                self.options.timeout,
                channel.deliver_bulk(events),
            )
            .await
            {
                Ok(Ok(verdicts)) if verdicts.len() == count => verdicts,
                Ok(Ok(verdicts)) => vec![
                    AppVerdict::Retry(format!(
                        "{} verdicts for a batch of {count}",
                        verdicts.len()
                    ));
                    count
                ],
                Ok(Err(error)) => vec![AppVerdict::Retry(error.to_string()); count],
                Err(_) => vec![
                    AppVerdict::Retry(format!(
                        "the app did not answer the batch within {:?}",
                        self.options.timeout
                    ));
                    count
                ],
            };
            for (index, verdict) in indexes.into_iter().zip(verdicts) {
                outcomes[index] = Some(self.outcome(verdict, &batch[index].0.id));
            }
        }
        for ((message, done), outcome) in batch.into_iter().zip(outcomes) {
            let outcome = outcome.unwrap_or(Outcome::Failed("not delivered".into()));
            let result = self.settle(outcome, &message).await;
            // The handler may be gone (the subscription closed); nothing to tell.
            let _ = done.send(result);
        }
    }
}

/// A message waiting in a batch, and how to tell its handler the result.
type Waiting = (
    ReceivedMessage,
    tokio::sync::oneshot::Sender<Result<(), HandlerError>>,
);

/// The handler of a bulk subscription: each message waits in the queue of
/// the subscription's batching task until its batch is settled.
struct BulkDelivery {
    queue: tokio::sync::mpsc::Sender<Waiting>,
}

impl BulkDelivery {
    /// The handler, and its batching task, which ends when the handler (the
    /// subscription) is gone.
    fn start(delivery: Arc<Delivery>, config: BulkConfig) -> Self {
        let (queue, mut waiting) = tokio::sync::mpsc::channel::<Waiting>(config.max_messages);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + config.max_await;
                while batch.len() < config.max_messages {
                    match tokio::time::timeout_at(deadline, waiting.recv()).await {
                        Ok(Some(next)) => batch.push(next),
                        Ok(None) | Err(_) => break,
                    }
                }
                tracing::debug!(pubsub = %delivery.pubsub, topic = %delivery.topic, size = batch.len(), "delivering a batch");
                delivery.deliver_batch(batch).await;
            }
        });
        Self { queue }
    }
}

impl MessageHandler for BulkDelivery {
    fn handle(&self, message: ReceivedMessage) -> BoxFuture<'static, Result<(), HandlerError>> {
        let queue = self.queue.clone();
        Box::pin(async move {
            let (done, result) = tokio::sync::oneshot::channel();
            queue
                .send((message, done))
                .await
                .map_err(|_| HandlerError("the subscription is closing".into()))?;
            result
                .await
                .unwrap_or_else(|_| Err(HandlerError("the batch was not settled".into())))
        })
    }
}

/// The delivery's own span, a child of the event's `traceparent` (or
/// `traceid`), and the event's `tracestate`.
fn delivery_trace(event: &serde_json::Value) -> (Option<String>, Option<String>) {
    let parent = event
        .get("traceparent")
        .or_else(|| event.get("traceid"))
        .and_then(|v| v.as_str())
        .and_then(TraceParent::parse);
    let Some(parent) = parent else {
        return (None, None);
    };
    let state = event
        .get("tracestate")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    (Some(parent.child().to_string()), state)
}

/// daprd's `FromRawPayload`: the broker's bytes as `data_base64` of a new
/// CloudEvent, with the trace the message's metadata carries.
fn raw_envelope(pubsub: &str, topic: &str, message: &ReceivedMessage) -> Vec<u8> {
    let mut event = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": DEFAULT_SOURCE,
        "type": DEFAULT_TYPE,
        "topic": topic,
        "pubsubname": pubsub,
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&message.data),
    });
    for key in ["traceid", "traceparent", "tracestate", "baggage"] {
        if let Some(value) = message.metadata.get(key) {
            event[key] = serde_json::Value::String(value.clone());
        }
    }
    // As in daprd, `traceparent` supersedes `traceid`.
    if let Some(traceparent) = message.metadata.get("traceparent") {
        event["traceid"] = serde_json::Value::String(traceparent.clone());
    }
    serde_json::to_vec(&event).expect("JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rawPayload` subscription's app gets daprd's `FromRawPayload`
    /// envelope: the bytes as `data_base64`, the trace of the message's
    /// metadata, `traceparent` superseding `traceid`.
    #[test]
    fn raw_payload_envelope() {
        let message = ReceivedMessage {
            data: vec![0, 255, b'x'],
            metadata: [
                ("traceid".to_string(), "old".to_string()),
                ("traceparent".to_string(), "00-abc-def-01".to_string()),
            ]
            .into_iter()
            .collect(),
            ..ReceivedMessage::default()
        };
        let event: serde_json::Value =
            serde_json::from_slice(&raw_envelope("p", "t", &message)).unwrap();
        assert_eq!(event["data_base64"], "AP94");
        assert_eq!(event["datacontenttype"], "application/octet-stream");
        assert_eq!(
            (&event["source"], &event["type"], &event["specversion"]),
            (&"Dapr".into(), &"com.dapr.event.sent".into(), &"1.0".into())
        );
        assert_eq!(
            (&event["topic"], &event["pubsubname"]),
            (&"t".into(), &"p".into())
        );
        assert_eq!(event["traceid"], "00-abc-def-01");
        assert_eq!(event["traceparent"], "00-abc-def-01");
        assert_eq!(event["id"].as_str().unwrap().len(), 36);
    }
}
