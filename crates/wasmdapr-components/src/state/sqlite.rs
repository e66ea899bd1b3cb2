//! `state.sqlite`: one table in a SQLite file, the embedded default state
//! store (`wasmdapr run` with no resources path), so state survives a restart
//! with nothing installed.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool
//! (`spawn_blocking`) and never holds an async worker. One connection,
//! behind a mutex, writes (SQLite serialises writers anyway); reads go
//! through a second connection of their own, which in WAL mode never waits
//! for the writer. A `:memory:` database cannot be opened twice, so there
//! the one connection does both.
//!
//! Calls wait for that mutex asynchronously, in order, under `timeout`
//! ([`bounded`]): while another process holds the file's write lock, each
//! statement waits up to `busyTimeout` and the calls queued behind it give
//! up at their deadline without ever running. So a caller told its write
//! failed never has it applied later (only the statement already running
//! when its caller gave up can finish, within `busyTimeout`).
//!
//! The statements are the SQL stores' shared shape (`super::sql`):
//! conditional writes are single statements whose `WHERE` carries the
//! condition, ETags are random UUIDs (anything else is
//! [`StateError::EtagInvalid`]), and expiry follows SQLite's clock, in unix
//! milliseconds. Expired rows read as missing and are deleted every
//! `cleanupInterval`. A bulk set is one transaction.

use crate::sqlite_file;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::Mutex;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    BulkGetResult, BulkSetError, DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest,
    StateError, StateFeatures, StateStore, StateValue, WriteCondition,
};

