//! `pubsub.redis`: Redis Streams with Dapr's layout and metadata, so a
//! topic can be shared with real Dapr sidecars: a topic is a stream, a
//! message `XADD <topic> [MAXLEN ~ maxLenApprox] * data <bytes> metadata
//! <json>`, a consumer group per app (`XGROUP CREATE <topic> <group> 0
//! MKSTREAM`: a new group reads the whole stream, as Dapr's does).
//!
//! A subscription reads with `XREADGROUP … COUNT queueDepth BLOCK` on a
//! connection of its own (a blocking read would stall every other command
//! on the shared one), hands up to `concurrency` (default 10) messages to
//! its handler at once, and `XACK`s each only after its handler returned
//! `Ok`. A message whose handler failed, or whose subscriber died, stays
//! pending; every `redeliverInterval` (default 60 s, `0`: never) the
//! subscription claims the group's messages pending longer than
//! `processingTimeout` (default 15 s) with `XAUTOCLAIM` and delivers them
//! again, with the delivery count Redis keeps as their attempt.
//!
//! This is Dapr's behaviour up to components-contrib 1.16: since 1.17,
//! Dapr acks a failed message and leaves retries to its resiliency
//! policies; here the broker keeps redelivering (at-least-once) and the
//! runtime bounds the attempts. With `concurrency` 1 a subscription sees
//! messages in stream order (until a redelivery).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::Semaphore;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{
    MessageHandler, Metadata, PubSub, PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};

use super::{backend_error, count, duration};
use crate::state::redis::{RedisConfig, is_broken_connection};

/// How long one `XREADGROUP` blocks before it is asked again (so a closed
/// subscription ends within it).
const READ_BLOCK: Duration = Duration::from_millis(1000);

/// The metadata of a `pubsub.redis` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisPubSubConfig {
    /// The connection (`redisHost`, `redisPassword`, `redisDB`, timeouts),
    /// read as `state.redis` reads it.
    pub redis: RedisConfig,
    /// `processingTimeout`, default 15 s: how long a message may stay
    /// unacked before another delivery claims it.
    pub processing_timeout: Duration,
    /// `redeliverInterval`, default 60 s: how often pending messages are
    /// claimed; `None` (`0`) never.
    pub redeliver_interval: Option<Duration>,
    /// `queueDepth`, default 100: messages read at once.
    pub queue_depth: usize,
    /// `concurrency`, default 10: messages handled at once per subscription.
    pub concurrency: usize,
    /// `maxLenApprox`: the stream is trimmed to about this many messages.
    pub max_len_approx: Option<u64>,
}

impl RedisPubSubConfig {
    /// Parses the component's metadata.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let redeliver = duration(spec, "redeliverInterval", Duration::from_secs(60))?;
        Ok(RedisPubSubConfig {
            redis: RedisConfig::from_spec(spec)?,
            processing_timeout: duration(spec, "processingTimeout", Duration::from_secs(15))?,
            redeliver_interval: (!redeliver.is_zero()).then_some(redeliver),
            queue_depth: count(spec, "queueDepth", 100)?,
            concurrency: count(spec, "concurrency", 10)?,
            max_len_approx: match spec.metadata("maxLenApprox") {
                None => None,
                Some(_) => Some(spec.parse_or("maxLenApprox", 0u64)?).filter(|n| *n > 0),
            },
        })
    }
}

