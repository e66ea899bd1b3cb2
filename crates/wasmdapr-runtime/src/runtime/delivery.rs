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
//! 4. `POST`ed to the route on the app channel with
//!    `Content-Type: application/cloudevents+json`, the envelope as
//!    stored on the broker as the body, the message's metadata and
//!    `pubsubname` as headers and a child span of the event's
//!    `traceparent`, bounded by [`DeliveryOptions::timeout`];
//! 5. acked, redelivered or dropped as the app's answer says
//!    ([`app_verdict`]). A drop, or a failure once the message has been
//!    tried [`DeliveryOptions::dead_letter_after`] times, goes to the
//!    `deadLetterTopic` when there is one (the original bytes and metadata,
//!    then acked); otherwise a failure is a handler error, so the broker
//!    delivers the message again.
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
use crate::app_channel::AppChannel;
use crate::invoke::TraceParent;
use crate::pubsub::cloudevent::{CLOUDEVENT_CONTENT_TYPE, DEFAULT_SOURCE, DEFAULT_TYPE};
use crate::pubsub::subscriptions::{
    AppSubscription, AppVerdict, Routing, app_verdict, merge, parse_programmatic,
};
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

/// Attempts at `GET /dapr/subscribe` (daprd's built-in initialization
/// retries: 3 retries, from 500 ms, doubling).
const SUBSCRIBE_ATTEMPTS: u32 = 4;

