//! Pub/sub benchmarks, each against a baseline measured in the same run:
//!
//! 1. Publish latency through `wasmdapr sidecar` (HTTP and gRPC) on Redis
//!    Streams and on NATS JetStream, side by side with the broker's own
//!    client doing the same publish (redis-rs `XADD`, async-nats publish
//!    with ack; an envelope of the same size): the sidecar's added cost.
//! 2. Delivery, in this process: events published through the runtime to a
//!    broker (`pubsub.in-memory`, `pubsub.redis`) and delivered by the
//!    runtime's subscription machinery to a Wasm HTTP handler (a fresh
//!    pooled instance per event) and, as the baseline, to a native hyper
//!    subscriber over loopback: end-to-end latency at low load (publish
//!    one, wait for its delivery) and events delivered per second with
//!    many publishers.
//! 3. Zero loss: 10,000 events published over HTTP to a `wasmdapr sidecar`
//!    delivering to an app on `--app-port`, the sidecar killed with
//!    SIGKILL halfway and restarted: every event whose publish was answered
//!    204 must be delivered at least once (distinct ids counted), on each
//!    durable broker (SQLite, Redis Streams, NATS JetStream); duplicates
//!    are counted and reported.
//!
//! Run by `bench/run.sh` (release build); writes `bench/pubsub.json` in the
//! target directory.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use dapr::dapr::proto::runtime::v1::PublishEventRequest;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use test_programs_artifacts::P2_SERVE_HELLO;
use tokio::sync::Notify;
use wasmdapr_host::{Capabilities, Host, HostConfig, Limits, Output, WasmApp, WasmAppConfig};
use wasmdapr_runtime::api::PublishEvent;
use wasmdapr_runtime::api::prelude::*;
use wasmdapr_runtime::app_channel::{
    AppChannel, AppRequest, AppResponse, AppVerdict, BulkEvents, ChannelError, SubscriptionsError,
    TopicEvent,
};
use wasmdapr_runtime::pubsub::subscriptions::AppSubscription;
use wasmdapr_runtime::runtime::DeliveryOptions;
use wasmdapr_runtime::{AppId, ComponentRegistry, Components, Resources, Runtime};

mod common;
use common::{
    Op, Sidecar, free_port, grpc_client, healthy, http_post, lean, measure, out_dir, percentile,
};

/// Sequential publishes per op in the latency phase.
const SEQUENTIAL: usize = 5_000;
/// Events published one at a time, each awaited to its delivery.
const E2E: usize = 2_000;
/// Events published at once for the throughput figure.
const EVENTS: usize = 20_000;
/// Tasks publishing them.
const PUBLISHERS: usize = 64;
/// Events published in the zero-loss run.
const ZERO_LOSS_EVENTS: usize = 10_000;
/// The published body: a small JSON order.
const BODY: &str = r#"{"orderId":123,"item":"Tatooine","amount":4200}"#;

/// A CloudEvent of the size the sidecar builds around [`BODY`], for the
/// raw `XADD` baseline.
fn envelope() -> String {
    serde_json::json!({
        "data": serde_json::from_str::<serde_json::Value>(BODY).unwrap(),
        "datacontenttype": "application/json",
        "id": "0f3e4d6e-5b1a-4d7e-9f1c-2a3b4c5d6e7f",
        "pubsubname": "pubsub",
        "source": "bench-pub",
        "specversion": "1.0",
        "time": "2026-12-02T10:00:00Z",
        "topic": "bench-publish",
        "traceid": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "",
        "type": "com.dapr.event.sent",
    })
    .to_string()
}

