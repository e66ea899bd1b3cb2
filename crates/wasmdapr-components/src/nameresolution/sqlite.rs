//! `nameresolution.sqlite`: Dapr's SQLite name resolver. Sidecars on one
//! machine (or sharing one locally mounted disk) register
//! `app id → host:port` of their internal endpoint in one SQLite file and renew
//! it with a heartbeat; other sidecars look ids up there.
//!
//! Semantics follow Dapr's component: a row is live while its last heartbeat
//! is younger than `updateInterval`; heartbeats run every
//! `updateInterval − timeout`, so a heartbeat that takes up to `timeout`
//! still lands before the row would expire (hence Dapr's rule that
//! `updateInterval` exceed `timeout` by at least a second). A process that
//! dies stops heartbeating and its row expires; a clean shutdown deletes it
//! at once. Several live instances of one app id are picked at random. Stale
//! rows are deleted every `cleanupInterval`. The file layout is this
//! runtime's own (times in unix milliseconds), not `daprd`'s.
//!
//! | Metadata | Default | |
//! |---|---|---|
//! | `connectionString` | required | a file path (its directory is created) |
//! | `updateInterval` | `5s` | heartbeat period + timeout; the liveness window |
//! | `timeout` | `1s` | the longest one database operation may take |
//! | `tableName` | `hosts` | |
//! | `cleanupInterval` | `1h` | `0` disables |
//! | `busyTimeout` | `800ms` | SQLite's wait for another process's lock |
//! | `disableWAL` | `false` | WAL lets lookups proceed during writes (without it a lookup may wait up to `busyTimeout`) |

use crate::sqlite_file;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use wasmdapr_runtime::AppId;
use wasmdapr_runtime::component::{ComponentError, ComponentSpec};
use wasmdapr_runtime::nameresolution::{NameResolutionError, NameResolver};

use crate::state::{cleanup_interval, duration_or, table_name, unix_millis};

/// The backend's name in errors and `spec.nameResolution.component`.
const KIND: &str = "sqlite";

/// The file name of the default database, see [`SqliteNameResolver::default_path`].
pub const DEFAULT_FILE: &str = "nameresolution.db";

/// The metadata of a `nameresolution.sqlite` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteResolverConfig {
    /// `connectionString`: the database file.
    pub path: PathBuf,
    /// `tableName`, default `hosts`.
    pub table_name: String,
    /// `updateInterval`, default 5 s: the liveness window.
    pub update_interval: Duration,
    /// `timeout`, default 1 s.
    pub timeout: Duration,
    /// `cleanupInterval`, default 1 h; `None` disables the sweep.
    pub cleanup_interval: Option<Duration>,
    /// `busyTimeout`, default 800 ms.
    pub busy_timeout: Duration,
    /// `disableWAL`, default false.
    pub disable_wal: bool,
}

impl SqliteResolverConfig {
    /// Parses the configuration.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let connection = spec.require("connectionString")?.trim();
        if connection == ":memory:" || connection.starts_with("file:") {
            return Err(spec.field_error(
                "spec.metadata.connectionString",
                "must be a file path: a name resolution database is shared between processes",
            ));
        }
        let update_interval = duration_or(spec, "updateInterval", Duration::from_secs(5))?;
        let timeout = duration_or(spec, "timeout", Duration::from_secs(1))?;
        if timeout < Duration::from_secs(1) {
            return Err(spec.field_error("spec.metadata.timeout", "must be at least 1s"));
        }
        if update_interval < timeout + Duration::from_secs(1) {
            return Err(spec.field_error(
                "spec.metadata.updateInterval",
                format!("must be at least 1s longer than timeout ({timeout:?})"),
            ));
        }
        Ok(Self {
            path: PathBuf::from(connection),
            table_name: table_name(spec, "hosts")?,
            update_interval,
            timeout,
            cleanup_interval: cleanup_interval(spec)?,
            busy_timeout: duration_or(spec, "busyTimeout", Duration::from_millis(800))?,
            disable_wal: spec.parse_or("disableWAL", false)?,
        })
    }

    /// How often a registration is renewed.
    pub fn heartbeat(&self) -> Duration {
        self.update_interval - self.timeout
    }
}

