//! The pub/sub import of guests end to end: the `dapr_pubsub` test program
//! (through the guest SDK, `wit/pubsub.wit` and the host's `bindgen!`)
//! against a real `Runtime` over the embedded default broker (the durable
//! SQLite `pubsub`, redelivering after 100 ms here). What the guest
//! published is read back through the broker itself; what it answered is
//! proven by what the broker delivers afterwards.

use std::sync::Arc;
use std::time::Duration;

use test_programs_artifacts::P2_DAPR_PUBSUB;
use wasmdapr_host::{App, Capabilities, HostError, Limits};
use wasmdapr_runtime::api::{PublishEvent, StreamSubscribeRequest};
use wasmdapr_runtime::pubsub::{ReceivedMessage, SubscribeRequest};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec, Components, DaprApi, Runtime};

use crate::{Ran, app_id, host, load, run_with, timeout};

const WAIT: Duration = Duration::from_secs(20);

/// A runtime of app `pubsub-guest` over the embedded SQLite broker in `dir`.
async fn runtime(dir: &std::path::Path) -> (Arc<Runtime>, Arc<Components>) {
    let mut spec = ComponentSpec::embedded_pubsub(dir);
    spec.metadata
        .insert("redeliverInterval".into(), "100ms".into());
    spec.metadata.insert("pollInterval".into(), "50ms".into());
    let mut registry = ComponentRegistry::default();
    wasmdapr_components::register(&mut registry);
    let components = Arc::new(Components::load(vec![spec], &registry).await.unwrap());
    let runtime = Arc::new(Runtime::new(app_id("pubsub-guest"), components.clone()));
    (runtime, components)
}

/// The guest, compiled once.
fn app() -> &'static App {
    static APP: std::sync::OnceLock<(wasmdapr_host::Host, App)> = std::sync::OnceLock::new();
    let (_, app) = APP.get_or_init(|| {
        let host = host();
        let app = load(&host, P2_DAPR_PUBSUB);
        (host, app)
    });
    app
}

/// Runs the guest with `args`, granted `dapr` (or not), under `limits`.
async fn guest(dapr: Option<Arc<dyn DaprApi>>, args: &[&str], limits: Limits) -> Ran {
    let caps = Capabilities {
        args: args.iter().map(|s| s.to_string()).collect(),
        dapr,
        ..Capabilities::default()
    };
    run_with(app(), caps, limits).await
}

fn ok(ran: &Ran) {
    assert_eq!(
        ran.result.as_ref().ok(),
        Some(&0),
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        ran.result,
        ran.stdout,
        ran.stderr
    );
}

/// The first `count` messages of `topic`, read by a consumer group of
/// their own.
async fn read(components: &Components, topic: &str, count: usize) -> Vec<ReceivedMessage> {
    let broker = components
        .pubsubs()
        .next()
        .expect("a broker")
        .component
        .clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: topic.into(),
                consumer_group: "verifier".into(),
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
    let mut out = Vec::new();
    while out.len() < count {
        let m = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} messages on {topic}", out.len()))
            .unwrap();
        out.push(m);
    }
    out
}

async fn publish(api: &dyn DaprApi, topic: &str, n: u64, answer: &str) {
    api.publish_event(PublishEvent {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        data: serde_json::to_vec(&serde_json::json!({"n": n, "answer": answer})).unwrap(),
        content_type: "application/json".into(),
        ..PublishEvent::default()
    })
    .await
    .unwrap();
}