/// Publish latency: the sidecar over HTTP and gRPC against raw `XADD`.
async fn publish_latency(dir: &Path) -> Vec<serde_json::Value> {
    let resources = dir.join("publish");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("pubsub.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n\
         spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n\
         \x20 - name: redisHost\n    value: 127.0.0.1:6379\n\
         \x20 - name: maxLenApprox\n    value: \"10000\"\n---\n\
         apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: jetstream\n\
         spec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n\
         \x20 - name: natsURL\n    value: nats://127.0.0.1:4222\n",
    )
    .unwrap();
    let (http, grpc) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .args(["sidecar", "--app-id", "bench-pub", "--resources-path"])
        .arg(&resources)
        .args(["--dapr-http-port", &http.to_string()])
        .args(["--dapr-grpc-port", &grpc.to_string()])
        .args(["--dapr-internal-grpc-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the sidecar");
    let _sidecar = Sidecar(child);
    let start = Instant::now();
    while !healthy(http) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sidecar not healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let redis = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let conn = redis.get_multiplexed_async_connection().await.unwrap();
    let raw = envelope();
    let c = conn.clone();
    let mut ops = vec![Op::new("redis XADD", move |_| {
        let (mut c, raw) = (c.clone(), raw.clone());
        async move {
            let _: String = redis::cmd("XADD")
                .arg("bench-raw")
                .arg("MAXLEN")
                .arg("~")
                .arg(10_000)
                .arg("*")
                .arg("data")
                .arg(raw)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    })];
    let client = lean::Http1Client::new(([127, 0, 0, 1], http).into());
    ops.push(http_post(
        "HTTP publish",
        client,
        "/v1.0/publish/pubsub/bench-publish",
        204,
        |_| BODY.to_owned(),
    ));
    let grpc_client = grpc_client(grpc).await;
    ops.push(grpc_publish(
        "gRPC publish",
        &grpc_client,
        "pubsub",
        "bench-publish",
    ));
    // The same on NATS JetStream, against async-nats publishing with ack.
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "bench-js-raw".into(),
        subjects: vec!["bench-js-raw".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let (context, raw) = (js.clone(), envelope());
    ops.push(Op::new("nats JetStream publish", move |_| {
        let (context, raw) = (context.clone(), raw.clone());
        async move {
            context
                .publish("bench-js-raw", raw.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }));
    let client = lean::Http1Client::new(([127, 0, 0, 1], http).into());
    ops.push(http_post(
        "HTTP publish JetStream",
        client,
        "/v1.0/publish/jetstream/bench-js",
        204,
        |_| BODY.to_owned(),
    ));
    ops.push(grpc_publish(
        "gRPC publish JetStream",
        &grpc_client,
        "jetstream",
        "bench-js",
    ));
    let rows = measure(&ops, SEQUENTIAL, true).await;
    let mut c = conn.clone();
    let _: i64 = redis::cmd("DEL")
        .arg("bench-raw")
        .arg("bench-publish")
        .query_async(&mut c)
        .await
        .unwrap();
    for stream in ["bench-js-raw", "bench-js"] {
        let _ = js.delete_stream(stream).await;
    }
    rows
}

/// `PublishEvent` of [`BODY`] to `topic` of `pubsub` through `client`.
fn grpc_publish(
    name: &'static str,
    client: &DaprClient<lean::H2>,
    pubsub: &'static str,
    topic: &'static str,
) -> Op {
    let client = client.clone();
    Op::new(name, move |_| {
        let mut client = client.clone();
        async move {
            client
                .publish_event(PublishEventRequest {
                    pubsub_name: pubsub.into(),
                    topic: topic.into(),
                    data: BODY.as_bytes().to_vec(),
                    data_content_type: "application/json".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    })
}

/// An app channel that counts the events its app acked.
struct Counting {
    inner: Arc<dyn AppChannel>,
    acked: AtomicUsize,
    changed: Notify,
}

#[async_trait]
impl AppChannel for Counting {
    async fn invoke(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        self.inner.invoke(request).await
    }

    async fn subscriptions(
        &self,
        app_id: &AppId,
    ) -> Result<Vec<AppSubscription>, SubscriptionsError> {
        self.inner.subscriptions(app_id).await
    }

    async fn deliver_event(&self, event: TopicEvent) -> Result<AppVerdict, ChannelError> {
        let verdict = self.inner.deliver_event(event).await;
        if matches!(verdict, Ok(AppVerdict::Success)) {
            self.acked.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
        }
        verdict
    }

    async fn deliver_bulk(&self, events: BulkEvents) -> Result<Vec<AppVerdict>, ChannelError> {
        self.inner.deliver_bulk(events).await
    }
}

impl Counting {
    async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let changed = self.changed.notified();
            if self.acked.load(Ordering::SeqCst) >= count {
                return;
            }
            assert!(Instant::now() < deadline, "events not delivered in time");
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }
}

/// A plain hyper server on loopback answering each request with the status
/// `answer(path, body)` and an empty body: the bench's apps.
async fn hyper_app<F>(answer: F) -> std::net::SocketAddr
where
    F: Fn(&str, &[u8]) -> hyper::StatusCode + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            use http_body_util::BodyExt as _;
                            let path = request.uri().path().to_owned();
                            let body = request.into_body().collect().await?.to_bytes();
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = answer(&path, &body);
                            Ok::<_, hyper::Error>(response)
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The native baseline: a plain hyper server acking every event (200).
async fn native_subscriber() -> std::net::SocketAddr {
    hyper_app(|_, _| hyper::StatusCode::OK).await
}

/// The components and subscription of one delivery run: `broker` as
/// `pubsub`, its topic `topic` subscribed at `/events`.
fn delivery_resources(dir: &Path, broker: &str, topic: &str) -> Resources {
    let folder = dir.join(topic);
    std::fs::create_dir_all(&folder).unwrap();
    let metadata = match broker {
        "pubsub.redis" => "  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n",
        _ => "",
    };
    std::fs::write(
        folder.join("resources.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n\
             spec:\n  type: {broker}\n  version: v1\n{metadata}---\n\
             apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: bench\n\
             spec:\n  pubsubname: pubsub\n  topic: {topic}\n  routes:\n    default: /events\n"
        ),
    )
    .unwrap();
    Resources::load_dirs(&[folder]).unwrap()
}

/// Latency and throughput of events from the runtime to `subscriber`.
async fn delivery(
    dir: &Path,
    broker: &str,
    name: &str,
    subscriber: Arc<dyn AppChannel>,
) -> serde_json::Value {
    let topic = format!("bench-{}-{}", name.replace(' ', "-"), std::process::id());
    let resources = delivery_resources(dir, broker, &topic);
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let components = Arc::new(
        Components::load_declared(resources.components, &registry)
            .await
            .unwrap(),
    );
    let runtime = Arc::new(Runtime::new(AppId::new("bench-sub").unwrap(), components));
    let counting = Arc::new(Counting {
        inner: subscriber,
        acked: AtomicUsize::new(0),
        changed: Notify::new(),
    });
    let subscriptions = runtime
        .start_app_subscriptions(
            counting.clone(),
            &resources.subscriptions,
            DeliveryOptions::default(),
        )
        .await;
    assert_eq!(subscriptions.topics().len(), 1, "{broker}: not subscribed");
    let publish = {
        let runtime = runtime.clone();
        let topic = topic.clone();
        move || {
            let (runtime, topic) = (runtime.clone(), topic.clone());
            async move {
                runtime
                    .publish_event(PublishEvent {
                        pubsub_name: "pubsub".into(),
                        topic,
                        data: BODY.as_bytes().to_vec(),
                        content_type: "application/json".into(),
                        metadata: Default::default(),
                        trace: Default::default(),
                    })
                    .await
                    .unwrap();
            }
        }
    };
    // Warm up: instances, connections, the broker's consumer group.
    for i in 1..=100 {
        publish().await;
        counting.wait_for(i).await;
    }
    let mut latencies = Vec::with_capacity(E2E);
    for i in 1..=E2E {
        let start = Instant::now();
        publish().await;
        counting.wait_for(100 + i).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let before = counting.acked.load(Ordering::SeqCst);
    let start = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let publish = publish.clone();
            tokio::spawn(async move {
                for _ in 0..EVENTS / PUBLISHERS {
                    publish().await;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let sent = EVENTS / PUBLISHERS * PUBLISHERS;
    counting.wait_for(before + sent).await;
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    subscriptions.close().await;
    eprintln!(
        "{broker:<17} {name:<14} e2e p50 {p50:8.1} µs  p99 {p99:8.1} µs  {rate:10.0} events/s"
    );
    serde_json::json!({
        "broker": broker, "subscriber": name,
        "p50_us": p50, "p99_us": p99, "events_per_s": rate, "events": sent,
    })
}

/// An app on `--app-port` that records the `n` of every event it receives
/// (the `data.n` of the CloudEvent) and acks it; it has no `/dapr/subscribe`.
async fn recording_subscriber(seen: Arc<Mutex<HashMap<u64, u32>>>) -> std::net::SocketAddr {
    hyper_app(move |path, body| {
        if path == "/dapr/subscribe" {
            return hyper::StatusCode::NOT_FOUND;
        }
        let event: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if let Some(n) = event["data"]["n"].as_u64() {
            *seen.lock().unwrap().entry(n).or_default() += 1;
        }
        hyper::StatusCode::OK
    })
    .await
}

/// Starts `wasmdapr sidecar` over `resources`, delivering to `app`, its
/// HTTP API on `http`, and waits until it is healthy.
fn start_sidecar(resources: &Path, app: u16, http: u16) -> Sidecar {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(resources)
        .args(["sidecar", "--app-id", "zero-loss", "--resources-path"])
        .arg(resources)
        .args(["--app-port", &app.to_string()])
        .args(["--dapr-http-port", &http.to_string()])
        .args(["--dapr-grpc-port", "0", "--dapr-internal-grpc-port", "0"])
        .stdout(Stdio::null())
        // `BENCH_SIDECAR_LOG=file`: the sidecars' logs, appended there.
        .stderr(match std::env::var_os("BENCH_SIDECAR_LOG") {
            Some(file) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_or_else(|_| Stdio::null(), Stdio::from),
            None => Stdio::null(),
        })
        .spawn()
        .expect("starting the sidecar");
    let start = Instant::now();
    while !healthy(http) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sidecar not healthy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Sidecar(child)
}

/// Publishes [`ZERO_LOSS_EVENTS`] events to `broker` (component metadata
/// `metadata`, YAML lines), SIGKILLs the sidecar after half were answered
/// 204, restarts it, publishes the rest, and counts what the app received.
async fn zero_loss(dir: &Path, broker: &str, metadata: &str) -> serde_json::Value {
    let folder = dir.join(format!("zero-loss-{}", broker.replace('.', "-")));
    std::fs::create_dir_all(&folder).unwrap();
    let topic = format!("zero-loss-{}-{}", std::process::id(), fastrand::u32(..));
    std::fs::write(
        folder.join("resources.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n\
             spec:\n  type: {broker}\n  version: v1\n  metadata:\n{metadata}---\n\
             apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: zl\n\
             spec:\n  pubsubname: pubsub\n  topic: {topic}\n  routes:\n    default: /events\n"
        ),
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let app = recording_subscriber(seen.clone()).await;
    let http = free_port();
    let mut sidecar = start_sidecar(&folder, app.port(), http);
    let acked = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{http}/v1.0/publish/pubsub/{topic}");
    let client = reqwest::Client::new();
    let publishers: Vec<_> = (0..16u64)
        .map(|p| {
            let (client, url, acked, refused) =
                (client.clone(), url.clone(), acked.clone(), refused.clone());
            tokio::spawn(async move {
                let mut n = p;
                while n < ZERO_LOSS_EVENTS as u64 {
                    // Until answered 204: a publish the killed sidecar never
                    // answered is not acked, so it is sent again.
                    loop {
                        let sent = client
                            .post(&url)
                            .json(&serde_json::json!({ "n": n }))
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await;
                        if matches!(&sent, Ok(r) if r.status() == 204) {
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        refused.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    n += 16;
                }
            })
        })
        .collect();
    while acked.load(Ordering::SeqCst) < ZERO_LOSS_EVENTS / 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let killed_at = acked.load(Ordering::SeqCst);
    drop(sidecar); // SIGKILL, then reaped
    sidecar = start_sidecar(&folder, app.port(), http);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.lock().unwrap().len() < ZERO_LOSS_EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sidecar);
    let seen = seen.lock().unwrap();
    let lost = (0..ZERO_LOSS_EVENTS as u64)
        .filter(|n| !seen.contains_key(n))
        .count();
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    eprintln!(
        "{broker:<17} zero loss: {} acked, killed after {killed_at}, {} distinct delivered, \
         {lost} lost, {duplicates} duplicates, {} publishes refused during the restart",
        acked.load(Ordering::SeqCst),
        seen.len(),
        refused.load(Ordering::SeqCst)
    );
    serde_json::json!({
        "broker": broker, "acked": acked.load(Ordering::SeqCst), "killed_after": killed_at,
        "distinct_delivered": seen.len(), "lost": lost, "duplicates": duplicates,
        "refused_during_restart": refused.load(Ordering::SeqCst),
    })
}

/// Whether the part `name` runs: all unless `BENCH_PARTS` lists some
/// (`publish`, `delivery`, `zero-loss`, comma-separated).
fn part(name: &str) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |parts| parts.split(',').any(|p| p.trim() == name))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = serde_json::json!({
        "sequential": SEQUENTIAL,
        "e2e_events": E2E,
        "throughput_events": EVENTS,
        "publishers": PUBLISHERS,
        "zero_loss_events": ZERO_LOSS_EVENTS,
    });
    if part("publish") {
        report["publish"] = publish_latency(dir.path()).await.into();
    }
    if part("delivery") {
        let host = Host::new(HostConfig::default()).unwrap();
        let id = AppId::new("bench-sub").unwrap();
        let app = host.load(Path::new(P2_SERVE_HELLO), &id).unwrap();
        let caps = Capabilities {
            stdout: Output::Null,
            stderr: Output::Inherit,
            ..Capabilities::default()
        };
        let wasm: Arc<dyn AppChannel> =
            Arc::new(WasmApp::new(app, caps, Limits::default(), WasmAppConfig::default()).unwrap());
        let native: Arc<dyn AppChannel> = Arc::new(
            wasmdapr_api::http_app::HttpApp::new(wasmdapr_api::http_app::HttpAppConfig {
                app_id: id.clone(),
                address: native_subscriber().await,
                app_token: None,
                health: None,
                max_body_size: 4 << 20,
                max_concurrency: None,
            })
            .unwrap(),
        );
        let mut deliveries = Vec::new();
        for broker in ["pubsub.in-memory", "pubsub.redis"] {
            deliveries.push(delivery(dir.path(), broker, "native hyper", native.clone()).await);
            deliveries.push(delivery(dir.path(), broker, "Wasm handler", wasm.clone()).await);
        }
        report["delivery"] = deliveries.into();
    }
    if part("zero-loss") {
        let sqlite = format!(
            "  - name: connectionString\n    value: {}\n  - name: pollInterval\n    value: 20ms\n",
            dir.path().join("zero-loss.db").display()
        );
        let redis = "  - name: redisHost\n    value: 127.0.0.1:6379\n";
        let jetstream = "  - name: natsURL\n    value: nats://127.0.0.1:4222\n\
                         \x20 - name: ackWait\n    value: 2s\n";
        report["zero_loss"] = vec![
            zero_loss(dir.path(), "pubsub.sqlite", &sqlite).await,
            zero_loss(dir.path(), "pubsub.redis", redis).await,
            zero_loss(dir.path(), "pubsub.jetstream", jetstream).await,
        ]
        .into();
    }
    let file = std::env::var("BENCH_PUBSUB_OUT").unwrap_or_else(|_| "pubsub.json".into());
    std::fs::write(
        out_dir().join(file),
        serde_json::to_vec_pretty(&report).unwrap(),
    )
    .unwrap();
}