impl Runtime {
    /// The app's programmatic subscriptions: its answer to
    /// `GET /dapr/subscribe`. A 404 is none (the app has no such route);
    /// another status, an unreadable answer or an app that cannot be
    /// reached is none too, logged as an error, as in daprd. Each attempt
    /// waits at most `timeout` (the delivery timeout): an app that never
    /// answers must not keep the sidecar from starting its declared
    /// subscriptions and reporting ready.
    pub async fn programmatic_subscriptions(
        &self,
        channel: &dyn AppChannel,
        timeout: Duration,
    ) -> Vec<AppSubscription> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=SUBSCRIBE_ATTEMPTS {
            let request = http::Request::get("/dapr/subscribe")
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("dapr-app-id", self.app_id.as_str())
                .body(Bytes::new())
                .expect("a valid request");
            let answer = match tokio::time::timeout(timeout, channel.call(request)).await {
                Ok(answer) => answer.map_err(|error| error.to_string()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            match answer {
                Ok(answer) if answer.status() == http::StatusCode::NOT_FOUND => {
                    tracing::debug!("the app has no /dapr/subscribe: no programmatic subscription");
                    return Vec::new();
                }
                Ok(answer) if answer.status().is_success() => {
                    return parse_programmatic(answer.body()).unwrap_or_else(|error| {
                        tracing::error!(%error, "the app's subscriptions are not applied");
                        Vec::new()
                    });
                }
                Ok(answer) => {
                    tracing::error!(
                        status = %answer.status(),
                        "GET /dapr/subscribe failed: no programmatic subscription"
                    );
                    return Vec::new();
                }
                Err(error) if attempt < SUBSCRIBE_ATTEMPTS => {
                    tracing::debug!(%error, "GET /dapr/subscribe failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(error) => {
                    tracing::error!(%error, "GET /dapr/subscribe failed: no programmatic subscription");
                }
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
        let handler = Arc::new(EventDelivery(Arc::new(Delivery {
            subscriber: Subscriber::App(channel),
            broker: loaded.component.clone(),
            pubsub: sub.pubsub_name.clone(),
            topic: sub.topic.clone(),
            routing: sub.routing,
            dead_letter,
            raw,
            options,
        })));
        self.subscribe(&sub.pubsub_name, &sub.topic, metadata, handler)
            .await
    }
}

/// The handler of one subscription: one message, one delivery to the app.
pub(super) struct EventDelivery(pub(super) Arc<Delivery>);

/// Who a subscription delivers to.
pub(super) enum Subscriber {
    /// The app, `POST`ed on its channel.
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

impl Delivery {
    async fn deliver(&self, message: ReceivedMessage) -> Result<(), HandlerError> {
        let outcome = self.try_deliver(&message).await;
        let (reason, dead_letter_now, acked_anyway) = match outcome {
            Outcome::Delivered | Outcome::Skipped => return Ok(()),
            Outcome::Discarded(reason) => {
                tracing::warn!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, %reason, "event dropped");
                if let Some(dlq) = &self.dead_letter
                    && let Err(error) = self.to_dead_letter(dlq, &message).await
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
            Some(dlq) if dead_letter_now => self.to_dead_letter(dlq, &message).await,
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

    async fn try_deliver(&self, message: &ReceivedMessage) -> Outcome {
        let body = if self.raw {
            raw_envelope(&self.pubsub, &self.topic, message)
        } else {
            message.data.clone()
        };
        let event: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) | Err(_) => {
                return Outcome::Failed("the message is not a JSON CloudEvent".into());
            }
        };
        if let Ok(ce) = crate::pubsub::cloudevent::CloudEvent::from_json(&body)
            && ce.has_expired(SystemTime::now())
        {
            return Outcome::Discarded("the event has expired".into());
        }
        let path = match self.routing.route(&event) {
            Ok(Some(path)) => path.to_owned(),
            Ok(None) if self.dead_letter.is_some() => {
                return Outcome::Discarded("no route matched the event".into());
            }
            Ok(None) => {
                tracing::debug!(pubsub = %self.pubsub, topic = %self.topic, id = %message.id, "no route matched the event: dropped");
                return Outcome::Skipped;
            }
            Err(error) => return Outcome::Failed(format!("routing the event: {error}")),
        };
        let channel = match &self.subscriber {
            Subscriber::App(channel) => channel,
            Subscriber::Stream(sink) => {
                return match topic_event(&self.pubsub, &self.topic, &path, &event) {
                    Ok(event) => sink.deliver(event).await,
                    Err(error) => Outcome::Failed(error),
                };
            }
        };
        let request = match self.request(&path, &event, message, body) {
            Ok(request) => request,
            Err(error) => return Outcome::Failed(error),
        };
        let answer = match tokio::time::timeout(self.options.timeout, channel.call(request)).await {
            Ok(Ok(answer)) => answer,
            // Busy, timed out or failed: all retried.
            Ok(Err(error)) => return Outcome::Failed(error.to_string()),
            Err(_) => {
                return Outcome::Failed(format!(
                    "the app did not answer within {:?}",
                    self.options.timeout
                ));
            }
        };
        match app_verdict(answer.status().as_u16(), answer.body()) {
            AppVerdict::Success => Outcome::Delivered,
            AppVerdict::Retry(reason) => Outcome::Failed(reason),
            AppVerdict::Drop(reason) => Outcome::Dropped(reason),
        }
    }

    /// The `POST` of one event to `path`.
    fn request(
        &self,
        path: &str,
        event: &serde_json::Value,
        message: &ReceivedMessage,
        body: Vec<u8>,
    ) -> Result<http::Request<Bytes>, String> {
        let uri = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let mut builder = http::Request::post(uri);
        for (key, value) in &message.metadata {
            if key.eq_ignore_ascii_case("content-length")
                || key.eq_ignore_ascii_case("content-type")
            {
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
        builder = builder
            .header("pubsubname", self.pubsub.as_str())
            .header(http::header::CONTENT_TYPE, CLOUDEVENT_CONTENT_TYPE);
        // The delivery is a span of its own, a child of the publisher's.
        let parent = event
            .get("traceparent")
            .or_else(|| event.get("traceid"))
            .and_then(|v| v.as_str())
            .and_then(TraceParent::parse);
        if let Some(parent) = parent {
            builder = builder.header("traceparent", parent.child().to_string());
            if let Some(state) = event
                .get("tracestate")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                && let Ok(value) = http::HeaderValue::from_str(state)
            {
                builder = builder.header("tracestate", value);
            }
        }
        builder
            .body(Bytes::from(body))
            .map_err(|e| format!("the route `{path}` is no valid request path: {e}"))
    }
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
