//! The transactional outbox of [`Runtime`], as daprd 1.12+ runs it
//! (`pkg/runtime/pubsub/outbox.go`): a state transaction on a store whose
//! component names `outboxPublishPubsub` and `outboxPublishTopic` publishes
//! each of its upserts to that topic exactly when the transaction commits.
//!
//! Two halves, so no broker and no database need a shared transaction:
//!
//! 1. [`Runtime::outbox_publish`], in the transaction's request: for each
//!    upsert, a CloudEvent whose `id` is a fresh marker key `outbox-<uuid>`
//!    is published to an internal topic (`{app id}{topic}outbox` on
//!    `outboxPubsub`, by default the publish pub/sub), and an upsert of that
//!    marker is added to the transaction. Nothing is written if the
//!    internal publish fails (`ERR_PUBLISH_OUTBOX`).
//! 2. The relay ([`Runtime::start_outbox_relays`]), a subscription of the
//!    app's consumer group to the internal topic: an internal message whose
//!    marker is in the store belongs to a committed transaction, so it is
//!    published to the user's topic and the marker deleted; a marker still
//!    missing after a bounded wait means the transaction has not committed
//!    (yet): the message goes back to the broker, or is discarded with
//!    `outboxDiscardWhenMissingState`.
//!
//! An upsert with metadata `outbox.projection: true` is not written: its
//! value is what the upsert of the same key publishes instead of the stored
//! one. The broker's at-least-once delivery of the internal topic makes
//! the user topic at-least-once too.
//!
//! Two refinements over daprd: a transaction this process saw fail marks
//! its markers as never coming, so their internal messages are dropped at
//! once instead of being redelivered until discarded; and a value without
//! a content type is published as daprd publishes an HTTP string value
//! (its text, `text/plain`) when it is a JSON string, as `application/json`
//! when it is another JSON value (daprd would format it with Go's `%v`,
//! an object as `map[k:v]`), and as text otherwise.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};

use super::Runtime;
use crate::api::TraceContext;
use crate::app_id::AppId;
use crate::component::ComponentSpec;
use crate::components::Components;
use crate::error::ApiError;
use crate::pubsub::cloudevent::{CLOUDEVENT_CONTENT_TYPE, CloudEvent, EnvelopeInput};
use crate::pubsub::{
    HandlerError, Metadata, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest, Subscription,
};
use crate::state::{DeleteRequest, GetRequest, Operation, SetRequest, StateStore};

/// The metadata of a state store component that turns its outbox on.
const PUBLISH_PUBSUB: &str = "outboxPublishPubsub";
const PUBLISH_TOPIC: &str = "outboxPublishTopic";
const OUTBOX_PUBSUB: &str = "outboxPubsub";
const DISCARD_WHEN_MISSING_STATE: &str = "outboxDiscardWhenMissingState";

/// The metadata of an upsert that is published, not written.
const PROJECTION: &str = "outbox.projection";

/// The prefix of marker keys (daprd's `outbox-<uuid>`, unprefixed by app).
const MARKER_PREFIX: &str = "outbox-";

/// How many failed markers are remembered; older ones fall back to the
/// marker wait.
const MAX_FAILED_MARKERS: usize = 10_000;

/// The outbox settings of one state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxConfig {
    publish_pubsub: String,
    publish_topic: String,
    outbox_pubsub: String,
    discard_when_missing_state: bool,
}

impl OutboxConfig {
    /// The outbox of the store `spec`, if both `outboxPublishPubsub` and
    /// `outboxPublishTopic` are set (daprd ignores one without the other).
    pub(crate) fn of(spec: &ComponentSpec) -> Option<Self> {
        let publish_pubsub = spec.metadata(PUBLISH_PUBSUB).filter(|v| !v.is_empty())?;
        let publish_topic = spec.metadata(PUBLISH_TOPIC).filter(|v| !v.is_empty())?;
        let outbox_pubsub = spec
            .metadata(OUTBOX_PUBSUB)
            .filter(|v| !v.is_empty())
            .unwrap_or(publish_pubsub);
        Some(Self {
            publish_pubsub: publish_pubsub.to_owned(),
            publish_topic: publish_topic.to_owned(),
            outbox_pubsub: outbox_pubsub.to_owned(),
            discard_when_missing_state: spec
                .metadata(DISCARD_WHEN_MISSING_STATE)
                .is_some_and(is_truthy),
        })
    }

