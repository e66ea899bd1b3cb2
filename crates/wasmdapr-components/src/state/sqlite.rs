//! `state.sqlite`: one table in a SQLite file, the embedded default state
//! store (`wasmdapr run` with no resources path), so state survives a restart
//! with nothing installed.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool
//! (`spawn_blocking`) and never holds an async worker. One connection,
//! behind a mutex, serves the store: SQLite serialises writers anyway, and a
//! single connection is the only way `:memory:` databases can be shared.
//!
//! Calls wait for that mutex asynchronously, in order, under `timeout`
//! ([`bounded`]): while another process holds the file's write lock, each
//! statement waits up to `busyTimeout` and the calls queued behind it give
//! up at their deadline without ever running. So a caller told its write
//! failed never has it applied later (only the statement already running
//! when its caller gave up can finish, within `busyTimeout`).
//!
//! Conditional writes are single statements whose `WHERE` carries the
//! condition (`UPDATE … WHERE key = ? AND etag = ?`, `INSERT … ON CONFLICT DO
//! UPDATE … WHERE <expired>`); the number of rows changed says whether the
//! condition held. ETags are random UUIDs, so anything that is not a UUID is
//! [`StateError::EtagInvalid`]. Expired rows read as missing and are deleted
//! every `cleanupInterval`.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::Mutex;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    BulkGetResult, DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest, StateError,
    StateFeatures, StateStore, StateValue, WriteCondition,
};

use super::{
    backend_error, bounded, bulk_get_in_chunks, cleanup_interval, deadline_at, duration_or,
    expiry_metadata, from_unix_millis, in_request_order, table_name, unix_millis,
};

/// Where the database lives, from `connectionString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// `:memory:`: a private database that ends with the process.
    Memory,
    /// A file path; its parent directory is created if missing.
    File(PathBuf),
    /// A `file:` URI (`file:data.db?cache=shared`), passed to SQLite as is.
    Uri(String),
}

/// The metadata of a `state.sqlite` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// `connectionString` (required): a file path, `:memory:` or a `file:` URI.
    pub location: SqliteLocation,
    /// `tableName`, default `state`.
    pub table_name: String,
    /// `timeout`, default 20 s: the longest one operation may take.
    pub timeout: Duration,
    /// `busyTimeout`, default 2 s: how long SQLite waits for a lock held by
    /// another connection (another process on the same file).
    pub busy_timeout: Duration,
    /// `cleanupInterval`, default 1 h; `0` or negative disables the sweep of
    /// expired rows (they still read as missing).
    pub cleanup_interval: Option<Duration>,
}

impl SqliteConfig {
    /// Parses the component's metadata.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let connection = spec.require("connectionString")?.trim();
        let location = if connection == ":memory:" || connection.starts_with("file::memory:") {
            SqliteLocation::Memory
        } else if connection.starts_with("file:") {
            SqliteLocation::Uri(connection.to_owned())
        } else {
            SqliteLocation::File(PathBuf::from(connection))
        };
        Ok(SqliteConfig {
            location,
            table_name: table_name(spec, "state")?,
            timeout: duration_or(spec, "timeout", Duration::from_secs(20))?,
            busy_timeout: duration_or(spec, "busyTimeout", Duration::from_secs(2))?,
            cleanup_interval: cleanup_interval(spec)?,
        })
    }
}