use super::sql::{Dialect, Statements, changed, check_etag, new_etag};
use super::{
    backend_error, bounded, bulk_get_in_chunks, cleanup_interval, deadline_at, duration_or,
    expiry_metadata, from_unix_millis, in_request_order, table_name,
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

/// SQLite's side of the shared SQL shape: `?n` parameters, expiry in unix
/// milliseconds from SQLite's own clock (the same within one statement),
/// and a prefix match that starts from the index (`key >= prefix`) and is
/// exact (`substr`; LIKE would be case-insensitive and need escaping). Keys
/// compare with the BINARY collation, byte order as Rust orders strings, so
/// scans are in key order.
pub(super) const DIALECT: Dialect = Dialect {
    param: |n| format!("?{n}"),
    now: NOW_MILLIS,
    expiry: "expiration_time",
    expires_after: |ttl| format!("{NOW_MILLIS} + {ttl} * 1000"),
    written: &[("update_time", NOW_MILLIS)],
    updated: &[],
    key_has_prefix: |prefix| {
        format!("key >= {prefix} AND substr(key, 1, length({prefix})) = {prefix}")
    },
};

/// Now, in unix milliseconds.
const NOW_MILLIS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// The read of `keys` live keys, `?1`… the keys. One text per chunk size,
/// so the statement cache holds it.
fn bulk_get_sql(statements: &Statements, keys: usize) -> String {
    let mut sql = String::with_capacity(statements.live_rows_where.len() + keys * 2 + 12);
    sql.push_str(&statements.live_rows_where);
    sql.push_str("key IN (");
    for i in 0..keys {
        sql.push_str(if i == 0 { "?" } else { ",?" });
    }
    sql.push(')');
    sql
}

/// The SQLite state store.
pub struct SqliteStateStore {
    /// The writer: every write, transaction and the cleanup.
    connection: Arc<Mutex<Connection>>,
    /// Reads (get, bulk get, scan) on a connection of their own: in WAL
    /// mode a reader never waits for a writer, so reads do not queue behind
    /// this process's writes. A `:memory:` database cannot be opened twice,
    /// so there this is the writer.
    reader: Arc<Mutex<Connection>>,
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
            tokio::task::spawn_blocking(move || {
                let writer = open_connection(&config)?;
                // Opened after the writer, which made the file and table.
                let reader = match config.location {
                    SqliteLocation::Memory => None,
                    _ => Some(open_connection(&config)?),
                };
                Ok::<_, String>((writer, reader))
            })
            .await
            .map_err(|e| spec.init_error(e))?
        };
        let (connection, reader) = opened.map_err(|e| spec.init_error(e))?;
        let connection = Arc::new(Mutex::new(connection));
        let store = SqliteStateStore {
            reader: reader.map_or_else(|| connection.clone(), |r| Arc::new(Mutex::new(r))),
            connection,
            statements: Arc::new(Statements::new(&DIALECT, &table)),
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
        self.run_on(&self.connection, what, work).await
    }

    /// [`SqliteStateStore::run`] on the reader connection.
    async fn read<T, F>(&self, what: &'static str, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Statements) -> Result<T, StateError> + Send + 'static,
    {
        self.run_on(&self.reader, what, work).await
    }

    async fn run_on<T, F>(
        &self,
        connection: &Arc<Mutex<Connection>>,
        what: &'static str,
        work: F,
    ) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Statements) -> Result<T, StateError> + Send + 'static,
    {
        let deadline = Some(self.timeout);
        let until = deadline_at(deadline);
        bounded(what, deadline, async {
            let mut connection = connection.clone().lock_owned().await;
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
            sqlite_file::create_folder(path)?;
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
        sqlite_file::enable_wal(&connection, "SQLite state store")?;
        sqlite_file::durable_without_fsync(&connection)?;
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
            let swept =
                tokio::task::spawn_blocking(move || connection.execute(&statements.cleanup, []))
                    .await;
            match swept {
                Ok(Ok(rows)) => tracing::debug!(rows, "SQLite state store: expired rows deleted"),
                Ok(Err(error)) => tracing::warn!(%error, "SQLite state store: cleanup failed"),
                Err(error) => tracing::warn!(%error, "SQLite state store: cleanup task failed"),
            }
        }
    });
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
    let ttl = request
        .ttl
        .duration()
        .map(|ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let etag = new_etag();
    let (sql, wanted) = statements.for_write(request.condition());
    let (key, value) = (&request.key, &request.value);
    let mut statement = connection.prepare_cached(sql).map_err(sql_error)?;
    let rows = match &wanted {
        Some(wanted) => statement.execute(params![key, value, etag, ttl, wanted]),
        None => statement.execute(params![key, value, etag, ttl]),
    }
    .map_err(sql_error)?;
    changed(rows as u64)
}

fn apply_delete(
    connection: &Connection,
    statements: &Statements,
    request: &DeleteRequest,
) -> Result<(), StateError> {
    match request.condition() {
        WriteCondition::EtagMatches(wanted) => {
            let rows = connection
                .prepare_cached(&statements.delete_if_etag)
                .and_then(|mut s| s.execute(params![request.key, wanted]))
                .map_err(sql_error)?;
            changed(rows as u64)
        }
        WriteCondition::Always | WriteCondition::MustNotExist => {
            connection
                .prepare_cached(&statements.delete)
                .and_then(|mut s| s.execute(params![request.key]))
                .map_err(sql_error)?;
            Ok(())
        }
    }
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
        self.read("SQLite get", move |connection, statements| {
            connection
                .prepare_cached(&statements.get)
                .and_then(|mut s| {
                    s.query_row(params![request.key], |row| {
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
            self.read("SQLite bulk get", move |connection, statements| {
                let mut statement = connection
                    .prepare_cached(&bulk_get_sql(statements, chunk.len()))
                    .map_err(sql_error)?;
                let rows = statement
                    .query_map(
                        rusqlite::params_from_iter(chunk.iter().map(|r| &r.key)),
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row_value(row.get(1)?, row.get(2)?, row.get(3)?),
                            ))
                        },
                    )
                    .map_err(sql_error)?
                    .collect::<Result<_, _>>()
                    .map_err(sql_error)?;
                Ok(in_request_order(&chunk, rows))
            })
        })
        .await
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        check_etag(&request.condition())?;
        self.run("SQLite set", move |connection, statements| {
            apply_set(connection, statements, &request)
        })
        .await
    }

    /// One transaction for all the writes: one wait for the writer, one
    /// commit (one WAL sync), instead of one per write. A failed condition
    /// commits the writes before it (Dapr's bulk semantics: the first
    /// failure stops the bulk, what came before stays); an invalid ETag is
    /// found out before, and stops the bulk at its place the same way.
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), BulkSetError> {
        self.run("SQLite bulk set", move |connection, statements| {
            let transaction = connection.transaction().map_err(sql_error)?;
            let mut failed = None;
            for (index, request) in requests.iter().enumerate() {
                let written = check_etag(&request.condition())
                    .and_then(|()| apply_set(&transaction, statements, request));
                match written {
                    Ok(()) => {}
                    Err(error @ (StateError::EtagMismatch | StateError::EtagInvalid(_))) => {
                        failed = Some(BulkSetError { index, error });
                        break;
                    }
                    Err(error) => return Ok(Err(BulkSetError { index, error })),
                }
            }
            transaction.commit().map_err(sql_error)?;
            Ok(failed.map_or(Ok(()), Err))
        })
        .await
        .map_err(|error| BulkSetError { index: 0, error })?
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        check_etag(&request.condition())?;
        self.run("SQLite delete", move |connection, statements| {
            apply_delete(connection, statements, &request)
        })
        .await
    }

    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        for operation in &operations {
            check_etag(&match operation {
                Operation::Upsert(set) => set.condition(),
                Operation::Delete(delete) => delete.condition(),
            })?;
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
        self.read("SQLite scan", move |connection, statements| {
            let limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let read_row = |row: &rusqlite::Row<'_>| {
                Ok((
                    row.get::<_, String>(0)?,
                    row_value(row.get(1)?, row.get(2)?, row.get(3)?),
                ))
            };
            let rows = match &after {
                None => connection
                    .prepare_cached(&statements.scan_first)
                    .and_then(|mut s| {
                        s.query_map(params![prefix, limit], read_row)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
                Some(after) => {
                    connection
                        .prepare_cached(&statements.scan_next)
                        .and_then(|mut s| {
                            s.query_map(params![prefix, limit, after], read_row)?
                                .collect::<Result<Vec<_>, _>>()
                        })
                }
            }
            .map_err(sql_error)?;
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

    /// Reads of a file database go through their own connection: while
    /// the writer is held (a write in progress), a get still answers and a
    /// write waits; a `:memory:` database has one connection for both.
    #[tokio::test]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteStateStore::open(&spec(
            "state.sqlite",
            &[
                ("connectionString", path.to_str().unwrap()),
                ("timeout", "1s"),
            ],
        ))
        .await
        .unwrap();
        let write = |value: &str| SetRequest {
            key: "k".into(),
            value: value.into(),
            ..Default::default()
        };
        store.set(write("v")).await.unwrap();
        let writer = store.connection.clone().lock_owned().await;
        let read = store
            .get(GetRequest {
                key: "k".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(read.unwrap().data, b"v");
        assert!(matches!(
            store.set(write("w")).await,
            Err(StateError::Backend(_))
        ));
        drop(writer);

        let memory =
            SqliteStateStore::open(&spec("state.sqlite", &[("connectionString", ":memory:")]))
                .await
                .unwrap();
        assert!(Arc::ptr_eq(&memory.reader, &memory.connection));
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
}