    /// daprd's `outboxTopic`: `{namespace}{app id}{topic}outbox` (no
    /// namespace in self-hosted mode).
    fn internal_topic(&self, app_id: &AppId) -> String {
        format!("{app_id}{}outbox", self.publish_topic)
    }
}

/// dapr/kit's `IsTruthy`.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "t" | "on" | "1"
    )
}

/// Markers of transactions this process saw fail: their internal messages
/// are dropped without waiting for a marker that never comes. Bounded: the
/// oldest are forgotten first.
#[derive(Debug, Default)]
pub(crate) struct FailedMarkers(Mutex<(VecDeque<String>, HashSet<String>)>);

impl FailedMarkers {
    fn add(&self, markers: Vec<String>) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        for marker in markers {
            if order.len() == MAX_FAILED_MARKERS
                && let Some(oldest) = order.pop_front()
            {
                set.remove(&oldest);
            }
            set.insert(marker.clone());
            order.push_back(marker);
        }
    }

    fn take(&self, marker: &str) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        let found = set.remove(marker);
        if found {
            order.retain(|m| m != marker);
        }
        found
    }
}

/// The payload an upsert publishes and its content type (see the module
/// docs for values without one).
fn payload(request: &SetRequest) -> (Vec<u8>, String) {
    let given = request
        .metadata
        .get("contentType")
        .filter(|v| !v.is_empty())
        .cloned();
    if let Some(content_type) = given {
        return (request.value.clone(), content_type);
    }
    match serde_json::from_slice::<serde_json::Value>(&request.value) {
        Ok(serde_json::Value::String(text)) => (text.into_bytes(), "text/plain".into()),
        Ok(_) => (request.value.clone(), "application/json".into()),
        Err(_) => (request.value.clone(), "text/plain".into()),
    }
}

impl Runtime {
    /// The first half of an outbox transaction on `store` (already checked
    /// and prefixed): publishes one internal message per upsert and returns
    /// the operations to commit (projections removed, markers added) with
    /// the markers.
    pub(super) async fn outbox_publish(
        &self,
        config: &OutboxConfig,
        operations: Vec<Operation>,
    ) -> Result<(Vec<Operation>, Vec<String>), ApiError> {
        let outbox_error = |error: String| {
            ApiError::pubsub(&config.outbox_pubsub).outbox(self.app_id.as_str(), error)
        };
        let pubsub = self
            .components
            .scoped::<dyn PubSub>(&config.outbox_pubsub, &self.app_id)
            .map_err(|_| outbox_error(format!("pubsub {} not found", config.outbox_pubsub)))?;
        let (projections, mut operations): (Vec<_>, Vec<_>) =
            operations.into_iter().partition(|op| {
                matches!(op, Operation::Upsert(r)
                    if r.metadata.get(PROJECTION).is_some_and(|v| is_truthy(v)))
            });
        let projection = |key: &str| {
            projections.iter().find_map(|op| match op {
                Operation::Upsert(r) if r.key == key => Some(r),
                _ => None,
            })
        };
        let (traceparent, tracestate) = super::pubsub::producer_span(&TraceContext::default());
        let topic = config.internal_topic(&self.app_id);
        let mut markers = Vec::new();
        for op in &operations {
            let Operation::Upsert(request) = op else {
                continue;
            };
            let marker = format!("{MARKER_PREFIX}{}", uuid::Uuid::new_v4());
            let (data, content_type) = payload(projection(&request.key).unwrap_or(request));
            let overrides = Metadata::from([("cloudevent.id".to_owned(), marker.clone())]);
            let input = EnvelopeInput {
                source: self.app_id.as_str(),
                topic: "",
                pubsub: &config.outbox_pubsub,
                content_type: &content_type,
                data: &data,
                traceparent: &traceparent,
                tracestate: &tracestate,
            };
            let mut event =
                CloudEvent::new(input, &overrides).map_err(|e| outbox_error(e.to_string()))?;
            // daprd copies the upsert's metadata into the event as they are.
            for (name, value) in &request.metadata {
                if name != "data" && name != "id" {
                    event.set_str(name, value);
                }
            }
            pubsub
                .component
                .publish(PublishRequest {
                    topic: topic.clone(),
                    data: event.to_json(),
                    content_type: Some(CLOUDEVENT_CONTENT_TYPE.into()),
                    metadata: Metadata::new(),
                })
                .await
                .map_err(|e| outbox_error(e.to_string()))?;
            markers.push(marker);
        }
        operations.extend(markers.iter().map(|marker| {
            Operation::Upsert(SetRequest {
                key: marker.clone(),
                value: b"0".to_vec(),
                ..SetRequest::default()
            })
        }));
        Ok((operations, markers))
    }

