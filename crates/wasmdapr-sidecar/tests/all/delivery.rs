//! Pub/sub events delivered to an app on `--app-port`: a real HTTP app (an
//! axum server in the test, answering `/dapr/subscribe` and its routes as
//! Dapr apps do), a library sidecar connected to it, events published over
//! the sidecar's HTTP API to real brokers (`pubsub.in-memory`,
//! `pubsub.sqlite`), and what the app received counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wasmdapr_runtime::AppId;
use wasmdapr_runtime::runtime::DeliveryOptions;
use wasmdapr_sidecar::{AppConnection, Sidecar, SidecarConfig};

/// One request the app received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) event: Value,
}

/// The app: what `/dapr/subscribe` answers (`None`: 404), and everything
/// it received. Routes behave by name:
/// `/ok` 200 empty; `/success` `{"status":"SUCCESS"}`; `/retry-once`
/// RETRY the first time an event id is seen; `/fail-once` 500 the first
/// time; `/drop` DROP; `/hang-once` never answers the first time;
/// `/slow` 200 after 100 ms, counting how many it answers at once; any
/// other path 404. With `subscribe_hangs`, `/dapr/subscribe` never answers.
#[derive(Clone, Default)]
pub(crate) struct TestApp {
    subscribe: Option<Value>,
    /// `/dapr/subscribe` never answers.
    subscribe_hangs: bool,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests to `/slow` being answered now, and the most seen at once.
    in_flight: Arc<(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicUsize,
    )>,
}

