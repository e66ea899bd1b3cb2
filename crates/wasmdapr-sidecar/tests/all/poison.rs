//! A poison event (one its app always fails) on a topic without a
//! dead-letter topic: it is redelivered (never lost, never acked), and it
//! does not hold up the events published after it, on every broker that
//! redelivers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::delivery::{resources, sidecar};

/// The `n` of every event the app saw, in order; it fails `n == 0`.
type Seen = Arc<Mutex<Vec<u64>>>;

async fn app(State(seen): State<Seen>, body: Bytes) -> StatusCode {
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(n) = event["data"]["n"].as_u64() else {
        return StatusCode::NOT_FOUND; // GET /dapr/subscribe
    };
    seen.lock().unwrap().push(n);
    if n == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn poison_does_not_block(pubsub: &str, extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(app).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let topic = format!("poison-{}", uuid_like());
    let yaml = format!(
        "{extra}---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: poison\n\
         spec:\n  pubsubname: {pubsub}\n  topic: {topic}\n  routes:\n    default: /orders\n"
    );
    let sidecar = sidecar("poisoned", dir.path(), resources(dir.path(), &yaml), addr).await;
    let client = reqwest::Client::new();
    for n in 0..=5 {
        let answer = client
            .post(format!(
                "http://{}/v1.0/publish/{pubsub}/{topic}",
                sidecar.http_addr
            ))
            .json(&json!({ "n": n }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = seen.lock().unwrap().clone();
        let good = (1..=5).all(|n| got.contains(&n));
        let retried = got.iter().filter(|&&n| n == 0).count() >= 2;
        if good && retried {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pubsub}: the events after the poison one, or its redelivery, did not arrive: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sidecar.shutdown().await.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_does_not_block_the_sqlite_queue() {
    poison_does_not_block("sqlite", "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_does_not_block_the_in_memory_broker() {
    poison_does_not_block("memory", "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_does_not_block_redis_streams() {
    let redis = "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis\n\
                 spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n\
                 \x20 - name: redisHost\n    value: 127.0.0.1:6379\n\
                 \x20 - name: redeliverInterval\n    value: 200ms\n\
                 \x20 - name: processingTimeout\n    value: 200ms\n";
    poison_does_not_block("redis", redis).await;
}
