//! `pubsub.sqlite`: a durable queue in a SQLite file, the embedded default
//! `pubsub` (wasmdapr's own type: Dapr has no SQLite broker), so events
//! survive a crash with nothing installed. At-least-once on one machine,
//! shared by every process that opens the file.
//!
//! # Layout
//!
//! Three tables, named from `tablePrefix` (default `pubsub`):
//!
//! - `<prefix>_messages(seq, topic, data, metadata, published_at)`: every
//!   message, in publish order (`seq` grows).
//! - `<prefix>_groups(topic, group_name, last_seq)`: per consumer group, the
//!   last message it has taken. A new group starts at the beginning of what
//!   is kept (as Redis Streams' `XGROUP CREATE … 0`), so events published
//!   before an app first subscribed are not lost to it.
//! - `<prefix>_pending(topic, group_name, seq, visible_at, attempts)`: the
//!   messages a group took and has not acked, each hidden until
//!   `visible_at`.
//!
//! A subscription claims up to `queueDepth` messages at a time in one
//! transaction: pending ones whose time is up first (redeliveries), then
//! new ones, each hidden for `processingTimeout` (default 60 s). It hands
//! them to its handler one by one, in order; `Ok` deletes the pending row
//! (the ack), an error hides it for `redeliverInterval` (default 1 s) only.
//! A process killed while handling leaves its rows pending: they become
//! visible again after `processingTimeout`, to any subscription of the
//! group, in this process or the next. A publish returns once its row is
//! committed (WAL, `synchronous = NORMAL`: durable across process crashes).
//!
//! Subscriptions wake at once on a publish through the same component, and
//! poll every `pollInterval` (default 100 ms) for the others. Every
//! `cleanupInterval` (default 1 min), messages every group of their topic
//! has taken and acked are deleted; a topic no group has subscribed to
//! keeps its messages for the first one.

use crate::sqlite_file;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Mutex, Notify};
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{
    BulkMessageEntry, BulkPublishRequest, FailedEntry, MessageHandler, Metadata, PubSub,
    PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage, SubscribeRequest, Subscription,
};

use super::{backend_error, count, duration};

/// The metadata of a `pubsub.sqlite` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePubSubConfig {
    /// `connectionString` (required): a file path (its directory is made
    /// if missing).
    pub path: PathBuf,
    /// `tablePrefix`, default `pubsub`.
    pub table_prefix: String,
    /// `processingTimeout`, default 60 s: how long a taken message may go
    /// unacked before it is delivered again.
    pub processing_timeout: Duration,
    /// `redeliverInterval`, default 1 s: how long after a failed delivery
    /// the message is delivered again.
    pub redeliver_interval: Duration,
    /// `pollInterval`, default 100 ms: how often a subscription looks for
    /// messages other processes published.
    pub poll_interval: Duration,
    /// `queueDepth`, default 10: how many messages a subscription claims at
    /// once.
    pub queue_depth: usize,
    /// `cleanupInterval`, default 1 min.
    pub cleanup_interval: Duration,
    /// `busyTimeout`, default 5 s: how long a statement waits for another
    /// process's write lock.
    pub busy_timeout: Duration,
}

impl SqlitePubSubConfig {
    /// Parses the component's metadata.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let path = spec.require("connectionString")?.trim();
        if path == ":memory:" || path.starts_with("file:") {
            return Err(spec.field_error(
                "spec.metadata.connectionString",
                "a pub/sub queue needs a file path (it is shared by the subscriptions of \
                 every process and must survive them)",
            ));
        }
        let table_prefix = match spec.metadata("tablePrefix") {
            Some(prefix) => {
                let valid = prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && prefix
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
                if !valid {
                    return Err(spec.field_error(
                        "spec.metadata.tablePrefix",
                        format!(
                            "`{prefix}` is not a valid table name prefix (letters, digits and `_`)"
                        ),
                    ));
                }
                prefix.to_owned()
            }
            None => "pubsub".to_owned(),
        };
        Ok(SqlitePubSubConfig {
            path: PathBuf::from(path),
            table_prefix,
            processing_timeout: duration(spec, "processingTimeout", Duration::from_secs(60))?,
            redeliver_interval: duration(spec, "redeliverInterval", Duration::from_secs(1))?,
            poll_interval: duration(spec, "pollInterval", Duration::from_millis(100))?,
            queue_depth: count(spec, "queueDepth", 10)?,
            cleanup_interval: duration(spec, "cleanupInterval", Duration::from_secs(60))?,
            busy_timeout: duration(spec, "busyTimeout", Duration::from_secs(5))?,
        })
    }
}

