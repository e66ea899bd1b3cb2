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