/// The SQL of one table, built once (the table name cannot be a parameter).
#[derive(Debug)]
struct Statements {
    get: String,
    /// [`Statements::bulk_get`] without its list of keys.
    bulk_get_head: String,
    upsert: String,
    insert_if_absent: String,
    update_if_etag: String,
    delete: String,
    delete_if_etag: String,
    scan_first: String,
    scan_next: String,
    cleanup: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        // `?5` is "now" in unix milliseconds wherever it appears; a row is
        // live when it has no expiration or expires after now.
        let scan = |lower: &str| {
            format!(
                "SELECT key, value, etag, expiration_time FROM {table} \
                 WHERE {lower} AND substr(key, 1, length(?1)) = ?1 \
                 AND (expiration_time IS NULL OR expiration_time > ?2) \
                 ORDER BY key LIMIT ?4"
            )
        };
        let insert = format!(
            "INSERT INTO {table} (key, value, etag, expiration_time, update_time) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, \
             expiration_time = excluded.expiration_time, update_time = excluded.update_time"
        );
        Statements {
            get: format!(
                "SELECT value, etag, expiration_time FROM {table} \
                 WHERE key = ?1 AND (expiration_time IS NULL OR expiration_time > ?2)"
            ),
            bulk_get_head: format!(
                "SELECT key, value, etag, expiration_time FROM {table} \
                 WHERE (expiration_time IS NULL OR expiration_time > ?1) AND key IN ("
            ),
            // In `DO UPDATE … WHERE`, bare column names are the existing
            // row: only an expired row may be replaced.
            insert_if_absent: format!(
                "{insert} WHERE expiration_time IS NOT NULL AND expiration_time <= ?5"
            ),
            upsert: insert,
            update_if_etag: format!(
                "UPDATE {table} SET value = ?2, etag = ?3, expiration_time = ?4, update_time = ?5 \
                 WHERE key = ?1 AND etag = ?6 \
                 AND (expiration_time IS NULL OR expiration_time > ?5)"
            ),
            delete: format!("DELETE FROM {table} WHERE key = ?1"),
            delete_if_etag: format!(
                "DELETE FROM {table} WHERE key = ?1 AND etag = ?2 \
                 AND (expiration_time IS NULL OR expiration_time > ?3)"
            ),
            // A batch of a scan, in key order (BINARY collation: byte
            // order, as Rust orders strings): the first from the prefix on,
            // the next ones after the last key of the batch before (`?3`).
            // The lower bound lets SQLite start from the index; `substr`
            // makes the match exact (LIKE would be case-insensitive and need
            // escaping).
            scan_first: scan("key >= ?1"),
            scan_next: scan("key > ?3"),
            cleanup: format!(
                "DELETE FROM {table} WHERE expiration_time IS NOT NULL AND expiration_time <= ?1"
            ),
        }
    }
}

impl Statements {
    /// The read of `keys` live keys: `?1` is now, `?2`… the keys (a `?`
    /// after `?1` is numbered from 2). One text per chunk size, so the
    /// statement cache holds it.
    fn bulk_get(&self, keys: usize) -> String {
        let mut sql = String::with_capacity(self.bulk_get_head.len() + keys * 2 + 1);
        sql.push_str(&self.bulk_get_head);
        for i in 0..keys {
            sql.push_str(if i == 0 { "?" } else { ",?" });
        }
        sql.push(')');
        sql
    }
}

/// The SQLite state store.
pub struct SqliteStateStore {
    connection: Arc<Mutex<Connection>>,
    statements: Arc<Statements>,
    timeout: Duration,
}

impl std::fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SqliteStateStore {
    /// Opens (creating if needed) the database and its table.
    pub async fn open(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = SqliteConfig::from_spec(spec)?;
        let table = config.table_name.clone();
        let opened = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_connection(&config))
                .await
                .map_err(|e| spec.init_error(e))?
        };
        let connection = opened.map_err(|e| spec.init_error(e))?;
        let store = SqliteStateStore {
            connection: Arc::new(Mutex::new(connection)),
            statements: Arc::new(Statements::new(&table)),
            timeout: config.timeout,
        };
        if let Some(every) = config.cleanup_interval {
            spawn_cleanup(
                Arc::downgrade(&store.connection),
                store.statements.clone(),
                every,
            );
        }
        tracing::info!(component = %spec.name, location = ?config.location, %table, "SQLite state store ready");
        Ok(store)
    }

    /// Runs `work` on the connection, on the blocking pool, within the
    /// configured timeout. The wait for the connection is cancelled at the
    /// deadline; a statement already running cannot be interrupted and
    /// finishes in the background (within `busyTimeout` when it waits for a
    /// lock), and work whose caller has given up is never started.
    async fn run<T, F>(&self, what: &'static str, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Statements) -> Result<T, StateError> + Send + 'static,
    {
        let deadline = Some(self.timeout);
        let until = deadline_at(deadline);
        bounded(what, deadline, async {
            let mut connection = self.connection.clone().lock_owned().await;
            let statements = self.statements.clone();
            let task = tokio::task::spawn_blocking(move || {
                if until.is_some_and(|until| tokio::time::Instant::now() >= until) {
                    // Its caller already has its error; nobody sees this one.
                    return Err(StateError::Backend(format!("{what}: given up")));
                }
                work(&mut connection, &statements)
            });
            task.await.map_err(|join| backend_error(what, join))?
        })
        .await
    }
}