/// The SQL of one table prefix.
struct Sql {
    insert: String,
    join: String,
    reclaim: String,
    take_new: String,
    advance: String,
    read: String,
    ack: String,
    nack: String,
    cleanup: String,
}

impl Sql {
    fn new(p: &str) -> Self {
        Sql {
            insert: format!(
                "INSERT INTO {p}_messages (topic, data, metadata, published_at) VALUES (?1, ?2, ?3, {NOW})"
            ),
            join: format!(
                "INSERT OR IGNORE INTO {p}_groups (topic, group_name, last_seq) VALUES (?1, ?2, 0)"
            ),
            // Pending messages whose time is up: hidden again, one more attempt.
            reclaim: format!(
                "UPDATE {p}_pending SET visible_at = {NOW} + ?4, attempts = attempts + 1 \
                 WHERE rowid IN (SELECT rowid FROM {p}_pending \
                   WHERE topic = ?1 AND group_name = ?2 AND visible_at <= {NOW} ORDER BY seq LIMIT ?3) \
                 RETURNING seq, attempts"
            ),
            take_new: format!(
                "INSERT INTO {p}_pending (topic, group_name, seq, visible_at, attempts) \
                 SELECT m.topic, g.group_name, m.seq, {NOW} + ?4, 1 \
                 FROM {p}_messages m JOIN {p}_groups g ON g.topic = m.topic AND g.group_name = ?2 \
                 WHERE m.topic = ?1 AND m.seq > g.last_seq ORDER BY m.seq LIMIT ?3 \
                 RETURNING seq, attempts"
            ),
            advance: format!(
                "UPDATE {p}_groups SET last_seq = ?3 WHERE topic = ?1 AND group_name = ?2 AND last_seq < ?3"
            ),
            read: format!("SELECT data, metadata FROM {p}_messages WHERE seq = ?1"),
            ack: format!(
                "DELETE FROM {p}_pending WHERE topic = ?1 AND group_name = ?2 AND seq = ?3"
            ),
            nack: format!(
                "UPDATE {p}_pending SET visible_at = {NOW} + ?4 \
                 WHERE topic = ?1 AND group_name = ?2 AND seq = ?3"
            ),
            // Messages every group of their topic has taken and none holds.
            cleanup: format!(
                "DELETE FROM {p}_messages WHERE seq <= (SELECT min(g.last_seq) FROM {p}_groups g \
                   WHERE g.topic = {p}_messages.topic) \
                 AND NOT EXISTS (SELECT 1 FROM {p}_pending q \
                   WHERE q.topic = {p}_messages.topic AND q.seq = {p}_messages.seq)"
            ),
        }
    }
}

/// Now, in unix milliseconds, by SQLite's clock.
const NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

struct Shared {
    connection: Arc<Mutex<Connection>>,
    sql: Sql,
    /// Woken by every publish through this component.
    published: Notify,
    closed: AtomicBool,
}

impl Shared {
    /// Runs `work` on the connection, on the blocking pool (rusqlite
    /// blocks), one call at a time.
    async fn run<T, F>(self: &Arc<Self>, what: &'static str, work: F) -> Result<T, PubSubError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Sql) -> rusqlite::Result<T> + Send + 'static,
    {
        let mut connection = self.connection.clone().lock_owned().await;
        let shared = self.clone();
        tokio::task::spawn_blocking(move || work(&mut connection, &shared.sql))
            .await
            .map_err(|e| backend_error(what, e))?
            .map_err(|e| backend_error(what, e))
    }
}

/// The SQLite broker.
pub struct SqlitePubSub {
    shared: Arc<Shared>,
    config: SqlitePubSubConfig,
}

impl std::fmt::Debug for SqlitePubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePubSub")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn open_connection(config: &SqlitePubSubConfig) -> Result<Connection, String> {
    let connection = sqlite_file::open(&config.path, config.busy_timeout)?;
    // A committed publish or ack survives `kill -9`.
    sqlite_file::enable_wal(&connection, "SQLite pub/sub")?;
    sqlite_file::durable_without_fsync(&connection)?;
    let p = &config.table_prefix;
    connection
        .execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {p}_messages (\
               seq INTEGER PRIMARY KEY AUTOINCREMENT, \
               topic TEXT NOT NULL, \
               data BLOB NOT NULL, \
               metadata TEXT NOT NULL, \
               published_at INTEGER NOT NULL);\
             CREATE INDEX IF NOT EXISTS {p}_messages_topic ON {p}_messages (topic, seq);\
             CREATE TABLE IF NOT EXISTS {p}_groups (\
               topic TEXT NOT NULL, \
               group_name TEXT NOT NULL, \
               last_seq INTEGER NOT NULL, \
               PRIMARY KEY (topic, group_name));\
             CREATE TABLE IF NOT EXISTS {p}_pending (\
               topic TEXT NOT NULL, \
               group_name TEXT NOT NULL, \
               seq INTEGER NOT NULL, \
               visible_at INTEGER NOT NULL, \
               attempts INTEGER NOT NULL, \
               PRIMARY KEY (topic, group_name, seq));\
             CREATE INDEX IF NOT EXISTS {p}_pending_visible ON {p}_pending (topic, group_name, visible_at);"
        ))
        .map_err(|e| format!("cannot create the tables {p}_*: {e}"))?;
    Ok(connection)
}

