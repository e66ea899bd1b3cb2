//! `pubsub.jetstream`: NATS JetStream with Dapr's metadata names
//! (components-contrib `pubsub/jetstream/metadata.go`).
//!
//! A topic is a NATS subject captured by a stream: the stream named by
//! `streamName`, else the stream whose subjects cover the topic, else one
//! made here (named after the topic, file storage, the topic as its one
//! subject). A message is published with its metadata as NATS headers and
//! the CloudEvent's `id` as `Nats-Msg-Id` (JetStream's deduplication), and
//! `Ok` once the stream acknowledged it.
//!
//! While the client knows it is disconnected, a publish fails within
//! two seconds (a reconnect's grace) without being sent. One made in the moment before
//! it noticed waits in the client and times out: its outcome is unknown
//! (as when any broker's acknowledgement is lost), and it may be stored
//! once the client reconnects; the CloudEvent id as `Nats-Msg-Id` makes a
//! retry of it a duplicate the stream drops.
//!
//! A subscription uses a durable pull consumer per consumer group on the
//! topic (`durableName`, else `<queueGroupName or group>-<topic>`): the
//! replicas of one app pull from the same consumer, so each message goes
//! to one of them, and each group has its own consumer, so every group
//! gets every message. The server keeps the consumer's position, so what
//! is published while a group has no subscriber reaches its next one, in
//! this process or another. A message is acked after its handler returned
//! `Ok`; a failure naks it (after `ackWait` when set, as Dapr does), and a
//! message whose subscriber died is delivered again once `ackWait`
//! expires, with the server's delivery count as its attempt, up to
//! `maxDeliver` deliveries.
//!
//! Differences from Dapr, on purpose: Dapr binds a push consumer (durable
//! only when `durableName` is set, shared only with `queueGroupName`) and
//! ignores the app id; here the consumer is always durable and named after
//! the consumer group, so apps share and fan out as with every other
//! broker. Dapr fails a subscription when no stream captures the topic;
//! here the stream is made. The push-only options (`flowControl`,
//! `rateLimit`) are read and ignored with a warning, `heartbeat` becomes
//! the pull requests' idle heartbeat. NKey/JWT and TLS client
//! authentication are refused (not built in).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{
    MessageHandler, Metadata, PubSub, PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};

use super::{
    ConcurrencyMode, DRAIN, Dispatcher, backend_error, concurrency_mode_of, duration, flag,
    stopped_within,
};

/// Dapr's default client name.
const DEFAULT_NAME: &str = "dapr.io - pubsub.jetstream";

/// How long a publish waits for the stream's acknowledgement (the client's
/// request timeout), and for a lost connection to come back first.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a publish waits for a reconnect in progress before it fails.
const RECONNECT_GRACE: Duration = Duration::from_secs(2);

/// The longest name JetStream accepts for a stream or a consumer (they are
/// file names on the server).
const MAX_NAME: usize = 200;

/// Which messages a new consumer starts with (`deliverPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverPolicy {
    /// `all` (default): the whole stream.
    All,
    /// `last`: the last message, then new ones.
    Last,
    /// `new`: only messages published after the consumer was made.
    New,
    /// `sequence`: from `startSequence` on.
    Sequence(u64),
    /// `time`: from `startTime` (Unix seconds) on.
    Time(i64),
}

/// How the consumer acks (`ackPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// `explicit` (default): each message on its own.
    Explicit,
    /// `all`: an ack covers every earlier message too.
    All,
    /// `none`: the server forgets a message once sent.
    None,
}

