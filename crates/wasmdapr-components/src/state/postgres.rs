//! `state.postgresql`: one table in PostgreSQL, reached through a
//! deadpool-postgres pool of tokio-postgres connections.
//!
//! The statements are the SQL stores' shared shape (`super::sql`):
//! conditional writes are single statements whose `WHERE` carries the
//! condition; PostgreSQL's row locks make each check-and-write atomic (a
//! concurrent `UPDATE … WHERE etag = $5` waits for the other writer, then
//! re-checks the row it now sees). Transactions are real PostgreSQL
//! transactions, rolled back when any operation's condition fails; a bulk
//! set is one transaction. ETags are random UUIDs, so anything that is not
//! a UUID is [`StateError::EtagInvalid`]. Expiry uses the database clock
//! (`now()`), so the sidecar's clock cannot disagree with it.
//!
//! Outages: every call, including its wait for a pooled connection, runs
//! under `timeout` ([`bounded`]); connecting is bounded by the same time.
//! Connections the server closed are replaced on their next checkout (the
//! pool checks `is_closed`), and those idle longer than
//! `connectionMaxIdleTime` are dropped in the background, so a restarted
//! server is used by the first call after it is back.

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    BulkGetResult, BulkSetError, DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest,
    StateError, StateFeatures, StateStore, StateValue, WriteCondition,
};

use super::sql::{Dialect, Statements, changed, check_etag, new_etag};
use super::{
    backend_error, bounded, bulk_get_in_chunks, cleanup_interval, duration_or, expiry_metadata,
    in_request_order, table_name,
};

/// The metadata of a `state.postgresql` component.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `connectionString` (required): libpq `key=value` pairs or a
    /// `postgres://` URL.
    pub connection: tokio_postgres::Config,
    /// `tableName`, default `state` (optionally `schema.table`).
    pub table_name: String,
    /// `timeout` (or `timeoutInSeconds`, its older name), default 20 s, at
    /// least 1 s: the longest one operation may take, including waiting for
    /// a pooled connection, and the longest connecting may take.
    pub timeout: Duration,
    /// `maxConns`, default 16: the size of the connection pool.
    pub max_connections: usize,
    /// `connectionMaxIdleTime`, default 30 min (pgx's default, which Dapr
    /// keeps): pooled connections unused for longer are closed.
    pub max_idle: Duration,
    /// `cleanupInterval`, default 1 h; `0` disables the sweep of expired rows.
    pub cleanup_interval: Option<Duration>,
}

impl PostgresConfig {
    /// Parses the component's metadata.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let raw = spec.require("connectionString")?;
        // The message leaves the string out: it may hold a password.
        let mut connection = tokio_postgres::Config::from_str(raw.trim()).map_err(|e| {
            spec.field_error(
                "spec.metadata.connectionString",
                format!("is not a libpq connection string or postgres:// URL: {e}"),
            )
        })?;
        let timeout_name = if spec.metadata("timeout").is_some() {
            "timeout"
        } else {
            "timeoutInSeconds"
        };
        let timeout = duration_or(spec, timeout_name, Duration::from_secs(20))?;
        if timeout < Duration::from_secs(1) {
            return Err(spec.field_error(
                format!("spec.metadata.{timeout_name}"),
                "must be at least 1s",
            ));
        }
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(timeout);
        }
        let max_connections: usize = spec.parse_or("maxConns", 16)?;
        if max_connections == 0 {
            return Err(spec.field_error("spec.metadata.maxConns", "must be at least 1"));
        }
        Ok(PostgresConfig {
            connection,
            table_name: table_name(spec, "state")?,
            timeout,
            max_connections,
            max_idle: match duration_or(spec, "connectionMaxIdleTime", Duration::ZERO)? {
                idle if idle.is_zero() => Duration::from_secs(30 * 60),
                idle => idle,
            },
            cleanup_interval: cleanup_interval(spec)?,
        })
    }
}