fn encode_metadata(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".into())
}

fn insert(
    connection: &Connection,
    sql: &Sql,
    topic: &str,
    data: &[u8],
    metadata: &Metadata,
) -> rusqlite::Result<()> {
    connection.prepare_cached(&sql.insert)?.execute(params![
        topic,
        data,
        encode_metadata(metadata)
    ])?;
    Ok(())
}

impl SqlitePubSub {
    /// Opens (creating if needed) the database and its tables.
    pub async fn open(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = SqlitePubSubConfig::from_spec(spec)?;
        let connection = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_connection(&config))
                .await
                .map_err(|e| spec.init_error(e))?
                .map_err(|e| spec.init_error(e))?
        };
        let shared = Arc::new(Shared {
            connection: Arc::new(Mutex::new(connection)),
            sql: Sql::new(&config.table_prefix),
            published: Notify::new(),
            closed: AtomicBool::new(false),
        });
        spawn_cleanup(Arc::downgrade(&shared), config.cleanup_interval);
        tracing::info!(component = %spec.name, path = %config.path.display(), "SQLite pub/sub ready");
        Ok(SqlitePubSub { shared, config })
    }
}

/// Deletes fully consumed messages every `every`, until the broker is dropped.
fn spawn_cleanup(shared: std::sync::Weak<Shared>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared
                .run("cleanup", |c, sql| c.execute(&sql.cleanup, []))
                .await
            {
                Ok(rows) => tracing::debug!(rows, "SQLite pub/sub: consumed messages deleted"),
                Err(error) => tracing::warn!(%error, "SQLite pub/sub: cleanup failed"),
            }
        }
    });
}

