//! Compatibility, judged by real clients: the official Dapr SDKs (Python
//! `dapr` over gRPC, `@dapr/dapr` over HTTP) run their suites against a
//! `wasmdapr sidecar` process, once on the embedded SQLite default and once
//! on Redis through a component file; the Rust `dapr` crate runs here.
//! What the SDKs publish is read back through the broker itself.
//! `scripts/setup.sh` installs the Python and JavaScript SDKs.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{REDIS, Sidecar, components, start_sidecar};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one SDK suite against a fresh sidecar (embedded default, or the
/// given component YAML).
fn against(yaml: Option<&str>, suite: fn(&Sidecar)) {
    let dir = tempfile::tempdir().unwrap();
    let resources = yaml.map(|y| components(dir.path(), y));
    suite(&start_sidecar(dir.path(), resources.as_deref()));
}

fn run_suite(mut cmd: Command, sidecar: &Sidecar, what: &str) {
    let out = cmd
        .env("DAPR_HTTP_PORT", sidecar.http.to_string())
        .env("DAPR_GRPC_PORT", sidecar.grpc.to_string())
        .env("DAPR_RUNTIME_HOST", "127.0.0.1")
        .env("STORE", "statestore")
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e}); run scripts/setup.sh"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    eprintln!("{what}:\n{text}");
}

fn python_suite(sidecar: &Sidecar) {
    python_module(sidecar, "test_state");
}

/// The Python SDK reading Dapr's rich error details (`test_errors.py`).
fn python_errors_suite(sidecar: &Sidecar) {
    python_module(sidecar, "test_errors");
}

fn python_module(sidecar: &Sidecar, module: &str) {
    run_suite(python_unittest(module), sidecar, "Dapr Python SDK");
}

/// `python -m unittest -v MODULE` in the SDK suites' folder, with the
/// `.venv` of `scripts/setup.sh`.
fn python_unittest(module: &str) -> Command {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
        .args(["-m", "unittest", "-v", module]);
    cmd
}

fn js_suite(sidecar: &Sidecar) {
    let dir = repo().join("crates/wasmdapr/tests/sdk/js");
    assert!(
        dir.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(dir).args(["--test", "state.test.mjs"]);
    run_suite(cmd, sidecar, "Dapr JavaScript SDK");
}

/// The Python SDK's state suite passes against the embedded SQLite default.
#[test]
fn python_sdk_on_embedded_sqlite() {
    against(None, python_suite);
}

/// The Python SDK's state suite passes against Redis.
#[test]
fn python_sdk_on_redis() {
    against(Some(REDIS), python_suite);
}

/// The Python SDK reads Dapr's rich errors (`DaprGrpcError` details,
/// `DaprHttpError` code, message and body) from both doors.
#[test]
fn python_sdk_reads_rich_errors() {
    against(None, python_errors_suite);
}

/// The first `count` events of `topic`, read back through `broker` itself
/// (a subscription of a group of its own, which starts at the beginning of
/// what the broker keeps).
async fn read_topic(
    broker: std::sync::Arc<dyn wasmdapr_runtime::pubsub::PubSub>,
    topic: &str,
    count: usize,
) -> Vec<Vec<u8>> {
    use wasmdapr_runtime::pubsub::{ReceivedMessage, SubscribeRequest};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReceivedMessage>();
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                consumer_group: "verifier".into(),
                metadata: Default::default(),
            },
            std::sync::Arc::new(move |m: ReceivedMessage| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(m);
                    Ok(())
                }
            }),
        )
        .await
        .expect("subscribing to the broker");
    let mut events = Vec::new();
    while events.len() < count {
        let m = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("only {} of {count} events reached the broker", events.len())
            })
            .expect("subscription open");
        events.push(m.data);
    }
    subscription.close().await;
    events
}