/// The SQL of one table (the name cannot be a parameter), built once.
#[derive(Debug)]
struct Statements {
    register: String,
    heartbeat: String,
    resolve: String,
    deregister: String,
    cleanup: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        Self {
            register: format!(
                "INSERT INTO {table} (registration_id, app_id, address, last_update) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (registration_id) DO UPDATE SET \
                 app_id = excluded.app_id, address = excluded.address, \
                 last_update = excluded.last_update"
            ),
            heartbeat: format!("UPDATE {table} SET last_update = ?2 WHERE registration_id = ?1"),
            resolve: format!(
                "SELECT address FROM {table} WHERE app_id = ?1 AND last_update >= ?2 \
                 ORDER BY random() LIMIT 1"
            ),
            deregister: format!("DELETE FROM {table} WHERE registration_id = ?1"),
            cleanup: format!("DELETE FROM {table} WHERE last_update < ?1"),
        }
    }
}

/// This process's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    id: String,
    app: String,
    address: String,
}

/// The resolver over one database file.
pub struct SqliteNameResolver {
    config: SqliteResolverConfig,
    connection: Arc<Mutex<Connection>>,
    /// A connection of its own for lookups: in WAL mode a reader never
    /// waits for a writer, so lookups never queue behind this process's
    /// heartbeats (or other processes' writes).
    reader: Mutex<Connection>,
    statements: Arc<Statements>,
    registration: Mutex<Option<(Registration, tokio::task::JoinHandle<()>)>>,
}

impl SqliteNameResolver {
    /// Opens (creating if needed) the database of `spec`.
    pub async fn open(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = SqliteResolverConfig::from_spec(spec)?;
        let opening = config.clone();
        let (connection, reader) = tokio::task::spawn_blocking(move || {
            Ok::<_, String>((open_connection(&opening)?, open_connection(&opening)?))
        })
        .await
        .map_err(|e| spec.init_error(e))?
        .map_err(|e| spec.init_error(format!("{}: {e}", config.path.display())))?;
        Ok(Self {
            reader: Mutex::new(reader),
            statements: Arc::new(Statements::new(&config.table_name)),
            config,
            connection: Arc::new(Mutex::new(connection)),
            registration: Mutex::new(None),
        })
    }

    /// The spec of the default resolver: `nameresolution.sqlite` on a file
    /// under `dir`, with Dapr's defaults, used when no `--config` names one.
    pub fn default_spec(dir: &std::path::Path) -> ComponentSpec {
        ComponentSpec {
            name: "nameresolution".into(),
            kind: "nameresolution.sqlite".into(),
            version: "v1".into(),
            metadata: [(
                "connectionString".to_owned(),
                dir.join(DEFAULT_FILE).to_string_lossy().into_owned(),
            )]
            .into(),
            scopes: Vec::new(),
            source: PathBuf::from("(default name resolution)"),
        }
    }

    /// The directory of the default database, shared by every wasmdapr
    /// process of the user: `$XDG_DATA_HOME/wasmdapr`, else
    /// `~/.local/share/wasmdapr`; `None` when neither is known.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        non_empty("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .map(|d| d.join("wasmdapr"))
    }

    /// The configuration in use.
    pub fn config(&self) -> &SqliteResolverConfig {
        &self.config
    }

    /// Runs `work` on the connection on the blocking pool, within `timeout`.
    async fn with_connection<R: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&Connection, &Statements) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, NameResolutionError> {
        run(
            &self.connection,
            &self.statements,
            self.config.timeout,
            what,
            work,
        )
        .await
    }
}

fn error(message: String) -> NameResolutionError {
    NameResolutionError {
        backend: KIND,
        message,
    }
}

async fn run<R: Send + 'static>(
    connection: &Arc<Mutex<Connection>>,
    statements: &Arc<Statements>,
    timeout: Duration,
    what: &str,
    work: impl FnOnce(&Connection, &Statements) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, NameResolutionError> {
    let connection = connection.clone();
    let statements = statements.clone();
    let task = tokio::task::spawn_blocking(move || {
        let connection = connection.lock().unwrap_or_else(|e| e.into_inner());
        work(&connection, &statements)
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(e))) => Err(error(format!("{what}: {e}"))),
        Ok(Err(join)) => Err(error(format!("{what}: {join}"))),
        Err(_) => Err(error(format!("{what}: timed out after {timeout:?}"))),
    }
}

fn now() -> i64 {
    unix_millis(SystemTime::now())
}

fn open_connection(config: &SqliteResolverConfig) -> Result<Connection, String> {
    let connection = sqlite_file::open(&config.path, config.busy_timeout)?;
    if !config.disable_wal {
        sqlite_file::enable_wal(&connection, "SQLite name resolution")?;
    }
    connection
        .execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               registration_id TEXT NOT NULL PRIMARY KEY, \
               app_id TEXT NOT NULL, \
               address TEXT NOT NULL, \
               last_update INTEGER NOT NULL); \
             CREATE INDEX IF NOT EXISTS {table}_app_id ON {table} (app_id, last_update);",
            table = config.table_name
        ))
        .map_err(|e| format!("cannot create table {}: {e}", config.table_name))?;
    Ok(connection)
}