/// A human-readable reason the database could not be opened.
fn open_connection(config: &SqliteConfig) -> Result<Connection, String> {
    let connection = match &config.location {
        SqliteLocation::Memory => Connection::open_in_memory(),
        SqliteLocation::File(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            Connection::open(path)
        }
        SqliteLocation::Uri(uri) => {
            Connection::open_with_flags(uri, OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI)
        }
    }
    .map_err(|e| format!("cannot open the database: {e}"))?;
    // A statement cannot outlive its call by more than its busy wait, so
    // that wait never exceeds a call's deadline.
    connection
        .busy_timeout(config.busy_timeout.min(config.timeout))
        .map_err(|e| e.to_string())?;
    if config.location != SqliteLocation::Memory {
        // WAL lets readers in other processes proceed while we write;
        // `synchronous = NORMAL` is durable across application crashes in
        // WAL mode and avoids an fsync per commit.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| format!("cannot enable WAL: {e}"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite state store: WAL mode is not available");
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| e.to_string())?;
    }
    connection
        .execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               key TEXT NOT NULL PRIMARY KEY, \
               value BLOB NOT NULL, \
               etag TEXT NOT NULL, \
               expiration_time INTEGER, \
               update_time INTEGER NOT NULL)",
            table = config.table_name
        ))
        .map_err(|e| format!("cannot create table {}: {e}", config.table_name))?;
    Ok(connection)
}

/// Deletes expired rows every `every` until the store is dropped.
fn spawn_cleanup(
    connection: Weak<Mutex<Connection>>,
    statements: Arc<Statements>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(connection) = connection.upgrade() else {
                return;
            };
            let statements = statements.clone();
            let connection = connection.lock_owned().await;
            let swept = tokio::task::spawn_blocking(move || {
                connection.execute(&statements.cleanup, [unix_millis(SystemTime::now())])
            })
            .await;
            match swept {
                Ok(Ok(rows)) => tracing::debug!(rows, "SQLite state store: expired rows deleted"),
                Ok(Err(error)) => tracing::warn!(%error, "SQLite state store: cleanup failed"),
                Err(error) => tracing::warn!(%error, "SQLite state store: cleanup task failed"),
            }
        }
    });
}

/// Refuses an ETag that cannot be one of ours (a UUID).
fn check_etag(etag: &str) -> Result<(), StateError> {
    uuid::Uuid::parse_str(etag)
        .map(|_| ())
        .map_err(|_| StateError::EtagInvalid(etag.to_owned()))
}

/// Checks what can be checked before touching the database.
fn validate_set(request: &SetRequest) -> Result<(), StateError> {
    if let WriteCondition::EtagMatches(etag) = request.condition() {
        check_etag(&etag)?;
    }
    Ok(())
}

fn validate_delete(request: &DeleteRequest) -> Result<(), StateError> {
    if let WriteCondition::EtagMatches(etag) = request.condition() {
        check_etag(&etag)?;
    }
    Ok(())
}

fn sql_error(error: rusqlite::Error) -> StateError {
    backend_error("SQLite", error)
}

