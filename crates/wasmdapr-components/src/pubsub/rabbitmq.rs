//! `pubsub.rabbitmq`: RabbitMQ (AMQP 0-9-1) with Dapr's metadata and
//! layout (components-contrib `pubsub/rabbitmq`), so a topic can be shared
//! with real Dapr sidecars: a topic is an exchange of `exchangeKind`
//! (fanout by default) named after it, and each consumer group has its
//! own queue bound to it, named `<group>-<topic>` as Dapr names it from
//! its `consumerID` (or the subscription's `queueName`). The replicas of
//! one app consume from the same queue, so each message goes to one of
//! them (a daprd of that app on the same broker shares it too); every
//! group's queue gets every message.
//!
//! A publish declares the exchange (`durable`, auto-deleted when
//! `deletedWhenUnused`), sends the message with `deliveryMode`, the
//! request's `ttlInSeconds`/`ttl` (or the component's) as its expiration, its
//! `priority` and `routingKey`, and the request's metadata as headers, and
//! is `Ok` once the broker confirmed it (publisher confirms are always on
//! here: the trait promises the broker holds a published message; Dapr
//! waits for them only with `publisherConfirm`).
//!
//! A subscription has a connection of its own: it declares the queue
//! (`durable`, `deletedWhenUnused`, `maxLen`, `maxLenBytes`, a dead-letter
//! exchange `dlx-<queue>` and queue `dlq-<queue>` with
//! `enableDeadLetter`), takes `prefetchCount` messages at once, and acks
//! each after its handler returned `Ok`; a failure nacks it, requeued when
//! `requeueInFailure` (else dropped, or dead-lettered). With `autoAck` the
//! broker forgets a message once sent. Messages a subscriber had not acked
//! when its connection closed are requeued by the broker.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Mutex;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::cloudevent::ttl_of;
use wasmdapr_runtime::pubsub::{
    MessageHandler, Metadata, PubSub, PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};

use super::{
    ConcurrencyMode, DRAIN, Dispatcher, PARALLEL_LIMIT, backend_error, concurrency_mode, duration,
    flag, parse_bool, stopped_within,
};

/// How long connecting, or one publish and its confirm, may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The metadata of a `pubsub.rabbitmq` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitMqConfig {
    /// The AMQP URI: `connectionString`, else the deprecated `host`, else
    /// built from `protocol`, `hostname`, `username`, `password`.
    pub uri: String,
    /// `durable` (default true): exchanges and queues survive a broker
    /// restart.
    pub durable: bool,
    /// `deletedWhenUnused` (default true): a queue goes with its last
    /// consumer, an exchange with its last queue.
    pub deleted_when_unused: bool,
    /// `autoAck`: the broker forgets a message once it sent it.
    pub auto_ack: bool,
    /// `requeueInFailure`: a failed message goes back to its queue.
    pub requeue_in_failure: bool,
    /// `deliveryMode`: 0 or 1 transient, 2 persistent.
    pub delivery_mode: u8,
    /// `prefetchCount`: unacked messages a subscription holds (0: as many
    /// as it runs handlers).
    pub prefetch_count: u16,
    /// `exchangeKind`: fanout (default), topic, direct or headers.
    pub exchange_kind: String,
    /// `enableDeadLetter`: failed, unrequeued messages go to
    /// `dlq-<queue>`.
    pub enable_dead_letter: bool,
    /// `maxLen`: a queue's length at most.
    pub max_len: Option<i64>,
    /// `maxLenBytes`: a queue's size at most.
    pub max_len_bytes: Option<i64>,
    /// `ttl` / `ttlInSeconds`: the default expiration of a message.
    pub ttl: Option<Duration>,
    /// `concurrencyMode`: `parallel` (Dapr's default) or `single`.
    pub concurrency: ConcurrencyMode,
    /// `clientName`: the connection's name in the management UI.
    pub client_name: Option<String>,
    /// `reconnectWaitSeconds` (default 3 s): the pause before a lost
    /// subscription connects again.
    pub reconnect_wait: Duration,
}