    /// Remembers the markers of a transaction that failed.
    pub(super) fn outbox_failed(&self, markers: Vec<String>) {
        self.outbox_failed.add(markers);
    }

    /// Starts the relay of every outbox state store in the app's scope: the
    /// app's subscription to the store's internal topic, publishing the
    /// committed upserts to the user's topic. A relay that cannot start
    /// (its pub/sub is missing, the broker refuses) is logged and left out,
    /// as daprd does.
    pub async fn start_outbox_relays(&self) -> OutboxRelays {
        let mut relays = OutboxRelays::default();
        for store in self.components.state_stores() {
            if !store.spec.in_scope(self.app_id.as_str()) {
                continue;
            }
            let Some(config) = OutboxConfig::of(&store.spec) else {
                continue;
            };
            let name = store.spec.name.clone();
            let Ok(pubsub) = self
                .components
                .scoped::<dyn PubSub>(&config.outbox_pubsub, &self.app_id)
            else {
                tracing::warn!(store = %name, pubsub = %config.outbox_pubsub,
                    "the outbox pub/sub is not loaded: no outbox relay");
                continue;
            };
            let relay = Arc::new(Relay {
                components: self.components.clone(),
                app_id: self.app_id.clone(),
                store: name.clone(),
                config: config.clone(),
                failed: self.outbox_failed.clone(),
            });
            let request = SubscribeRequest {
                topic: config.internal_topic(&self.app_id),
                consumer_group: pubsub.consumer_group(&self.app_id),
                metadata: Metadata::new(),
            };
            let handler = Arc::new(move |message: ReceivedMessage| {
                let relay = relay.clone();
                async move { relay.relay(message).await }
            });
            match pubsub.component.subscribe(request, handler).await {
                Ok(subscription) => {
                    tracing::info!(store = %name, topic = %config.publish_topic, "outbox relay started");
                    relays.running.push(subscription);
                }
                Err(error) => {
                    tracing::error!(store = %name, %error, "the outbox relay is not started");
                }
            }
        }
        relays
    }
}

/// How long the relay waits for a marker before it gives the message back
/// (daprd's: 1 s, then backoff from 500 ms ×3 up to 3 s, 10 s in all).
const MARKER_WAIT: Duration = Duration::from_secs(10);

/// The running outbox relays; [`OutboxRelays::close`] stops them.
#[derive(Debug, Default)]
pub struct OutboxRelays {
    running: Vec<Subscription>,
}

impl OutboxRelays {
    /// Stops every relay; messages in flight finish first.
    pub async fn close(self) {
        for subscription in self.running {
            subscription.close().await;
        }
    }
}

/// One store's relay from the internal topic to the user's topic.
struct Relay {
    components: Arc<Components>,
    app_id: AppId,
    store: String,
    config: OutboxConfig,
    failed: Arc<FailedMarkers>,
}

/// Why a marker lookup did not find it.
#[derive(Debug)]
enum Lookup {
    Missing,
    Failed(String),
}