/// The app's next event on `topic`, through a streaming subscription of
/// the runtime (acked).
async fn next_of_app(api: &dyn DaprApi, topic: &str) -> serde_json::Value {
    let mut sub = api
        .subscribe_events(StreamSubscribeRequest {
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            ..StreamSubscribeRequest::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    sub.respond(&event.id, wasmdapr_runtime::api::EventStatus::Success)
        .unwrap();
    serde_json::from_slice(&event.data).unwrap()
}

/// Every mode of the guest: publish, bulk publish and raw publish reach the
/// broker as Dapr envelopes them; a subscription's success, retry
/// (delivered again) and drop (to the dead-letter topic) answers are kept
/// by the broker; a dropped subscription's unanswered event is delivered
/// again; `next` is bounded by the run's time limit; an instance holds at
/// most 16 subscriptions; without the grant every call is
/// `ERR_DAPR_NOT_GRANTED`; an unknown pub/sub is `ERR_PUBSUB_NOT_FOUND`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub async fn p2_dapr_pubsub() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, components) = runtime(dir.path()).await;
    let api: Arc<dyn DaprApi> = runtime.clone();
    let granted = || Some(api.clone());

    // Publishing.
    let ran = guest(
        granted(),
        &["publish", "pubsub", "orders"],
        Limits::default(),
    )
    .await;
    ok(&ran);
    assert!(ran.stdout.contains("published failed=0"), "{}", ran.stdout);
    let messages = read(&components, "orders", 5).await;
    let ce = |m: &ReceivedMessage| serde_json::from_slice::<serde_json::Value>(&m.data).unwrap();
    let first = ce(&messages[0]);
    assert_eq!(first["data"], serde_json::json!({"n": 1}));
    assert_eq!(first["source"], "pubsub-guest");
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(messages[1].data, [0, 1, 2], "the raw payload, unwrapped");
    for (m, n) in messages[2..].iter().zip(2..) {
        assert_eq!(ce(m)["data"], serde_json::json!({ "n": n }));
        assert_eq!(ce(m)["topic"], "orders");
    }

    // Subscribing and answering: SUCCESS acks, DROP dead-letters.
    publish(&*api, "work", 1, "success").await;
    publish(&*api, "work", 3, "drop").await;
    let ran = guest(
        granted(),
        &["subscribe", "pubsub", "work", "work-dlq", "2"],
        Limits::default(),
    )
    .await;
    ok(&ran);
    assert_eq!(
        ran.stdout.lines().collect::<Vec<_>>(),
        ["event 1 Success", "event 3 Drop", "done"],
        "{}",
        ran.stdout
    );
    let dropped = read(&components, "work-dlq", 1).await;
    assert_eq!(
        ce(&dropped[0])["data"]["n"],
        3,
        "the dropped event, dead-lettered"
    );
    // RETRY (without a dead-letter topic: with one, daprd dead-letters a
    // failed delivery at once) delivers the event again.
    publish(&*api, "work", 2, "retry").await;
    let again = guest(
        granted(),
        &["subscribe", "pubsub", "work", "-", "1"],
        Limits::default(),
    )
    .await;
    ok(&again);
    assert_eq!(
        again.stdout.lines().collect::<Vec<_>>(),
        ["event 2 Retry", "event 2 Success", "done"],
        "{}",
        again.stdout
    );
    // 1 and 3 were acked, 2 too: the app's next event is a new one.
    publish(&*api, "work", 4, "success").await;
    assert_eq!(next_of_app(&*api, "work").await["n"], 4);

    // Dropping a subscription redelivers its unanswered event.
    publish(&*api, "abandoned", 7, "success").await;
    let ran = guest(
        granted(),
        &["abandon", "pubsub", "abandoned"],
        Limits::default(),
    )
    .await;
    ok(&ran);
    assert!(ran.stdout.contains("redelivered 7"), "{}", ran.stdout);

    // `next` waits asynchronously, and the time limit ends the wait.
    let ran = guest(
        granted(),
        &["wait", "pubsub", "quiet"],
        timeout(Duration::from_millis(500)),
    )
    .await;
    assert!(
        matches!(ran.result, Err(HostError::Timeout { .. })),
        "{:?} {}",
        ran.result,
        ran.stdout
    );

    // At most 16 subscriptions at once per instance.
    let ran = guest(granted(), &["many", "pubsub", "crowded"], Limits::default()).await;
    ok(&ran);
    assert!(
        ran.stdout.contains("opened 16 then ERR_PUBSUB_SUBSCRIBE"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("reopened"), "{}", ran.stdout);

    // No grant, unknown pub/sub.
    for args in [
        &["publish", "pubsub", "t"][..],
        &["subscribe", "pubsub", "t", "-", "1"],
    ] {
        let ran = guest(None, args, Limits::default()).await;
        assert_eq!(ran.result.as_ref().ok(), Some(&1), "{args:?}");
        assert_eq!(
            ran.stdout.trim(),
            "error ERR_DAPR_NOT_GRANTED 403",
            "{args:?}"
        );
    }
    for args in [
        &["publish", "nope", "t"][..],
        &["subscribe", "nope", "t", "-", "1"],
    ] {
        let ran = guest(granted(), args, Limits::default()).await;
        assert_eq!(ran.result.as_ref().ok(), Some(&1), "{args:?}");
        assert_eq!(
            ran.stdout.trim(),
            "error ERR_PUBSUB_NOT_FOUND 404",
            "{args:?}"
        );
    }
}
