//! Backend outages: a state store fails fast while its server is hung or
//! down, and serves the very first request after the server is back.
//!
//! Pub/sub brokers (Redis Streams, NATS JetStream, MQTT, RabbitMQ) are
//! watched through a [`PubSubProbe`]: publishes fail while the server is
//! down, succeed once it is back, and the subscription made before goes on
//! by itself.
//!
//! Each test starts a private server (redis-server, mosquitto, a RabbitMQ
//! node, nats-server with its store in a temporary directory, or a
//! PostgreSQL cluster made with `initdb` in a temporary directory) on a
//! free port, so stopping it disturbs no other test. Two kinds of outage
//! are simulated:
//!
//! - *hung*: every process of the server is stopped with `SIGSTOP`: TCP
//!   connections stay open and new ones are even accepted by the kernel, but
//!   nothing answers. Only timeouts can end such a call.
//! - *down*: the server is killed (Redis) or stopped in immediate mode
//!   (PostgreSQL): connections are closed and new ones are refused.
//!
//! During the outage every call must fail within a few seconds (the stores
//! are configured with sub-second timeouts through Dapr's metadata names);
//! after the server is restarted on the same port, the first call must
//! succeed. SQLite has no server; its counterpart is a lock held by another
//! connection on the same file (`busyTimeout`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmdapr_runtime::state::{GetRequest, SetRequest, StateError, StateStore};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec};

/// The longest a call may take while the server is out: the stores below
/// are configured with 500 ms timeouts, so this leaves room for a loaded
/// machine while still catching a hang.
const FAIL_WITHIN: Duration = Duration::from_secs(3);

/// How long the test waits for one call before declaring it hung.
const HUNG_AFTER: Duration = Duration::from_secs(20);