/// PostgreSQL's side of the shared SQL shape: `$n` parameters and the
/// database clock (`now()`), so the sidecar's clock cannot disagree with
/// it; `now() + make_interval(secs => NULL)` is NULL, so one statement
/// serves writes with and without TTL. The scan's order is the column's
/// collation, which need not be byte order, so the store does not claim
/// `scan_in_key_order`; `!` as the LIKE escape avoids depending on how the
/// server reads backslashes in string literals.
pub(super) const DIALECT: Dialect = Dialect {
    param: |n| format!("${n}"),
    now: "now()",
    expiry: "expiredate",
    expires_after: |ttl| format!("now() + make_interval(secs => {ttl})"),
    written: &[("isbinary", "true")],
    updated: &[("updatedate", "now()")],
    key_has_prefix: |pattern| format!("key LIKE {pattern} ESCAPE '!'"),
};

/// The batched read of a bulk get: every live row among the keys of `$1`.
fn bulk_get_sql(statements: &Statements) -> String {
    format!("{}key = ANY($1)", statements.live_rows_where)
}

struct Shared {
    pool: Pool,
    statements: Statements,
    bulk_get: String,
}

/// The PostgreSQL state store.
pub struct PostgresStateStore {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStateStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A PostgreSQL error with the server's own message when there is one
/// (tokio-postgres displays server errors as just "db error").
fn pg_error(context: &str, error: tokio_postgres::Error) -> StateError {
    match error.as_db_error() {
        Some(db) => backend_error(context, format!("{} ({})", db.message(), db.code().code())),
        None => backend_error(context, error),
    }
}

impl PostgresStateStore {
    /// Connects, and creates the table if it is missing, so a wrong address
    /// or missing permission fails the sidecar's start.
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = PostgresConfig::from_spec(spec)?;
        let manager = Manager::from_config(
            config.connection.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .recycle_timeout(Some(config.timeout))
            .build()
            .map_err(|e| spec.init_error(e))?;
        let table = &config.table_name;
        let create = async {
            let mut client = pool
                .get()
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
            let transaction = client.transaction().await.map_err(|e| e.to_string())?;
            // Several sidecars starting at once would race on CREATE TABLE
            // IF NOT EXISTS (it is not atomic in PostgreSQL); a lock keyed on
            // the table name serialises them.
            transaction
                .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[table])
                .await
                .map_err(|e| pg_error("lock", e).to_string())?;
            transaction
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\
                       key TEXT NOT NULL PRIMARY KEY, \
                       value BYTEA NOT NULL, \
                       isbinary BOOLEAN NOT NULL, \
                       etag TEXT NOT NULL, \
                       insertdate TIMESTAMPTZ NOT NULL DEFAULT now(), \
                       updatedate TIMESTAMPTZ NULL, \
                       expiredate TIMESTAMPTZ NULL)"
                ))
                .await
                .map_err(|e| pg_error(&format!("creating table {table}"), e).to_string())?;
            transaction.commit().await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(config.timeout * 2, create)
            .await
            .map_err(|_| spec.init_error("PostgreSQL did not answer in time"))?
            .map_err(|e| spec.init_error(e))?;
        let statements = Statements::new(&DIALECT, table);
        let shared = Arc::new(Shared {
            pool,
            bulk_get: bulk_get_sql(&statements),
            statements,
        });
        if let Some(every) = config.cleanup_interval {
            spawn_cleanup(Arc::downgrade(&shared), every);
        }
        spawn_idle_reaper(Arc::downgrade(&shared), config.max_idle);
        tracing::info!(component = %spec.name, %table, "PostgreSQL state store ready");
        Ok(PostgresStateStore {
            shared,
            timeout: config.timeout,
        })
    }

    /// Runs `work` with a pooled connection, within the configured timeout.
    async fn run<T>(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        bounded(what, Some(self.timeout), work).await
    }

    async fn client(&self, what: &str) -> Result<deadpool_postgres::Object, StateError> {
        self.shared
            .pool
            .get()
            .await
            .map_err(|e| backend_error(what, e))
    }
}

/// Deletes expired rows every `every` until the store is dropped.
fn spawn_cleanup(shared: Weak<Shared>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let swept = match shared.pool.get().await {
                Ok(client) => client
                    .execute(shared.statements.cleanup.as_str(), &[])
                    .await
                    .map_err(|e| pg_error("cleanup", e)),
                Err(e) => Err(backend_error("cleanup", e)),
            };
            match swept {
                Ok(rows) => tracing::debug!(rows, "PostgreSQL state store: expired rows deleted"),
                Err(error) => tracing::warn!(%error, "PostgreSQL state store: cleanup failed"),
            }
        }
    });
}