/// What one claim took: messages, in `seq` order.
fn claim(
    connection: &mut Connection,
    sql: &Sql,
    topic: &str,
    group: &str,
    depth: usize,
    hide_for: Duration,
) -> rusqlite::Result<Vec<ReceivedMessage>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let limit = i64::try_from(depth).unwrap_or(i64::MAX);
    let hide = millis(hide_for);
    let mut taken: Vec<(i64, u32)> = tx
        .prepare_cached(&sql.reclaim)?
        .query_map(params![topic, group, limit, hide], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let left = limit - i64::try_from(taken.len()).unwrap_or(0);
    if left > 0 {
        let new: Vec<(i64, u32)> = tx
            .prepare_cached(&sql.take_new)?
            .query_map(params![topic, group, left, hide], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(last) = new.iter().map(|(seq, _)| *seq).max() {
            tx.prepare_cached(&sql.advance)?
                .execute(params![topic, group, last])?;
        }
        taken.extend(new);
    }
    taken.sort_unstable();
    let mut messages = Vec::with_capacity(taken.len());
    {
        let mut read = tx.prepare_cached(&sql.read)?;
        for (seq, attempts) in taken {
            let row: Option<(Vec<u8>, String)> = read
                .query_row(params![seq], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            // A message deleted under a pending row (never by this code) is skipped.
            let Some((data, metadata)) = row else {
                continue;
            };
            messages.push(ReceivedMessage {
                id: seq.to_string(),
                topic: topic.to_owned(),
                data,
                metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                attempt: attempts,
            });
        }
    }
    tx.commit()?;
    Ok(messages)
}

#[async_trait]
impl PubSub for SqlitePubSub {
    fn features(&self) -> PubSubFeatures {
        PubSubFeatures {
            carries_metadata: true,
            bulk_publish: true,
            redelivery: true,
            durable: true,
            ordered: true,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        self.shared
            .run("publish", move |c, sql| {
                insert(c, sql, &request.topic, &request.data, &request.metadata)
            })
            .await?;
        self.shared.published.notify_waiters();
        Ok(())
    }

    /// One transaction for the whole bulk: every entry is published, or
    /// (the transaction failed) none is and every entry fails.
    async fn bulk_publish(&self, request: BulkPublishRequest) -> Vec<FailedEntry> {
        let ids: Vec<String> = request.entries.iter().map(|e| e.entry_id.clone()).collect();
        let fail_all = |error: &PubSubError| {
            ids.iter()
                .map(|id| FailedEntry {
                    entry_id: id.clone(),
                    error: error.to_string(),
                })
                .collect()
        };
        if self.shared.closed.load(Ordering::Acquire) {
            return fail_all(&PubSubError::Closed);
        }
        let topic = request.topic;
        let entries: Vec<BulkMessageEntry> = request.entries;
        let written = self
            .shared
            .run("bulk publish", move |c, sql| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for entry in &entries {
                    insert(&tx, sql, &topic, &entry.event, &entry.metadata)?;
                }
                tx.commit()
            })
            .await;
        match written {
            Ok(()) => {
                self.shared.published.notify_waiters();
                Vec::new()
            }
            Err(error) => fail_all(&error),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let (topic, group) = (request.topic, request.consumer_group);
        {
            let (topic, group) = (topic.clone(), group.clone());
            self.shared
                .run("subscribe", move |c, sql| {
                    c.prepare_cached(&sql.join)?.execute(params![topic, group])
                })
                .await?;
        }
        let shared = self.shared.clone();
        let config = self.config.clone();
        let (stop, mut stopped) = Subscription::signal();
        let task = tokio::spawn(async move {
            while !*stopped.borrow() {
                let woken = shared.published.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let claimed = {
                    let (topic, group) = (topic.clone(), group.clone());
                    shared
                        .run("claim", move |c, sql| {
                            claim(
                                c,
                                sql,
                                &topic,
                                &group,
                                config.queue_depth,
                                config.processing_timeout,
                            )
                        })
                        .await
                };
                let messages = match claimed {
                    Ok(messages) => messages,
                    Err(error) => {
                        tracing::warn!(%error, %topic, "SQLite pub/sub: cannot read the queue");
                        Vec::new()
                    }
                };
                if messages.is_empty() {
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(config.poll_interval) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                    continue;
                }
                let mut messages = messages.into_iter();
                for message in messages.by_ref() {
                    let seq: i64 = message.id.parse().unwrap_or_default();
                    let outcome = handler.handle(message).await;
                    let (topic, group) = (topic.clone(), group.clone());
                    let delay = millis(config.redeliver_interval);
                    let settled = shared
                        .run("ack", move |c, sql| match outcome {
                            Ok(()) => c
                                .prepare_cached(&sql.ack)?
                                .execute(params![topic, group, seq]),
                            Err(_) => c
                                .prepare_cached(&sql.nack)?
                                .execute(params![topic, group, seq, delay]),
                        })
                        .await;
                    if let Err(error) = settled {
                        // Unacked: delivered again after the processing timeout.
                        tracing::warn!(%error, seq, "SQLite pub/sub: cannot settle a message");
                    }
                    if *stopped.borrow() {
                        break;
                    }
                }
                // Claimed but not handled (the subscription is closing):
                // visible again at once, for the group's other subscriptions.
                let rest: Vec<i64> = messages.filter_map(|m| m.id.parse().ok()).collect();
                if !rest.is_empty() {
                    let (topic, group) = (topic.clone(), group.clone());
                    let released = shared
                        .run("release", move |c, sql| {
                            for seq in rest {
                                c.prepare_cached(&sql.nack)?
                                    .execute(params![topic, group, seq, 0])?;
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(error) = released {
                        tracing::warn!(%error, "SQLite pub/sub: cannot release claimed messages");
                    }
                }
            }
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.shared.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::spec;

    /// The metadata is read with its defaults; a queue that could not be
    /// shared or kept (`:memory:`) and a table prefix that is no SQL
    /// identifier are refused at load, naming the field.
    #[test]
    fn config() {
        let config =
            SqlitePubSubConfig::from_spec(&spec("pubsub.sqlite", &[("connectionString", "q.db")]))
                .unwrap();
        assert_eq!(config.table_prefix, "pubsub");
        assert_eq!(config.processing_timeout, Duration::from_secs(60));
        assert_eq!(config.redeliver_interval, Duration::from_secs(1));
        assert_eq!(config.queue_depth, 10);
        for (metadata, field) in [
            (vec![("connectionString", ":memory:")], "connectionString"),
            (vec![], "connectionString"),
            (
                vec![("connectionString", "q.db"), ("tablePrefix", "x; DROP")],
                "tablePrefix",
            ),
            (
                vec![("connectionString", "q.db"), ("queueDepth", "0")],
                "queueDepth",
            ),
            (
                vec![("connectionString", "q.db"), ("processingTimeout", "soon")],
                "processingTimeout",
            ),
        ] {
            let err = SqlitePubSubConfig::from_spec(&spec("pubsub.sqlite", &metadata)).unwrap_err();
            assert!(
                err.to_string().contains(&format!("spec.metadata.{field}")),
                "{err}"
            );
        }
    }
}