/// The metadata of a `pubsub.jetstream` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// `natsURL` (required): one URL or a comma-separated list.
    pub nats_url: String,
    /// `name`: the client's connection name.
    pub name: String,
    /// `token`: token authentication.
    pub token: Option<String>,
    /// `streamName`: the stream every topic of the component is in.
    pub stream_name: Option<String>,
    /// `durableName`: the consumer every subscription binds to.
    pub durable_name: Option<String>,
    /// `queueGroupName`: shares a consumer by this name instead of the
    /// consumer group.
    pub queue_group_name: Option<String>,
    /// `deliverPolicy` with `startSequence` / `startTime`.
    pub deliver_policy: DeliverPolicy,
    /// `ackPolicy`.
    pub ack_policy: AckPolicy,
    /// `ackWait`: how long a delivered message may stay unacked.
    pub ack_wait: Option<Duration>,
    /// `maxDeliver`: deliveries of a message at most (none: no bound).
    pub max_deliver: Option<i64>,
    /// `backOff`: the redelivery delays, comma-separated.
    pub backoff: Vec<Duration>,
    /// `maxAckPending`: unacked messages of a consumer at most.
    pub max_ack_pending: Option<i64>,
    /// `replicas`: the consumer's replicas.
    pub replicas: Option<usize>,
    /// `memoryStorage`: the consumer's state in memory only.
    pub memory_storage: bool,
    /// `heartbeat`: the pull requests' idle heartbeat.
    pub heartbeat: Option<Duration>,
    /// `domain`: the JetStream domain.
    pub domain: Option<String>,
    /// `apiPrefix`: the JetStream API prefix.
    pub api_prefix: Option<String>,
    /// `concurrencyMode` (or `concurrency`): `single` (Dapr's default
    /// here) or `parallel`.
    pub concurrency: ConcurrencyMode,
}

fn optional(spec: &ComponentSpec, name: &str) -> Option<String> {
    spec.metadata(name).map(|v| v.trim().to_owned())
}

fn positive<T: FromStr + Default + PartialOrd>(
    spec: &ComponentSpec,
    name: &str,
) -> Result<Option<T>, ComponentError> {
    let value: T = spec.parse_or(name, T::default())?;
    Ok((value > T::default()).then_some(value))
}