/// Builds a store of `kind` through the registry, as the runtime does.
async fn build(kind: &str, metadata: &[(&str, &str)]) -> Arc<dyn StateStore> {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let factory = registry.state(kind).expect("registered");
    let spec = ComponentSpec {
        name: "outage".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/outage.rs"),
    };
    factory(spec)
        .await
        .unwrap_or_else(|e| panic!("{kind} could not be started: {e}"))
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits until something accepts TCP connections on `port`.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private redis-server without persistence.
struct RedisServer {
    child: Option<Child>,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (is it installed?)");
        wait_for_port(port);
        RedisServer { child: Some(child) }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // Quietly: this may run while a failed test unwinds.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs a PostgreSQL program as the `postgres` user when we are root
/// (initdb and postgres refuse to run as root), else as ourselves.
fn pg_command(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

/// A private PostgreSQL cluster in a temporary directory (trust auth).
struct PostgresServer {
    dir: tempfile::TempDir,
    port: u16,
    /// The processes stopped by [`PostgresServer::pause`].
    paused: Vec<u32>,
}

impl PostgresServer {
    fn start(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wasmdapr-pg-")
            .tempdir()
            .expect("tempdir");
        // The cluster belongs to whoever runs initdb.
        let owner = pg_command("initdb").get_program() == "runuser";
        if owner {
            let status = Command::new("chown")
                .args(["postgres", dir.path().to_str().expect("utf-8")])
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres failed");
        }
        let output = pg_command("initdb")
            .args([
                "-D",
                &Self::data(dir.path()),
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .arg("--no-sync")
            .output()
            .expect("initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let server = PostgresServer {
            dir,
            port,
            paused: Vec::new(),
        };
        server.pg_ctl_start();
        server
    }

    fn data(dir: &Path) -> String {
        dir.join("data").to_str().expect("utf-8").to_owned()
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let output = pg_command("pg_ctl")
            .args(["-D", &Self::data(self.dir.path()), "-o", &options])
            .args(["-l", &format!("{}/log", self.dir.path().display())])
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        wait_for_port(self.port);
    }

    fn stop_immediate(&self) {
        let _ = pg_command("pg_ctl")
            .args(["-D", &Self::data(self.dir.path()), "-m", "immediate", "-w"])
            .arg("stop")
            .output();
    }

    /// The postmaster and its children (one backend per connection).
    fn pids(&self) -> Vec<u32> {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(pid_file).expect("postmaster.pid");
        let postmaster: u32 = text
            .lines()
            .next()
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        let children = Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .expect("pgrep");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        pids
    }

    fn pause(&mut self) {
        self.paused = self.pids();
        for pid in &self.paused {
            signal(*pid, "STOP");
        }
    }

    fn resume(&mut self) {
        for pid in std::mem::take(&mut self.paused) {
            signal(pid, "CONT");
        }
    }

    fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Quietly: this may run while a failed test unwinds.
        for pid in std::mem::take(&mut self.paused) {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.stop_immediate();
    }
}

fn get(key: &str) -> GetRequest {
    GetRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn set(key: &str, value: &[u8]) -> SetRequest {
    SetRequest {
        key: key.into(),
        value: value.to_vec(),
        ..Default::default()
    }
}

/// Runs one call, failing the test if it has not answered after
/// [`HUNG_AFTER`]; returns its result and how long it took.
async fn timed<T>(
    what: &str,
    call: impl Future<Output = Result<T, StateError>>,
) -> (Result<T, StateError>, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(HUNG_AFTER, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {HUNG_AFTER:?}"));
    (result, started.elapsed())
}

/// Reads and writes while the server is out: each must fail, fast.
async fn calls_fail_fast(store: &dyn StateStore, outage: &str) {
    for round in 0..4 {
        let (result, took) = timed("get", store.get(get("outage-key"))).await;
        assert!(
            matches!(result, Err(StateError::Backend(_))),
            "get {round} while {outage}: {result:?}"
        );
        assert!(
            took < FAIL_WITHIN,
            "get {round} while {outage} took {took:?}"
        );
        let (result, took) = timed("set", store.set(set("outage-other", b"x"))).await;
        assert!(
            matches!(result, Err(StateError::Backend(_))),
            "set {round} while {outage}: {result:?}"
        );
        assert!(
            took < FAIL_WITHIN,
            "set {round} while {outage} took {took:?}"
        );
    }
}

/// The first call after the server is back succeeds, and so do the next.
/// `value` is what the server still holds (`None` after a restart without
/// persistence).
async fn first_call_succeeds(store: &dyn StateStore, after: &str, value: Option<&[u8]>) {
    let (result, took) = timed("get", store.get(get("outage-key"))).await;
    let read = result.unwrap_or_else(|e| panic!("first get after {after} (took {took:?}): {e}"));
    assert_eq!(read.map(|v| v.data).as_deref(), value, "after {after}");
    let (result, _) = timed("set", store.set(set("outage-key", b"after"))).await;
    result.unwrap_or_else(|e| panic!("set after {after}: {e}"));
    let (result, _) = timed("get", store.get(get("outage-key"))).await;
    assert_eq!(
        result.expect("get").map(|v| v.data).as_deref(),
        Some(&b"after"[..])
    );
}

/// Redis hung (SIGSTOP) then down (killed): calls fail within
/// `readTimeout`/`dialTimeout`, and the first call after each recovery
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outages() {
    let port = free_port();
    let mut server = RedisServer::start(port);
    let address = format!("127.0.0.1:{port}");
    let store = build(
        "state.redis",
        &[
            ("redisHost", &address),
            ("dialTimeout", "500ms"),
            ("readTimeout", "500ms"),
        ],
    )
    .await;
    store.set(set("outage-key", b"before")).await.expect("set");

    signal(server.pid(), "STOP");
    calls_fail_fast(&*store, "Redis is hung").await;
    signal(server.pid(), "CONT");
    first_call_succeeds(&*store, "Redis resumed", Some(b"before")).await;

    server.kill();
    calls_fail_fast(&*store, "Redis is down").await;
    // Let the client settle into its disconnected state, as a real outage
    // would, before the server comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    calls_fail_fast(&*store, "Redis is still down").await;
    let _server = RedisServer::start(port);
    // The restarted server is empty (no persistence).
    first_call_succeeds(&*store, "Redis restarted", None).await;
}

/// The first call after Redis restarts succeeds even when the client saw
/// nothing of the outage (its connection died unnoticed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_unnoticed() {
    let port = free_port();
    let mut server = RedisServer::start(port);
    let address = format!("127.0.0.1:{port}");
    let store = build(
        "state.redis",
        &[
            ("redisHost", &address),
            ("dialTimeout", "500ms"),
            ("readTimeout", "500ms"),
        ],
    )
    .await;
    store.set(set("outage-key", b"before")).await.expect("set");
    server.kill();
    let _server = RedisServer::start(port);
    let (result, took) = timed("set", store.set(set("outage-key", b"again"))).await;
    result.unwrap_or_else(|e| panic!("first set after the restart (took {took:?}): {e}"));
    first_call_succeeds(&*store, "Redis restarted", Some(b"again")).await;
}

/// PostgreSQL hung (every process stopped) then down (immediate shutdown):
/// calls fail within `timeout`, and the first call after each recovery
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_outages() {
    let mut server = PostgresServer::start(free_port());
    let store = build(
        "state.postgresql",
        &[
            ("connectionString", &server.connection_string()),
            ("timeout", "1s"),
        ],
    )
    .await;
    store.set(set("outage-key", b"before")).await.expect("set");

    server.pause();
    calls_fail_fast(&*store, "PostgreSQL is hung").await;
    server.resume();
    first_call_succeeds(&*store, "PostgreSQL resumed", Some(b"before")).await;

    server.stop_immediate();
    calls_fail_fast(&*store, "PostgreSQL is down").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    calls_fail_fast(&*store, "PostgreSQL is still down").await;
    server.pg_ctl_start();
    first_call_succeeds(&*store, "PostgreSQL restarted", Some(b"after")).await;
}

/// SQLite with the file locked by another connection: writes fail within
/// `timeout` (reads go on: WAL), a write reported as failed is not applied
/// later, and the first call after the lock is released succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let path = path.to_str().expect("utf-8");
    let store = build(
        "state.sqlite",
        &[
            ("connectionString", path),
            ("timeout", "500ms"),
            ("busyTimeout", "300ms"),
        ],
    )
    .await;
    store.set(set("outage-key", b"before")).await.expect("set");

    let blocker = rusqlite::Connection::open(path).expect("open");
    blocker
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the database");
    // Many writers at once while the file is locked: each must be told
    // it failed, in time.
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("locked-{i}");
                timed("set", store.set(set(&key, b"x"))).await
            })
        })
        .collect();
    for writer in writers {
        let (result, took) = writer.await.expect("writer");
        assert!(result.is_err(), "a write succeeded on a locked file");
        assert!(took < FAIL_WITHIN, "a write on a locked file took {took:?}");
    }
    // Reads go on in WAL mode; a write from now on must also fail fast.
    let (result, took) = timed("set", store.set(set("locked-late", b"x"))).await;
    assert!(
        result.is_err() && took < FAIL_WITHIN,
        "{result:?} after {took:?}"
    );
    // Hold the lock past any busy wait still running for a caller that
    // has given up, so only a write run after the release could land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    blocker.execute_batch("ROLLBACK").expect("unlock");
    drop(blocker);

    first_call_succeeds(&*store, "the lock was released", Some(b"before")).await;
    // Writes whose callers were told they failed must not land afterwards.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for key in (0..16)
        .map(|i| format!("locked-{i}"))
        .chain(["locked-late".to_string()])
    {
        let late = store.get(get(&key)).await.expect("get");
        assert_eq!(
            late, None,
            "{key} was written after its caller was told it failed"
        );
    }
}

/// Through the runtime (what the HTTP and gRPC APIs answer): while Redis
/// is down, a read is Dapr's `ERR_STATE_GET` and a write `ERR_STATE_SAVE`,
/// both HTTP 500, within seconds; the first read after the restart works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_reports_dapr_errors() {
    use wasmdapr_runtime::api::StateApi;
    use wasmdapr_runtime::{AppId, Components, Runtime};

    let port = free_port();
    let mut server = RedisServer::start(port);
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let spec = ComponentSpec {
        name: "statestore".into(),
        kind: "state.redis".into(),
        version: "v1".into(),
        metadata: [
            ("redisHost".to_string(), format!("127.0.0.1:{port}")),
            ("dialTimeout".to_string(), "500ms".to_string()),
            ("readTimeout".to_string(), "500ms".to_string()),
        ]
        .into(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/outage.rs"),
    };
    let components = Components::load(vec![spec], &registry)
        .await
        .expect("components");
    let runtime = Runtime::new(AppId::new("outage").expect("app id"), Arc::new(components));
    runtime
        .save_state("statestore", vec![set("k", b"v")])
        .await
        .expect("save");

    for outage in ["hung", "down"] {
        if outage == "hung" {
            signal(server.pid(), "STOP");
        } else {
            server.kill();
        }
        let started = Instant::now();
        let error = tokio::time::timeout(HUNG_AFTER, runtime.get_state("statestore", get("k")))
            .await
            .expect("get hung")
            .expect_err("get while Redis is out");
        assert_eq!((error.code(), error.http_status()), ("ERR_STATE_GET", 500));
        let error = tokio::time::timeout(
            HUNG_AFTER,
            runtime.save_state("statestore", vec![set("k", b"w")]),
        )
        .await
        .expect("save hung")
        .expect_err("save while Redis is out");
        assert_eq!((error.code(), error.http_status()), ("ERR_STATE_SAVE", 500));
        let took = started.elapsed();
        assert!(took < 2 * FAIL_WITHIN, "{outage}: two calls took {took:?}");
        if outage == "hung" {
            signal(server.pid(), "CONT");
        } else {
            server = RedisServer::start(port);
        }
        runtime
            .get_state("statestore", get("k"))
            .await
            .unwrap_or_else(|e| panic!("first get after Redis was {outage}: {e}"));
    }
}

/// A pub/sub broker built through the registry with one subscription
/// (topic `orders`, group `app`) whose handler passes each message's data
/// to [`PubSubProbe::receive`]: what the broker outage tests watch.
struct PubSubProbe {
    broker: Arc<dyn wasmdapr_runtime::pubsub::PubSub>,
    subscription: Option<wasmdapr_runtime::pubsub::Subscription>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
}

impl PubSubProbe {
    async fn start(kind: &str, metadata: &[(&str, &str)]) -> Self {
        use wasmdapr_runtime::pubsub::{ReceivedMessage, SubscribeRequest};
        let mut registry = ComponentRegistry::new();
        wasmdapr_components::register(&mut registry);
        let spec = ComponentSpec {
            name: "outage".into(),
            kind: kind.into(),
            version: "v1".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scopes: Vec::new(),
            source: PathBuf::from("tests/outage.rs"),
        };
        let broker: Arc<dyn wasmdapr_runtime::pubsub::PubSub> =
            registry.build(spec).await.expect(kind);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let subscription = broker
            .subscribe(
                SubscribeRequest {
                    topic: "orders".into(),
                    consumer_group: "app".into(),
                    metadata: Default::default(),
                },
                Arc::new(move |m: ReceivedMessage| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(m.data);
                        Ok(())
                    }
                }),
            )
            .await
            .expect("subscribe");
        PubSubProbe {
            broker,
            subscription: Some(subscription),
            rx,
        }
    }

    async fn publish(&self, data: &str) -> Result<(), wasmdapr_runtime::pubsub::PubSubError> {
        self.broker
            .publish(wasmdapr_runtime::pubsub::PublishRequest {
                topic: "orders".into(),
                data: data.as_bytes().to_vec(),
                ..Default::default()
            })
            .await
    }

    /// The next message's data (failing after [`HUNG_AFTER`]).
    async fn receive(&mut self) -> Vec<u8> {
        tokio::time::timeout(HUNG_AFTER, self.rx.recv())
            .await
            .expect("delivered")
            .expect("subscription open")
    }

    async fn close(mut self) {
        if let Some(subscription) = self.subscription.take() {
            subscription.close().await;
        }
    }
}