/// One write; `Err(EtagMismatch)` when its condition does not hold.
fn apply_set(
    connection: &Connection,
    statements: &Statements,
    request: &SetRequest,
) -> Result<(), StateError> {
    let now = SystemTime::now();
    let expires = request.ttl.duration().map(|ttl| unix_millis(now + ttl));
    let now = unix_millis(now);
    let etag = uuid::Uuid::new_v4().to_string();
    let key = &request.key;
    let value = &request.value;
    let changed = match request.condition() {
        WriteCondition::Always => connection
            .prepare_cached(&statements.upsert)
            .and_then(|mut s| s.execute(params![key, value, etag, expires, now])),
        WriteCondition::MustNotExist => connection
            .prepare_cached(&statements.insert_if_absent)
            .and_then(|mut s| s.execute(params![key, value, etag, expires, now])),
        WriteCondition::EtagMatches(wanted) => connection
            .prepare_cached(&statements.update_if_etag)
            .and_then(|mut s| s.execute(params![key, value, etag, expires, now, wanted])),
    }
    .map_err(sql_error)?;
    if changed == 0 {
        return Err(StateError::EtagMismatch);
    }
    Ok(())
}

fn apply_delete(
    connection: &Connection,
    statements: &Statements,
    request: &DeleteRequest,
) -> Result<(), StateError> {
    match request.condition() {
        WriteCondition::EtagMatches(wanted) => {
            let now = unix_millis(SystemTime::now());
            let changed = connection
                .prepare_cached(&statements.delete_if_etag)
                .and_then(|mut s| s.execute(params![request.key, wanted, now]))
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StateError::EtagMismatch);
            }
        }
        WriteCondition::Always | WriteCondition::MustNotExist => {
            connection
                .prepare_cached(&statements.delete)
                .and_then(|mut s| s.execute(params![request.key]))
                .map_err(sql_error)?;
        }
    }
    Ok(())
}

fn row_value(data: Vec<u8>, etag: String, expires: Option<i64>) -> StateValue {
    StateValue {
        data,
        etag: Some(etag),
        metadata: expiry_metadata(expires.map(from_unix_millis)),
    }
}

