//! Streaming subscriptions ([`PubSubApi::subscribe_events`](crate::api::PubSubApi::subscribe_events)),
//! as daprd serves `SubscribeTopicEventsAlpha1` (`pkg/api/grpc/subscribe.go`,
//! `pkg/runtime/pubsub/streamer`): the subscription is started on the broker
//! in the app's consumer group with one default route `/`, and every message
//! goes through the same delivery as an app's subscriptions (raw payloads,
//! expiry, dead-letter topic), except that the last step is not a `POST` to
//! the app but a [`TopicEvent`] handed to the subscriber, whose answer
//! ([`EventStatus`]) acks, redelivers or drops it.
//!
//! Each message's handler waits for the subscriber's answer, so a broker
//! that delivers one message at a time (SQLite, in-memory) sends the next
//! one only once the previous was answered, as with daprd. When the
//! subscriber goes away (the [`EventSubscription`] is dropped: the gRPC
//! stream closed, the guest dropped its resource) or the runtime shuts
//! down, the messages waiting for an answer are left unacked, never
//! dead-lettered, and the broker delivers them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::Runtime;
use super::delivery::{Delivery, DeliveryOptions, EventDelivery, Outcome, Subscriber};
use super::pubsub::{SubscribeError, raw_payload};
use crate::api::pubsub::{
    EventResponder, EventStatus, EventSubscription, MAX_UNANSWERED_EVENTS, StreamSubscribeRequest,
    TopicEvent,
};
use crate::error::{ApiError, ErrorKind, echo};
use crate::pubsub::PubSub;
use crate::pubsub::cloudevent::{is_cloudevent, is_json, is_string};
use crate::pubsub::subscriptions::{RouteSpec, Routing};

/// Events handed over but not yet taken by [`EventSubscription::next`]
/// (each still waits for its answer, so this only smooths the hand-over).
const EVENT_BUFFER: usize = 16;

/// The route of every streaming subscription (daprd's default `/`).
const STREAM_ROUTE: &str = "/";

/// The answers awaited, by event id.
type Waiting = Mutex<HashMap<String, oneshot::Sender<EventStatus>>>;

/// The subscriber's end of one streaming subscription, as the deliveries
/// see it.
pub(super) struct StreamSink {
    /// Where events go; taken (`None`) once the subscription ends, so that
    /// [`EventSubscription::next`] sees the end once the deliveries in
    /// flight let go of their clones.
    events: Mutex<Option<mpsc::Sender<Result<TopicEvent, ApiError>>>>,
    waiting: Arc<Waiting>,
    /// One per event handed over and not answered:
    /// [`MAX_UNANSWERED_EVENTS`] bounds them.
    permits: Arc<Semaphore>,
    /// `true` once the subscription ended.
    ended: watch::Receiver<bool>,
}

/// Why an event is left for redelivery when the subscriber went away.
const CLOSED: &str = "the streaming subscription is closed";

impl StreamSink {
    /// Resolves once the subscription has ended.
    async fn ended(&self) {
        let mut ended = self.ended.clone();
        // An error is a dropped sender: ended too.
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Hands `event` to the subscriber and waits for its answer.
    pub(super) async fn deliver(&self, event: TopicEvent) -> Outcome {
        let _permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Outcome::Abandoned(CLOSED.into()),
            },
            () = self.ended() => return Outcome::Abandoned(CLOSED.into()),
        };
        let Some(events) = self.events.lock().expect("not poisoned").clone() else {
            return Outcome::Abandoned(CLOSED.into());
        };
        let id = event.id.clone();
        let (answer_tx, answer_rx) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            if waiting.contains_key(&id) {
                // Two messages with one CloudEvent id at once: the answer
                // could not tell them apart, so the second waits its turn
                // (left for redelivery, never dead-lettered: it was not
                // refused).
                return Outcome::Abandoned(format!(
                    "an event with id {} already awaits an answer",
                    echo(&id)
                ));
            }
            waiting.insert(id.clone(), answer_tx);
        }
        let _unregister = Unregister {
            waiting: &self.waiting,
            id: &id,
        };
        tokio::select! {
            biased;
            sent = events.send(Ok(event)) => if sent.is_err() {
                return Outcome::Abandoned(CLOSED.into());
            },
            () = self.ended() => return Outcome::Abandoned(CLOSED.into()),
        }
        drop(events);
        // An answer given before the subscriber went away counts: biased,
        // so that a subscriber that answers and closes at once is not
        // taken for one that left without answering.
        tokio::select! {
            biased;
            answer = answer_rx => match answer {
                Ok(EventStatus::Success) => Outcome::Delivered,
                Ok(EventStatus::Retry) => Outcome::Failed(format!(
                    "RETRY status returned from app while processing pub/sub event {}",
                    echo(&id)
                )),
                Ok(EventStatus::Drop) => Outcome::Dropped(format!(
                    "DROP status returned from app while processing pub/sub event {}",
                    echo(&id)
                )),
                Err(_) => Outcome::Abandoned(CLOSED.into()),
            },
            () = self.ended() => Outcome::Abandoned(CLOSED.into()),
        }
    }
}

