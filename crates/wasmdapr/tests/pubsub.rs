//! Pub/sub through a `wasmdapr sidecar` process on the embedded default:
//! what the sidecar acknowledged survives `kill -9`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{http, start_sidecar};
use wasmdapr_runtime::pubsub::{PubSub, ReceivedMessage, SubscribeRequest};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec};

/// Events published over HTTP one after the other, each answered 204,
/// while the sidecar is killed with SIGKILL mid-stream: every acknowledged event is in the
/// embedded SQLite queue and is delivered, once each, to a subscriber of
/// the same file afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_kill_9() {
    /// More than the sidecar can take before the kill.
    const TOTAL: usize = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut sidecar = start_sidecar(dir.path(), None);
    let port = sidecar.http;
    // A publisher thread races the kill: whatever got its 204 counts.
    let acked = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..TOTAL {
            let body = format!(r#"{{"n":{i}}}"#);
            match http(port, "POST", "/v1.0/publish/pubsub/durable", &body) {
                Some((204, _)) => acked.push(i),
                _ => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(300));
    sidecar.child.kill().unwrap();
    sidecar.child.wait().unwrap();
    let acked = acked.join().unwrap();
    assert!(!acked.is_empty(), "nothing was published before the kill");
    assert!(acked.len() < TOTAL, "the kill came after the last publish");

    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let file = dir.path().join(".wasmdapr").join("pubsub.db");
    let spec = ComponentSpec {
        name: "pubsub".into(),
        kind: "pubsub.sqlite".into(),
        version: "v1".into(),
        metadata: [
            (
                "connectionString".to_string(),
                file.to_string_lossy().into_owned(),
            ),
            ("pollInterval".to_string(), "50ms".to_string()),
            ("queueDepth".to_string(), "100".to_string()),
        ]
        .into(),
        scopes: Vec::new(),
        source: "tests/pubsub.rs".into(),
    };
    let broker: Arc<dyn PubSub> = registry.build(spec).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReceivedMessage>();
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "durable".into(),
                consumer_group: "after-the-crash".into(),
                metadata: Default::default(),
            },
            Arc::new(move |m: ReceivedMessage| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(m);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut deliveries = 0;
    while seen.len() < acked.len() {
        let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {} acked events delivered", seen.len(), acked.len()))
            .unwrap();
        deliveries += 1;
        let ce: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
        seen.insert(ce["data"]["n"].as_u64().unwrap());
    }
    subscription.close().await;
    let acked: BTreeSet<u64> = acked.into_iter().map(|i| i as u64).collect();
    assert!(
        acked.is_subset(&seen),
        "lost: {:?}",
        acked.difference(&seen).collect::<Vec<_>>()
    );
    assert_eq!(deliveries, seen.len(), "no event was delivered twice");
    eprintln!(
        "{} events acked before SIGKILL, all delivered after it",
        acked.len()
    );
}

/// NATS JetStream: a sidecar killed with SIGKILL while its subscription
/// pulls, and started again, goes on delivering at once. The killed
/// process leaves its pull requests waiting on the server; with pull
/// requests of one message the restarted sidecar stalled behind them, a few
/// hundred events per 30 s (found by `bench/pubsub.sh`'s zero-loss run).
#[tokio::test(flavor = "multi_thread")]
async fn jetstream_delivery_resumes_after_sigkill() {
    use std::sync::Mutex;
    use std::time::Instant;

    let seen: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let app = {
        let seen = seen.clone();
        axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match event["data"]["n"].as_u64() {
                    Some(n) => {
                        seen.lock().unwrap().insert(n);
                        axum::http::StatusCode::OK
                    }
                    None => axum::http::StatusCode::NOT_FOUND, // GET /dapr/subscribe
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let topic = format!("resume-{}-{}", std::process::id(), fastrand::u32(..));
    let resources = common::components(
        dir.path(),
        &format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n\
             spec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n\
             \x20 - name: natsURL\n    value: nats://127.0.0.1:4222\n\
             \x20 - name: ackWait\n    value: 2s\n---\n\
             apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: resume\n\
             spec:\n  pubsubname: pubsub\n  topic: {topic}\n  routes:\n    default: /events\n"
        ),
    );
    let start = |what: &str| {
        let (mut cmd, port, _) = common::sidecar_command(dir.path(), Some(&resources));
        let child = cmd
            .args(["--app-port", &app_port.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting wasmdapr sidecar");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
            assert!(
                Instant::now() < deadline,
                "{what}: the sidecar is not healthy"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (child, port)
    };
    // 16 publishers at once, so publishing outruns delivery.
    let publish = |port: u16, range: std::ops::Range<u64>| {
        std::thread::scope(|scope| {
            for first in 0..16 {
                let (topic, range) = (&topic, range.clone());
                scope.spawn(move || {
                    for n in range.skip(first).step_by(16) {
                        let body = format!(r#"{{"n":{n}}}"#);
                        let path = format!("/v1.0/publish/pubsub/{topic}");
                        let answer = http(port, "POST", &path, &body);
                        assert_eq!(answer.map(|a| a.0), Some(204), "publish {n}");
                    }
                });
            }
        });
    };
    let wait_for = |count: usize, within: Duration| {
        let deadline = Instant::now() + within;
        while seen.lock().unwrap().len() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} events delivered within {within:?}",
                seen.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Killed while it delivers a backlog (publishing outruns one handler
    // at a time), so it dies with a message in flight and requests waiting.
    let (mut first, port) = start("first");
    publish(port, 0..3000);
    let before = seen.lock().unwrap().len();
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, port) = start("restarted");
    publish(port, 3000..3200);
    // Well inside the 30 s a stale pull request waits to expire.
    wait_for(3200, Duration::from_secs(15));
    eprintln!("{before} of 3000 delivered before the kill, all 3200 after the restart");
    second.kill().unwrap();
    second.wait().unwrap();
}