/// What the Python SDK's publish suite (`test_pubsub.py`) sent to `topic`,
/// as the broker holds it: the CloudEvents daprd would have built, the raw
/// payload untouched.
async fn verify_python_publishes(
    broker: std::sync::Arc<dyn wasmdapr_runtime::pubsub::PubSub>,
    topic: &str,
) {
    let events = read_topic(broker, topic, 8).await;
    let raw: Vec<&Vec<u8>> = events.iter().filter(|e| e.first() == Some(&0)).collect();
    assert_eq!(raw, [&b"\x00raw".to_vec()], "the raw payload, untouched");
    let ces: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.first() != Some(&0))
        .map(|e| serde_json::from_slice(e).expect("a JSON CloudEvent"))
        .collect();
    for ce in &ces {
        assert_eq!(ce["source"], "tests", "{ce}");
        assert_eq!(ce["topic"], topic, "{ce}");
        assert_eq!(ce["pubsubname"], "pubsub", "{ce}");
        assert_eq!(ce["specversion"], "1.0", "{ce}");
        assert!(ce["id"].as_str().is_some_and(|id| id.len() == 36), "{ce}");
        assert!(
            ce["traceparent"]
                .as_str()
                .is_some_and(|t| t.starts_with("00-")),
            "{ce}"
        );
    }
    let find = |data: serde_json::Value| {
        ces.iter()
            .find(|ce| ce["data"] == data)
            .unwrap_or_else(|| panic!("no event with data {data}: {ces:?}"))
    };
    let order = find(serde_json::json!({"orderId": 1, "big": 12345678901234567890u64}));
    assert_eq!(order["type"], "order.created");
    assert_eq!(order["datacontenttype"], "application/json");
    let events_text: Vec<String> = events
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    assert!(
        events_text
            .iter()
            .any(|t| t.contains("12345678901234567890")),
        "big numbers keep every digit"
    );
    let plain = find("plain".into());
    assert_eq!(plain["type"], "com.dapr.event.sent");
    assert!(
        plain["expiration"].is_string(),
        "ttlInSeconds sets expiration: {plain}"
    );
    for data in ["bulk-1", "bulk-2", "bulk-3"] {
        assert_eq!(find(data.into())["datacontenttype"], "text/plain");
    }
    find(serde_json::json!({"n": 1}));
    find(serde_json::json!({"n": 2}));
}

/// A Redis state store and a Redis Streams pub/sub named `pubsub`.
const REDIS_WITH_PUBSUB: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
";

/// Runs `test_pubsub.py` against `sidecar`, publishing to `topic`.
fn python_publishes(sidecar: &Sidecar, topic: &str) {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
        .args(["-m", "unittest", "-v", "test_pubsub"])
        .env("PUBSUB", "pubsub")
        .env("TOPIC", topic);
    run_suite(cmd, sidecar, "Dapr Python SDK (publish)");
}

/// The Python SDK's `publish_event` and `publish_events` through the
/// embedded default: the events are in the SQLite queue next to the state
/// store, read back through the `pubsub.sqlite` broker on the same file.
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_publishes_on_embedded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = start_sidecar(dir.path(), None);
    let topic = format!("python-{}", uuid_like());
    python_publishes(&sidecar, &topic);
    let file = dir.path().join(".wasmdapr").join("pubsub.db");
    assert!(
        file.exists(),
        "the embedded pub/sub keeps {}",
        file.display()
    );
    let broker = broker(
        "pubsub.sqlite",
        &[
            ("connectionString", file.to_str().unwrap()),
            ("pollInterval", "50ms"),
        ],
    )
    .await;
    verify_python_publishes(broker, &topic).await;
}

/// The Python SDK publishes to Redis Streams; the stream is read back
/// through the `pubsub.redis` broker (a consumer group of its own).
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_publishes_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), REDIS_WITH_PUBSUB);
    let sidecar = start_sidecar(dir.path(), Some(&resources));
    let topic = format!("python-{}", uuid_like());
    python_publishes(&sidecar, &topic);
    let broker = broker("pubsub.redis", &[("redisHost", "127.0.0.1:6379")]).await;
    verify_python_publishes(broker, &topic).await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&topic)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// The JavaScript SDK's `client.pubsub.publish` (an object, a string, a