/// Renews `registration` every heartbeat (re-inserting it if another
/// process's cleanup removed it) and sweeps stale rows every
/// `cleanupInterval`, until the resolver is dropped or deregisters.
fn spawn_heartbeat(
    connection: Weak<Mutex<Connection>>,
    statements: Arc<Statements>,
    config: SqliteResolverConfig,
    registration: Registration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.heartbeat());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut last_cleanup = std::time::Instant::now();
        loop {
            ticks.tick().await;
            let Some(connection) = connection.upgrade() else {
                return;
            };
            let entry = registration.clone();
            let beat = run(
                &connection,
                &statements,
                config.timeout,
                "heartbeat",
                move |c, s| {
                    let at = now();
                    if c.execute(&s.heartbeat, params![entry.id, at])? == 0 {
                        c.execute(&s.register, params![entry.id, entry.app, entry.address, at])?;
                    }
                    Ok(())
                },
            )
            .await;
            if let Err(e) = beat {
                tracing::warn!(error = %e, app = %registration.app, "name resolution heartbeat failed");
            }
            if let Some(every) = config.cleanup_interval
                && last_cleanup.elapsed() >= every
            {
                last_cleanup = std::time::Instant::now();
                let window = config.update_interval;
                let swept = run(
                    &connection,
                    &statements,
                    config.timeout,
                    "cleanup",
                    move |c, s| c.execute(&s.cleanup, params![now() - window.as_millis() as i64]),
                )
                .await;
                match swept {
                    Ok(rows) => tracing::debug!(rows, "name resolution: stale rows deleted"),
                    Err(e) => tracing::warn!(error = %e, "name resolution cleanup failed"),
                }
            }
        }
    })
}

#[async_trait]
impl NameResolver for SqliteNameResolver {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn register(&self, app: &AppId, address: &str) -> Result<(), NameResolutionError> {
        let registration = Registration {
            id: uuid::Uuid::new_v4().to_string(),
            app: app.to_string(),
            address: address.to_owned(),
        };
        let entry = registration.clone();
        self.with_connection("register", move |c, s| {
            c.execute(
                &s.register,
                params![entry.id, entry.app, entry.address, now()],
            )
        })
        .await?;
        let heartbeat = spawn_heartbeat(
            Arc::downgrade(&self.connection),
            self.statements.clone(),
            self.config.clone(),
            registration.clone(),
        );
        tracing::info!(app = %app, %address, file = %self.config.path.display(), "registered in name resolution");
        let previous = self
            .registration
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((registration, heartbeat));
        if let Some((old, task)) = previous {
            task.abort();
            self.with_connection("deregister", move |c, s| {
                c.execute(&s.deregister, params![old.id])
            })
            .await?;
        }
        Ok(())
    }