/// `pubsub.redis` through a Redis outage: publishes fail fast while the
/// server is down, the first publish after it is back succeeds, and the
/// subscription goes on by itself (its consumer group made again, the
/// server having lost it) and receives what is published after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_pubsub_down_then_back() {
    let port = free_port();
    let mut server = RedisServer::start(port);
    let host = format!("127.0.0.1:{port}");
    let mut probe = PubSubProbe::start(
        "pubsub.redis",
        &[
            ("redisHost", host.as_str()),
            ("dialTimeout", "500ms"),
            ("readTimeout", "500ms"),
            ("processingTimeout", "1s"),
            ("redeliverInterval", "300ms"),
        ],
    )
    .await;
    probe
        .publish("before")
        .await
        .expect("publish before the outage");
    assert_eq!(probe.receive().await, b"before");

    server.kill();
    let started = Instant::now();
    let failed = tokio::time::timeout(HUNG_AFTER, probe.publish("during")).await;
    assert!(
        matches!(failed, Ok(Err(_))),
        "a publish to a stopped server must fail: {failed:?}"
    );
    assert!(started.elapsed() < FAIL_WITHIN, "{:?}", started.elapsed());

    let _server = RedisServer::start(port);
    probe
        .publish("after")
        .await
        .expect("the first publish after the outage");
    assert_eq!(probe.receive().await, b"after");
    probe.close().await;
}