/// CloudEvent it detects and sends as `application/cloudevents+json`) and
/// `publishBulk` (the alpha bulk route) through the HTTP API of the
/// embedded default, read back from the SQLite queue.
#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_publishes_on_embedded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = start_sidecar(dir.path(), None);
    let topic = format!("js-{}", uuid_like());
    let js = repo().join("crates/wasmdapr/tests/sdk/js");
    assert!(
        js.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(js)
        .args(["--test", "pubsub.test.mjs"])
        .env("PUBSUB", "pubsub")
        .env("TOPIC", &topic);
    run_suite(cmd, &sidecar, "Dapr JavaScript SDK (publish)");
    let file = dir.path().join(".wasmdapr").join("pubsub.db");
    let broker = broker(
        "pubsub.sqlite",
        &[
            ("connectionString", file.to_str().unwrap()),
            ("pollInterval", "50ms"),
        ],
    )
    .await;
    let events: Vec<serde_json::Value> = read_topic(broker, &topic, 6)
        .await
        .iter()
        .map(|e| serde_json::from_slice(e).expect("a JSON CloudEvent"))
        .collect();
    let find = |data: serde_json::Value| {
        events
            .iter()
            .find(|ce| ce["data"] == data)
            .unwrap_or_else(|| panic!("no event with data {data}: {events:?}"))
    };
    let order = find(serde_json::json!({"orderId": 7}));
    assert_eq!(order["source"], "tests");
    assert_eq!(order["datacontenttype"], "application/json");
    assert_eq!(find("hello".into())["datacontenttype"], "text/plain");
    let ce = find(serde_json::json!({"ce": true}));
    assert_eq!(
        (
            ce["id"].as_str(),
            ce["source"].as_str(),
            ce["type"].as_str()
        ),
        (Some("js-ce-1"), Some("js-test"), Some("js.type")),
        "a CloudEvent passes through: {ce}"
    );
    assert_eq!(ce["pubsubname"], "pubsub");
    find("bulk-a".into());
    find("bulk-b".into());
    find(serde_json::json!({"n": 3}));
}

/// The Rust `dapr` crate's `publish_event` (gRPC) through Redis Streams,
/// with a `cloudevent.id` override; an unknown pub/sub is an error.
#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_publishes_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), REDIS_WITH_PUBSUB);
    let sidecar = start_sidecar(dir.path(), Some(&resources));
    let mut client = dapr::Client::<dapr::client::TonicClientWithAuth>::connect_with_address(
        format!("http://127.0.0.1:{}", sidecar.grpc),
    )
    .await
    .expect("connecting the Rust SDK");
    let topic = format!("rust-{}", uuid_like());
    let metadata = std::collections::HashMap::from([(
        "cloudevent.id".to_string(),
        "rust-event-1".to_string(),
    )]);
    client
        .publish_event(
            "pubsub",
            topic.as_str(),
            "application/json",
            br#"{"from":"rust"}"#.to_vec(),
            Some(metadata),
        )
        .await
        .expect("publish_event");
    let refused = client
        .publish_event(
            "no-such-pubsub",
            topic.as_str(),
            "text/plain",
            b"x".to_vec(),
            None,
        )
        .await;
    assert!(refused.is_err(), "an unknown pub/sub must be refused");
    let broker = broker("pubsub.redis", &[("redisHost", "127.0.0.1:6379")]).await;
    let events = read_topic(broker, &topic, 1).await;
    let ce: serde_json::Value = serde_json::from_slice(&events[0]).unwrap();
    assert_eq!(ce["id"], "rust-event-1");
    assert_eq!(ce["data"], serde_json::json!({"from": "rust"}));
    assert_eq!(ce["source"], "tests");
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&topic)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// A broker of `kind` built as the sidecar builds it.
async fn broker(
    kind: &str,
    metadata: &[(&str, &str)],
) -> std::sync::Arc<dyn wasmdapr_runtime::pubsub::PubSub> {
    let mut registry = wasmdapr_runtime::ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let spec = wasmdapr_runtime::ComponentSpec {
        name: "verifier".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/sdk.rs"),
    };
    registry.build(spec).await.expect("the broker")
}