impl TestApp {
    pub(crate) fn deliveries(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` got `count` deliveries (at most 15 s).
    pub(crate) async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.deliveries(path);
            if got.len() >= count {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{path}: {} deliveries of {count} after 15 s: {:?}",
                got.len(),
                self.received.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn app_handler(
    State(app): State<TestApp>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/dapr/subscribe" {
        if app.subscribe_hangs {
            std::future::pending::<()>().await;
        }
        return match &app.subscribe {
            Some(subs) => axum::Json(subs.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seen_before = app
        .deliveries(&path)
        .iter()
        .any(|r| r.event["id"] == event["id"]);
    app.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        event: event.clone(),
    });
    let status = |s: &str| axum::Json(json!({"status": s})).into_response();
    if path.starts_with("/bulk") {
        return bulk_answer(&app, &event);
    }
    if path == "/slow" {
        use std::sync::atomic::Ordering::SeqCst;
        let now = app.in_flight.0.fetch_add(1, SeqCst) + 1;
        app.in_flight.1.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.in_flight.0.fetch_sub(1, SeqCst);
        return StatusCode::OK.into_response();
    }
    match path.as_str() {
        "/success" => status("SUCCESS"),
        "/retry-once" if !seen_before => status("RETRY"),
        "/fail-once" if !seen_before => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "/drop" => status("DROP"),
        "/hang-once" if !seen_before => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/ok" | "/retry-once" | "/fail-once" | "/hang-once" => StatusCode::OK.into_response(),
        _ if path.starts_with("/ok") => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The answer to a batch (a `BulkSubscribeMessage`), per entry by the
/// `kind` of the event's data: `ok` SUCCESS, `drop` DROP, `retry` RETRY
/// and `missing` no status at all the first time the event is seen (then
/// SUCCESS), `slow` SUCCESS after 300 ms.
fn bulk_answer(app: &TestApp, batch: &Value) -> Response {
    let earlier: Vec<Value> = app
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/bulk") && r.event["id"] != batch["id"])
        .flat_map(|r| r.event["entries"].as_array().cloned().unwrap_or_default())
        .map(|e| e["event"]["id"].clone())
        .collect();
    let mut statuses = Vec::new();
    for entry in batch["entries"].as_array().cloned().unwrap_or_default() {
        let seen = earlier.contains(&entry["event"]["id"]);
        let status = match entry["event"]["data"]["kind"].as_str() {
            Some("drop") => "DROP",
            Some("retry") if !seen => "RETRY",
            Some("missing") if !seen => continue,
            _ => "SUCCESS",
        };
        statuses.push(json!({"entryId": entry["entryId"], "status": status}));
    }
    axum::Json(json!({"statuses": statuses})).into_response()
}

/// Serves `app` on a free port.
pub(crate) async fn serve(app: TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(app_handler).with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A resources folder with `pubsub.in-memory` as `memory` and
/// `pubsub.sqlite` as `sqlite` (both redelivering after 100 ms), plus
/// `extra` YAML.
pub(crate) fn resources(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("resources");
    std::fs::create_dir_all(&path).unwrap();
    let db = dir.join("queue.db");
    std::fs::write(
        path.join("pubsub.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: memory\n\
             spec:\n  type: pubsub.in-memory\n  version: v1\n  metadata:\n\
             \x20 - name: redeliverInterval\n    value: 100ms\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: sqlite\n\
             spec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n\
             \x20 - name: connectionString\n    value: {}\n\
             \x20 - name: redeliverInterval\n    value: 100ms\n\
             \x20 - name: pollInterval\n    value: 20ms\n{extra}",
            db.display()
        ),
    )
    .unwrap();
    path
}

/// A sidecar of `app_id` over `resources`, connected to `app`, delivering
/// with a 1 s timeout.
pub(crate) async fn sidecar(
    app_id: &str,
    dir: &std::path::Path,
    resources: std::path::PathBuf,
    app: SocketAddr,
) -> Sidecar {
    bounded_sidecar(app_id, dir, resources, app, None).await
}

/// [`sidecar`] with `--app-max-concurrency`.
async fn bounded_sidecar(
    app_id: &str,
    dir: &std::path::Path,
    resources: std::path::PathBuf,
    app: SocketAddr,
    max_concurrency: Option<usize>,
) -> Sidecar {
    let config = SidecarConfig {
        http_port: 0,
        grpc_port: 0,
        internal_grpc_port: 0,
        resources_paths: vec![resources],
        embedded_dir: dir.join("embedded"),
        data_dir: Some(dir.join("data")),
        delivery: DeliveryOptions {
            timeout: Duration::from_secs(1),
            ..DeliveryOptions::default()
        },
        ..SidecarConfig::new(AppId::new(app_id).unwrap())
    };
    let sidecar = Sidecar::start(config).await.unwrap();
    sidecar
        .connect_app(AppConnection {
            address: app,
            app_token: None,
            protocol: "http".into(),
            health: None,
            max_concurrency,
        })
        .await
        .unwrap();
    sidecar
}

/// Publishes `data` as JSON over the sidecar's HTTP API.
async fn publish(sidecar: &Sidecar, pubsub: &str, topic: &str, data: Value) {
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/v1.0/publish/{pubsub}/{topic}",
            sidecar.http_addr
        ))
        .json(&data)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
}

fn sorted(mut topics: Vec<(String, String)>) -> Vec<(String, String)> {
    topics.sort();
    topics
}

/// The app's `/dapr/subscribe` in both shapes: a v1 `route` on the
/// in-memory broker, and v2 `routes` with a CEL rule over the event's data
/// on SQLite. Each event arrives as a CloudEvent POSTed with Dapr's content
/// type and headers, at the route its rule picks.
#[tokio::test(flavor = "multi_thread")]
async fn programmatic_subscriptions_v1_and_v2_with_cel() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp {
        subscribe: Some(json!([
            {"pubsubname": "memory", "topic": "orders", "route": "/ok"},
            {"pubsubname": "sqlite", "topic": "widgets",
             "routes": {"rules": [{"match": "event.data.kind == \"gadget\" && event.data.n > 1.0", "path": "/ok-gadgets"}],
                        "default": "ok-widgets"}},
        ])),
        ..TestApp::default()
    };
    let addr = serve(app.clone()).await;
    let sidecar = sidecar("checkout", dir.path(), resources(dir.path(), ""), addr).await;
    assert_eq!(
        sorted(sidecar.subscribed_topics().await),
        [
            ("memory".to_string(), "orders".to_string()),
            ("sqlite".to_string(), "widgets".to_string())
        ]
    );

    publish(&sidecar, "memory", "orders", json!({"id": 7})).await;
    let got = app.wait_for("/ok", 1).await;
    let ce = &got[0].event;
    assert_eq!(ce["source"], "checkout");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["topic"], "orders");
    assert_eq!(ce["pubsubname"], "memory");
    assert_eq!(ce["data"], json!({"id": 7}));
    let headers = &got[0].headers;
    assert_eq!(headers["content-type"], "application/cloudevents+json");
    assert_eq!(headers["pubsubname"], "memory");
    let traceparent = headers["traceparent"].to_str().unwrap();
    let trace_id = &ce["traceparent"].as_str().unwrap()[3..35];
    assert!(
        traceparent.contains(trace_id) && traceparent != ce["traceparent"],
        "a child span of the event's trace: {traceparent} vs {}",
        ce["traceparent"]
    );

    publish(
        &sidecar,
        "sqlite",
        "widgets",
        json!({"kind": "gadget", "n": 2}),
    )
    .await;
    publish(
        &sidecar,
        "sqlite",
        "widgets",
        json!({"kind": "gadget", "n": 1}),
    )
    .await;
    publish(
        &sidecar,
        "sqlite",
        "widgets",
        json!({"kind": "sprocket", "n": 5}),
    )
    .await;
    let gadgets = app.wait_for("/ok-gadgets", 1).await;
    let widgets = app.wait_for("/ok-widgets", 2).await;
    assert_eq!(gadgets[0].event["data"], json!({"kind": "gadget", "n": 2}));
    let mut defaulted: Vec<Value> = widgets.iter().map(|r| r.event["data"].clone()).collect();
    defaulted.sort_by_key(|v| v["n"].as_i64());
    assert_eq!(
        defaulted,
        [
            json!({"kind": "gadget", "n": 1}),
            json!({"kind": "sprocket", "n": 5})
        ]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.deliveries("/ok-gadgets").len(), 1, "acked once");
    sidecar.shutdown().await.unwrap();
}

/// Declarative `Subscription` resources (v1alpha1 and v2alpha1) apply to
/// the apps of their `scopes` only; an app with no `/dapr/subscribe` (404)
/// has just those; a programmatic one would replace a declared one.
#[tokio::test(flavor = "multi_thread")]
async fn declarative_subscriptions_with_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: mine\n\
                spec:\n  pubsubname: sqlite\n  topic: mine\n  routes:\n    rules:\n\
                \x20   - match: event.type == \"com.dapr.event.sent\" && event.data.startsWith(\"a\")\n      path: /ok-a\n\
                \x20   default: /ok-other\nscopes: [billing]\n---\n\
                apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: everyone\n\
                spec:\n  pubsubname: memory\n  topic: all\n  route: /ok-all\n---\n\
                apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: theirs\n\
                spec:\n  pubsubname: memory\n  topic: theirs\n  route: /ok-theirs\nscopes: [shipping]\n";
    let app = TestApp::default();
    let addr = serve(app.clone()).await;
    let sidecar = sidecar("billing", dir.path(), resources(dir.path(), yaml), addr).await;
    assert_eq!(
        sorted(sidecar.subscribed_topics().await),
        [
            ("memory".to_string(), "all".to_string()),
            ("sqlite".to_string(), "mine".to_string())
        ]
    );
    let text = |t: &str| Value::String(t.into());
    for (pubsub, topic, data) in [
        ("sqlite", "mine", "apple"),
        ("sqlite", "mine", "banana"),
        ("memory", "all", "x"),
        ("memory", "theirs", "y"),
    ] {
        // A JSON string: `data` is that string.
        publish(&sidecar, pubsub, topic, text(data)).await;
    }
    assert_eq!(app.wait_for("/ok-a", 1).await[0].event["data"], "apple");
    assert_eq!(
        app.wait_for("/ok-other", 1).await[0].event["data"],
        "banana"
    );
    assert_eq!(app.wait_for("/ok-all", 1).await[0].event["data"], "x");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.deliveries("/ok-theirs").is_empty());
    sidecar.shutdown().await.unwrap();
}

/// The app's answer decides: RETRY and 500 are delivered again (then
/// acked: two deliveries of one event, no third); DROP goes to the
/// `deadLetterTopic` (which the app also subscribes to) and is not
/// redelivered, as does an event no rule routes; 404 is dropped; an app that does not answer within the
/// delivery timeout gets the event again.
#[tokio::test(flavor = "multi_thread")]
async fn the_apps_answer_acks_retries_or_drops() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp {
        subscribe: Some(json!([
            {"pubsubname": "memory", "topic": "retry", "route": "/retry-once"},
            {"pubsubname": "sqlite", "topic": "fail", "route": "/fail-once"},
            {"pubsubname": "sqlite", "topic": "drop", "route": "/drop", "deadLetterTopic": "poison"},
            {"pubsubname": "sqlite", "topic": "poison", "route": "/ok-poison"},
            {"pubsubname": "memory", "topic": "gone", "route": "/missing"},
            {"pubsubname": "sqlite", "topic": "slow", "route": "/hang-once"},
            {"pubsubname": "memory", "topic": "fine", "route": "/success"},
            {"pubsubname": "sqlite", "topic": "unrouted", "deadLetterTopic": "poison",
             "routes": {"rules": [{"match": "event.type == \"never\"", "path": "/ok-never"}]}},
        ])),
        ..TestApp::default()
    };
    let addr = serve(app.clone()).await;
    let sidecar = sidecar("answers", dir.path(), resources(dir.path(), ""), addr).await;
    assert_eq!(sidecar.subscribed_topics().await.len(), 8);
    for topic in ["retry", "gone", "fine"] {
        publish(&sidecar, "memory", topic, json!({"topic": topic})).await;
    }
    for topic in ["fail", "drop", "slow", "unrouted"] {
        publish(&sidecar, "sqlite", topic, json!({"topic": topic})).await;
    }

    let retried = app.wait_for("/retry-once", 2).await;
    assert_eq!(retried[0].event["id"], retried[1].event["id"]);
    let failed = app.wait_for("/fail-once", 2).await;
    assert_eq!(failed[0].event["id"], failed[1].event["id"]);
    let dropped = app.wait_for("/drop", 1).await;
    // The dropped event and the one no rule routes, both dead-lettered.
    let dead = app.wait_for("/ok-poison", 2).await;
    let dead_letter = |topic: &str| {
        dead.iter()
            .find(|r| r.event["topic"] == topic)
            .unwrap_or_else(|| panic!("{topic} on the dead-letter topic: {dead:?}"))
            .event
            .clone()
    };
    let from_drop = dead_letter("drop");
    assert_eq!(
        from_drop["id"], dropped[0].event["id"],
        "the original envelope"
    );
    assert_eq!(from_drop["data"], json!({"topic": "drop"}));
    assert_eq!(
        dead_letter("unrouted")["data"],
        json!({"topic": "unrouted"})
    );
    app.wait_for("/missing", 1).await;
    app.wait_for("/success", 1).await;
    let started = Instant::now();
    let hung = app.wait_for("/hang-once", 2).await;
    assert_eq!(hung[0].event["id"], hung[1].event["id"]);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing acked is delivered again (the brokers redeliver after 100 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let counts: HashMap<&str, usize> = [
        "/retry-once",
        "/fail-once",
        "/drop",
        "/ok-poison",
        "/missing",
        "/success",
        "/hang-once",
        "/ok-never",
    ]
    .into_iter()
    .map(|p| (p, app.deliveries(p).len()))
    .collect();
    assert_eq!(
        counts,
        HashMap::from([
            ("/retry-once", 2),
            ("/fail-once", 2),
            ("/drop", 1),
            ("/ok-poison", 2),
            ("/ok-never", 0),
            ("/missing", 1),
            ("/success", 1),
            ("/hang-once", 2),
        ])
    );
    sidecar.shutdown().await.unwrap();
}

/// On Redis Streams (`pubsub.redis`, real Redis on 127.0.0.1:6379): a
/// RETRY leaves the entry pending, it is claimed again after
/// `processingTimeout` and delivered a second time, then acked; a v2 rule
/// routes by the event's type (a `cloudevent.type` override).
#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_redeliver_until_the_app_takes_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("delivery-{}-{nanos}", std::process::id());
    let yaml = "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis\n\
                spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n\
                \x20 - name: redisHost\n    value: 127.0.0.1:6379\n\
                \x20 - name: processingTimeout\n    value: 200ms\n\
                \x20 - name: redeliverInterval\n    value: 100ms\n";
    let app = TestApp {
        subscribe: Some(json!([
            {"pubsubname": "redis", "topic": topic,
             "routes": {"rules": [{"match": "event.type == \"order.retry\"", "path": "/retry-once"}],
                        "default": "/ok-redis"}},
        ])),
        ..TestApp::default()
    };
    let addr = serve(app.clone()).await;
    let sidecar = sidecar("redis-app", dir.path(), resources(dir.path(), yaml), addr).await;
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/v1.0/publish/redis/{topic}?metadata.cloudevent.type=order.retry",
            sidecar.http_addr
        ))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
    publish(&sidecar, "redis", &topic, json!({"n": 2})).await;
    let retried = app.wait_for("/retry-once", 2).await;
    assert_eq!(retried[0].event["id"], retried[1].event["id"]);
    assert_eq!(retried[0].event["type"], "order.retry");
    let plain = app.wait_for("/ok-redis", 1).await;
    assert_eq!(plain[0].event["data"], json!({"n": 2}));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.deliveries("/retry-once").len(),
        2,
        "acked after the retry"
    );
    assert_eq!(app.deliveries("/ok-redis").len(), 1);
    sidecar.shutdown().await.unwrap();
}

/// An app whose `/dapr/subscribe` never answers does not hold the sidecar:
/// each attempt is bounded by the delivery timeout (1 s here; four
/// attempts with daprd's backoff), then the declared subscriptions start
/// and events flow.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_never_answers_subscribe_does_not_hold_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "---\napiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: all\n\
                spec:\n  pubsubname: memory\n  topic: all\n  route: /ok-all\n";
    let app = TestApp {
        subscribe_hangs: true,
        ..TestApp::default()
    };
    let addr = serve(app.clone()).await;
    let started = Instant::now();
    let sidecar = tokio::time::timeout(
        Duration::from_secs(20),
        sidecar("billing", dir.path(), resources(dir.path(), yaml), addr),
    )
    .await
    .expect("the sidecar connected its app despite a hung /dapr/subscribe");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        sidecar.subscribed_topics().await,
        [("memory".to_string(), "all".to_string())]
    );
    publish(&sidecar, "memory", "all", Value::String("x".into())).await;
    assert_eq!(app.wait_for("/ok-all", 1).await[0].event["data"], "x");
    sidecar.shutdown().await.unwrap();
}

/// Bulk subscribe to an HTTP app, as daprd delivers it: the app's
/// `/dapr/subscribe` asks for batches of at most 3 waiting at most 500 ms
/// on Redis Streams (which hands out up to 10 messages at once); six events
/// published at once arrive as `BulkSubscribeMessage`s of at most 3
/// entries, and each entry is settled by its own status: SUCCESS and DROP
/// (no dead-letter topic) once, RETRY and a missing status delivered
/// again. With a dead-letter topic, DROP and RETRY entries go there (daprd
/// without a resiliency policy). A declarative `v2alpha1` bulk
/// subscription on the in-memory broker is delivered in the same shape.
#[tokio::test(flavor = "multi_thread")]
async fn bulk_subscriptions_deliver_batches_settled_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("bulk-{}-{nanos}", std::process::id());
    let yaml = format!(
        "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis\n\
         spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n\
         \x20 - name: redisHost\n    value: 127.0.0.1:6379\n\
         \x20 - name: processingTimeout\n    value: 200ms\n\
         \x20 - name: redeliverInterval\n    value: 100ms\n---\n\
         apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: declared-bulk\n\
         spec:\n  pubsubname: memory\n  topic: {topic}-memory\n  routes:\n    default: /bulk-memory\n\
         \x20 bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 10\n    maxAwaitDurationMs: 100\n"
    );
    let app = TestApp {
        subscribe: Some(json!([
            {"pubsubname": "redis", "topic": topic, "route": "/bulk",
             "bulkSubscribe": {"enabled": true, "maxMessagesCount": 3, "maxAwaitDurationMs": 500}},
            {"pubsubname": "redis", "topic": format!("{topic}-dlq"), "route": "/bulk-dlq",
             "deadLetterTopic": format!("{topic}-dead"),
             "bulkSubscribe": {"enabled": true, "maxMessagesCount": 3, "maxAwaitDurationMs": 200}},
            {"pubsubname": "redis", "topic": format!("{topic}-dead"), "route": "/ok-dead"},
        ])),
        ..TestApp::default()
    };
    let addr = serve(app.clone()).await;
    let sidecar = sidecar("bulk-app", dir.path(), resources(dir.path(), &yaml), addr).await;
    let bulk_publish = |topic: String, kinds: &[(&str, i64)]| {
        let entries: Vec<Value> = kinds
            .iter()
            .map(|(kind, n)| {
                json!({"entryId": n.to_string(), "event": {"kind": kind, "n": n},
                       "contentType": "application/json"})
            })
            .collect();
        let url = format!(
            "http://{}/v1.0-alpha1/publish/bulk/redis/{topic}",
            sidecar.http_addr
        );
        async move {
            let answer = reqwest::Client::new()
                .post(url)
                .json(&entries)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
        }
    };
    bulk_publish(
        topic.clone(),
        &[
            ("ok", 0),
            ("ok", 1),
            ("drop", 2),
            ("retry", 3),
            ("missing", 4),
            ("ok", 5),
        ],
    )
    .await;
    bulk_publish(
        format!("{topic}-dlq"),
        &[("drop", 10), ("retry", 11), ("ok", 12)],
    )
    .await;
    publish(
        &sidecar,
        "memory",
        &format!("{topic}-memory"),
        json!({"kind": "ok"}),
    )
    .await;

    // With a dead-letter topic, the DROP and the RETRY go there.
    let dead = app.wait_for("/ok-dead", 2).await;
    let mut dead: Vec<i64> = dead
        .iter()
        .map(|d| d.event["data"]["n"].as_i64().unwrap())
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, [10, 11]);
    // Without: every event settled, the RETRY and the missing one again.
    let entries_of = |app: &TestApp| -> Vec<Value> {
        app.deliveries("/bulk")
            .iter()
            .flat_map(|r| r.event["entries"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let start = Instant::now();
    while entries_of(&app).len() < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:#?}",
            app.deliveries("/bulk")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let batches = app.deliveries("/bulk");
    for batch in &batches {
        let body = &batch.event;
        let size = body["entries"].as_array().unwrap().len();
        assert!((1..=3).contains(&size), "at most maxMessagesCount: {body}");
        assert_eq!(batch.headers["content-type"], "application/json");
        assert_eq!(body["type"], "com.dapr.event.sent.bulk");
        assert_eq!(body["topic"], topic.as_str());
        assert_eq!(body["pubsubname"], "redis");
        assert_eq!(body["metadata"]["pubsubName"], "redis");
        assert!(body["id"].as_str().is_some_and(|id| id.len() == 36));
        for entry in body["entries"].as_array().unwrap() {
            assert!(entry["entryId"].as_str().is_some_and(|id| !id.is_empty()));
            assert_eq!(entry["contentType"], "application/cloudevents+json");
            assert_eq!(
                entry["event"]["topic"],
                topic.as_str(),
                "a CloudEvent: {entry}"
            );
            assert_eq!(entry["event"]["source"], "bulk-app");
        }
    }
    assert!(
        batches
            .iter()
            .any(|b| b.event["entries"].as_array().unwrap().len() > 1),
        "events that wait together are delivered together: {batches:#?}"
    );
    let mut per_event: HashMap<i64, usize> = HashMap::new();
    for entry in entries_of(&app) {
        *per_event
            .entry(entry["event"]["data"]["n"].as_i64().unwrap())
            .or_default() += 1;
    }
    let expected: HashMap<i64, usize> = [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 1)]
        .into_iter()
        .collect();
    assert_eq!(per_event, expected, "deliveries per event: {batches:#?}");
    assert_eq!(app.deliveries("/ok-dead").len(), 2);
    let dlq_entries: usize = app
        .deliveries("/bulk-dlq")
        .iter()
        .map(|b| b.event["entries"].as_array().unwrap().len())
        .sum();
    assert_eq!(dlq_entries, 3, "each delivered once");

    let memory = app.wait_for("/bulk-memory", 1).await;
    let body = &memory[0].event;
    assert_eq!(body["type"], "com.dapr.event.sent.bulk");
    assert_eq!(body["entries"][0]["event"]["data"], json!({"kind": "ok"}));
    assert_eq!(body["pubsubname"], "memory");
    sidecar.shutdown().await.unwrap();
}

/// `--app-max-concurrency` as daprd applies it to an HTTP app: at most that
/// many requests in flight to the app, the others waiting for a slot (none
/// is refused or lost). Redis Streams hands out 10 events at once; with a
/// bound of 2 the app never answers more than 2 at once, and every event
/// arrives; without a bound it answers more at once.
#[tokio::test(flavor = "multi_thread")]
async fn app_max_concurrency_bounds_deliveries() {
    for bound in [Some(2), None] {
        let dir = tempfile::tempdir().unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let topic = format!("bounded-{}-{nanos}", std::process::id());
        let yaml = "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis\n\
                    spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n\
                    \x20 - name: redisHost\n    value: 127.0.0.1:6379\n";
        let app = TestApp {
            subscribe: Some(json!([{"pubsubname": "redis", "topic": topic, "route": "/slow"}])),
            ..TestApp::default()
        };
        let addr = serve(app.clone()).await;
        let sidecar = bounded_sidecar(
            "bounded-app",
            dir.path(),
            resources(dir.path(), yaml),
            addr,
            bound,
        )
        .await;
        let entries: Vec<Value> = (0..8)
            .map(|n| json!({"entryId": n.to_string(), "event": {"n": n}, "contentType": "application/json"}))
            .collect();
        let answer = reqwest::Client::new()
            .post(format!(
                "http://{}/v1.0-alpha1/publish/bulk/redis/{topic}",
                sidecar.http_addr
            ))
            .json(&entries)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
        let delivered = app.wait_for("/slow", 8).await;
        let mut seen: Vec<i64> = delivered
            .iter()
            .map(|r| r.event["data"]["n"].as_i64().unwrap())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8, "every event arrives");
        let most = app.in_flight.1.load(std::sync::atomic::Ordering::SeqCst);
        match bound {
            Some(bound) => assert_eq!(
                most, bound,
                "at most {bound} at once, and the bound is used"
            ),
            None => assert!(most > 2, "unbounded: {most} at once"),
        }
        sidecar.shutdown().await.unwrap();
    }
}
