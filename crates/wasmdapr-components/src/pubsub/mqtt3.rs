//! `pubsub.mqtt3`: an MQTT 3.1.1 broker (Mosquitto, EMQX, HiveMQ, …) with
//! Dapr's metadata names (components-contrib `pubsub/mqtt3`): `url`,
//! `qos` (default 1), `retain`, `cleanSession`, `consumerID`.
//!
//! A topic is an MQTT topic. Each subscription has a connection of its
//! own and subscribes to the shared subscription `$share/<group>/<topic>`
//! (MQTT 5's, which Mosquitto, EMQX and HiveMQ also give MQTT 3.1.1
//! clients): the broker hands each message to one subscriber of a group,
//! and every group gets every message. A topic already written as
//! `$share/…` is subscribed as given. Messages are acked (QoS 1 `PUBACK`,
//! QoS 2 `PUBREC`) only after the handler returned `Ok` (manual acks).
//!
//! What MQTT 3 cannot do, and [`PubSubFeatures`] does not claim:
//!
//! - No redelivery: a broker resends an unacked message only when the
//!   same session reconnects. Sessions here are clean, because each
//!   subscription's client id is unique (replicas of one app must not
//!   share one: the broker would disconnect the older), and a persistent
//!   session under an id nobody reconnects with would keep its share of
//!   the group's messages forever. So a message whose handler failed is
//!   not delivered again; it stays unacked, taking one of the broker's
//!   in-flight slots, and after [`MAX_UNACKED_FAILURES`] of them the
//!   subscription reconnects (its session, and those messages, dropped),
//!   so failures cannot stall it. `cleanSession` is read but sessions are
//!   always clean.
//! - Not durable: what is published while a group has no subscriber is
//!   not kept (shared subscriptions exist only while a session has them).
//! - No metadata: MQTT 3 messages have no headers; a subscriber receives
//!   Dapr's `retained` flag only.
//!
//! Ordered: with `concurrencyMode: single` a subscription handles one
//! message at a time, in the broker's order (Dapr's mqtt3 handles them in
//! parallel, the default here too).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{
    MessageHandler, Metadata, PubSub, PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};

use super::{
    ConcurrencyMode, DRAIN, Dispatcher, PARALLEL_LIMIT, backend_error, concurrency_mode, flag,
    parse_bool,
};

/// How long connecting, subscribing or one publish may take (Dapr's
/// `defaultWait`).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a publish waits for a reconnect in progress before it fails.
const RECONNECT_GRACE: Duration = Duration::from_secs(2);

/// The pause between reconnect attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// Unacked failed messages a subscription holds before it reconnects to
/// let go of them (Mosquitto's default in-flight window is 20).
pub const MAX_UNACKED_FAILURES: usize = 10;

/// The largest MQTT packet sent or received (MQTT allows 256 MiB).
const MAX_PACKET: usize = 16 * 1024 * 1024;

/// Messages received and not yet handed to the handler.
const BACKLOG: usize = 1024;

/// The metadata of a `pubsub.mqtt3` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// The broker's host (from `url`).
    pub host: String,
    /// Its port (from `url`, default 1883).
    pub port: u16,
    /// The user and password of `url`, if any.
    pub credentials: Option<(String, String)>,
    /// `qos`: 0, 1 (default) or 2.
    pub qos: QoS,
    /// `retain`: the broker keeps the last message of a topic for new
    /// subscribers.
    pub retain: bool,
    /// `cleanSession` as given (sessions are always clean here; see the
    /// module's documentation).
    pub clean_session: bool,
    /// `consumerID`: the prefix of this component's client ids.
    pub consumer_id: Option<String>,
    /// `concurrencyMode`: `parallel` (default) or `single`.
    pub concurrency: ConcurrencyMode,
}