/// A fresh name part (pid and time), so runs never share a topic.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// The JavaScript SDK's state suite passes against the embedded SQLite default.
#[test]
fn js_sdk_on_embedded_sqlite() {
    against(None, js_suite);
}

/// The JavaScript SDK's state suite passes against Redis.
#[test]
fn js_sdk_on_redis() {
    against(Some(REDIS), js_suite);
}

/// The Rust `dapr` crate's client (gRPC): save, read with an ETag, a stale
/// ETag refused, bulk save, query and delete, against Redis.
#[tokio::test]
async fn rust_sdk_on_redis() {
    use dapr::dapr::proto::common::v1::{Etag, StateItem};
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), REDIS);
    let sidecar = start_sidecar(dir.path(), Some(&resources));
    let mut client = dapr::Client::<dapr::client::TonicClientWithAuth>::connect_with_address(
        format!("http://127.0.0.1:{}", sidecar.grpc),
    )
    .await
    .expect("connecting the Rust SDK");
    let key = format!("rust-{}", std::process::id());

    client
        .save_state(
            "statestore",
            key.as_str(),
            b"Death Star".to_vec(),
            None,
            None,
            None,
        )
        .await
        .unwrap();
    let got = client
        .get_state("statestore", key.as_str(), None)
        .await
        .unwrap();
    assert_eq!(got.data, b"Death Star");
    let stale = Etag {
        value: got.etag.clone(),
    };
    client
        .save_state(
            "statestore",
            key.as_str(),
            b"v2".to_vec(),
            Some(stale.clone()),
            None,
            None,
        )
        .await
        .unwrap();
    let refused = client
        .save_state(
            "statestore",
            key.as_str(),
            b"v3".to_vec(),
            Some(stale),
            None,
            None,
        )
        .await;
    assert!(refused.is_err(), "a stale etag must be refused");
    assert_eq!(
        client
            .get_state("statestore", key.as_str(), None)
            .await
            .unwrap()
            .data,
        b"v2"
    );

    let team = format!("rust-team-{}", std::process::id());
    let items: Vec<StateItem> = (0..3)
        .map(|n| StateItem {
            key: format!("{team}-{n}"),
            value: format!(r#"{{"team":"{team}","n":{n}}}"#).into_bytes(),
            ..Default::default()
        })
        .collect();
    client.save_bulk_states("statestore", items).await.unwrap();
    let query = serde_json::json!({"filter": {"EQ": {"team": team}}, "sort": [{"key": "n", "order": "DESC"}]});
    let found = client
        .query_state_alpha1("statestore", query, None)
        .await
        .unwrap();
    let keys: Vec<_> = found.results.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        [
            format!("{team}-2"),
            format!("{team}-1"),
            format!("{team}-0")
        ]
    );

    client
        .delete_state("statestore", key.as_str(), None)
        .await
        .unwrap();
    assert!(
        client
            .get_state("statestore", key.as_str(), None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
}

/// A Dapr subscriber app as the quickstarts write it (Python's standard
/// `http.server`, `GET /dapr/subscribe` and a route) behind
/// `wasmdapr sidecar --app-port` on the embedded default: an event
/// published with the Python SDK's `publish_event` reaches it as a
/// CloudEvent with the fields of Dapr's envelope.
#[test]
fn python_app_receives_events_published_by_the_python_sdk() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let topic = format!("python-app-{}", uuid_like());
    let out = dir.path().join("received.jsonl");
    let app_port = common::free_port();
    let mut app = Command::new("python3")
        .arg(repo().join("crates/wasmdapr/tests/sdk/python/subscriber_app.py"))
        .env("APP_PORT", app_port.to_string())
        .env("PUBSUB", "pubsub")
        .env("TOPIC", &topic)
        .env("OUT", &out)
        .spawn()
        .expect("python3");
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (mut cmd, http, grpc) = common::sidecar_command(dir.path(), None);
    let child = cmd
        .args(["--app-port", &app_port.to_string()])
        .spawn()
        .expect("starting wasmdapr sidecar");
    let sidecar = Sidecar { child, http, grpc };
    // Healthy once the app is connected and its subscriptions started.
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::http(http, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        assert!(app.try_wait().unwrap().is_none(), "the app exited");
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let app = KillOnDrop(app);

    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
        .arg("publish_one.py")
        .env("PUBSUB", "pubsub")
        .env("TOPIC", &topic);
    run_suite(cmd, &sidecar, "Dapr Python SDK (publish_event)");

    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        if let Some(line) = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
        {
            break line;
        }
        assert!(Instant::now() < deadline, "the app received nothing");
        std::thread::sleep(Duration::from_millis(50));
    };
    let received: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(received["content_type"], "application/cloudevents+json");
    let ce = &received["event"];
    assert!(
        ce["id"].as_str().is_some_and(|id| id.len() == 36),
        "a UUID id: {ce}"
    );
    assert_eq!(ce["source"], "tests", "the publisher's app id");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["topic"], topic.as_str());
    assert_eq!(ce["pubsubname"], "pubsub");
    assert_eq!(
        ce["data"],
        serde_json::json!({"orderId": 42, "item": "tea"})
    );
    assert!(
        ce["traceparent"]
            .as_str()
            .is_some_and(|t| t.starts_with("00-"))
    );
    // Acked: not delivered again.
    std::thread::sleep(Duration::from_millis(1500));
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(lines, 1, "delivered once");
    drop(app);
}