    async fn resolve(&self, app: &AppId) -> Result<Option<String>, NameResolutionError> {
        let app = app.to_string();
        let window = self.config.update_interval.as_millis() as i64;
        // Every invocation of another app resolves, so the lookup is on the
        // hot path and runs in place, like a lookup in a locked map: one
        // indexed read with a prepared statement on the reader connection,
        // which in WAL mode takes microseconds and never waits for a writer.
        // (A hand-off to the blocking pool would cost more than the read.)
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        reader
            .prepare_cached(&self.statements.resolve)
            .and_then(|mut statement| {
                statement
                    .query_row(params![app, now() - window], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| error(format!("resolve: {e}")))
    }

    async fn deregister(&self) -> Result<(), NameResolutionError> {
        let taken = self
            .registration
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((registration, heartbeat)) = taken else {
            return Ok(());
        };
        heartbeat.abort();
        let id = registration.id.clone();
        self.with_connection("deregister", move |c, s| {
            c.execute(&s.deregister, params![id])
        })
        .await?;
        tracing::info!(app = %registration.app, "deregistered from name resolution");
        Ok(())
    }
}

impl Drop for SqliteNameResolver {
    /// Stops the heartbeat and leaves the row to expire, as a crashed
    /// process would; a clean shutdown calls [`NameResolver::deregister`].
    fn drop(&mut self) {
        if let Some((_, heartbeat)) = self
            .registration
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            heartbeat.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::spec;

    /// Dapr's defaults, and the timeout rules that keep heartbeats inside the window.
    #[test]
    fn config_defaults_and_rules() {
        let config = SqliteResolverConfig::from_spec(&spec(
            "nameresolution.sqlite",
            &[("connectionString", "nr.db")],
        ))
        .unwrap();
        assert_eq!(config.update_interval, Duration::from_secs(5));
        assert_eq!(config.timeout, Duration::from_secs(1));
        assert_eq!(config.heartbeat(), Duration::from_secs(4));
        assert_eq!(config.table_name, "hosts");
        for (metadata, field) in [
            (vec![], "connectionString"),
            (vec![("connectionString", ":memory:")], "connectionString"),
            (
                vec![("connectionString", "a.db"), ("updateInterval", "1s")],
                "updateInterval",
            ),
            (
                vec![("connectionString", "a.db"), ("timeout", "0")],
                "timeout",
            ),
            (
                vec![("connectionString", "a.db"), ("tableName", "x;y")],
                "tableName",
            ),
        ] {
            let err = SqliteResolverConfig::from_spec(&spec("nameresolution.sqlite", &metadata))
                .unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}

#[cfg(test)]
mod file_tests {
    //! Real SQLite files shared by several resolvers, as by several processes.

    use super::*;
    use crate::state::test_support::spec;

    async fn resolver(path: &std::path::Path) -> SqliteNameResolver {
        let path = path.to_string_lossy().into_owned();
        SqliteNameResolver::open(&spec(
            "nameresolution.sqlite",
            &[
                ("connectionString", &path),
                ("updateInterval", "2s"),
                ("timeout", "1s"),
            ],
        ))
        .await
        .unwrap()
    }

    fn id(s: &str) -> AppId {
        AppId::new(s).unwrap()
    }

    /// Two registrations in one file are found by a third resolver; an id
    /// nobody registered resolves to none; two instances of one id are both
    /// returned over repeated lookups. (On a multi-threaded runtime, where
    /// lookups run in place; the other tests use the blocking pool.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registrations_are_shared_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/nr.db");
        let (a, b, c) = (
            resolver(&file).await,
            resolver(&file).await,
            resolver(&file).await,
        );
        a.register(&id("orders"), "127.0.0.1:3500").await.unwrap();
        b.register(&id("billing"), "127.0.0.1:3501").await.unwrap();
        let reader = resolver(&file).await;
        assert_eq!(
            reader.resolve(&id("orders")).await.unwrap().as_deref(),
            Some("127.0.0.1:3500")
        );
        assert_eq!(
            reader.resolve(&id("billing")).await.unwrap().as_deref(),
            Some("127.0.0.1:3501")
        );
        assert_eq!(reader.resolve(&id("nobody")).await.unwrap(), None);

        c.register(&id("billing"), "127.0.0.1:3502").await.unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            seen.insert(reader.resolve(&id("billing")).await.unwrap().unwrap());
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["127.0.0.1:3501", "127.0.0.1:3502"]
        );
    }

    /// A clean shutdown removes the entry at once; a registration kept
    /// alive by heartbeats outlives the window; one whose heartbeats stop
    /// (the process died) expires after `updateInterval`.
    #[tokio::test]
    async fn deregistration_heartbeats_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nr.db");
        let reader = resolver(&file).await;

        let leaving = resolver(&file).await;
        leaving
            .register(&id("leaving"), "127.0.0.1:1")
            .await
            .unwrap();
        assert!(reader.resolve(&id("leaving")).await.unwrap().is_some());
        leaving.deregister().await.unwrap();
        assert_eq!(reader.resolve(&id("leaving")).await.unwrap(), None);

        let alive = resolver(&file).await;
        alive.register(&id("alive"), "127.0.0.1:2").await.unwrap();
        let crashed = resolver(&file).await;
        crashed
            .register(&id("crashed"), "127.0.0.1:3")
            .await
            .unwrap();
        assert!(reader.resolve(&id("crashed")).await.unwrap().is_some());
        drop(crashed);
        // Past the 2 s window: only heartbeats keep a row live.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        assert_eq!(reader.resolve(&id("crashed")).await.unwrap(), None);
        assert_eq!(
            reader.resolve(&id("alive")).await.unwrap().as_deref(),
            Some("127.0.0.1:2")
        );
    }

    /// An unknown backend in a Configuration is a configuration error naming it.
    #[tokio::test]
    async fn unknown_backend_is_refused() {
        let mut registry = wasmdapr_runtime::ComponentRegistry::new();
        crate::register(&mut registry);
        let err = registry
            .build::<dyn NameResolver>(spec("nameresolution.mdns", &[]))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("mdns"), "{err}");
    }
}