impl RabbitMqConfig {
    /// Parses the component's metadata as Dapr does, refusing bad values.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let field = |name: &str, message: String| {
            spec.field_error(format!("spec.metadata.{name}"), message)
        };
        let (uri, uri_field) = match (spec.metadata("connectionString"), spec.metadata("host")) {
            (Some(uri), _) => (uri.trim().to_owned(), "connectionString"),
            (None, Some(host)) => (host.trim().to_owned(), "host"),
            (None, None) => {
                let protocol = spec.metadata("protocol").unwrap_or("amqp").trim();
                let host = spec.metadata("hostname").unwrap_or("localhost").trim();
                let user = match (spec.metadata("username"), spec.metadata("password")) {
                    (Some(u), Some(p)) => format!("{u}:{p}@"),
                    (Some(u), None) => format!("{u}@"),
                    _ => String::new(),
                };
                (format!("{protocol}://{user}{host}"), "hostname")
            }
        };
        let parsed = lapin::uri::AMQPUri::from_str(&uri)
            .map_err(|e| field(uri_field, format!("is not an AMQP URI: {e}")))?;
        if parsed.scheme != lapin::uri::AMQPScheme::AMQP {
            return Err(field(
                uri_field,
                "amqps (TLS) is not supported by this build; use amqp".into(),
            ));
        }
        if let Some(protocol) = spec.metadata("protocol")
            && protocol.trim() != "amqp"
        {
            return Err(field(
                "protocol",
                format!("`{protocol}` is not supported; use amqp"),
            ));
        }
        let delivery_mode: u8 = spec.parse_or("deliveryMode", 0)?;
        if delivery_mode > 2 {
            return Err(field(
                "deliveryMode",
                format!("`{delivery_mode}` is not 0, 1 (transient) or 2 (persistent)"),
            ));
        }
        // Dapr reads it as a uint8.
        let prefetch_count: u8 = spec.parse_or("prefetchCount", 0)?;
        let exchange_kind = spec
            .metadata("exchangeKind")
            .unwrap_or("fanout")
            .trim()
            .to_owned();
        if !matches!(
            exchange_kind.as_str(),
            "fanout" | "topic" | "direct" | "headers"
        ) {
            return Err(field(
                "exchangeKind",
                format!("`{exchange_kind}` is not one of: fanout, topic, direct, headers"),
            ));
        }
        let positive = |name: &str| -> Result<Option<i64>, ComponentError> {
            let n: i64 = spec.parse_or(name, 0)?;
            Ok((n > 0).then_some(n))
        };
        // `ttl` or `ttlInSeconds`, a Go duration or whole seconds, as
        // Dapr's `TryGetTTL` reads them; here a bad value is refused.
        let ttl = ttl_of(&spec.metadata.clone().into_iter().collect());
        if ttl.is_none()
            && let Some(name) = ["ttl", "ttlInSeconds"]
                .into_iter()
                .find(|name| spec.metadata(name).is_some())
        {
            return Err(field(
                name,
                "is not a duration (`90s`) or a positive number of seconds".into(),
            ));
        }
        let auto_ack = flag(spec, "autoAck", false)?;
        if spec.metadata("publisherConfirm").is_some() {
            // Read for its value's sake; confirms are always on here.
            flag(spec, "publisherConfirm", false)?;
        }
        Ok(RabbitMqConfig {
            uri,
            durable: flag(spec, "durable", true)?,
            deleted_when_unused: flag(spec, "deletedWhenUnused", true)?,
            auto_ack,
            requeue_in_failure: flag(spec, "requeueInFailure", false)?,
            delivery_mode,
            prefetch_count: u16::from(prefetch_count),
            exchange_kind,
            enable_dead_letter: flag(spec, "enableDeadLetter", false)?,
            max_len: positive("maxLen")?,
            max_len_bytes: positive("maxLenBytes")?,
            ttl,
            concurrency: concurrency_mode(spec, ConcurrencyMode::Parallel)?,
            client_name: spec.metadata("clientName").map(str::to_owned),
            reconnect_wait: duration(spec, "reconnectWaitSeconds", Duration::from_secs(3))?,
        })
    }

    fn exchange_kind(&self) -> ExchangeKind {
        match self.exchange_kind.as_str() {
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Fanout,
        }
    }

    /// Handlers a subscription runs at once.
    fn limit(&self) -> usize {
        match self.concurrency {
            ConcurrencyMode::Single => 1,
            ConcurrencyMode::Parallel if self.prefetch_count > 0 => {
                usize::from(self.prefetch_count)
            }
            ConcurrencyMode::Parallel => PARALLEL_LIMIT,
        }
    }

    /// Messages the broker sends a subscription before it acks some:
    /// `prefetchCount`, else the handlers it runs at once (Dapr's 0 is no
    /// bound; here a subscription never holds more than it can handle, so
    /// the group's other replicas get the rest).
    fn prefetch(&self) -> u16 {
        if self.prefetch_count > 0 {
            self.prefetch_count
        } else {
            u16::try_from(self.limit()).unwrap_or(u16::MAX)
        }
    }

    fn exchange_options(&self) -> ExchangeDeclareOptions {
        ExchangeDeclareOptions {
            durable: self.durable,
            auto_delete: self.deleted_when_unused,
            ..ExchangeDeclareOptions::default()
        }
    }

    /// The length bounds of a queue, as Dapr sets them.
    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(n) = self.max_len {
            args.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
        }
        if let Some(n) = self.max_len_bytes {
            args.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(n));
        }
        args
    }
}