/// Forgets an awaited answer when its delivery ends, however it ends.
struct Unregister<'a> {
    waiting: &'a Waiting,
    id: &'a str,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(self.id);
        }
    }
}

/// The answers of a local streaming subscriber, handed to the deliveries
/// waiting for them.
struct LocalResponder(Arc<Waiting>);

impl EventResponder for LocalResponder {
    fn respond(&self, id: &str, status: EventStatus) -> Result<(), ApiError> {
        let waiting = self.0.lock().expect("not poisoned").remove(id);
        match waiting {
            Some(answer) => {
                // The delivery may have ended meanwhile (shutdown); the
                // message is then redelivered whatever the answer.
                let _ = answer.send(status);
                Ok(())
            }
            None => Err(ApiError::malformed(format!(
                "no event with id {} awaits an answer",
                echo(id)
            ))),
        }
    }
}

/// A delivery error of a streaming subscription: daprd's plain errors.
fn subscribe_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::PubSubSubscribe, message)
}

impl Runtime {
    /// Opens a streaming subscription (see the module doc). The checks and
    /// their wording are daprd's: `pubsubName is required`, `topic is
    /// required`, `ERR_PUBSUB_NOT_FOUND`, then the topic scopes and the
    /// broker (`failed to create subscription for …`).
    pub(super) async fn open_event_stream(
        &self,
        request: StreamSubscribeRequest,
    ) -> Result<EventSubscription, ApiError> {
        let StreamSubscribeRequest {
            pubsub_name,
            topic,
            metadata,
            dead_letter_topic,
        } = request;
        if pubsub_name.is_empty() {
            return Err(subscribe_error("pubsubName is required"));
        }
        if topic.is_empty() {
            return Err(subscribe_error("topic is required"));
        }
        let loaded = self
            .components
            .scoped::<dyn PubSub>(&pubsub_name, &self.app_id)
            .map_err(|_| ApiError::pubsub(&pubsub_name).not_found())?;
        let raw = raw_payload(&metadata).unwrap_or(false);
        let dead_letter = dead_letter_topic
            .filter(|dlq| !dlq.is_empty())
            .filter(|dlq| {
                let allowed = loaded.scopes().may_publish(self.app_id.as_str(), dlq);
                if !allowed {
                    tracing::warn!(pubsub = %pubsub_name, topic = %dlq, "the app may not publish to its dead-letter topic; none is used");
                }
                allowed
            });
        let routing = Routing::compile(
            &pubsub_name,
            &topic,
            &RouteSpec::default(),
            Some(STREAM_ROUTE),
        )
        .map_err(|e| subscribe_error(e.to_string()))?;

        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let (ended_tx, ended_rx) = watch::channel(false);
        let waiting = Arc::new(Waiting::default());
        let sink = Arc::new(StreamSink {
            events: Mutex::new(Some(events_tx.clone())),
            waiting: waiting.clone(),
            permits: Arc::new(Semaphore::new(MAX_UNANSWERED_EVENTS)),
            ended: ended_rx,
        });
        let handler = Arc::new(EventDelivery(Arc::new(Delivery {
            subscriber: Subscriber::Stream(sink.clone()),
            broker: loaded.component.clone(),
            pubsub: pubsub_name.clone(),
            topic: topic.clone(),
            routing,
            dead_letter,
            raw,
            options: DeliveryOptions::default(),
        })));
        let subscription = self
            .subscribe(&pubsub_name, &topic, metadata, handler)
            .await
            .map_err(|error| {
                let reason = match error {
                    SubscribeError::NotFound(_) => {
                        return ApiError::pubsub(&pubsub_name).not_found();
                    }
                    SubscribeError::Forbidden { .. } => format!(
                        "subscription to topic '{}' on pubsub '{}' is not allowed",
                        echo(&topic),
                        echo(&pubsub_name)
                    ),
                    SubscribeError::Broker { error, .. } => error.to_string(),
                };
                subscribe_error(format!(
                    "failed to create subscription for {}: {reason}",
                    echo(&pubsub_name)
                ))
            })?;
        tracing::info!(pubsub = %pubsub_name, %topic, "streaming subscription started");

        // Ends the subscription when the subscriber goes away or the
        // runtime shuts down: the deliveries waiting are abandoned (left
        // for redelivery), the broker subscription closed.
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.wait_for(|requested| *requested) => {}
                () = events_tx.closed() => {}
            }
            let _ = ended_tx.send(true);
            sink.events.lock().expect("not poisoned").take();
            subscription.close().await;
            tracing::info!(pubsub = %pubsub_name, %topic, "streaming subscription ended");
        });
        Ok(EventSubscription::new(
            events_rx,
            Box::new(LocalResponder(waiting)),
        ))
    }
}