/// Closes pooled connections that are idle longer than `max_idle`, or that
/// the server closed, until the store is dropped.
fn spawn_idle_reaper(shared: Weak<Shared>, max_idle: Duration) {
    let every = (max_idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let removed = shared
                .pool
                .retain(|client, metrics| !client.is_closed() && metrics.last_used() < max_idle)
                .removed
                .len();
            if removed > 0 {
                tracing::debug!(removed, "PostgreSQL state store: idle connections closed");
            }
        }
    });
}

/// Checks what can be checked before touching the database.
fn validate(operation: &Operation) -> Result<(), StateError> {
    check_etag(&match operation {
        Operation::Upsert(set) => set.condition(),
        Operation::Delete(delete) => delete.condition(),
    })
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '!'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One write; `Err(EtagMismatch)` when its condition does not hold.
async fn apply_set(
    client: &impl GenericClient,
    statements: &Statements,
    request: &SetRequest,
) -> Result<(), StateError> {
    let error = |e| pg_error("PostgreSQL set", e);
    let ttl: Option<f64> = request.ttl.duration().map(|t| t.as_secs_f64());
    let etag = new_etag();
    let (sql, wanted) = statements.for_write(request.condition());
    let statement = client.prepare_cached(sql).await.map_err(error)?;
    let (key, value) = (&request.key, &request.value);
    let rows = match &wanted {
        Some(wanted) => {
            client
                .execute(&statement, &[key, value, &etag, &ttl, wanted])
                .await
        }
        None => client.execute(&statement, &[key, value, &etag, &ttl]).await,
    }
    .map_err(error)?;
    changed(rows)
}

async fn apply_delete(
    client: &impl GenericClient,
    statements: &Statements,
    request: &DeleteRequest,
) -> Result<(), StateError> {
    let error = |e| pg_error("PostgreSQL delete", e);
    match request.condition() {
        WriteCondition::EtagMatches(wanted) => {
            let statement = client
                .prepare_cached(&statements.delete_if_etag)
                .await
                .map_err(error)?;
            let rows = client
                .execute(&statement, &[&request.key, &wanted])
                .await
                .map_err(error)?;
            changed(rows)
        }
        WriteCondition::Always | WriteCondition::MustNotExist => {
            let statement = client
                .prepare_cached(&statements.delete)
                .await
                .map_err(error)?;
            client
                .execute(&statement, &[&request.key])
                .await
                .map_err(error)?;
            Ok(())
        }
    }
}

fn row_value(data: Vec<u8>, etag: String, expires: Option<SystemTime>) -> StateValue {
    StateValue {
        data,
        etag: Some(etag),
        metadata: expiry_metadata(expires),
    }
}

#[async_trait]
impl StateStore for PostgresStateStore {
    fn features(&self) -> StateFeatures {
        StateFeatures {
            etag: true,
            transactional: true,
            ttl: true,
            query: true,
        }
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        self.run("PostgreSQL get", async {
            let error = |e| pg_error("PostgreSQL get", e);
            let client = self.client("PostgreSQL get").await?;
            let statement = client
                .prepare_cached(&self.shared.statements.get)
                .await
                .map_err(error)?;
            let row = client
                .query_opt(&statement, &[&request.key])
                .await
                .map_err(error)?;
            row.map(|row| {
                Ok(row_value(
                    row.try_get(0).map_err(error)?,
                    row.try_get(1).map_err(error)?,
                    row.try_get(2).map_err(error)?,
                ))
            })
            .transpose()
        })
        .await
    }

    /// One `SELECT … WHERE key = ANY($1)` per chunk of keys, with the
    /// liveness rule of [`StateStore::get`].
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetResult> {
        bulk_get_in_chunks(requests, |chunk| {
            self.run("PostgreSQL bulk get", async move {
                let error = |e| pg_error("PostgreSQL bulk get", e);
                let client = self.client("PostgreSQL bulk get").await?;
                let statement = client
                    .prepare_cached(&self.shared.bulk_get)
                    .await
                    .map_err(error)?;
                let keys: Vec<&str> = chunk.iter().map(|r| r.key.as_str()).collect();
                let rows = client.query(&statement, &[&keys]).await.map_err(error)?;
                let found = rows
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0).map_err(error)?,
                            row_value(
                                row.try_get(1).map_err(error)?,
                                row.try_get(2).map_err(error)?,
                                row.try_get(3).map_err(error)?,
                            ),
                        ))
                    })
                    .collect::<Result<_, StateError>>()?;
                Ok(in_request_order(&chunk, found))
            })
        })
        .await
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        check_etag(&request.condition())?;
        self.run("PostgreSQL set", async {
            let client = self.client("PostgreSQL set").await?;
            apply_set(&client, &self.shared.statements, &request).await
        })
        .await
    }

    /// One transaction for all the writes: one connection, one commit. A
    /// failed condition commits the writes before it (Dapr's bulk semantics:
    /// the first failure stops the bulk, what came before stays); a database
    /// error aborts the transaction, so then nothing of it is applied.
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), BulkSetError> {
        let valid = requests
            .iter()
            .position(|r| check_etag(&r.condition()).is_err())
            .unwrap_or(requests.len());
        let at = |index| move |error| BulkSetError { index, error };
        if valid > 0 {
            self.run("PostgreSQL bulk set", async {
                let error = |e| pg_error("PostgreSQL bulk set", e);
                let mut client = self.client("PostgreSQL bulk set").await?;
                let transaction = client.transaction().await.map_err(error)?;
                let statements = &self.shared.statements;
                let mut failed = None;
                for (index, request) in requests[..valid].iter().enumerate() {
                    match apply_set(&transaction, statements, request).await {
                        Ok(()) => {}
                        Err(StateError::EtagMismatch) => {
                            failed = Some(index);
                            break;
                        }
                        Err(other) => return Ok(Err(at(index)(other))),
                    }
                }
                transaction.commit().await.map_err(error)?;
                Ok(failed.map_or(Ok(()), |index| Err(at(index)(StateError::EtagMismatch))))
            })
            .await
            .map_err(at(0))??;
        }
        match requests.get(valid) {
            Some(invalid) => Err(at(valid)(
                check_etag(&invalid.condition()).expect_err("an invalid ETag"),
            )),
            None => Ok(()),
        }
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        check_etag(&request.condition())?;
        self.run("PostgreSQL delete", async {
            let client = self.client("PostgreSQL delete").await?;
            apply_delete(&client, &self.shared.statements, &request).await
        })
        .await
    }

    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        for operation in &operations {
            validate(operation)?;
        }
        self.run("PostgreSQL transaction", async {
            let error = |e| pg_error("PostgreSQL transaction", e);
            let mut client = self.client("PostgreSQL transaction").await?;
            // Dropping the transaction without commit rolls it back, so a
            // failed condition leaves nothing applied.
            let transaction = client.transaction().await.map_err(error)?;
            let statements = &self.shared.statements;
            for operation in &operations {
                match operation {
                    Operation::Upsert(set) => apply_set(&transaction, statements, set).await?,
                    Operation::Delete(delete) => {
                        apply_delete(&transaction, statements, delete).await?
                    }
                }
            }
            transaction.commit().await.map_err(error)
        })
        .await
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<ScanBatch, StateError> {
        let pattern = like_prefix(prefix);
        let batch = batch.max(1);
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        self.run("PostgreSQL scan", async {
            let error = |e| pg_error("PostgreSQL scan", e);
            let client = self.client("PostgreSQL scan").await?;
            let statements = &self.shared.statements;
            let rows = match cursor {
                None => {
                    let statement = client
                        .prepare_cached(&statements.scan_first)
                        .await
                        .map_err(error)?;
                    client.query(&statement, &[&pattern, &limit]).await
                }
                Some(after) => {
                    let statement = client
                        .prepare_cached(&statements.scan_next)
                        .await
                        .map_err(error)?;
                    client.query(&statement, &[&pattern, &limit, &after]).await
                }
            }
            .map_err(error)?;
            let rows = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(error)?,
                        row_value(
                            row.try_get(1).map_err(error)?,
                            row.try_get(2).map_err(error)?,
                            row.try_get(3).map_err(error)?,
                        ),
                    ))
                })
                .collect::<Result<Vec<(String, StateValue)>, StateError>>()?;
            let next = (rows.len() == batch).then(|| rows[batch - 1].0.clone());
            Ok(ScanBatch { rows, next })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::spec;
    use super::*;

    /// Both connection string forms parse; defaults match Dapr's.
    #[test]
    fn parses_config() {
        let config = PostgresConfig::from_spec(&spec(
            "state.postgresql",
            &[(
                "connectionString",
                "host=127.0.0.1 port=5432 user=postgres dbname=test",
            )],
        ))
        .unwrap();
        assert_eq!(config.connection.get_user(), Some("postgres"));
        assert_eq!(config.connection.get_dbname(), Some("test"));
        assert_eq!(config.table_name, "state");
        assert_eq!(config.timeout, Duration::from_secs(20));
        assert_eq!(
            config.connection.get_connect_timeout(),
            Some(&config.timeout)
        );
        assert_eq!(config.max_connections, 16);
        assert_eq!(config.max_idle, Duration::from_secs(1800));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(3600)));
        let url = PostgresConfig::from_spec(&spec(
            "state.postgresql",
            &[
                ("connectionString", "postgres://app:pw@db:5433/prod"),
                ("tableName", "dapr.state"),
                ("timeoutInSeconds", "3"),
                ("maxConns", "4"),
                ("cleanupInterval", "0"),
            ],
        ))
        .unwrap();
        assert_eq!(url.connection.get_ports(), &[5433]);
        assert_eq!(url.table_name, "dapr.state");
        assert_eq!(url.timeout, Duration::from_secs(3));
        assert_eq!(url.max_connections, 4);
        assert_eq!(url.cleanup_interval, None);
        let dapr_names = PostgresConfig::from_spec(&spec(
            "state.postgresql",
            &[
                ("connectionString", "host=db"),
                ("timeout", "1500ms"),
                ("timeoutInSeconds", "9"),
                ("connectionMaxIdleTime", "5m"),
            ],
        ))
        .unwrap();
        assert_eq!(dapr_names.timeout, Duration::from_millis(1500));
        assert_eq!(dapr_names.max_idle, Duration::from_secs(300));
    }

    /// Each bad value is reported with the field it came from, and a bad
    /// connection string is not echoed (it may hold a password).
    #[test]
    fn bad_metadata_names_the_field() {
        let ok = ("connectionString", "host=localhost");
        for (metadata, field) in [
            (vec![], "spec.metadata.connectionString"),
            (
                vec![("connectionString", "host=x password=hunter2 sslmode=bogus")],
                "spec.metadata.connectionString",
            ),
            (
                vec![ok, ("timeoutInSeconds", "soon")],
                "spec.metadata.timeoutInSeconds",
            ),
            (
                vec![ok, ("timeoutInSeconds", "0")],
                "spec.metadata.timeoutInSeconds",
            ),
            (vec![ok, ("timeout", "500ms")], "spec.metadata.timeout"),
            (
                vec![ok, ("connectionMaxIdleTime", "idle")],
                "spec.metadata.connectionMaxIdleTime",
            ),
            (vec![ok, ("maxConns", "0")], "spec.metadata.maxConns"),
            (vec![ok, ("tableName", "x y")], "spec.metadata.tableName"),
        ] {
            let err = PostgresConfig::from_spec(&spec("state.postgresql", &metadata))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "expected {field} in {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    /// LIKE wildcards and the escape character of a prefix match themselves.
    #[test]
    fn escapes_like_patterns() {
        assert_eq!(like_prefix("app||k"), "app||k%");
        assert_eq!(like_prefix("a%b_c!d\\"), "a!%b!_c!!d\\%");
    }

    /// An unreachable server fails the start with an init error.
    #[tokio::test]
    async fn unreachable_server_is_an_init_error() {
        let err = PostgresStateStore::connect(&spec(
            "state.postgresql",
            &[
                ("connectionString", "host=127.0.0.1 port=1 user=postgres"),
                ("timeoutInSeconds", "2"),
            ],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    }
}