/// The arguments a subscription's queue is declared with beyond the
/// component's, from its metadata, as Dapr sets them (a daprd declaring
/// the same queue must find them equal): `queueType` (`classic`, the
/// default, or `quorum`), `singleActiveConsumer`, `maxPriority`, and
/// `maxLen` / `maxLenBytes` overriding the component's.
fn subscription_args(metadata: &Metadata) -> Result<Vec<(&'static str, AMQPValue)>, PubSubError> {
    let invalid = |name: &str, value: &str, why: &str| {
        PubSubError::InvalidRequest(format!("subscription metadata {name} `{value}` {why}"))
    };
    let get = |name: &str| {
        metadata
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut args = Vec::new();
    let queue_type = get("queueType").unwrap_or("classic");
    if !matches!(queue_type, "classic" | "quorum") {
        return Err(invalid("queueType", queue_type, "is not classic or quorum"));
    }
    args.push(("x-queue-type", AMQPValue::LongString(queue_type.into())));
    if get("singleActiveConsumer").and_then(parse_bool) == Some(true) {
        args.push(("x-single-active-consumer", AMQPValue::Boolean(true)));
    }
    if let Some(raw) = get("maxPriority") {
        let n: u64 = raw
            .parse()
            .map_err(|_| invalid("maxPriority", raw, "is not a whole number"))?;
        let n = u8::try_from(n).unwrap_or(u8::MAX);
        args.push(("x-max-priority", AMQPValue::ShortShortUInt(n)));
    }
    for (name, arg) in [
        ("maxLenBytes", "x-max-length-bytes"),
        ("maxLen", "x-max-length"),
    ] {
        if let Some(raw) = get(name) {
            let n: i64 = raw
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid(name, raw, "is not a whole number"))?;
            args.push((arg, AMQPValue::LongLongInt(n)));
        }
    }
    Ok(args)
}

/// The queue of `group` on `topic`, as Dapr names it.
pub fn queue_name(group: &str, topic: &str) -> String {
    format!("{group}-{topic}")
}

/// An AMQP short string (names, at most 255 bytes), refused otherwise.
fn short(what: &str, text: &str) -> Result<ShortString, PubSubError> {
    ShortString::try_new(text).map_err(|_| {
        PubSubError::InvalidRequest(format!(
            "the {what} `{text}` is longer than AMQP allows (255 bytes)"
        ))
    })
}

/// A message's metadata as AMQP headers (names too long are left out).
fn headers(metadata: &Metadata) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in metadata {
        if let Ok(name) = ShortString::try_new(name.as_str()) {
            table.insert(
                name,
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        }
    }
    table
}

/// The text headers of a delivery as metadata.
fn metadata_of(properties: &BasicProperties) -> Metadata {
    let mut metadata = Metadata::new();
    if let Some(table) = properties.headers() {
        for (name, value) in table.inner() {
            let text = match value {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_owned(),
                _ => continue,
            };
            metadata.insert(name.as_str().to_owned(), text);
        }
    }
    metadata
}

async fn connect(config: &RabbitMqConfig) -> Result<Connection, PubSubError> {
    let mut properties = ConnectionProperties::default();
    if let Some(name) = &config.client_name {
        properties = properties.with_connection_name(LongString::from(name.as_bytes()));
    }
    match tokio::time::timeout(CALL_TIMEOUT, Connection::connect(&config.uri, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(backend_error("rabbitmq: connect", e)),
        Err(_) => Err(backend_error(
            "rabbitmq: connect",
            format!("no answer within {CALL_TIMEOUT:?}"),
        )),
    }
}

/// The publishing connection and the exchanges declared on it.
struct Publisher {
    connection: Connection,
    channel: Channel,
    exchanges: HashSet<String>,
}

/// The RabbitMQ broker.
pub struct RabbitMqPubSub {
    config: RabbitMqConfig,
    publisher: Mutex<Option<Publisher>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for RabbitMqPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqPubSub")
            .field("exchange_kind", &self.config.exchange_kind)
            .finish_non_exhaustive()
    }
}