impl MqttConfig {
    /// Parses the component's metadata as Dapr does, refusing bad values.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let raw = spec.require("url")?.trim();
        let field = |name: &str, message: String| {
            spec.field_error(format!("spec.metadata.{name}"), message)
        };
        let url =
            url::Url::parse(raw).map_err(|e| field("url", format!("`{raw}` is not a URL: {e}")))?;
        match url.scheme() {
            "tcp" | "mqtt" => {}
            "ssl" | "tls" | "mqtts" | "tcps" => {
                return Err(field(
                    "url",
                    "TLS (mqtts) is not supported by this build; use tcp://".into(),
                ));
            }
            other => {
                return Err(field(
                    "url",
                    format!("the scheme `{other}` is not tcp or mqtt"),
                ));
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| field("url", format!("`{raw}` has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let credentials = (!url.username().is_empty()).then(|| {
            (
                percent_decode(url.username()),
                url.password().map(percent_decode).unwrap_or_default(),
            )
        });
        let qos = match spec.parse_or::<u8>("qos", 1)? {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            other => return Err(field("qos", format!("`{other}` is not 0, 1 or 2"))),
        };
        let clean_session = flag(spec, "cleanSession", false)?;
        let consumer_id = spec.metadata("consumerID").map(str::to_owned);
        if let Some(id) = &consumer_id
            && id.len() > 128
        {
            return Err(field("consumerID", "is longer than 128 bytes".into()));
        }
        Ok(MqttConfig {
            host,
            port: url.port().unwrap_or(1883),
            credentials,
            qos,
            retain: flag(spec, "retain", false)?,
            clean_session,
            consumer_id,
            concurrency: concurrency_mode(spec, ConcurrencyMode::Parallel)?,
        })
    }

    /// Options for a new connection, under a client id of its own.
    fn options(&self, role: &str) -> MqttOptions {
        let prefix = self.consumer_id.as_deref().unwrap_or("wasmdapr");
        let id = format!(
            "{prefix}-{role}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut options = MqttOptions::new(id, self.host.clone(), self.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_manual_acks(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        options
    }

    fn limit(&self) -> usize {
        match self.concurrency {
            ConcurrencyMode::Single => 1,
            ConcurrencyMode::Parallel => PARALLEL_LIMIT,
        }
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The subscription filter of `group` on `topic`.
fn shared_filter(group: &str, topic: &str) -> Result<String, PubSubError> {
    if topic.starts_with("$share/") {
        return Ok(topic.to_owned());
    }
    if group.is_empty() || group.contains(['/', '+', '#']) {
        return Err(PubSubError::InvalidRequest(format!(
            "the consumer group `{group}` cannot name an MQTT shared subscription (no `/`, `+`, `#`)"
        )));
    }
    check_topic(topic, true)?;
    Ok(format!("$share/{group}/{topic}"))
}

fn check_topic(topic: &str, filter: bool) -> Result<(), PubSubError> {
    let wildcard = topic.contains(['+', '#']);
    if topic.is_empty() || topic.len() > 65_535 || topic.contains('\0') || (wildcard && !filter) {
        return Err(PubSubError::InvalidRequest(format!(
            "`{topic}` is not an MQTT topic a message can be {}",
            if filter {
                "subscribed to"
            } else {
                "published to"
            }
        )));
    }
    Ok(())
}

/// Publishes waiting for the broker: first for the packet id the event
/// loop gives them (in the order they were queued), then for its ack.
#[derive(Default)]
struct Waiters {
    queued: VecDeque<oneshot::Sender<Result<(), String>>>,
    sent: HashMap<u16, oneshot::Sender<Result<(), String>>>,
}

impl Waiters {
    /// The connection was lost: a clean session resends nothing, so every
    /// publish not yet acked has failed.
    fn fail_all(&mut self, why: &str) {
        for waiter in self
            .queued
            .drain(..)
            .chain(self.sent.drain().map(|(_, w)| w))
        {
            let _ = waiter.send(Err(why.to_owned()));
        }
    }
}

/// The MQTT broker.
pub struct MqttPubSub {
    config: MqttConfig,
    client: AsyncClient,
    connected: watch::Receiver<bool>,
    waiters: Arc<std::sync::Mutex<Waiters>>,
    /// Serialises queueing a publish and its waiter, so the event loop's
    /// packet ids match the waiters' order.
    order: tokio::sync::Mutex<()>,
    event_loop: tokio::task::JoinHandle<()>,
    closed: AtomicBool,
}

impl std::fmt::Debug for MqttPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPubSub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttPubSub {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

/// Polls `event_loop` (which reconnects on the next poll after an
/// error), reporting whether it is connected and passing every event to
/// `on_event`, until `on_event` returns `false`.
async fn drive(
    mut event_loop: EventLoop,
    connected: watch::Sender<bool>,
    mut on_event: impl FnMut(Result<&Event, &rumqttc::ConnectionError>) -> bool,
) {
    loop {
        let polled = event_loop.poll().await;
        match &polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = connected.send(true);
            }
            Err(error) => {
                let _ = connected.send(false);
                tracing::debug!(%error, "MQTT pub/sub: connection lost; reconnecting");
            }
            _ => {}
        }
        if !on_event(polled.as_ref()) {
            return;
        }
        if polled.is_err() {
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

/// Waits until `connected` is true, at most `within`.
async fn wait_connected(connected: &mut watch::Receiver<bool>, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, connected.wait_for(|c| *c)).await,
        Ok(Ok(_))
    )
}

impl MqttPubSub {
    /// Connects the publishing client (failing when the broker is down).
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = MqttConfig::from_spec(spec)?;
        if spec.metadata("cleanSession").is_some() && !config.clean_session {
            tracing::warn!(component = %spec.name, "pubsub.mqtt3: sessions are always clean here (one client id per subscription); cleanSession: false has no effect");
        }
        let (client, event_loop) = AsyncClient::new(config.options("pub"), 64);
        let (connected_tx, mut connected) = watch::channel(false);
        let waiters: Arc<std::sync::Mutex<Waiters>> = Arc::default();
        let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let event_loop = {
            let waiters = waiters.clone();
            let first_error = first_error.clone();
            tokio::spawn(drive(event_loop, connected_tx, move |event| {
                let mut waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(waiter) = waiters.queued.pop_front() {
                            if *pkid == 0 {
                                let _ = waiter.send(Ok(()));
                            } else {
                                waiters.sent.insert(*pkid, waiter);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(waiter) = waiters.sent.remove(&ack.pkid) {
                            let _ = waiter.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::PubComp(comp))) => {
                        if let Some(waiter) = waiters.sent.remove(&comp.pkid) {
                            let _ = waiter.send(Ok(()));
                        }
                    }
                    Err(error) => {
                        waiters.fail_all(&format!("connection lost: {error}"));
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert_with(|| error.to_string());
                    }
                    _ => {}
                }
                true
            }))
        };
        if !wait_connected(&mut connected, CALL_TIMEOUT).await {
            event_loop.abort();
            let why = first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| "no answer".into());
            return Err(spec.init_error(format!(
                "cannot connect to the MQTT broker at {}:{}: {why}",
                config.host, config.port
            )));
        }
        tracing::info!(component = %spec.name, host = %config.host, port = config.port, "MQTT pub/sub ready");
        Ok(MqttPubSub {
            config,
            client,
            connected,
            waiters,
            order: tokio::sync::Mutex::new(()),
            event_loop,
            closed: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl PubSub for MqttPubSub {
    fn features(&self) -> PubSubFeatures {
        PubSubFeatures {
            ordered: self.config.concurrency == ConcurrencyMode::Single,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        check_topic(&request.topic, false)?;
        let retain = match request.metadata.get("retain").filter(|v| !v.is_empty()) {
            None => self.config.retain,
            Some(raw) => parse_bool(raw.trim()).ok_or_else(|| {
                PubSubError::InvalidRequest(format!("retain `{raw}` is not a boolean"))
            })?,
        };
        if request.data.len() > MAX_PACKET - request.topic.len() - 16 {
            return Err(PubSubError::InvalidRequest(format!(
                "the message is larger than the {MAX_PACKET} bytes an MQTT packet may carry here"
            )));
        }
        let mut connected = self.connected.clone();
        if !wait_connected(&mut connected, RECONNECT_GRACE).await {
            return Err(backend_error(
                "mqtt: publish",
                "not connected to the broker",
            ));
        }
        let (done, acked) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queued
                .push_back(done);
            let queued = self
                .client
                .publish(request.topic.clone(), self.config.qos, retain, request.data)
                .await;
            if let Err(error) = queued {
                self.waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .queued
                    .pop_back();
                return Err(backend_error("mqtt: publish", error));
            }
        }
        match tokio::time::timeout(CALL_TIMEOUT, acked).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(backend_error("mqtt: publish", why)),
            Ok(Err(_)) => Err(backend_error("mqtt: publish", "the client stopped")),
            Err(_) => Err(backend_error(
                "mqtt: publish",
                format!("not acknowledged within {CALL_TIMEOUT:?}"),
            )),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let filter = shared_filter(&request.consumer_group, &request.topic)?;
        let qos = self.config.qos;
        let (client, event_loop) = AsyncClient::new(self.config.options("sub"), 64);
        let (connected_tx, _connected) = watch::channel(false);
        let (messages_tx, mut messages) = mpsc::channel::<rumqttc::Publish>(BACKLOG);
        let (subscribed_tx, subscribed) = oneshot::channel::<Result<(), String>>();
        let failures = Arc::new(AtomicUsize::new(0));
        let driver = {
            let client = client.clone();
            let filter = filter.clone();
            let failures = failures.clone();
            let mut subscribed_tx = Some(subscribed_tx);
            tokio::spawn(drive(event_loop, connected_tx, move |event| {
                match event {
                    // A clean session starts with no subscription: made
                    // again on every (re)connect.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        failures.store(0, Ordering::Release);
                        if let Err(error) = client.try_subscribe(filter.clone(), qos) {
                            tracing::warn!(%error, "MQTT pub/sub: cannot subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(if refused {
                                Err(format!("the broker refused the subscription to {filter}"))
                            } else {
                                Ok(())
                            });
                        } else if refused {
                            tracing::warn!(%filter, "MQTT pub/sub: the broker refused the subscription after a reconnect");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Err(mpsc::error::TrySendError::Full(dropped)) =
                            messages_tx.try_send(publish.clone())
                        {
                            // Only QoS 0 can outrun the broker's in-flight
                            // window; it is at-most-once.
                            tracing::warn!(topic = %dropped.topic, "MQTT pub/sub: backlog full; message dropped");
                        }
                    }
                    Err(error) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(Err(error.to_string()));
                            return false;
                        }
                    }
                    _ => {}
                }
                true
            }))
        };
        let ready = match tokio::time::timeout(CALL_TIMEOUT, subscribed).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(why),
            Ok(Err(_)) => Err("the client stopped".to_owned()),
            Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        };
        if let Err(why) = ready {
            driver.abort();
            return Err(backend_error("mqtt: subscribe", why));
        }
        tracing::debug!(%filter, "MQTT pub/sub: subscribed");
        let topic = request.topic;
        let (stop, mut stopped) = Subscription::signal();
        let dispatcher = Dispatcher::new(handler, self.config.limit(), stopped.clone());
        let task = tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stopped.wait_for(|s| *s) => None,
                    next = messages.recv() => next,
                };
                let Some(publish) = next else { break };
                let message = ReceivedMessage {
                    id: publish.pkid.to_string(),
                    topic: topic.clone(),
                    data: publish.payload.to_vec(),
                    metadata: Metadata::from([(
                        "retained".to_string(),
                        publish.retain.to_string(),
                    )]),
                    attempt: if publish.dup { 2 } else { 1 },
                };
                let client = client.clone();
                let failures = failures.clone();
                let dispatched = dispatcher
                    .dispatch(message, move |outcome| async move {
                        if publish.qos == QoS::AtMostOnce {
                            return;
                        }
                        match outcome {
                            Ok(()) => {
                                if let Err(error) = client.ack(&publish).await {
                                    tracing::warn!(%error, "MQTT pub/sub: ack failed");
                                }
                            }
                            Err(_) => {
                                // Left unacked (MQTT 3 has no nack); past
                                // the bound, a reconnect lets go of them.
                                let unacked = failures.fetch_add(1, Ordering::AcqRel) + 1;
                                if unacked >= MAX_UNACKED_FAILURES {
                                    failures.store(0, Ordering::Release);
                                    tracing::warn!("MQTT pub/sub: {unacked} failed messages unacked; reconnecting to release them");
                                    let _ = client.try_disconnect();
                                }
                            }
                        }
                    })
                    .await;
                if !dispatched {
                    break;
                }
            }
            let _ = dispatcher.drain(DRAIN).await;
            let _ = client.try_disconnect();
            tokio::time::sleep(Duration::from_millis(100)).await;
            driver.abort();
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.store(true, Ordering::Release);
        let _ = self.client.try_disconnect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::{refuses, spec};

    /// Dapr's names, defaults and refusals.
    #[test]
    fn config() {
        let config =
            MqttConfig::from_spec(&spec("pubsub.mqtt3", &[("url", "tcp://127.0.0.1:1883")]))
                .unwrap();
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 1883));
        assert_eq!(config.qos, QoS::AtLeastOnce);
        assert!(!config.retain && !config.clean_session);
        assert_eq!(config.concurrency, ConcurrencyMode::Parallel);
        let config = MqttConfig::from_spec(&spec(
            "pubsub.mqtt3",
            &[
                ("url", "mqtt://us%40r:p%3Ass@broker"),
                ("qos", "2"),
                ("retain", "true"),
                ("consumerID", "app"),
                ("concurrencyMode", "single"),
            ],
        ))
        .unwrap();
        assert_eq!((config.host.as_str(), config.port), ("broker", 1883));
        assert_eq!(
            config.credentials,
            Some(("us@r".to_string(), "p:ss".to_string()))
        );
        assert_eq!(config.qos, QoS::ExactlyOnce);
        assert_eq!(config.limit(), 1);
        assert!(config.options("sub").client_id().starts_with("app-sub-"));
        for (bad, field) in [
            (vec![], "url"),
            (vec![("url", "not a url")], "url"),
            (vec![("url", "ssl://broker:8883")], "url"),
            (vec![("url", "tcp://b"), ("qos", "3")], "qos"),
            (vec![("url", "tcp://b"), ("retain", "maybe")], "retain"),
            (
                vec![("url", "tcp://b"), ("cleanSession", "x")],
                "cleanSession",
            ),
        ] {
            refuses("pubsub.mqtt3", &bad, field, MqttConfig::from_spec);
        }
    }

    /// Shared subscriptions per group; topics as MQTT allows them.
    #[test]
    fn filters() {
        assert_eq!(
            shared_filter("app", "orders/eu").unwrap(),
            "$share/app/orders/eu"
        );
        assert_eq!(shared_filter("app", "$share/g/t").unwrap(), "$share/g/t");
        assert!(shared_filter("a/b", "t").is_err());
        assert!(shared_filter("app", "").is_err());
        assert!(check_topic("sensors/+/temp", true).is_ok());
        assert!(check_topic("sensors/+/temp", false).is_err());
    }
}