impl JetStreamConfig {
    /// Parses the component's metadata as Dapr does, refusing bad values.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let nats_url = spec.require("natsURL")?.trim().to_owned();
        for unsupported in ["jwt", "seedKey", "tls_client_cert", "tls_client_key"] {
            if spec.metadata(unsupported).is_some() {
                return Err(spec.field_error(
                    format!("spec.metadata.{unsupported}"),
                    "NKey/JWT and TLS client authentication are not supported; use `token`",
                ));
            }
        }
        let deliver_policy =
            match spec.metadata("deliverPolicy").map(str::trim) {
                None | Some("all") => DeliverPolicy::All,
                Some("last") => DeliverPolicy::Last,
                Some("new") => DeliverPolicy::New,
                Some("sequence") => DeliverPolicy::Sequence(
                    positive::<u64>(spec, "startSequence")?.ok_or_else(|| {
                        spec.field_error(
                            "spec.metadata.startSequence",
                            "is required (at least 1) with deliverPolicy `sequence`",
                        )
                    })?,
                ),
                Some("time") => {
                    let seconds = positive::<u64>(spec, "startTime")?.ok_or_else(|| {
                        spec.field_error(
                            "spec.metadata.startTime",
                            "is required (Unix seconds) with deliverPolicy `time`",
                        )
                    })?;
                    DeliverPolicy::Time(i64::try_from(seconds).map_err(|_| {
                        spec.field_error("spec.metadata.startTime", "is out of range")
                    })?)
                }
                Some(other) => {
                    return Err(spec.field_error(
                        "spec.metadata.deliverPolicy",
                        format!("`{other}` is not one of: all, last, new, sequence, time"),
                    ));
                }
            };
        // Dapr takes any other value as `explicit`; a typo silently
        // changing nothing is better refused.
        let ack_policy = match spec.metadata("ackPolicy").map(str::trim) {
            None | Some("explicit") => AckPolicy::Explicit,
            Some("all") => AckPolicy::All,
            Some("none") => AckPolicy::None,
            Some(other) => {
                return Err(spec.field_error(
                    "spec.metadata.ackPolicy",
                    format!("`{other}` is not one of: explicit, all, none"),
                ));
            }
        };
        let backoff = match spec.metadata("backOff") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(|d| {
                    let d = d.trim();
                    humantime::parse_duration(d).map_err(|_| {
                        spec.field_error(
                            "spec.metadata.backOff",
                            format!("`{d}` is not a duration (e.g. `1s,5s,30s`)"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        for push_only in ["flowControl", "rateLimit"] {
            if spec.metadata(push_only).is_some() {
                tracing::warn!(
                    component = %spec.name,
                    "pubsub.jetstream: `{push_only}` applies to push consumers only; ignored (pull consumers here)"
                );
            }
        }
        let ack_wait = duration(spec, "ackWait", Duration::ZERO)?;
        let heartbeat = duration(spec, "heartbeat", Duration::ZERO)?;
        Ok(JetStreamConfig {
            nats_url,
            name: optional(spec, "name").unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            token: optional(spec, "token"),
            stream_name: optional(spec, "streamName"),
            durable_name: optional(spec, "durableName"),
            queue_group_name: optional(spec, "queueGroupName"),
            deliver_policy,
            ack_policy,
            ack_wait: (!ack_wait.is_zero()).then_some(ack_wait),
            max_deliver: positive(spec, "maxDeliver")?,
            backoff,
            max_ack_pending: positive(spec, "maxAckPending")?,
            replicas: positive(spec, "replicas")?,
            memory_storage: flag(spec, "memoryStorage", false)?,
            heartbeat: (!heartbeat.is_zero()).then_some(heartbeat),
            domain: optional(spec, "domain"),
            api_prefix: optional(spec, "apiPrefix"),
            // Dapr decodes `concurrency`, then `concurrencyMode` overrides it.
            concurrency: concurrency_mode_of(
                spec,
                &["concurrencyMode", "concurrency"],
                ConcurrencyMode::Single,
            )?,
        })
    }

    /// Handlers a subscription runs at once (and messages it pulls at
    /// once, so the replicas of a group share the stream).
    fn limit(&self) -> usize {
        match self.concurrency {
            ConcurrencyMode::Single => 1,
            ConcurrencyMode::Parallel => {
                let pending = self
                    .max_ack_pending
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(super::PARALLEL_LIMIT);
                pending.min(super::PARALLEL_LIMIT)
            }
        }
    }

    /// The durable consumer of `group` on `topic`.
    fn consumer_name(&self, topic: &str, group: &str) -> String {
        match &self.durable_name {
            Some(name) => name.clone(),
            None => {
                let group = self.queue_group_name.as_deref().unwrap_or(group);
                nats_name(&format!("{group}-{topic}"))
            }
        }
    }

    fn consumer_config(&self, name: &str, topic: &str) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: topic.to_owned(),
            deliver_policy: match self.deliver_policy {
                DeliverPolicy::All => consumer::DeliverPolicy::All,
                DeliverPolicy::Last => consumer::DeliverPolicy::Last,
                DeliverPolicy::New => consumer::DeliverPolicy::New,
                DeliverPolicy::Sequence(start_sequence) => {
                    consumer::DeliverPolicy::ByStartSequence { start_sequence }
                }
                DeliverPolicy::Time(seconds) => consumer::DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::from_unix_timestamp(seconds)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                },
            },
            ack_policy: match self.ack_policy {
                AckPolicy::Explicit => consumer::AckPolicy::Explicit,
                AckPolicy::All => consumer::AckPolicy::All,
                AckPolicy::None => consumer::AckPolicy::None,
            },
            ack_wait: self.ack_wait.unwrap_or_default(),
            max_deliver: self.max_deliver.unwrap_or_default(),
            backoff: self.backoff.clone(),
            max_ack_pending: self.max_ack_pending.unwrap_or_default(),
            num_replicas: self.replicas.unwrap_or_default(),
            memory_storage: self.memory_storage,
            ..consumer::pull::Config::default()
        }
    }
}

/// A valid JetStream stream or consumer name for `text`: characters
/// JetStream refuses (`.`, `*`, `>`, `/`, `\`, whitespace, controls)
/// become `_`, and a name that had to change (or was too long) gets a hash
/// of the original, so two topics never map to one name.
pub(crate) fn nats_name(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned == text && text.len() <= MAX_NAME && !text.is_empty() {
        return cleaned;
    }
    // FNV-1a: stable across processes and versions (the name must be the
    // same for every replica, now and after an upgrade).
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut prefix: String = cleaned.chars().take(MAX_NAME - 17).collect();
    while prefix.len() > MAX_NAME - 17 {
        prefix.pop();
    }
    format!("{prefix}_{hash:016x}")
}

/// A publish's metadata as NATS headers (names or values NATS cannot carry
/// are left out).
fn headers(metadata: &Metadata) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in metadata {
        if let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    headers
}

/// The CloudEvent `id` of an envelope, Dapr's `Nats-Msg-Id`.
fn cloudevent_id(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("id")?.as_str().map(str::to_owned)
}

/// The NATS JetStream broker.
pub struct JetStreamPubSub {
    client: async_nats::Client,
    context: jetstream::Context,
    config: JetStreamConfig,
    /// The stream of each topic seen, so a publish asks the server once.
    streams: Mutex<HashMap<String, String>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for JetStreamPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamPubSub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JetStreamPubSub {
    /// Connects to the server (failing when it is down).
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = JetStreamConfig::from_spec(spec)?;
        let mut options = async_nats::ConnectOptions::new()
            .name(&config.name)
            .connection_timeout(PUBLISH_TIMEOUT)
            // Back within a second of the server: nats.go waits 2 s.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64).saturating_mul(100).min(1000))
            });
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        let client = options
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| {
                spec.init_error(format!(
                    "cannot connect to NATS at {}: {e}",
                    config.nats_url
                ))
            })?;
        let mut context = match (&config.domain, &config.api_prefix) {
            (Some(domain), _) => jetstream::with_domain(client.clone(), domain),
            (None, Some(prefix)) => jetstream::with_prefix(client.clone(), prefix),
            (None, None) => jetstream::new(client.clone()),
        };
        context.set_timeout(PUBLISH_TIMEOUT);
        tracing::info!(component = %spec.name, url = %config.nats_url, "NATS JetStream pub/sub ready");
        Ok(JetStreamPubSub {
            client,
            context,
            config,
            streams: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The stream capturing `topic`, made when there is none.
    async fn stream(&self, topic: &str) -> Result<stream::Stream, PubSubError> {
        let known = self.streams.lock().await.get(topic).cloned();
        let name = match (known, &self.config.stream_name) {
            (Some(name), _) => name,
            (None, Some(name)) => name.clone(),
            (None, None) => match self.context.stream_by_subject(topic).await {
                Ok(name) => name,
                Err(e) if e.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
                    nats_name(topic)
                }
                Err(e) => return Err(backend_error("jetstream: stream lookup", e)),
            },
        };
        let stream = match self.context.get_stream(&name).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref js)
                        if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                let created = self
                    .context
                    .get_or_create_stream(stream::Config {
                        name: name.clone(),
                        subjects: vec![topic.to_owned()],
                        storage: stream::StorageType::File,
                        ..stream::Config::default()
                    })
                    .await
                    .map_err(|e| backend_error("jetstream: create stream", e))?;
                tracing::info!(stream = %name, %topic, "JetStream pub/sub: stream created");
                created
            }
            Err(e) => return Err(backend_error("jetstream: get stream", e)),
        };
        self.streams
            .lock()
            .await
            .insert(topic.to_owned(), name.clone());
        Ok(stream)
    }

    /// Waits briefly for a reconnect in progress; fails when the client is
    /// still not connected, rather than queue the publish for later.
    async fn connected(&self) -> Result<(), PubSubError> {
        let deadline = tokio::time::Instant::now() + RECONNECT_GRACE;
        while self.client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() >= deadline {
                return Err(backend_error("jetstream: publish", "not connected to NATS"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

fn check_topic(topic: &str) -> Result<(), PubSubError> {
    let valid = !topic.is_empty()
        && !topic.starts_with('.')
        && !topic.ends_with('.')
        && !topic.contains("..")
        && !topic
            .chars()
            .any(|c| c.is_whitespace() || c == '*' || c == '>');
    if valid {
        Ok(())
    } else {
        Err(PubSubError::InvalidRequest(format!(
            "`{topic}` is not a NATS subject a message can be published to"
        )))
    }
}

#[async_trait]
impl PubSub for JetStreamPubSub {
    fn features(&self) -> PubSubFeatures {
        PubSubFeatures {
            carries_metadata: true,
            redelivery: self.config.ack_policy == AckPolicy::Explicit,
            durable: true,
            ordered: self.config.concurrency == ConcurrencyMode::Single,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        check_topic(&request.topic)?;
        self.connected().await?;
        let message_id = cloudevent_id(&request.data);
        let build = || {
            let mut message = jetstream::message::PublishMessage::build()
                .payload(request.data.clone().into())
                .headers(headers(&request.metadata));
            if let Some(id) = &message_id {
                message = message.message_id(id);
            }
            message
        };
        let known = self.streams.lock().await.contains_key(&request.topic);
        if !known {
            self.stream(&request.topic).await?;
        }
        let sent = self
            .context
            .send_publish(request.topic.clone(), build())
            .await
            .map_err(|e| backend_error("jetstream: publish", e))?;
        match sent.await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                // The stream was deleted since: made again, once.
                self.streams.lock().await.remove(&request.topic);
                self.stream(&request.topic).await?;
                let sent = self
                    .context
                    .send_publish(request.topic.clone(), build())
                    .await
                    .map_err(|e| backend_error("jetstream: publish", e))?;
                sent.await
                    .map(|_| ())
                    .map_err(|e| backend_error("jetstream: publish", e))
            }
            Err(e) => Err(backend_error("jetstream: publish", e)),
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
        check_topic(&request.topic)?;
        let topic = request.topic;
        let name = self.config.consumer_name(&topic, &request.consumer_group);
        let consumer_config = self.config.consumer_config(&name, &topic);
        let stream = self.stream(&topic).await?;
        let mut consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(&name, consumer_config.clone())
            .await
            .map_err(|e| backend_error("jetstream: create consumer", e))?;
        // An existing consumer is taken as it is: one made for another
        // topic (a `durableName` shared by topics of one `streamName`)
        // would deliver that topic's messages.
        let filter = &consumer.cached_info().config.filter_subject;
        if filter != &topic {
            return Err(PubSubError::InvalidRequest(format!(
                "the JetStream consumer `{name}` already exists for `{filter}`, not `{topic}` (give each topic its own durableName or stream)"
            )));
        }
        tracing::debug!(%topic, consumer = %name, "JetStream pub/sub: subscribed");
        let limit = self.config.limit();
        let (stop, mut stopped) = Subscription::signal();
        let dispatcher = Dispatcher::new(handler, limit, stopped.clone());
        let acks = self.config.ack_policy != AckPolicy::None;
        let nak_delay = self.config.ack_wait;
        let heartbeat = self.config.heartbeat;
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            'subscription: while !*stopped.borrow() {
                let mut pull = consumer.stream().max_messages_per_batch(pull_batch(limit));
                if let Some(heartbeat) = heartbeat {
                    pull = pull.heartbeat(heartbeat);
                }
                let mut messages = match pull.messages().await {
                    Ok(messages) => messages,
                    Err(error) => {
                        tracing::warn!(%error, %topic, "JetStream pub/sub: cannot pull; trying again");
                        if stopped_within(&mut stopped, Duration::from_secs(1)).await {
                            break;
                        }
                        continue;
                    }
                };
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = stopped.wait_for(|s| *s) => break 'subscription,
                        next = messages.next() => next,
                    };
                    match next {
                        Some(Ok(message)) => {
                            let received = received(&topic, &message);
                            let dispatched = dispatcher
                                .dispatch(received, move |outcome| async move {
                                    if !acks {
                                        return;
                                    }
                                    let acked = match outcome {
                                        Ok(()) => message.ack().await,
                                        Err(_) => message.ack_with(AckKind::Nak(nak_delay)).await,
                                    };
                                    if let Err(error) = acked {
                                        tracing::warn!(%error, "JetStream pub/sub: ack failed; the message will be delivered again");
                                    }
                                })
                                .await;
                            if !dispatched {
                                break 'subscription;
                            }
                        }
                        Some(Err(error)) => {
                            use consumer::pull::MessagesErrorKind as Kind;
                            match error.kind() {
                                Kind::MissingHeartbeat | Kind::Other => {
                                    tracing::debug!(%error, %topic, "JetStream pub/sub: pull interrupted");
                                }
                                _ => {
                                    tracing::warn!(%error, %topic, "JetStream pub/sub: consumer lost; making it again");
                                    break;
                                }
                            }
                        }
                        None => break,
                    }
                }
                // The consumer is gone (the server lost it, or the stream
                // was deleted): made again, the subscription goes on.
                if stopped_within(&mut stopped, Duration::from_millis(500)).await {
                    break;
                }
                match stream
                    .get_or_create_consumer(&name, consumer_config.clone())
                    .await
                {
                    Ok(again) => consumer = again,
                    Err(error) => {
                        tracing::warn!(%error, %topic, "JetStream pub/sub: cannot make the consumer again");
                    }
                }
            }
            if !dispatcher.drain(DRAIN).await {
                tracing::debug!(%topic, "JetStream pub/sub: handlers still running at close; their messages are delivered again after ackWait");
            }
            // Acks are written without a reply: flushed here, so a message
            // handled before the close is not delivered again once the
            // client goes away with them still buffered.
            if let Err(error) = client.flush().await {
                tracing::debug!(%error, %topic, "JetStream pub/sub: acks not flushed at close; those messages are delivered again after ackWait");
            }
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.store(true, Ordering::Release);
        // What is still buffered (acks of subscriptions closed before) goes out.
        self.client
            .flush()
            .await
            .map_err(|e| backend_error("jetstream: flush at close", e))
    }
}

/// Messages one pull request asks for when `limit` handlers run at once.
/// Never one: with pull requests of a single message, a consumer taken over
/// from a client that died (its requests still waiting on the server)
/// stalls until each stale request expires (30 s), so a restarted sidecar
/// delivered a few hundred events per half minute (found by the zero-loss
/// benchmark). A batch of a few keeps it flowing; the dispatcher still runs
/// one handler at a time in `single` mode, in stream order.
fn pull_batch(limit: usize) -> usize {
    limit.max(MIN_PULL_BATCH)
}

/// The smallest pull batch (see [`pull_batch`]).
const MIN_PULL_BATCH: usize = 8;

/// A JetStream message as a subscription receives it: the stream sequence
/// as its id, the server's delivery count as its attempt, its headers
/// (and Dapr's `Topic`) as metadata.
fn received(topic: &str, message: &jetstream::Message) -> ReceivedMessage {
    let (id, attempt) = match message.info() {
        Ok(info) => (
            info.stream_sequence.to_string(),
            u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
        ),
        Err(_) => (String::new(), 1),
    };
    let mut metadata = Metadata::new();
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Nats-") {
                continue;
            }
            if let Some(value) = values.first() {
                metadata.insert(name.to_owned(), value.as_str().to_owned());
            }
        }
    }
    metadata.insert("Topic".into(), message.subject.to_string());
    ReceivedMessage {
        id,
        topic: topic.to_owned(),
        data: message.payload.to_vec(),
        metadata,
        attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::{refuses, spec};

    /// Dapr's names, defaults and refusals.
    #[test]
    fn config() {
        let url = ("natsURL", "nats://127.0.0.1:4222");
        let config = JetStreamConfig::from_spec(&spec("pubsub.jetstream", &[url])).unwrap();
        assert_eq!(config.name, DEFAULT_NAME);
        assert_eq!(config.deliver_policy, DeliverPolicy::All);
        assert_eq!(config.ack_policy, AckPolicy::Explicit);
        assert_eq!(config.concurrency, ConcurrencyMode::Single);
        assert_eq!(config.consumer_name("orders", "app"), "app-orders");
        let older = [url, ("concurrency", "parallel")];
        let config = JetStreamConfig::from_spec(&spec("pubsub.jetstream", &older)).unwrap();
        assert_eq!(config.concurrency, ConcurrencyMode::Parallel);
        let config = JetStreamConfig::from_spec(&spec(
            "pubsub.jetstream",
            &[
                url,
                ("deliverPolicy", "sequence"),
                ("startSequence", "7"),
                ("ackWait", "2s"),
                ("maxDeliver", "5"),
                ("backOff", "1s, 5s"),
                ("queueGroupName", "workers"),
                ("concurrencyMode", "parallel"),
                ("maxAckPending", "8"),
            ],
        ))
        .unwrap();
        assert_eq!(config.deliver_policy, DeliverPolicy::Sequence(7));
        assert_eq!(config.ack_wait, Some(Duration::from_secs(2)));
        assert_eq!(config.max_deliver, Some(5));
        assert_eq!(
            config.backoff,
            [Duration::from_secs(1), Duration::from_secs(5)]
        );
        assert_eq!(config.consumer_name("orders", "app"), "workers-orders");
        assert_eq!(config.limit(), 8);
        for (bad, field) in [
            (vec![], "natsURL"),
            (vec![url, ("deliverPolicy", "oldest")], "deliverPolicy"),
            (vec![url, ("deliverPolicy", "sequence")], "startSequence"),
            (vec![url, ("ackPolicy", "some")], "ackPolicy"),
            (vec![url, ("ackWait", "soon")], "ackWait"),
            (vec![url, ("maxDeliver", "many")], "maxDeliver"),
            (vec![url, ("concurrencyMode", "many")], "concurrencyMode"),
            (vec![url, ("concurrency", "many")], "concurrency"),
            (vec![url, ("jwt", "x")], "jwt"),
        ] {
            refuses("pubsub.jetstream", &bad, field, JetStreamConfig::from_spec);
        }
    }

    /// Names JetStream accepts, distinct for distinct topics.
    #[test]
    fn names() {
        assert_eq!(nats_name("orders"), "orders");
        let dotted = nats_name("app-orders.eu");
        let underscored = nats_name("app-orders_eu");
        assert!(dotted.starts_with("app-orders_eu_"), "{dotted}");
        assert_ne!(dotted, underscored);
        assert!(!dotted.contains('.'));
        let long = nats_name(&"é".repeat(300));
        assert!(long.len() <= MAX_NAME, "{}", long.len());
        assert_eq!(nats_name(&"x".repeat(300)), nats_name(&"x".repeat(300)));
        assert!(check_topic("a.b").is_ok());
        assert!(check_topic("a b").is_err() && check_topic("a.*").is_err());
        assert_eq!(cloudevent_id(br#"{"id":"e1"}"#).as_deref(), Some("e1"));
        assert_eq!(cloudevent_id(b"raw"), None);
    }
}