/// A `pubsub.sqlite` queue named `pubsub` in `file`, redelivering after 100 ms.
fn sqlite_pubsub(file: &Path) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: {}
  - name: redeliverInterval
    value: 100ms
  - name: pollInterval
    value: 50ms
",
        file.display()
    )
}

/// The JSON lines the app wrote to `out` so far.
fn app_records(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The Python SDK's gRPC app server (`dapr.ext.grpc.App`, unmodified, as
/// its `invoke-simple` and `pubsub-simple` examples use it) behind
/// `wasmdapr sidecar --app-protocol grpc --app-port`: `DaprClient`'s
/// `invoke_method` reaches `@app.method` over both APIs of its sidecar and
/// from another sidecar (`OnInvoke`), and gets its `InvokeMethodResponse`; the app's `@app.subscribe` handlers are
/// found with `ListTopicSubscriptions` and get the events `publish_event`
/// sends (`OnTopicEvent`): SUCCESS is delivered once, RETRY again until
/// SUCCESS, DROP goes to the subscription's dead-letter topic, whose handler
/// gets it. A declarative bulk subscription routed to one of the app's
/// handlers is delivered with `OnBulkTopicEvent` (the SDK hands each
/// entry's metadata to the handler as plain extensions, which only bulk
/// delivery does), each entry settled by its own status.
#[test]
fn python_grpc_app_behind_the_sidecar() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let topic = format!("grpc-app-{}", uuid_like());
    let bulk = format!(
        "---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: bulk
spec:
  pubsubname: pubsub
  topic: {topic}-bulk
  routes:
    default: {topic}-bulk-handler
  bulkSubscribe:
    enabled: true
    maxMessagesCount: 10
    maxAwaitDurationMs: 100
"
    );
    let resources = components(
        dir.path(),
        &(sqlite_pubsub(&dir.path().join("queue.db")) + &bulk),
    );
    let out = dir.path().join("received.jsonl");
    let app_port = common::free_port();
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut app = KillOnDrop(
        Command::new(&python)
            .arg(repo().join("crates/wasmdapr/tests/sdk/python/grpc_app.py"))
            .env("APP_PORT", app_port.to_string())
            .env("PUBSUB", "pubsub")
            .env("TOPIC", &topic)
            .env("OUT", &out)
            .spawn()
            .expect("the Python gRPC app"),
    );
    // Name resolution of this test's own, for the caller's sidecar.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\n\
             spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
             \x20     connectionString: {}\n",
            dir.path().join("nr.db").display()
        ),
    )
    .unwrap();
    let (mut cmd, http, grpc) = common::sidecar_command(dir.path(), Some(&resources));
    let child = cmd
        .args([
            "--app-port",
            &app_port.to_string(),
            "--app-protocol",
            "grpc",
            "--app-max-concurrency",
            "4",
        ])
        .arg("--config")
        .arg(&config)
        .spawn()
        .expect("starting wasmdapr sidecar");
    let sidecar = Sidecar { child, http, grpc };
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::http(http, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        assert!(app.0.try_wait().unwrap().is_none(), "the app exited");
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, metadata) = common::http(http, "GET", "/v1.0/metadata", "").unwrap();
    assert_eq!(status, 200);
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["appConnectionProperties"]["protocol"], "grpc");
    assert_eq!(
        metadata["appConnectionProperties"]["maxConcurrency"], 4,
        "{metadata}"
    );

    // A sidecar without an app, calling the app's sidecar.
    let (caller_http, caller_grpc) = (common::free_port(), common::free_port());
    let caller = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(dir.path())
        .args(["sidecar", "--app-id", "grpc-caller", "--config"])
        .arg(&config)
        .args(["--dapr-http-port", &caller_http.to_string()])
        .args(["--dapr-grpc-port", &caller_grpc.to_string()])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .env_remove("DAPR_API_TOKEN")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting the caller's sidecar");
    let _caller = Sidecar {
        child: caller,
        http: caller_http,
        grpc: caller_grpc,
    };
    while common::http(caller_http, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        assert!(Instant::now() < deadline, "the caller did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Invocations over the HTTP API (the SDK's default), then over gRPC,
    // then from the other sidecar.
    let client = |protocol: &str, publish: bool, (http, grpc): (u16, u16)| {
        let mut cmd = Command::new(&python);
        cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
            .arg("grpc_app_client.py")
            .env("APP_ID", "tests")
            .env("PUBSUB", "pubsub")
            .env("TOPIC", &topic)
            .env("DAPR_API_METHOD_INVOCATION_PROTOCOL", protocol)
            .env("DAPR_HTTP_PORT", http.to_string())
            .env("DAPR_GRPC_PORT", grpc.to_string())
            .env("DAPR_RUNTIME_HOST", "127.0.0.1");
        if publish {
            cmd.env("PUBLISH", "1");
        }
        let output = cmd.output().expect("the Python client");
        assert!(
            output.status.success(),
            "the client failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the client's JSON line");
        assert_eq!(
            answer["text"], r#"INVOKE_RECEIVED {"id": 1, "message": "hello world"}"#,
            "over {protocol}"
        );
        // The SDK's HTTP client reads the media type without parameters.
        let content_type = if protocol == "grpc" {
            "text/plain; charset=UTF-8"
        } else {
            "text/plain"
        };
        assert_eq!(answer["content_type"], content_type, "over {protocol}");
    };
    client("http", true, (http, grpc));
    client("grpc", false, (http, grpc));
    client("http", false, (caller_http, caller_grpc));

    let deadline = Instant::now() + Duration::from_secs(20);
    let count = |records: &[serde_json::Value], kind: &str| {
        records.iter().filter(|r| r["kind"] == kind).count()
    };
    let records = loop {
        let records = app_records(&out);
        let done = count(&records, "invoke") >= 3
            && count(&records, "success") >= 1
            && count(&records, "retry") >= 2
            && count(&records, "dead") >= 1
            && count(&records, "bulk") >= 4;
        if done {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not get every call and event: {records:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let invokes: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["kind"] == "invoke").collect();
    for (invoke, caller) in invokes.iter().zip(["tests", "tests", "grpc-caller"]) {
        assert_eq!(invoke["data"], r#"{"id": 1, "message": "hello world"}"#);
        assert_eq!(invoke["content_type"], "application/json");
        assert_eq!(invoke["caller"], caller, "dapr-caller-app-id: {invoke}");
    }
    let success = records.iter().find(|r| r["kind"] == "success").unwrap();
    let data = |record: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(record["data"].as_str().expect("data")).expect("JSON data")
    };
    assert_eq!(
        data(success),
        serde_json::json!({"id": "plain", "message": "hello world"}),
        "JSON data as its bytes: {success}"
    );
    assert_eq!(success["type"], "com.dapr.event.sent");
    assert_eq!(success["source"], "tests");
    assert_eq!(success["content_type"], "application/json");
    assert_eq!(success["extensions"]["topic"], topic.as_str());
    assert_eq!(success["extensions"]["pubsubname"], "pubsub");
    let trace = |key: &str| {
        let value = success["extensions"][key].as_str().unwrap_or_default();
        assert!(value.starts_with("00-"), "{key}: {success}");
        value[3..35].to_owned()
    };
    assert_eq!(
        trace("traceparent"),
        trace("_metadata_traceparent"),
        "the publisher's trace in the extensions, the delivery's span of it in the metadata"
    );
    let retries: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["kind"] == "retry").collect();
    assert_eq!(retries[0]["first"], true);
    assert_eq!(retries[1]["first"], false);
    assert_eq!(retries[0]["id"], retries[1]["id"], "the same event again");
    let dropped = records.iter().find(|r| r["kind"] == "drop").unwrap();
    let dead = records.iter().find(|r| r["kind"] == "dead").unwrap();
    assert_eq!(
        dead["id"], dropped["id"],
        "the dropped event, dead-lettered"
    );
    assert_eq!(
        data(dead),
        serde_json::json!({"id": "-drop", "message": "hello world"})
    );

    let bulk: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "bulk").collect();
    for n in [1, 2] {
        let deliveries: Vec<&&serde_json::Value> = bulk
            .iter()
            .filter(|r| data(r) == serde_json::json!({"id": format!("bulk-{n}")}))
            .collect();
        assert_eq!(deliveries.len(), 2, "RETRY, then SUCCESS: {bulk:#?}");
        for delivery in deliveries {
            assert_eq!(
                delivery["extensions"]["origin"], "client",
                "entry metadata, as OnBulkTopicEvent gives it: {delivery}"
            );
        }
    }

    // Acked events are not delivered again.
    std::thread::sleep(Duration::from_millis(1500));
    let records = app_records(&out);
    assert_eq!(
        (
            count(&records, "invoke"),
            count(&records, "success"),
            count(&records, "retry"),
            count(&records, "drop"),
            count(&records, "dead"),
            count(&records, "bulk")
        ),
        (3, 1, 2, 1, 1, 4),
        "each event settled once: {records:#?}"
    );
    drop(sidecar);
}

/// The JavaScript SDK's bulk subscriber (`DaprServer`'s
/// `pubsub.subscribeBulk`, HTTP) behind `wasmdapr sidecar --app-port` on
/// Redis Streams: its `/dapr/subscribe` asks for batches, the sidecar POSTs
/// Dapr's BulkSubscribeMessage (the SDK's handler reads only `entries`, so
/// nothing reaches the callback without one), and each entry is settled by
/// the SDK's per-entry status: RETRY delivered again, SUCCESS once.
#[test]
fn js_sdk_bulk_subscriber_behind_the_sidecar() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let topic = format!("js-bulk-{}", uuid_like());
    let resources = components(
        dir.path(),
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
  - name: processingTimeout
    value: 200ms
  - name: redeliverInterval
    value: 100ms
",
    );
    let out = dir.path().join("received.jsonl");
    let app_port = common::free_port();
    let (mut cmd, http, grpc) = common::sidecar_command(dir.path(), Some(&resources));
    let js = repo().join("crates/wasmdapr/tests/sdk/js");
    assert!(
        js.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut app = KillOnDrop(
        Command::new("node")
            .current_dir(&js)
            .arg("bulk_app.mjs")
            .env("APP_PORT", app_port.to_string())
            .env("DAPR_HTTP_PORT", http.to_string())
            .env("PUBSUB", "pubsub")
            .env("TOPIC", &topic)
            .env("OUT", &out)
            .spawn()
            .expect("node"),
    );
    let child = cmd
        .args(["--app-port", &app_port.to_string()])
        .spawn()
        .expect("starting wasmdapr sidecar");
    let _sidecar = Sidecar { child, http, grpc };
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::http(http, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        assert!(app.0.try_wait().unwrap().is_none(), "the app exited");
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kinds = ["ok", "retry", "ok", "ok", "retry", "ok", "ok"];
    let entries: Vec<serde_json::Value> = kinds
        .iter()
        .enumerate()
        .map(|(n, kind)| {
            serde_json::json!({"entryId": n.to_string(), "event": {"kind": kind, "n": n},
                               "contentType": "application/json"})
        })
        .collect();
    let (status, body) = common::http(
        http,
        "POST",
        &format!("/v1.0-alpha1/publish/bulk/pubsub/{topic}"),
        &serde_json::to_string(&entries).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = kinds.len() + 2;
    let records = loop {
        let records = app_records(&out);
        if records.len() >= expected {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} deliveries: {records:#?}",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(app_records(&out).len(), expected, "settled: {records:#?}");
    for (n, kind) in kinds.iter().enumerate() {
        let deliveries: Vec<&serde_json::Value> =
            records.iter().filter(|r| r["data"]["n"] == n).collect();
        let times = if *kind == "retry" { 2 } else { 1 };
        assert_eq!(deliveries.len(), times, "event {n}: {records:#?}");
        assert_eq!(deliveries[0]["data"]["kind"], *kind);
    }
}

/// The JavaScript SDK's `DaprServer` as the app on `--app-port` of the
/// embedded default: its subscriptions (CEL routing rules, a default route,
/// a dead-letter topic with its own handler) are read from
/// `GET /dapr/subscribe`, and its handlers' SUCCESS, RETRY and DROP are
/// honoured, as `subscriber.test.mjs` checks.
#[test]
fn js_sdk_server_subscribes_with_routes_and_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let app_port = common::free_port();
    let (mut cmd, http, grpc) = common::sidecar_command(dir.path(), None);
    let child = cmd
        .args(["--app-port", &app_port.to_string()])
        .spawn()
        .expect("starting wasmdapr sidecar");
    let sidecar = Sidecar { child, http, grpc };
    let js = repo().join("crates/wasmdapr/tests/sdk/js");
    assert!(
        js.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(js)
        .args(["--test", "subscriber.test.mjs"])
        .env("APP_PORT", app_port.to_string())
        .env("TOPIC", format!("js-sub-{}", uuid_like()));
    run_suite(cmd, &sidecar, "Dapr JavaScript SDK (DaprServer subscriber)");
}

/// Streaming subscriptions judged by the Python SDK (`test_streaming.py`):
/// `subscribe` + `next_message` + `respond_success|retry|drop` and
/// `subscribe_with_handler` against `wasmdapr sidecar` on the embedded
/// default: SUCCESS acked once, RETRY redelivered, DROP to the dead-letter
/// topic, unanswered events redelivered after the stream closes, and
/// daprd's errors for an unknown pub/sub and a missing topic.
#[test]
fn python_sdk_streaming_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = start_sidecar(dir.path(), None);
    let mut cmd = python_unittest("test_streaming");
    cmd.env("PUBSUB", "pubsub")
        .env("TOPIC", format!("stream-{}", uuid_like()));
    run_suite(cmd, &sidecar, "Dapr Python SDK (streaming subscriptions)");
}