/// The Redis Streams broker.
pub struct RedisPubSub {
    client: redis::Client,
    connection: ConnectionManager,
    config: RedisPubSubConfig,
    closed: AtomicBool,
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPubSub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisPubSub {
    /// Connects and checks the server answers (`PING`).
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = RedisPubSubConfig::from_spec(spec)?;
        let (client, connection) = config.redis.connect(spec).await?;
        let address = format!("{}:{}", config.redis.host, config.redis.port);
        tracing::info!(component = %spec.name, %address, "Redis Streams pub/sub ready");
        Ok(RedisPubSub {
            client,
            connection,
            config,
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `cmd` on the shared connection within the call deadline; a
    /// call that found the connection broken (the server restarted) is
    /// tried again on a new one, up to `redisMaxRetries` times, so the
    /// first publish after an outage succeeds.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, PubSubError> {
        let limit = self
            .config
            .redis
            .call_deadline()
            .unwrap_or(Duration::from_secs(30));
        let attempts = async {
            let mut retries = 0;
            loop {
                let mut connection = self.connection.clone();
                match cmd.query_async(&mut connection).await {
                    Err(error)
                        if retries < self.config.redis.max_retries
                            && is_broken_connection(&error) =>
                    {
                        retries += 1;
                    }
                    result => return result,
                }
            }
        };
        match tokio::time::timeout(limit, attempts).await {
            Ok(result) => result.map_err(|e| backend_error(what, e)),
            Err(_) => Err(backend_error(what, format!("no answer within {limit:?}"))),
        }
    }
}

/// `XGROUP CREATE <topic> <group> 0 MKSTREAM`; an existing group
/// (`BUSYGROUP`) is the usual case, not a failure.
async fn create_group(
    connection: &mut ConnectionManager,
    topic: &str,
    group: &str,
) -> Result<(), PubSubError> {
    let created: redis::RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(topic)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(backend_error("XGROUP CREATE", e)),
    }
}

/// `XADD` of one message, as Dapr writes it.
fn xadd(topic: &str, max_len: Option<u64>, data: &[u8], metadata: &Metadata) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(topic);
    if let Some(n) = max_len {
        cmd.arg("MAXLEN").arg("~").arg(n);
    }
    cmd.arg("*").arg("data").arg(data);
    if !metadata.is_empty() {
        cmd.arg("metadata")
            .arg(serde_json::to_vec(metadata).unwrap_or_default());
    }
    cmd
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}

/// One stream entry `[id, [field, value, …]]` as a message; `None` for an
/// entry whose fields are gone (deleted while pending).
fn entry(topic: &str, value: &Value) -> Option<ReceivedMessage> {
    let Value::Array(parts) = value else {
        return None;
    };
    let id = text(parts.first()?)?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let mut message = ReceivedMessage {
        id,
        topic: topic.to_owned(),
        attempt: 1,
        ..ReceivedMessage::default()
    };
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match text(name).as_deref() {
            Some("data") => message.data = bytes(value).unwrap_or_default(),
            Some("metadata") => {
                message.metadata = bytes(value)
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
            }
            _ => {}
        }
    }
    Some(message)
}