/// The [`TopicEvent`] of the CloudEvent `event` (a JSON object), as daprd's
/// `GRPCEnvelopeFromSubscriptionMessage` fills a `TopicEventRequest`.
pub(super) fn topic_event(
    pubsub: &str,
    topic: &str,
    path: &str,
    event: &serde_json::Value,
) -> Result<TopicEvent, String> {
    let text = |name: &str| {
        event
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let data_content_type = text("datacontenttype");
    let data = match (event.get("data_base64"), event.get("data")) {
        (Some(b64), _) if !b64.is_null() => {
            let b64 = b64.as_str().ok_or("the event's data_base64 is no string")?;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("unable to base64 decode cloudEvent field data_base64: {e}"))?
        }
        (_, Some(data)) if !data.is_null() => {
            if is_string(&data_content_type) {
                match data {
                    serde_json::Value::String(s) => s.clone().into_bytes(),
                    _ => {
                        return Err(
                            "the event's data is no string, as its content type says".into()
                        );
                    }
                }
            } else if is_json(&data_content_type) || is_cloudevent(&data_content_type) {
                serde_json::to_vec(data).map_err(|e| e.to_string())?
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let extensions = event
        .as_object()
        .map(|object| {
            object
                .iter()
                .filter(|(key, _)| !CLOUD_EVENT_FIELDS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(TopicEvent {
        id: text("id"),
        source: text("source"),
        event_type: text("type"),
        spec_version: text("specversion"),
        data_content_type,
        topic: topic.to_owned(),
        pubsub_name: pubsub.to_owned(),
        path: path.to_owned(),
        data,
        extensions,
    })
}

/// The attributes a [`TopicEvent`] has fields for; the rest are extensions.
const CLOUD_EVENT_FIELDS: &[&str] = &[
    "id",
    "source",
    "datacontenttype",
    "type",
    "specversion",
    "data",
    "data_base64",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `data` as daprd fills it: base64 decoded, text as its bytes, JSON
    /// re-serialised, other content types empty; the remaining attributes
    /// are the extensions.
    #[test]
    fn topic_event_is_filled_as_daprd_fills_it() {
        let ce = json!({
            "id": "1", "source": "app", "type": "t", "specversion": "1.0",
            "datacontenttype": "application/json", "data": {"b": 1, "a": [true]},
            "topic": "orders", "pubsubname": "p", "traceparent": "00-x", "custom": 7
        });
        let e = topic_event("p", "orders", "/", &ce).unwrap();
        assert_eq!(
            (
                e.id.as_str(),
                e.source.as_str(),
                e.event_type.as_str(),
                e.spec_version.as_str()
            ),
            ("1", "app", "t", "1.0")
        );
        assert_eq!(e.data, br#"{"a":[true],"b":1}"#);
        assert_eq!((e.path.as_str(), e.pubsub_name.as_str()), ("/", "p"));
        let mut keys: Vec<_> = e.extensions.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["custom", "pubsubname", "topic", "traceparent"]);

        let text = json!({"id": "2", "datacontenttype": "text/plain", "data": "hi"});
        assert_eq!(topic_event("p", "t", "/", &text).unwrap().data, b"hi");
        let b64 = json!({"id": "3", "datacontenttype": "application/octet-stream", "data_base64": "AP8="});
        assert_eq!(topic_event("p", "t", "/", &b64).unwrap().data, [0, 255]);
        let other = json!({"id": "4", "datacontenttype": "image/png", "data": "x"});
        assert!(topic_event("p", "t", "/", &other).unwrap().data.is_empty());
        let bad = json!({"id": "5", "data_base64": "!!"});
        assert!(topic_event("p", "t", "/", &bad).is_err());
    }
}