impl RabbitMqPubSub {
    /// Connects (failing when the broker is down).
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = RabbitMqConfig::from_spec(spec)?;
        let broker = RabbitMqPubSub {
            config,
            publisher: Mutex::new(None),
            closed: AtomicBool::new(false),
        };
        broker
            .channel()
            .await
            .map_err(|e| spec.init_error(format!("cannot connect to RabbitMQ: {e}")))?;
        tracing::info!(component = %spec.name, "RabbitMQ pub/sub ready");
        Ok(broker)
    }

    /// The publishing channel (connected, with confirms on) and whether
    /// `exchange` was declared on it.
    async fn channel(&self) -> Result<(Channel, bool), PubSubError> {
        self.channel_for("").await
    }

    async fn channel_for(&self, exchange: &str) -> Result<(Channel, bool), PubSubError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(p) = publisher.as_ref()
            && (!p.connection.status().connected() || !p.channel.status().connected())
        {
            *publisher = None;
        }
        if publisher.is_none() {
            let connection = connect(&self.config).await?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| backend_error("rabbitmq: open channel", e))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| backend_error("rabbitmq: confirm.select", e))?;
            *publisher = Some(Publisher {
                connection,
                channel,
                exchanges: HashSet::new(),
            });
        }
        let p = publisher.as_mut().expect("connected above");
        Ok((p.channel.clone(), p.exchanges.contains(exchange)))
    }

    async fn declared(&self, exchange: &str) {
        if let Some(p) = self.publisher.lock().await.as_mut() {
            p.exchanges.insert(exchange.to_owned());
        }
    }

    /// Drops the publishing connection (after a failure), so the next
    /// publish connects and declares again.
    async fn reset(&self) {
        if let Some(p) = self.publisher.lock().await.take() {
            let _ = p.connection.close(200, "reset".into()).await;
        }
    }

    async fn publish_once(
        &self,
        request: &PublishRequest,
        properties: &BasicProperties,
        routing_key: &ShortString,
    ) -> Result<(), PubSubError> {
        let exchange = short("topic", &request.topic)?;
        let (channel, declared) = self.channel_for(&request.topic).await?;
        let attempt = async {
            if !declared {
                channel
                    .exchange_declare(
                        exchange.clone(),
                        self.config.exchange_kind(),
                        self.config.exchange_options(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| backend_error("rabbitmq: exchange.declare", e))?;
                self.declared(&request.topic).await;
            }
            let confirm = channel
                .basic_publish(
                    exchange,
                    routing_key.clone(),
                    BasicPublishOptions::default(),
                    &request.data,
                    properties.clone(),
                )
                .await
                .map_err(|e| backend_error("rabbitmq: publish", e))?
                .await
                .map_err(|e| backend_error("rabbitmq: publish", e))?;
            match confirm {
                Confirmation::Nack(_) => Err(backend_error(
                    "rabbitmq: publish",
                    "the broker refused the message",
                )),
                _ => Ok(()),
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(backend_error(
                "rabbitmq: publish",
                format!("not confirmed within {CALL_TIMEOUT:?}"),
            )),
        }
    }
}

#[async_trait]
impl PubSub for RabbitMqPubSub {
    fn features(&self) -> PubSubFeatures {
        let acks = !self.config.auto_ack;
        PubSubFeatures {
            carries_metadata: true,
            message_ttl: true,
            redelivery: acks && self.config.requeue_in_failure,
            durable: acks && !self.config.deleted_when_unused,
            ordered: self.config.concurrency == ConcurrencyMode::Single,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let mut properties = BasicProperties::default().with_content_type(short(
            "content type",
            request.content_type.as_deref().unwrap_or("text/plain"),
        )?);
        if self.config.delivery_mode > 0 {
            properties = properties.with_delivery_mode(self.config.delivery_mode);
        }
        // An unreadable request TTL is ignored, as Dapr does.
        let ttl = ttl_of(&request.metadata).or(self.config.ttl);
        if let Some(ttl) = ttl {
            properties = properties.with_expiration(ttl.as_millis().to_string().into());
        }
        if let Some(raw) = request.metadata.get("priority") {
            let priority: u8 = raw.trim().parse().map_err(|_| {
                PubSubError::InvalidRequest(format!("priority `{raw}` is not 0 to 255"))
            })?;
            properties = properties.with_priority(priority);
        }
        properties = properties.with_headers(headers(&request.metadata));
        let routing_key = short(
            "routing key",
            request
                .metadata
                .get("routingKey")
                .map_or("", String::as_str),
        )?;
        match self.publish_once(&request, &properties, &routing_key).await {
            Ok(()) => Ok(()),
            Err(PubSubError::Backend(first)) => {
                // The channel died (an auto-deleted exchange went with its
                // last queue, the connection dropped): once more, afresh.
                tracing::debug!(error = %first, "RabbitMQ pub/sub: publish failed; trying once more");
                self.reset().await;
                self.publish_once(&request, &properties, &routing_key).await
            }
            Err(other) => Err(other),
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
        let queue = match request.metadata.get("queueName").filter(|q| !q.is_empty()) {
            Some(queue) => queue.clone(),
            None => queue_name(&request.consumer_group, &request.topic),
        };
        let routing_keys: Vec<String> = request.metadata.get("routingKey").map_or_else(
            || vec![String::new()],
            |keys| keys.split(',').map(str::to_owned).collect(),
        );
        let (stop, mut stopped) = Subscription::signal();
        let consumer = Arc::new(Consumer {
            config: self.config.clone(),
            exchange: short("topic", &request.topic)?,
            queue: short("queue", &queue)?,
            routing_keys: routing_keys
                .iter()
                .map(|k| short("routing key", k))
                .collect::<Result<_, _>>()?,
            queue_args: subscription_args(&request.metadata)?,
            topic: request.topic,
            dispatcher: Dispatcher::new(handler, self.config.limit(), stopped.clone()),
        });
        let mut attached = consumer.attach().await?;
        let task = tokio::spawn(async move {
            'subscription: loop {
                let (connection, channel, mut deliveries, tag) = attached;
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = stopped.wait_for(|s| *s) => None,
                        next = deliveries.next() => Some(next),
                    };
                    let Some(next) = next else {
                        let _ = channel
                            .basic_cancel(tag.clone(), BasicCancelOptions::default())
                            .await;
                        consumer.drain_and_close(&connection).await;
                        break 'subscription;
                    };
                    match next {
                        Some(Ok(delivery)) => {
                            if !consumer.deliver(delivery).await {
                                // Stopped while every handler was busy.
                                let _ = channel
                                    .basic_cancel(tag.clone(), BasicCancelOptions::default())
                                    .await;
                                consumer.drain_and_close(&connection).await;
                                break 'subscription;
                            }
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, queue = %consumer.queue, "RabbitMQ pub/sub: consumer failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!(queue = %consumer.queue, "RabbitMQ pub/sub: consumer cancelled; reconnecting");
                            break;
                        }
                    }
                }
                let _ = connection.close(200, "reconnecting".into()).await;
                loop {
                    if stopped_within(&mut stopped, consumer.config.reconnect_wait).await {
                        consumer.dispatcher.drain(DRAIN).await;
                        break 'subscription;
                    }
                    match consumer.attach().await {
                        Ok(again) => {
                            attached = again;
                            continue 'subscription;
                        }
                        Err(error) => {
                            tracing::warn!(%error, queue = %consumer.queue, "RabbitMQ pub/sub: cannot subscribe again");
                        }
                    }
                }
            }
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.store(true, Ordering::Release);
        self.reset().await;
        Ok(())
    }
}

/// One subscription's queue and handler.
struct Consumer {
    config: RabbitMqConfig,
    topic: String,
    exchange: ShortString,
    queue: ShortString,
    routing_keys: Vec<ShortString>,
    /// [`subscription_args`].
    queue_args: Vec<(&'static str, AMQPValue)>,
    dispatcher: Dispatcher,
}

type Attached = (Connection, Channel, lapin::Consumer, ShortString);

impl Consumer {
    /// Connects, declares the exchange, the queue (and its dead-letter
    /// pair) and the bindings as Dapr does, and starts consuming.
    async fn attach(&self) -> Result<Attached, PubSubError> {
        let connection = connect(&self.config).await?;
        let setup = async {
            let channel = connection.create_channel().await?;
            channel
                .exchange_declare(
                    self.exchange.clone(),
                    self.config.exchange_kind(),
                    self.config.exchange_options(),
                    FieldTable::default(),
                )
                .await?;
            let mut args = self.config.queue_args();
            if self.config.enable_dead_letter {
                let dlx = format!("dlx-{}", self.queue);
                let dlq = format!("dlq-{}", self.queue);
                channel
                    .exchange_declare(
                        dlx.as_str().into(),
                        ExchangeKind::Fanout,
                        ExchangeDeclareOptions {
                            durable: true,
                            auto_delete: self.config.deleted_when_unused,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                let mut dlq_args = self.config.queue_args();
                dlq_args.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
                channel
                    .queue_declare(
                        dlq.as_str().into(),
                        QueueDeclareOptions {
                            durable: true,
                            auto_delete: self.config.deleted_when_unused,
                            ..QueueDeclareOptions::default()
                        },
                        dlq_args,
                    )
                    .await?;
                channel
                    .queue_bind(
                        dlq.as_str().into(),
                        dlx.as_str().into(),
                        "".into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                args.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(dlx.as_str().into()),
                );
            }
            for (name, value) in &self.queue_args {
                args.insert((*name).into(), value.clone());
            }
            channel
                .queue_declare(
                    self.queue.clone(),
                    QueueDeclareOptions {
                        durable: self.config.durable,
                        auto_delete: self.config.deleted_when_unused,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await?;
            channel
                .basic_qos(self.config.prefetch(), BasicQosOptions::default())
                .await?;
            for key in &self.routing_keys {
                channel
                    .queue_bind(
                        self.queue.clone(),
                        self.exchange.clone(),
                        key.clone(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
            // Dapr's tag, `<queue>-<uuid>`, when it fits a short string.
            let unique = uuid::Uuid::new_v4().simple().to_string();
            let tag = ShortString::try_new(format!("{}-{unique}", self.queue))
                .unwrap_or_else(|_| unique.as_str().into());
            let deliveries = channel
                .basic_consume(
                    self.queue.clone(),
                    tag.clone(),
                    BasicConsumeOptions {
                        no_ack: self.config.auto_ack,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((channel, deliveries, tag))
        };
        match tokio::time::timeout(CALL_TIMEOUT, setup).await {
            Ok(Ok((channel, deliveries, tag))) => Ok((connection, channel, deliveries, tag)),
            Ok(Err(e)) => {
                let _ = connection.close(200, "setup failed".into()).await;
                Err(backend_error("rabbitmq: subscribe", e))
            }
            Err(_) => {
                let _ = connection.close(200, "setup timed out".into()).await;
                Err(backend_error(
                    "rabbitmq: subscribe",
                    format!("no answer within {CALL_TIMEOUT:?}"),
                ))
            }
        }
    }

    /// Hands one delivery to the handler; acks it after `Ok`, nacks it
    /// (requeued when `requeueInFailure`) after an error. `false` when the
    /// subscription stopped before a handler was free.
    async fn deliver(&self, delivery: lapin::message::Delivery) -> bool {
        let quorum_count = delivery.properties.headers().as_ref().and_then(|h| {
            match h.inner().get("x-delivery-count") {
                Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).ok(),
                Some(AMQPValue::LongInt(n)) => u32::try_from(*n).ok(),
                _ => None,
            }
        });
        let attempt = match quorum_count {
            Some(n) => n.saturating_add(1),
            None if delivery.redelivered => 2,
            None => 1,
        };
        let message = ReceivedMessage {
            id: delivery.properties.message_id().as_ref().map_or_else(
                || delivery.delivery_tag.to_string(),
                |id| id.as_str().to_owned(),
            ),
            topic: self.topic.clone(),
            data: delivery.data,
            metadata: metadata_of(&delivery.properties),
            attempt,
        };
        let acker = delivery.acker;
        let auto_ack = self.config.auto_ack;
        let requeue = self.config.requeue_in_failure;
        self.dispatcher
            .dispatch(message, move |outcome| async move {
                if auto_ack {
                    return;
                }
                let settled = match outcome {
                    Ok(()) => acker.ack(BasicAckOptions::default()).await,
                    Err(_) => {
                        acker
                            .nack(BasicNackOptions {
                                requeue,
                                ..BasicNackOptions::default()
                            })
                            .await
                    }
                };
                if let Err(error) = settled {
                    tracing::warn!(%error, "RabbitMQ pub/sub: ack failed; the broker delivers the message again");
                }
            })
            .await
    }

    /// Lets the running handlers finish (and ack), within [`DRAIN`], then
    /// closes the connection: the broker requeues what is still unacked.
    async fn drain_and_close(&self, connection: &Connection) {
        if !self.dispatcher.drain(DRAIN).await {
            tracing::debug!(queue = %self.queue, "RabbitMQ pub/sub: handlers still running at close; their messages are requeued");
        }
        let _ = connection.close(200, "subscription closed".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::{refuses, spec};

    /// Dapr's names, defaults and refusals.
    #[test]
    fn config() {
        let config = RabbitMqConfig::from_spec(&spec(
            "pubsub.rabbitmq",
            &[("connectionString", "amqp://guest:guest@127.0.0.1:5672")],
        ))
        .unwrap();
        assert!(config.durable && config.deleted_when_unused);
        assert!(!config.auto_ack && !config.requeue_in_failure);
        assert_eq!((config.delivery_mode, config.prefetch_count), (0, 0));
        assert_eq!(config.exchange_kind, "fanout");
        assert_eq!(config.concurrency, ConcurrencyMode::Parallel);
        assert_eq!(config.prefetch(), PARALLEL_LIMIT as u16);
        assert_eq!(queue_name("app", "orders"), "app-orders");
        let config = RabbitMqConfig::from_spec(&spec(
            "pubsub.rabbitmq",
            &[
                ("host", "amqp://127.0.0.1"),
                ("deletedWhenUnused", "false"),
                ("requeueInFailure", "True"),
                ("deliveryMode", "2"),
                ("prefetchCount", "5"),
                ("ttl", "1m"),
                ("maxLen", "10"),
                ("concurrencyMode", "single"),
            ],
        ))
        .unwrap();
        assert_eq!(config.uri, "amqp://127.0.0.1");
        assert!(!config.deleted_when_unused && config.requeue_in_failure);
        assert_eq!(config.ttl, Some(Duration::from_secs(60)));
        assert_eq!((config.limit(), config.prefetch()), (1, 5));
        assert!(config.queue_args().contains_key("x-max-length"));
        let built = RabbitMqConfig::from_spec(&spec(
            "pubsub.rabbitmq",
            &[
                ("hostname", "rabbit:5672"),
                ("username", "u"),
                ("password", "p"),
            ],
        ))
        .unwrap();
        assert_eq!(built.uri, "amqp://u:p@rabbit:5672");
        for (bad, field) in [
            (vec![("connectionString", "http://x")], "connectionString"),
            (vec![("connectionString", "amqps://x")], "connectionString"),
            (vec![("deliveryMode", "3")], "deliveryMode"),
            (vec![("prefetchCount", "300")], "prefetchCount"),
            (vec![("exchangeKind", "x-delayed")], "exchangeKind"),
            (vec![("durable", "yes")], "durable"),
            (vec![("ttlInSeconds", "-1")], "ttlInSeconds"),
            (vec![("ttl", "soon")], "ttl"),
            (vec![("concurrencyMode", "any")], "concurrencyMode"),
        ] {
            refuses("pubsub.rabbitmq", &bad, field, RabbitMqConfig::from_spec);
        }
        assert_eq!(parse_bool("T"), Some(true));
        let args = subscription_args(&Metadata::new()).unwrap();
        assert_eq!(args.len(), 1, "x-queue-type classic, as Dapr declares it");
        let args = subscription_args(&Metadata::from([
            ("queueType".to_string(), "quorum".to_string()),
            ("singleActiveConsumer".to_string(), "true".to_string()),
            ("maxPriority".to_string(), "300".to_string()),
            ("maxLen".to_string(), "5".to_string()),
        ]))
        .unwrap();
        assert_eq!(args.len(), 4);
        assert!(args.contains(&("x-max-priority", AMQPValue::ShortShortUInt(255))));
        for (name, value) in [
            ("queueType", "stream"),
            ("maxLen", "-1"),
            ("maxPriority", "high"),
        ] {
            let metadata = Metadata::from([(name.to_string(), value.to_string())]);
            assert!(subscription_args(&metadata).is_err(), "{name}: {value}");
        }
        assert!(short("topic", &"x".repeat(256)).is_err());
    }
}