/// A private `nats-server` with JetStream, its store in a temporary
/// directory that outlives restarts of the server.
struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    fn start(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wasmdapr-nats-")
            .tempdir()
            .expect("tempdir");
        let mut server = NatsServer {
            dir,
            port,
            child: None,
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-sd", self.dir.path().to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (is it installed?)");
        wait_for_port(self.port);
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pubsub.jetstream` through a NATS outage: publishes fail with a
/// backend error while the server is down, a publish succeeds once it is
/// back (the stream kept on disk), and the subscription made before the
/// outage goes on by itself and receives what is published after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_down_then_back() {
    use wasmdapr_runtime::pubsub::PubSubError;

    let port = free_port();
    let mut server = NatsServer::start(port);
    let url = format!("nats://127.0.0.1:{port}");
    let mut probe = PubSubProbe::start(
        "pubsub.jetstream",
        &[("natsURL", url.as_str()), ("ackWait", "2s")],
    )
    .await;
    probe
        .publish("before")
        .await
        .expect("publish before the outage");
    assert_eq!(probe.receive().await, b"before");

    server.kill();
    for round in 0..3 {
        let started = Instant::now();
        let failed = tokio::time::timeout(HUNG_AFTER, probe.publish(&format!("during-{round}")))
            .await
            .expect("a publish while NATS is down hung");
        assert!(
            matches!(failed, Err(PubSubError::Backend(_))),
            "publish {round} while NATS is down: {failed:?}"
        );
        // The client waits a short grace for a reconnect, no more.
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(6),
            "publish {round} took {took:?}"
        );
    }

    server.restart();
    // The client reconnects within a second or so; the first publish
    // waits for that (it is not refused while a reconnect is under way).
    let started = Instant::now();
    probe.publish("after").await.unwrap_or_else(|e| {
        panic!(
            "the first publish after the outage ({:?}): {e}",
            started.elapsed()
        )
    });
    // The server was killed: an ack it had not written yet is lost, so
    // `before` may come again (at-least-once); `after` must come. A
    // publish made before the client noticed the outage (round 0) waited
    // in the client and is sent on reconnect: its outcome was unknown
    // (timed out), not refused. Those made once the client knew were
    // never sent.
    let mut got = Vec::new();
    while !got.iter().any(|m| m == "after") {
        got.push(String::from_utf8(probe.receive().await).expect("utf-8"));
    }
    // Past `ackWait`, for an unacked `before` to come again.
    while let Ok(Some(more)) = tokio::time::timeout(Duration::from_secs(3), probe.rx.recv()).await {
        got.push(String::from_utf8(more).expect("utf-8"));
    }
    for message in &got {
        assert!(
            ["before", "during-0", "after"].contains(&message.as_str()),
            "{message} was delivered: {got:?}"
        );
    }
    probe.close().await;
}

/// A private Mosquitto (no configuration: anonymous clients on the
/// loopback) on `port`.
struct MosquittoServer {
    port: u16,
    child: Option<Child>,
}

impl MosquittoServer {
    fn start(port: u16) -> Self {
        let mut server = MosquittoServer { port, child: None };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .args(["-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (is it installed?)");
        wait_for_port(self.port);
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MosquittoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pubsub.mqtt3` through a broker outage: publishes fail with a backend
/// error while Mosquitto is down, succeed once it is back, and the
/// subscription subscribes again by itself (its session was clean) and
/// receives what is published after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt3_down_then_back() {
    use wasmdapr_runtime::pubsub::PubSubError;

    let port = free_port();
    let mut server = MosquittoServer::start(port);
    let url = format!("tcp://127.0.0.1:{port}");
    let mut probe = PubSubProbe::start("pubsub.mqtt3", &[("url", url.as_str())]).await;
    probe
        .publish("before")
        .await
        .expect("publish before the outage");
    assert_eq!(probe.receive().await, b"before");

    server.kill();
    // Once the client noticed, publishes fail within the reconnect grace.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..3 {
        let started = Instant::now();
        let failed = tokio::time::timeout(HUNG_AFTER, probe.publish("during"))
            .await
            .expect("a publish while Mosquitto is down hung");
        assert!(
            matches!(failed, Err(PubSubError::Backend(_))),
            "publish {round} while Mosquitto is down: {failed:?}"
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "publish {round} took {took:?}"
        );
    }

    server.restart();
    probe
        .publish("first")
        .await
        .expect("the first publish after the outage");
    // The subscription's own reconnect and subscribe may come a moment
    // after the publisher's; what is published meanwhile is not kept
    // (MQTT 3, clean sessions), so publish until one arrives.
    let deadline = Instant::now() + HUNG_AFTER;
    let mut n = 0;
    loop {
        let data = format!("after-{n}");
        probe
            .publish(&data)
            .await
            .expect("publish after the outage");
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(300), probe.rx.recv()).await
        {
            let got = String::from_utf8(got).expect("utf-8");
            assert!(got.starts_with("after-") || got == "first", "{got}");
            break;
        }
        assert!(Instant::now() < deadline, "the subscription did not resume");
        n += 1;
    }
    probe.close().await;
}