#[async_trait]
impl StateStore for SqliteStateStore {
    fn features(&self) -> StateFeatures {
        StateFeatures {
            etag: true,
            transactional: true,
            ttl: true,
            query: true,
        }
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        self.run("SQLite get", move |connection, statements| {
            let now = unix_millis(SystemTime::now());
            connection
                .prepare_cached(&statements.get)
                .and_then(|mut s| {
                    s.query_row(params![request.key, now], |row| {
                        Ok(row_value(row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
                })
                .map_err(sql_error)
        })
        .await
    }

    /// One `SELECT … WHERE key IN (…)` per chunk of keys, with the
    /// liveness rule of [`StateStore::get`].
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetResult> {
        bulk_get_in_chunks(requests, |chunk| {
            self.run("SQLite bulk get", move |connection, statements| {
                let now = unix_millis(SystemTime::now());
                let mut statement = connection
                    .prepare_cached(&statements.bulk_get(chunk.len()))
                    .map_err(sql_error)?;
                let mut parameters: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() + 1);
                parameters.push(&now);
                parameters.extend(chunk.iter().map(|r| &r.key as &dyn rusqlite::ToSql));
                let rows = statement
                    .query_map(rusqlite::params_from_iter(parameters), |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row_value(row.get(1)?, row.get(2)?, row.get(3)?),
                        ))
                    })
                    .map_err(sql_error)?
                    .collect::<Result<_, _>>()
                    .map_err(sql_error)?;
                Ok(in_request_order(&chunk, rows))
            })
        })
        .await
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        validate_set(&request)?;
        self.run("SQLite set", move |connection, statements| {
            apply_set(connection, statements, &request)
        })
        .await
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        validate_delete(&request)?;
        self.run("SQLite delete", move |connection, statements| {
            apply_delete(connection, statements, &request)
        })
        .await
    }

    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        for operation in &operations {
            match operation {
                Operation::Upsert(set) => validate_set(set)?,
                Operation::Delete(delete) => validate_delete(delete)?,
            }
        }
        self.run("SQLite transaction", move |connection, statements| {
            // Dropping the transaction without commit rolls it back, so a
            // failed condition leaves nothing applied.
            let transaction = connection.transaction().map_err(sql_error)?;
            for operation in &operations {
                match operation {
                    Operation::Upsert(set) => apply_set(&transaction, statements, set)?,
                    Operation::Delete(delete) => apply_delete(&transaction, statements, delete)?,
                }
            }
            transaction.commit().map_err(sql_error)
        })
        .await
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<ScanBatch, StateError> {
        let prefix = prefix.to_owned();
        let after = cursor.map(str::to_owned);
        let batch = batch.max(1);
        self.run("SQLite scan", move |connection, statements| {
            let now = unix_millis(SystemTime::now());
            let sql = match after {
                None => &statements.scan_first,
                Some(_) => &statements.scan_next,
            };
            let mut statement = connection.prepare_cached(sql).map_err(sql_error)?;
            let limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(params![prefix, now, after, limit], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row_value(row.get(1)?, row.get(2)?, row.get(3)?),
                    ))
                })
                .map_err(sql_error)?;
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(sql_error)?;
            let next = (rows.len() == batch).then(|| rows[batch - 1].0.clone());
            Ok(ScanBatch { rows, next })
        })
        .await
    }

    fn scan_in_key_order(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::spec;
    use super::*;

    /// Defaults, and every location form of `connectionString`.
    #[test]
    fn parses_config() {
        let config = SqliteConfig::from_spec(&spec(
            "state.sqlite",
            &[("connectionString", "/var/lib/app/state.db")],
        ))
        .unwrap();
        assert_eq!(
            config,
            SqliteConfig {
                location: SqliteLocation::File("/var/lib/app/state.db".into()),
                table_name: "state".into(),
                timeout: Duration::from_secs(20),
                busy_timeout: Duration::from_secs(2),
                cleanup_interval: Some(Duration::from_secs(3600)),
            }
        );
        let memory = SqliteConfig::from_spec(&spec(
            "state.sqlite",
            &[
                ("connectionString", ":memory:"),
                ("tableName", "kv"),
                ("timeout", "5s"),
                ("busyTimeout", "100ms"),
                ("cleanupInterval", "0"),
            ],
        ))
        .unwrap();
        assert_eq!(memory.location, SqliteLocation::Memory);
        assert_eq!(memory.table_name, "kv");
        assert_eq!(memory.timeout, Duration::from_secs(5));
        assert_eq!(memory.busy_timeout, Duration::from_millis(100));
        assert_eq!(memory.cleanup_interval, None);
        let uri = SqliteConfig::from_spec(&spec(
            "state.sqlite",
            &[("connectionString", "file:data.db?cache=shared")],
        ))
        .unwrap();
        assert_eq!(
            uri.location,
            SqliteLocation::Uri("file:data.db?cache=shared".into())
        );
    }

    /// Each bad value is reported with the field it came from.
    #[test]
    fn bad_metadata_names_the_field() {
        for (metadata, field) in [
            (vec![], "spec.metadata.connectionString"),
            (
                vec![("connectionString", "a.db"), ("timeout", "later")],
                "spec.metadata.timeout",
            ),
            (
                vec![("connectionString", "a.db"), ("busyTimeout", "x")],
                "spec.metadata.busyTimeout",
            ),
            (
                vec![("connectionString", "a.db"), ("tableName", "a;b")],
                "spec.metadata.tableName",
            ),
            (
                vec![("connectionString", "a.db"), ("cleanupInterval", "often")],
                "spec.metadata.cleanupInterval",
            ),
        ] {
            let err = SqliteConfig::from_spec(&spec("state.sqlite", &metadata))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "expected {field} in {err}");
        }
    }

    /// A database that cannot be created is an init error naming the component.
    #[tokio::test]
    async fn unopenable_path_is_an_init_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let path = file.join("sub").join("state.db");
        let err = SqliteStateStore::open(&spec(
            "state.sqlite",
            &[("connectionString", path.to_str().unwrap())],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("component `store` (state.sqlite)"), "{err}");
    }

    /// ETags are UUIDs: anything else is invalid rather than a mismatch.
    #[test]
    fn etags_are_uuids() {
        assert!(check_etag("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        assert_eq!(check_etag("7"), Err(StateError::EtagInvalid("7".into())));
    }
}