impl Relay {
    async fn relay(&self, message: ReceivedMessage) -> Result<(), HandlerError> {
        let mut event = match CloudEvent::from_json(&message.data) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "outbox: an internal message is no CloudEvent; dropped");
                return Ok(());
            }
        };
        let Some(marker) = event.str("id").filter(|id| id.starts_with(MARKER_PREFIX)) else {
            tracing::warn!("outbox: an internal message without a marker id; dropped");
            return Ok(());
        };
        let store = self
            .components
            .scoped::<dyn StateStore>(&self.store, &self.app_id)
            .map_err(|_| HandlerError(format!("state store {} not found", self.store)))?;
        let find = || async {
            if self.failed.take(&marker) {
                return Ok(false);
            }
            let request = GetRequest {
                key: marker.clone(),
                ..GetRequest::default()
            };
            match store.component.get(request).await {
                Ok(Some(value)) if !value.data.is_empty() => Ok(true),
                Ok(_) => Err(Lookup::Missing),
                Err(error) => Err(Lookup::Failed(error.to_string())),
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_factor(3.0)
            .with_max_delay(Duration::from_secs(3))
            .with_total_delay(Some(MARKER_WAIT))
            .without_max_times();
        match find.retry(backoff).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(%marker, "outbox: the transaction failed; its message is dropped");
                return Ok(());
            }
            Err(Lookup::Missing) if self.config.discard_when_missing_state => {
                tracing::error!(%marker, store = %self.store,
                    "outbox: the transaction's state is not found; message discarded");
                return Ok(());
            }
            Err(Lookup::Missing) => {
                return Err(HandlerError(format!(
                    "outbox state {marker} not found in state store {}: rejected for later processing",
                    self.store
                )));
            }
            Err(Lookup::Failed(error)) => return Err(HandlerError(error)),
        }
        event.set_str("topic", &self.config.publish_topic);
        event.set_str("pubsubname", &self.config.publish_pubsub);
        let target = self
            .components
            .scoped::<dyn PubSub>(&self.config.publish_pubsub, &self.app_id)
            .map_err(|_| {
                HandlerError(format!("pubsub {} not found", self.config.publish_pubsub))
            })?;
        if !target
            .scopes()
            .may_publish(self.app_id.as_str(), &self.config.publish_topic)
        {
            tracing::error!(topic = %self.config.publish_topic,
                "outbox: the app may not publish to the outbox topic; message dropped");
            return Ok(());
        }
        target
            .component
            .publish(PublishRequest {
                topic: self.config.publish_topic.clone(),
                data: event.to_json(),
                content_type: Some(CLOUDEVENT_CONTENT_TYPE.into()),
                metadata: Metadata::new(),
            })
            .await
            .map_err(|e| HandlerError(e.to_string()))?;
        let delete = || async {
            let request = DeleteRequest {
                key: marker.clone(),
                ..DeleteRequest::default()
            };
            store.component.delete(request).await
        };
        delete
            .retry(backoff)
            .await
            .map_err(|e| HandlerError(format!("outbox: deleting marker {marker}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metadata: &[(&str, &str)]) -> ComponentSpec {
        ComponentSpec {
            name: "store".into(),
            kind: "state.in-memory".into(),
            version: "v1".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scopes: Vec::new(),
            source: "test.yaml".into(),
        }
    }

    #[test]
    fn config_needs_pubsub_and_topic() {
        assert_eq!(OutboxConfig::of(&spec(&[])), None);
        assert_eq!(OutboxConfig::of(&spec(&[(PUBLISH_PUBSUB, "p")])), None);
        assert_eq!(OutboxConfig::of(&spec(&[(PUBLISH_TOPIC, "t")])), None);
        let config =
            OutboxConfig::of(&spec(&[(PUBLISH_PUBSUB, "p"), (PUBLISH_TOPIC, "t")])).unwrap();
        assert_eq!(config.outbox_pubsub, "p");
        assert!(!config.discard_when_missing_state);
        assert_eq!(
            config.internal_topic(&AppId::new("app").unwrap()),
            "apptoutbox"
        );
        let config = OutboxConfig::of(&spec(&[
            (PUBLISH_PUBSUB, "p"),
            (PUBLISH_TOPIC, "t"),
            (OUTBOX_PUBSUB, "internal"),
            (DISCARD_WHEN_MISSING_STATE, "Yes"),
        ]))
        .unwrap();
        assert_eq!(config.outbox_pubsub, "internal");
        assert!(config.discard_when_missing_state);
    }

    #[test]
    fn payloads_by_content_type() {
        let set = |value: &str, content_type: Option<&str>| SetRequest {
            value: value.as_bytes().to_vec(),
            metadata: content_type
                .map(|c| Metadata::from([("contentType".to_owned(), c.to_owned())]))
                .unwrap_or_default(),
            ..SetRequest::default()
        };
        let text = |(data, ct): (Vec<u8>, String)| (String::from_utf8(data).unwrap(), ct);
        assert_eq!(
            text(payload(&set("\"2\"", None))),
            ("2".into(), "text/plain".into())
        );
        assert_eq!(
            text(payload(&set("{\"a\":1}", None))),
            ("{\"a\":1}".into(), "application/json".into())
        );
        assert_eq!(
            text(payload(&set("not json", None))),
            ("not json".into(), "text/plain".into())
        );
        assert_eq!(
            text(payload(&set("\"2\"", Some("application/json")))),
            ("\"2\"".into(), "application/json".into())
        );
    }

    #[test]
    fn failed_markers_are_bounded() {
        let failed = FailedMarkers::default();
        failed.add(
            (0..MAX_FAILED_MARKERS + 5)
                .map(|i| format!("m{i}"))
                .collect(),
        );
        assert!(!failed.take("m0"), "the oldest are forgotten");
        assert!(failed.take("m5"));
        assert!(!failed.take("m5"), "taken once");
        assert!(failed.take(&format!("m{}", MAX_FAILED_MARKERS + 4)));
    }
}