/// A private RabbitMQ node (its own name, port, configuration and
/// database in a temporary directory), run as the `rabbitmq` user when we
/// are root, as the package's scripts require.
struct RabbitServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl RabbitServer {
    fn start(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wasmdapr-rabbit-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("rabbitmq.conf");
        let mut server = RabbitServer {
            dir,
            port,
            child: None,
        };
        if server.as_root() {
            let status = Command::new("chown")
                .args(["-R", "rabbitmq:", server.path()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown rabbitmq failed");
        }
        server.restart();
        server
    }

    fn as_root(&self) -> bool {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        String::from_utf8_lossy(&uid.stdout).trim() == "0"
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8")
    }

    fn restart(&mut self) {
        let dir = self.path().to_owned();
        let mut command = if self.as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "rabbitmq", "--", "env", "HOME=/var/lib/rabbitmq"]);
            c.arg("/usr/lib/rabbitmq/bin/rabbitmq-server");
            c
        } else {
            Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
        };
        let port = self.port;
        // The distribution port must be free too: a free port's neighbour
        // below 32768 is not guaranteed, so ask for one.
        let dist = free_port();
        command
            .env("RABBITMQ_NODENAME", format!("wasmdapr{port}@localhost"))
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia"))
            .env("RABBITMQ_LOG_BASE", format!("{dir}/log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", format!("{dir}/pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("rabbitmq-server (is it installed?)");
        self.child = Some(child);
        // A node takes seconds to boot.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "RabbitMQ did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the node (the Erlang VM, by its pid file) as a crash would.
    fn kill(&mut self) {
        let pid_file = self.dir.path().join("pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            let _ = std::fs::remove_file(pid_file);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "RabbitMQ did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pubsub.rabbitmq` through a broker crash: publishes fail with a backend
/// error while RabbitMQ is down, the first publish after it is back
/// succeeds (the publisher connects again), and the subscription connects
/// and consumes again by itself; its durable queue kept what was published
/// before it was back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_down_then_back() {
    use wasmdapr_runtime::pubsub::PubSubError;

    let port = free_port();
    let mut server = RabbitServer::start(port);
    let url = format!("amqp://guest:guest@127.0.0.1:{port}");
    let mut probe = PubSubProbe::start(
        "pubsub.rabbitmq",
        &[
            ("connectionString", url.as_str()),
            ("deletedWhenUnused", "false"),
            ("deliveryMode", "2"),
            ("reconnectWaitSeconds", "1"),
        ],
    )
    .await;
    probe
        .publish("before")
        .await
        .expect("publish before the outage");
    assert_eq!(probe.receive().await, b"before");

    server.kill();
    for round in 0..3 {
        let started = Instant::now();
        let failed = tokio::time::timeout(HUNG_AFTER, probe.publish("during"))
            .await
            .expect("a publish while RabbitMQ is down hung");
        assert!(
            matches!(failed, Err(PubSubError::Backend(_))),
            "publish {round} while RabbitMQ is down: {failed:?}"
        );
        let took = started.elapsed();
        assert!(took < FAIL_WITHIN, "publish {round} took {took:?}");
    }

    server.restart();
    probe
        .publish("after")
        .await
        .expect("the first publish after the outage");
    // Killed, the node may not have written `before`'s ack: it comes
    // again (at-least-once); `during` never does.
    loop {
        let got = probe.receive().await;
        match &got[..] {
            b"after" => break,
            b"before" => {}
            other => panic!("{} was delivered", String::from_utf8_lossy(other)),
        }
    }
    probe.close().await;
}