/// The entries of an `XREADGROUP` reply (nil when the read timed out).
fn read_reply(topic: &str, reply: &Value) -> Vec<ReceivedMessage> {
    let streams: Vec<&Value> = match reply {
        Value::Array(streams) => streams.iter().collect(),
        Value::Map(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for stream in streams {
        let entries = match stream {
            Value::Array(parts) if parts.len() == 2 => &parts[1],
            other => other,
        };
        if let Value::Array(entries) = entries {
            out.extend(entries.iter().filter_map(|e| entry(topic, e)));
        }
    }
    out
}

/// One subscription's state, shared by its tasks.
struct Consumer {
    connection: ConnectionManager,
    topic: String,
    group: String,
    name: String,
    handler: Arc<dyn MessageHandler>,
    slots: Arc<Semaphore>,
}

impl Consumer {
    /// Hands `message` to the handler in a task of its own (within the
    /// subscription's `concurrency`), acking it on success.
    async fn deliver(self: &Arc<Self>, message: ReceivedMessage) {
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let consumer = self.clone();
        tokio::spawn(async move {
            let id = message.id.clone();
            match consumer.handler.handle(message).await {
                Ok(()) => {
                    let mut connection = consumer.connection.clone();
                    let acked: redis::RedisResult<i64> = redis::cmd("XACK")
                        .arg(&consumer.topic)
                        .arg(&consumer.group)
                        .arg(&id)
                        .query_async(&mut connection)
                        .await;
                    if let Err(error) = acked {
                        tracing::warn!(%error, %id, "Redis pub/sub: XACK failed; the message will be delivered again");
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, %id, "Redis pub/sub: delivery failed; left pending for redelivery");
                }
            }
            drop(slot);
        });
    }

    /// Claims and delivers the group's messages pending longer than
    /// `idle`, with their delivery counts.
    async fn reclaim(self: &Arc<Self>, idle: Duration, count: usize) -> Result<(), PubSubError> {
        let mut connection = self.connection.clone();
        let mut cursor = "0-0".to_owned();
        loop {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.topic)
                .arg(&self.group)
                .arg(&self.name)
                .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut connection)
                .await
                .map_err(|e| backend_error("XAUTOCLAIM", e))?;
            let Value::Array(parts) = reply else {
                return Ok(());
            };
            let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
            let claimed: Vec<ReceivedMessage> = match parts.get(1) {
                Some(Value::Array(entries)) => entries
                    .iter()
                    .filter_map(|e| entry(&self.topic, e))
                    .collect(),
                _ => Vec::new(),
            };
            if !claimed.is_empty() {
                let counts = self.delivery_counts(&claimed).await;
                for (mut message, attempt) in claimed.into_iter().zip(counts) {
                    message.attempt = attempt;
                    self.deliver(message).await;
                }
            }
            if next == "0-0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Removes this subscription's consumer from the group when it holds
    /// no pending message (`XGROUP DELCONSUMER` would drop those), so
    /// closed subscriptions do not pile up in the group; one that holds
    /// some stays, for its messages to be claimed after the timeout.
    async fn leave(&self) {
        let mut connection = self.connection.clone();
        let pending: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&self.topic)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&self.name)
            .query_async(&mut connection)
            .await;
        if matches!(pending, Ok(Value::Array(ref rows)) if rows.is_empty()) {
            let removed: redis::RedisResult<i64> = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&self.topic)
                .arg(&self.group)
                .arg(&self.name)
                .query_async(&mut connection)
                .await;
            if let Err(error) = removed {
                tracing::debug!(%error, "Redis pub/sub: cannot remove a closed consumer");
            }
        }
    }

    /// The delivery counts Redis keeps for `messages` (`XPENDING`); 2 when
    /// unknown (they are redeliveries).
    async fn delivery_counts(&self, messages: &[ReceivedMessage]) -> Vec<u32> {
        let first = &messages[0].id;
        let last = &messages[messages.len() - 1].id;
        let mut connection = self.connection.clone();
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(&self.topic)
            .arg(&self.group)
            .arg(first)
            .arg(last)
            .arg(messages.len().max(1) * 2)
            .query_async(&mut connection)
            .await;
        let mut counts = std::collections::HashMap::new();
        if let Ok(Value::Array(rows)) = reply {
            for row in rows {
                if let Value::Array(fields) = row
                    && let (Some(id), Some(Value::Int(n))) =
                        (fields.first().and_then(text), fields.get(3))
                {
                    counts.insert(id, u32::try_from(*n).unwrap_or(u32::MAX));
                }
            }
        }
        messages
            .iter()
            .map(|m| counts.get(&m.id).copied().unwrap_or(2))
            .collect()
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    fn features(&self) -> PubSubFeatures {
        PubSubFeatures {
            carries_metadata: true,
            redelivery: self.config.redeliver_interval.is_some(),
            durable: true,
            ordered: self.config.concurrency == 1,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let cmd = xadd(
            &request.topic,
            self.config.max_len_approx,
            &request.data,
            &request.metadata,
        );
        let _: String = self.query("redis streams: XADD", &cmd).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let (topic, group) = (request.topic, request.consumer_group);
        create_group(&mut self.connection.clone(), &topic, &group).await?;
        // A blocking read needs a connection of its own, with a response
        // timeout longer than the block.
        let dial = self
            .config
            .redis
            .dial_timeout
            .unwrap_or(Duration::from_secs(5));
        let reader_config = AsyncConnectionConfig::new()
            .set_connection_timeout(dial)
            .set_response_timeout(READ_BLOCK + Duration::from_secs(5));
        let reader: MultiplexedConnection = self
            .client
            .get_multiplexed_async_connection_with_config(&reader_config)
            .await
            .map_err(|e| backend_error("connect", e))?;
        let consumer = Arc::new(Consumer {
            connection: self.connection.clone(),
            name: format!("{group}-{}", uuid::Uuid::new_v4().simple()),
            topic,
            group,
            handler,
            slots: Arc::new(Semaphore::new(self.config.concurrency)),
        });
        let config = self.config.clone();
        let client = self.client.clone();
        let (stop, stopped) = Subscription::signal();
        let task = tokio::spawn(async move {
            let mut stopped = stopped;
            let mut reader = reader;
            // Reclaims first (a dead subscriber's messages), then every
            // `redeliverInterval`, between reads: a read is never cut off,
            // since the messages it was given would stay pending until the
            // processing timeout.
            let mut reclaimed_at: Option<tokio::time::Instant> = None;
            while !*stopped.borrow() {
                if let Some(every) = config.redeliver_interval
                    && reclaimed_at.is_none_or(|at| at.elapsed() >= every)
                {
                    reclaimed_at = Some(tokio::time::Instant::now());
                    if let Err(error) = consumer
                        .reclaim(config.processing_timeout, config.queue_depth)
                        .await
                    {
                        tracing::warn!(%error, "Redis pub/sub: cannot claim pending messages");
                    }
                }
                let mut read = redis::cmd("XREADGROUP");
                read.arg("GROUP")
                    .arg(&consumer.group)
                    .arg(&consumer.name)
                    .arg("COUNT")
                    .arg(config.queue_depth)
                    .arg("BLOCK")
                    .arg(u64::try_from(READ_BLOCK.as_millis()).unwrap_or(1000))
                    .arg("STREAMS")
                    .arg(&consumer.topic)
                    .arg(">");
                match read.query_async::<Value>(&mut reader).await {
                    Ok(reply) => {
                        for message in read_reply(&consumer.topic, &reply) {
                            consumer.deliver(message).await;
                        }
                    }
                    Err(error) if error.code() == Some("NOGROUP") => {
                        // The server lost the group (restarted without
                        // persistence, or the stream was deleted): made
                        // again, the subscription goes on.
                        tracing::warn!(topic = %consumer.topic, "Redis pub/sub: the consumer group is gone; creating it again");
                        let mut connection = consumer.connection.clone();
                        if let Err(error) =
                            create_group(&mut connection, &consumer.topic, &consumer.group).await
                        {
                            tracing::warn!(%error, "Redis pub/sub: cannot create the consumer group");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stopped.wait_for(|s| *s) => break,
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, topic = %consumer.topic, "Redis pub/sub: read failed; reconnecting");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stopped.wait_for(|s| *s) => break,
                        }
                        if let Ok(fresh) = client
                            .get_multiplexed_async_connection_with_config(&reader_config)
                            .await
                        {
                            reader = fresh;
                        }
                    }
                }
            }
            // The handlers still running finish (and ack) before close returns.
            let _ = consumer
                .slots
                .acquire_many(u32::try_from(config.concurrency).unwrap_or(u32::MAX))
                .await;
            consumer.leave().await;
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::spec;

    /// Dapr's names and defaults; `redeliverInterval: 0` turns redelivery
    /// off and says so in the features; `concurrency: 1` promises order.
    #[test]
    fn config_and_features() {
        let config = RedisPubSubConfig::from_spec(&spec("pubsub.redis", &[])).unwrap();
        assert_eq!(config.processing_timeout, Duration::from_secs(15));
        assert_eq!(config.redeliver_interval, Some(Duration::from_secs(60)));
        assert_eq!((config.queue_depth, config.concurrency), (100, 10));
        assert_eq!(config.max_len_approx, None);
        let config = RedisPubSubConfig::from_spec(&spec(
            "pubsub.redis",
            &[
                ("redeliverInterval", "0"),
                ("maxLenApprox", "1000"),
                ("processingTimeout", "30s"),
            ],
        ))
        .unwrap();
        assert_eq!(config.redeliver_interval, None);
        assert_eq!(config.max_len_approx, Some(1000));
        assert_eq!(config.processing_timeout, Duration::from_secs(30));
        let err = RedisPubSubConfig::from_spec(&spec("pubsub.redis", &[("concurrency", "0")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("spec.metadata.concurrency"),
            "{err}"
        );
        let xadd = xadd("t", Some(5), b"d", &Metadata::new());
        let args: Vec<String> = xadd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                redis::Arg::Cursor => "cursor".into(),
            })
            .collect();
        assert_eq!(args, ["XADD", "t", "MAXLEN", "~", "5", "*", "data", "d"]);
    }
}
