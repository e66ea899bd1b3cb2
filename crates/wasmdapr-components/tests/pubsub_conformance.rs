//! The pub/sub conformance suite: ONE generic body, [`conformance`], run
//! against every broker, each built through [`wasmdapr_components::register`]
//! exactly as the binary builds it from component YAML.
//!
//! Redis is the real server at 127.0.0.1:6379; when it is down the test
//! fails, it never skips. Every check uses topics under a fresh UUID, so
//! runs never see each other's messages.
//!
//! What a broker declares is checked to hold (order, redelivery,
//! durability), and what it does not declare is checked to be absent: a
//! broker without redelivery never delivers a failed message again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use wasmdapr_runtime::pubsub::{
    BulkMessageEntry, BulkPublishRequest, HandlerError, MessageHandler, PubSub, PubSubFeatures,
    PublishRequest, ReceivedMessage, SubscribeRequest, Subscription,
};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec};

/// How long a check waits for deliveries before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Builds a broker of `kind` through the registry, as the runtime does.
async fn build(kind: &str, metadata: &[(&str, &str)]) -> Arc<dyn PubSub> {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let spec = ComponentSpec {
        name: "conformance".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/pubsub_conformance.rs"),
    };
    registry
        .build::<dyn PubSub>(spec)
        .await
        .unwrap_or_else(|e| panic!("{kind} could not be started (is its server running?): {e}"))
}

/// One delivery a handler saw.
#[derive(Debug, Clone)]
struct Delivery {
    data: String,
    attempt: u32,
    /// Whether the handler took it (`Ok`).
    acked: bool,
}

/// What one subscription's handler saw, and how it answers.
#[derive(Default)]
struct Inbox {
    seen: Mutex<Vec<Delivery>>,
    changed: Notify,
    /// Data whose first delivery the handler fails.
    fail_first: BTreeSet<String>,
    /// Data the handler never finishes (a crash while handling).
    hang_on: BTreeSet<String>,
    /// How long each delivery takes.
    pause: Duration,
}

impl Inbox {
    fn new() -> Arc<Self> {
        Arc::new(Inbox::default())
    }

    fn handler(self: &Arc<Self>) -> Arc<dyn MessageHandler> {
        let inbox = self.clone();
        Arc::new(move |message: ReceivedMessage| {
            let inbox = inbox.clone();
            async move {
                let data = String::from_utf8(message.data).expect("utf-8 test data");
                if inbox.hang_on.contains(&data) {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(inbox.pause).await;
                let fail = inbox.fail_first.contains(&data)
                    && !inbox.seen.lock().unwrap().iter().any(|d| d.data == data);
                inbox.seen.lock().unwrap().push(Delivery {
                    data: data.clone(),
                    attempt: message.attempt,
                    acked: !fail,
                });
                inbox.changed.notify_waiters();
                if fail {
                    Err(HandlerError(format!("refusing {data} once")))
                } else {
                    Ok(())
                }
            }
        })
    }

    /// The data of the acked deliveries, in order.
    fn acked(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.acked)
            .map(|d| d.data.clone())
            .collect()
    }

    fn deliveries_of(&self, data: &str) -> Vec<Delivery> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.data == data)
            .cloned()
            .collect()
    }

    /// Waits until `done` holds of the acked data of `inboxes`, or panics.
    async fn wait(inboxes: &[&Arc<Inbox>], what: &str, done: impl Fn(&[Vec<String>]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let waits: Vec<_> = inboxes.iter().map(|i| i.changed.notified()).collect();
            let acked: Vec<Vec<String>> = inboxes.iter().map(|i| i.acked()).collect();
            if done(&acked) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{what}: not done within {PATIENCE:?}; acked so far: {acked:?}");
            }
            let any = futures::future::select_all(waits.into_iter().map(Box::pin));
            let _ = tokio::time::timeout(Duration::from_millis(200), any).await;
        }
    }
}

thread_local! {
    /// Every topic this test made, for it to delete what it leaves on its
    /// server. Per thread: a test's own future runs on its thread (`block_on`),
    /// and `cargo test` runs tests side by side in one process, so a
    /// process-wide list would let one test delete another's streams.
    static TOPICS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn topic(name: &str) -> String {
    let topic = format!("conformance-{}-{name}", uuid::Uuid::new_v4().simple());
    TOPICS.with(|t| t.borrow_mut().push(topic.clone()));
    topic
}

/// The topics this test made.
fn my_topics() -> Vec<String> {
    TOPICS.with(|t| t.borrow().clone())
}

fn messages(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:02}")).collect()
}

async fn publish(broker: &Arc<dyn PubSub>, topic: &str, data: &[String]) {
    for d in data {
        broker
            .publish(PublishRequest {
                topic: topic.to_owned(),
                data: d.clone().into_bytes(),
                content_type: Some("text/plain".into()),
                metadata: [("k".to_string(), "v".to_string())].into(),
            })
            .await
            .expect("publish");
    }
}

async fn subscribe(
    broker: &Arc<dyn PubSub>,
    topic: &str,
    group: &str,
    inbox: &Arc<Inbox>,
) -> Subscription {
    broker
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                consumer_group: group.to_owned(),
                metadata: Default::default(),
            },
            inbox.handler(),
        )
        .await
        .expect("subscribe")
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Every check, against `broker`, which declares `features`; `reopen`
/// builds a second instance of the same broker (same file, same server)
/// for the durability check of durable brokers.
async fn conformance<F, Fut>(broker: Arc<dyn PubSub>, reopen: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn PubSub>>,
{
    let features = broker.features();
    publish_and_subscribe(&broker, features).await;
    redelivery(&broker, features).await;
    group_sharing(&broker).await;
    fan_out(&broker).await;
    bulk_publish(&broker, features).await;
    close_stops_delivery(&broker, features).await;
    if features.durable {
        unacked_survives_a_crash(&broker, reopen().await).await;
    }
    // Expiry is seen on messages kept while no subscriber takes them,
    // which only a durable broker keeps.
    if features.message_ttl && features.durable {
        broker_expires_messages(&broker).await;
    }
}

/// A (durable) broker that declares `MESSAGE_TTL` drops a message whose
/// `ttlInSeconds` passed before it was delivered, and delivers the others.
async fn broker_expires_messages(broker: &Arc<dyn PubSub>) {
    let t = topic("ttl");
    // The group's queue exists (a subscription made it), but nobody takes
    // messages while they expire.
    let idle = Inbox::new();
    let first = subscribe(broker, &t, "app-a", &idle).await;
    publish(broker, &t, &messages("ttl-before", 1)).await;
    Inbox::wait(&[&idle], "before the ttl check", |a| !a[0].is_empty()).await;
    first.close().await;
    for (data, ttl) in [("short-lived", Some("1")), ("kept", None)] {
        broker
            .publish(PublishRequest {
                topic: t.clone(),
                data: data.as_bytes().to_vec(),
                content_type: Some("text/plain".into()),
                metadata: ttl
                    .map(|ttl| [("ttlInSeconds".to_string(), ttl.to_string())].into())
                    .unwrap_or_default(),
            })
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = Inbox::new();
    let again = subscribe(broker, &t, "app-a", &later).await;
    Inbox::wait(&[&later], "after expiry", |a| !a[0].is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(later.acked(), ["kept"], "the expired message was delivered");
    again.close().await;
}

/// Every message published after a subscription reaches it once, with the
/// bytes and metadata published, in publish order when the broker
/// promises order.
async fn publish_and_subscribe(broker: &Arc<dyn PubSub>, features: PubSubFeatures) {
    let t = topic("basic");
    let inbox = Inbox::new();
    let metadata_seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let sink = metadata_seen.clone();
    let inner = inbox.handler();
    let handler: Arc<dyn MessageHandler> = Arc::new(move |m: ReceivedMessage| {
        sink.lock()
            .unwrap()
            .push(m.metadata.clone().into_iter().collect());
        inner.handle(m)
    });
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: t.clone(),
                consumer_group: "app-a".into(),
                metadata: Default::default(),
            },
            handler,
        )
        .await
        .expect("subscribe");
    let sent = messages("basic", 10);
    publish(broker, &t, &sent).await;
    Inbox::wait(&[&inbox], "basic delivery", |a| a[0].len() >= 10).await;
    let got = inbox.acked();
    if features.ordered {
        assert_eq!(got, sent, "the broker promises publish order");
    } else {
        assert_eq!(sorted(&got), sent);
    }
    for m in metadata_seen.lock().unwrap().iter() {
        if features.carries_metadata {
            assert_eq!(m.get("k").map(String::as_str), Some("v"), "{m:?}");
        } else {
            assert_eq!(
                m.get("k"),
                None,
                "a broker said to carry no metadata did: {m:?}"
            );
        }
    }
    subscription.close().await;
}

/// A message whose handler failed is delivered again with a higher
/// attempt when the broker declares redelivery, without holding back the
/// messages after it; never again when it does not.
async fn redelivery(broker: &Arc<dyn PubSub>, features: PubSubFeatures) {
    let t = topic("redelivery");
    let sent = messages("retry", 5);
    let inbox = Arc::new(Inbox {
        fail_first: [sent[1].clone(), sent[3].clone()].into(),
        ..Inbox::default()
    });
    let subscription = subscribe(broker, &t, "app-a", &inbox).await;
    publish(broker, &t, &sent).await;
    if features.redelivery {
        Inbox::wait(&[&inbox], "redelivery", |a| sorted(&a[0]) == sent).await;
        for failed in [&sent[1], &sent[3]] {
            let deliveries = inbox.deliveries_of(failed);
            assert!(deliveries.len() >= 2, "{failed}: {deliveries:?}");
            assert!(
                !deliveries[0].acked && deliveries[0].attempt == 1,
                "{deliveries:?}"
            );
            let last = deliveries.last().unwrap();
            assert!(last.acked && last.attempt >= 2, "{deliveries:?}");
        }
        assert_eq!(inbox.deliveries_of(&sent[0]).len(), 1);
    } else {
        Inbox::wait(&[&inbox], "delivery", |a| a[0].len() >= 3).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            inbox.deliveries_of(&sent[1]).len(),
            1,
            "a broker without redelivery delivered a failed message again"
        );
    }
    subscription.close().await;
}

/// Two subscriptions of one consumer group share the topic: every message
/// reaches one of them, none reaches both, and both get some.
async fn group_sharing(broker: &Arc<dyn PubSub>) {
    let t = topic("shared");
    let slow = || {
        Arc::new(Inbox {
            pause: Duration::from_millis(30),
            ..Inbox::default()
        })
    };
    let (a, b) = (slow(), slow());
    let sa = subscribe(broker, &t, "app-shared", &a).await;
    let sb = subscribe(broker, &t, "app-shared", &b).await;
    let sent = messages("shared", 20);
    publish(broker, &t, &sent).await;
    Inbox::wait(&[&a, &b], "group sharing", |x| {
        x[0].len() + x[1].len() >= 20
    })
    .await;
    let (got_a, got_b) = (a.acked(), b.acked());
    let both: Vec<&String> = got_a.iter().filter(|m| got_b.contains(m)).collect();
    assert!(both.is_empty(), "delivered to both replicas: {both:?}");
    let mut all = got_a.clone();
    all.extend(got_b.clone());
    assert_eq!(sorted(&all), sent);
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "one replica got everything: {got_a:?} / {got_b:?}"
    );
    sa.close().await;
    sb.close().await;
}

/// Two consumer groups (two apps) each get every message.
async fn fan_out(broker: &Arc<dyn PubSub>) {
    let t = topic("fanout");
    let (a, b) = (Inbox::new(), Inbox::new());
    let sa = subscribe(broker, &t, "app-one", &a).await;
    let sb = subscribe(broker, &t, "app-two", &b).await;
    let sent = messages("fan", 5);
    publish(broker, &t, &sent).await;
    Inbox::wait(&[&a, &b], "fan-out", |x| x[0].len() >= 5 && x[1].len() >= 5).await;
    assert_eq!(sorted(&a.acked()), sent);
    assert_eq!(sorted(&b.acked()), sent);
    sa.close().await;
    sb.close().await;
}

/// A bulk publish reports no failed entry and delivers every entry, in
/// order when the broker promises order.
async fn bulk_publish(broker: &Arc<dyn PubSub>, features: PubSubFeatures) {
    let t = topic("bulk");
    let inbox = Inbox::new();
    let subscription = subscribe(broker, &t, "app-a", &inbox).await;
    let sent = messages("bulk", 6);
    let failed = broker
        .bulk_publish(BulkPublishRequest {
            topic: t.clone(),
            entries: sent
                .iter()
                .enumerate()
                .map(|(i, d)| BulkMessageEntry {
                    entry_id: i.to_string(),
                    event: d.clone().into_bytes(),
                    content_type: "text/plain".into(),
                    metadata: Default::default(),
                })
                .collect(),
            metadata: Default::default(),
        })
        .await;
    assert!(failed.is_empty(), "{failed:?}");
    Inbox::wait(&[&inbox], "bulk delivery", |a| a[0].len() >= 6).await;
    if features.ordered {
        assert_eq!(inbox.acked(), sent);
    } else {
        assert_eq!(sorted(&inbox.acked()), sent);
    }
    subscription.close().await;
}

/// A closed subscription receives nothing more. On a durable broker, what
/// is published while a group has no subscription reaches its next one;
/// on a broker that is not, it is not kept.
async fn close_stops_delivery(broker: &Arc<dyn PubSub>, features: PubSubFeatures) {
    let t = topic("close");
    let first = Inbox::new();
    let subscription = subscribe(broker, &t, "app-a", &first).await;
    publish(broker, &t, &messages("before", 1)).await;
    Inbox::wait(&[&first], "before close", |a| !a[0].is_empty()).await;
    subscription.close().await;
    let later = messages("after", 2);
    publish(broker, &t, &later).await;
    let second = Inbox::new();
    let again = subscribe(broker, &t, "app-a", &second).await;
    if features.durable {
        Inbox::wait(&[&second], "after resubscribe", |a| a[0].len() >= 2).await;
        assert_eq!(sorted(&second.acked()), later);
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            second.acked().is_empty(),
            "a broker that is not durable kept messages without a subscriber: {:?}",
            second.acked()
        );
    }
    assert_eq!(
        first.acked(),
        messages("before", 1),
        "delivered after close"
    );
    again.close().await;
}

/// A message taken by a subscriber that never acks it (its process died
/// while handling) is delivered to the group's next subscriber, here on
/// another instance of the broker, after the processing timeout; nothing
/// else is lost.
async fn unacked_survives_a_crash(broker: &Arc<dyn PubSub>, other: Arc<dyn PubSub>) {
    let t = topic("crash");
    let sent = messages("crash", 3);
    let dying = Arc::new(Inbox {
        hang_on: [sent[0].clone()].into(),
        ..Inbox::default()
    });
    // The first subscriber takes crash-00 and never returns from it.
    let subscription = subscribe(broker, &t, "app-crash", &dying).await;
    publish(broker, &t, &sent[..1]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(subscription);
    publish(broker, &t, &sent[1..]).await;
    let survivor = Inbox::new();
    let taken_over = subscribe(&other, &t, "app-crash", &survivor).await;
    // The dying subscriber may still take what was published while it
    // stopped; between them, everything is acked.
    Inbox::wait(&[&survivor, &dying], "after the crash", |a| {
        let mut all = a[0].clone();
        all.extend(a[1].clone());
        all.sort();
        all.dedup();
        all == sent
    })
    .await;
    let redelivered = survivor.deliveries_of(&sent[0]);
    assert!(redelivered[0].attempt >= 2, "{redelivered:?}");
    assert!(!dying.acked().contains(&sent[0]));
    taken_over.close().await;
}

/// `pubsub.in-memory` passes the suite (redelivery in process, no durability).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory() {
    let metadata = [("redeliverInterval", "100ms")];
    let broker = build("pubsub.in-memory", &metadata).await;
    conformance(broker, || async {
        unreachable!("in-memory is not durable")
    })
    .await;
}

/// `pubsub.sqlite` on a file passes the suite, a second instance on the
/// same file taking over a crashed subscriber's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("pubsub.db");
    let path = path.to_str().expect("utf-8 path").to_owned();
    let metadata = [
        ("connectionString", path.as_str()),
        ("processingTimeout", "2s"),
        ("redeliverInterval", "200ms"),
        ("pollInterval", "50ms"),
        ("queueDepth", "2"),
    ];
    let broker = build("pubsub.sqlite", &metadata).await;
    conformance(broker, || build("pubsub.sqlite", &metadata)).await;
}

/// `pubsub.redis` (one handler at a time: ordered) against the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_ordered() {
    let metadata = [
        ("redisHost", "127.0.0.1:6379"),
        ("processingTimeout", "2s"),
        ("redeliverInterval", "300ms"),
        ("queueDepth", "2"),
        ("concurrency", "1"),
    ];
    let broker = build("pubsub.redis", &metadata).await;
    assert!(broker.features().ordered);
    conformance(broker.clone(), || build("pubsub.redis", &metadata)).await;

    // A closed subscription leaves no consumer behind in the group.
    let t = topic("consumers");
    let inbox = Inbox::new();
    subscribe(&broker, &t, "app-a", &inbox).await.close().await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&t)
        .arg("app-a")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(consumers.is_empty(), "{consumers:?}");
    let _: i64 = redis::cmd("DEL").arg(&t).query_async(&mut c).await.unwrap();
}

/// `pubsub.redis` with Dapr's default concurrency (10 handlers at once:
/// no order promised) passes the suite too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_concurrent() {
    let metadata = [
        ("redisHost", "127.0.0.1:6379"),
        ("processingTimeout", "2s"),
        ("redeliverInterval", "300ms"),
        ("queueDepth", "2"),
    ];
    let broker = build("pubsub.redis", &metadata).await;
    assert!(!broker.features().ordered);
    conformance(broker, || build("pubsub.redis", &metadata)).await;
}

/// `pubsub.redis` with `redeliverInterval: 0` does not redeliver, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_without_redelivery() {
    let metadata = [
        ("redisHost", "127.0.0.1:6379"),
        ("redeliverInterval", "0"),
        ("processingTimeout", "1s"),
        ("queueDepth", "2"),
        ("concurrency", "1"),
    ];
    let broker = build("pubsub.redis", &metadata).await;
    let features = broker.features();
    assert!(!features.redelivery);
    redelivery(&broker, features).await;
}

/// Published messages survive closing and reopening the SQLite file, and
/// the stream in Redis has Dapr's layout (`data` and `metadata` fields),
/// so a Dapr sidecar on the same Redis reads them.
#[tokio::test]
async fn layouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pubsub.db");
    let metadata = [
        ("connectionString", path.to_str().unwrap()),
        ("pollInterval", "50ms"),
    ];
    let t = topic("reopen");
    let broker = build("pubsub.sqlite", &metadata).await;
    publish(&broker, &t, &messages("kept", 2)).await;
    drop(broker);
    let broker = build("pubsub.sqlite", &metadata).await;
    let inbox = Inbox::new();
    let s = subscribe(&broker, &t, "late-app", &inbox).await;
    Inbox::wait(&[&inbox], "after reopen", |a| a[0].len() >= 2).await;
    assert_eq!(inbox.acked(), messages("kept", 2));
    s.close().await;

    let broker = build("pubsub.redis", &[("redisHost", "127.0.0.1:6379")]).await;
    let t = topic("layout");
    publish(&broker, &t, &messages("raw", 1)).await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::Value = redis::cmd("XRANGE")
        .arg(&t)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let text = format!("{entries:?}");
    assert!(text.contains("data") && text.contains("metadata"), "{text}");
    let _: i64 = redis::cmd("DEL").arg(&t).query_async(&mut c).await.unwrap();
}

/// Closing a subscription whose one handler never returns, with messages
/// waiting behind it, ends within the drain bound (5 s) instead of
/// waiting for it forever (the broker keeps those messages unsettled).
async fn close_despite_a_hung_handler(broker: &Arc<dyn PubSub>) {
    let t = topic("hung");
    let inbox = Arc::new(Inbox {
        hang_on: ["hang-00".to_string()].into(),
        ..Inbox::default()
    });
    let subscription = subscribe(broker, &t, "app-a", &inbox).await;
    publish(broker, &t, &messages("hang", 3)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), subscription.close())
        .await
        .expect("close waited for a handler that never returns");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "it did not wait for the running handler"
    );
}

/// Deletes the JetStream streams this process made (one per topic).
async fn delete_jetstream_streams(url: &str) {
    let client = async_nats::connect(url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    for t in my_topics() {
        if let Ok(name) = js.stream_by_subject(t.as_str()).await {
            let _ = js.delete_stream(&name).await;
        }
    }
}

const NATS_URL: &str = "nats://127.0.0.1:4222";

/// `pubsub.jetstream` (one handler at a time: ordered) against the real
/// server: durable consumers per group, redelivery by nak and by
/// `ackWait` expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_ordered() {
    let metadata = [("natsURL", NATS_URL), ("ackWait", "2s")];
    let broker = build("pubsub.jetstream", &metadata).await;
    let features = broker.features();
    assert!(features.ordered && features.redelivery && features.durable);
    conformance(broker.clone(), || build("pubsub.jetstream", &metadata)).await;
    close_despite_a_hung_handler(&broker).await;
    delete_jetstream_streams(NATS_URL).await;
}

/// `pubsub.jetstream` with `concurrencyMode: parallel` (no order promised)
/// passes the suite too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_parallel() {
    let metadata = [
        ("natsURL", NATS_URL),
        ("ackWait", "2s"),
        ("concurrencyMode", "parallel"),
        ("maxAckPending", "4"),
    ];
    let broker = build("pubsub.jetstream", &metadata).await;
    assert!(!broker.features().ordered);
    conformance(broker, || build("pubsub.jetstream", &metadata)).await;
    delete_jetstream_streams(NATS_URL).await;
}

/// `pubsub.jetstream` with `ackPolicy: none` neither acks nor redelivers,
/// and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_without_acks() {
    let metadata = [("natsURL", NATS_URL), ("ackPolicy", "none")];
    let broker = build("pubsub.jetstream", &metadata).await;
    let features = broker.features();
    assert!(!features.redelivery);
    redelivery(&broker, features).await;
    delete_jetstream_streams(NATS_URL).await;
}

/// With `streamName` and `durableName` (Dapr's way of binding one
/// consumer), a second topic in that stream is refused rather than given
/// the first topic's consumer and so its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_named_stream_and_durable() {
    use wasmdapr_runtime::pubsub::PubSubError;

    let stream = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    let durable = format!("{stream}-durable");
    let metadata = [
        ("natsURL", NATS_URL),
        ("streamName", stream.as_str()),
        ("durableName", durable.as_str()),
    ];
    let broker = build("pubsub.jetstream", &metadata).await;
    let (first, second) = (topic("named-1"), topic("named-2"));
    let inbox = Inbox::new();
    let s = subscribe(&broker, &first, "app-a", &inbox).await;
    publish(&broker, &first, &messages("named", 2)).await;
    Inbox::wait(&[&inbox], "named stream", |a| a[0].len() >= 2).await;
    let refused = broker
        .subscribe(
            SubscribeRequest {
                topic: second.clone(),
                consumer_group: "app-a".into(),
                metadata: Default::default(),
            },
            Inbox::new().handler(),
        )
        .await;
    assert!(
        matches!(&refused, Err(PubSubError::InvalidRequest(m)) if m.contains(&durable)),
        "{refused:?}"
    );
    s.close().await;
    let client = async_nats::connect(NATS_URL).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream(&stream)
        .await
        .expect("the named stream")
        .cached_info()
        .clone();
    assert_eq!(info.config.subjects, [first]);
    js.delete_stream(&stream).await.expect("delete");
}

/// The durable consumer of a group lives on the server: what is published
/// while the group has no subscriber, and no broker instance at all,
/// reaches the group's next subscriber on a new instance, once; the
/// consumer is the one named after the group; another group made later
/// reads the stream from its start (`deliverPolicy: all`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_durable_consumer_survives_rebuild() {
    let metadata = [("natsURL", NATS_URL), ("ackWait", "2s")];
    let t = topic("rebuild");
    let broker = build("pubsub.jetstream", &metadata).await;
    let first = Inbox::new();
    let s = subscribe(&broker, &t, "app-a", &first).await;
    publish(&broker, &t, &messages("early", 2)).await;
    Inbox::wait(&[&first], "first instance", |a| a[0].len() >= 2).await;
    s.close().await;
    broker.close().await.expect("close");
    drop(broker);

    let other = build("pubsub.jetstream", &metadata).await;
    publish(&other, &t, &messages("while-away", 3)).await;
    drop(other);

    let rebuilt = build("pubsub.jetstream", &metadata).await;
    let second = Inbox::new();
    let s = subscribe(&rebuilt, &t, "app-a", &second).await;
    Inbox::wait(&[&second], "rebuilt instance", |a| a[0].len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(second.acked(), messages("while-away", 3));
    s.close().await;

    let newcomer = Inbox::new();
    let s = subscribe(&rebuilt, &t, "app-one", &newcomer).await;
    Inbox::wait(&[&newcomer], "new group", |a| a[0].len() >= 5).await;
    let mut all = messages("early", 2);
    all.extend(messages("while-away", 3));
    assert_eq!(newcomer.acked(), all);
    s.close().await;

    let client = async_nats::connect(NATS_URL).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let name = js.stream_by_subject(t.as_str()).await.expect("stream");
    let mut stream = js.get_stream(&name).await.expect("stream");
    let info = stream
        .consumer_info(format!("app-a-{t}"))
        .await
        .expect("durable consumer");
    assert_eq!(info.num_pending, 0, "{info:?}");
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    let _ = stream.info().await;
    delete_jetstream_streams(NATS_URL).await;
}

const MQTT_URL: &str = "tcp://127.0.0.1:1883";

/// `pubsub.mqtt3` with Dapr's defaults (QoS 1, handlers in parallel)
/// against the real Mosquitto: shared subscriptions per group, and the
/// suite confirms what MQTT 3 cannot do (no redelivery, no durability, no
/// metadata).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt3_parallel() {
    let metadata = [("url", MQTT_URL), ("consumerID", "conformance")];
    let broker = build("pubsub.mqtt3", &metadata).await;
    let features = broker.features();
    assert_eq!(features, PubSubFeatures::default(), "MQTT 3 promises none");
    conformance(broker, || async { unreachable!("not durable") }).await;
}

/// `pubsub.mqtt3` with one handler at a time keeps the broker's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt3_single() {
    let metadata = [("url", MQTT_URL), ("concurrencyMode", "single")];
    let broker = build("pubsub.mqtt3", &metadata).await;
    assert!(broker.features().ordered);
    conformance(broker.clone(), || async { unreachable!("not durable") }).await;
    close_despite_a_hung_handler(&broker).await;
}

/// Failed messages stay unacked (MQTT 3 has no nack), yet cannot stall a
/// subscription: past the bound it lets go of them by reconnecting, so it
/// goes on receiving beyond the broker's in-flight window (Mosquitto's is
/// 20 messages), and never receives a failed message twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt3_failures_do_not_stall() {
    let broker = build("pubsub.mqtt3", &[("url", MQTT_URL)]).await;
    let t = topic("failing");
    let bad = messages("bad", 30);
    let inbox = Arc::new(Inbox {
        fail_first: bad.iter().cloned().collect(),
        ..Inbox::default()
    });
    let subscription = subscribe(&broker, &t, "app-a", &inbox).await;
    // One at a time, each waited for a while: a message published while
    // the subscription reconnects is lost (MQTT 3 keeps nothing for it),
    // the others are all seen, well past the broker's window.
    for data in &bad {
        publish(&broker, &t, std::slice::from_ref(data)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while inbox.deliveries_of(data).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let failed = inbox
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|d| !d.acked)
        .count();
    assert!(failed > 20, "stalled after {failed} failed messages");
    publish(&broker, &t, &messages("good", 1)).await;
    Inbox::wait(&[&inbox], "after the failures", |a| {
        a[0] == messages("good", 1)
    })
    .await;
    for data in &bad {
        assert!(
            inbox.deliveries_of(data).len() <= 1,
            "{data} delivered again"
        );
    }
    subscription.close().await;
}

/// The consumer groups the checks use.
const GROUPS: [&str; 5] = ["app-a", "app-shared", "app-one", "app-two", "app-crash"];

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672";

async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(AMQP_URL, Default::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}

/// Deletes the queues (and their dead-letter pairs) and exchanges the
/// RabbitMQ checks of this process made.
async fn delete_rabbitmq_topology() {
    let (connection, channel) = amqp_channel().await;
    for t in &my_topics() {
        for g in GROUPS {
            let queue = format!("{g}-{t}");
            for name in [queue.clone(), format!("dlq-{queue}")] {
                channel
                    .queue_delete(name.as_str().into(), Default::default())
                    .await
                    .expect("queue.delete");
            }
            channel
                .exchange_delete(format!("dlx-{queue}").as_str().into(), Default::default())
                .await
                .expect("exchange.delete");
        }
        channel
            .exchange_delete(t.as_str().into(), Default::default())
            .await
            .expect("exchange.delete");
    }
    connection.close(200, "done".into()).await.expect("close");
}

/// `pubsub.rabbitmq` configured to keep what it is given (queues kept
/// without consumers, failures requeued, one handler at a time): durable,
/// redelivering, ordered, and expiring messages by `ttlInSeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_durable_ordered() {
    let metadata = [
        ("connectionString", AMQP_URL),
        ("deletedWhenUnused", "false"),
        ("requeueInFailure", "true"),
        ("deliveryMode", "2"),
        ("concurrencyMode", "single"),
    ];
    let broker = build("pubsub.rabbitmq", &metadata).await;
    let features = broker.features();
    assert!(features.durable && features.redelivery && features.ordered && features.message_ttl);
    conformance(broker.clone(), || build("pubsub.rabbitmq", &metadata)).await;
    close_despite_a_hung_handler(&broker).await;
    delete_rabbitmq_topology().await;
}

/// `pubsub.rabbitmq` with Dapr's defaults (queues deleted with their last
/// consumer, failures dropped, handlers in parallel) neither redelivers
/// nor keeps messages for an absent group, and the suite checks that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_dapr_defaults() {
    let metadata = [("connectionString", AMQP_URL)];
    let broker = build("pubsub.rabbitmq", &metadata).await;
    let features = broker.features();
    assert!(!features.durable && !features.redelivery && !features.ordered);
    conformance(broker, || async { unreachable!("not durable") }).await;
    delete_rabbitmq_topology().await;
}

/// The queue of a group is named `<group>-<topic>` and bound to the fanout
/// exchange `<topic>`, as Dapr names them: a plain AMQP consumer on that
/// queue (what a daprd of the same app runs) shares the messages with the
/// subscription, each going to one of them. With `enableDeadLetter`, a
/// failed message goes to `dlq-<queue>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_layout_shared_with_daprd() {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions,
    };

    let metadata = [
        ("connectionString", AMQP_URL),
        ("enableDeadLetter", "true"),
        ("concurrencyMode", "single"),
    ];
    let broker = build("pubsub.rabbitmq", &metadata).await;
    let t = topic("daprd");
    let ours = Arc::new(Inbox {
        pause: Duration::from_millis(30),
        fail_first: ["poison".to_string()].into(),
        ..Inbox::default()
    });
    let subscription = subscribe(&broker, &t, "app-a", &ours).await;

    // The queue exists under Dapr's name, and declaring it as daprd does
    // (durable, deleted when unused, a classic queue with its dead-letter
    // exchange) finds it equal: RabbitMQ refuses an inequivalent one.
    let (connection, channel) = amqp_channel().await;
    let queue = format!("app-a-{t}");
    let mut dapr_args = lapin::types::FieldTable::default();
    dapr_args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString(format!("dlx-{queue}").as_str().into()),
    );
    dapr_args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("classic".into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                auto_delete: true,
                ..Default::default()
            },
            dapr_args,
        )
        .await
        .expect("the queue is named <group>-<topic> and declared as daprd declares it");
    let theirs: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut daprd = channel
        .basic_consume(
            queue.as_str().into(),
            "daprd".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .expect("consume");
    let sink = theirs.clone();
    let reader = tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(Ok(delivery)) = daprd.next().await {
            tokio::time::sleep(Duration::from_millis(30)).await;
            sink.lock()
                .unwrap()
                .push(String::from_utf8(delivery.data.clone()).unwrap());
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    });
    let sent = messages("shared", 20);
    publish(&broker, &t, &sent).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (a, b) = (ours.acked(), theirs.lock().unwrap().clone());
        if a.len() + b.len() >= 20 {
            let mut all = a.clone();
            all.extend(b.clone());
            assert_eq!(sorted(&all), sent, "each message once: {a:?} / {b:?}");
            assert!(!a.is_empty() && !b.is_empty(), "{a:?} / {b:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{a:?} / {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.abort();
    channel
        .basic_cancel("daprd".into(), Default::default())
        .await
        .expect("cancel");

    // A failed message is dead-lettered, not lost (requeueInFailure off).
    publish(&broker, &t, &["poison".to_string()]).await;
    Inbox::wait(&[&ours], "poison", |_| {
        !ours.deliveries_of("poison").is_empty()
    })
    .await;
    let dlq = format!("dlq-{queue}");
    let mut dead = None;
    for _ in 0..50 {
        dead = channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.expect("the failed message in the dead-letter queue");
    assert_eq!(dead.delivery.data, b"poison");
    subscription.close().await;
    connection.close(200, "done".into()).await.expect("close");
    delete_rabbitmq_topology().await;
}

/// `examples/components/rabbitmq` loads and starts.
#[tokio::test]
async fn rabbitmq_example() {
    example_folder("rabbitmq", "pubsub.rabbitmq").await;
}

/// The example resources folder of a broker loads as the sidecar loads it
/// (against the real servers): its `pubsub` component is of `kind`, and
/// its `statestore` is the Redis one of `examples/components/redis`, so
/// an app moves between brokers by its resources folder alone.
async fn example_folder(folder: &str, kind: &str) {
    use wasmdapr_runtime::{Components, Resources};
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/components");
    let resources = Resources::load_dirs(&[examples.join(folder)]).expect("the example resources");
    let redis = Resources::load_dirs(&[examples.join("redis")]).expect("the redis resources");
    let state = |r: &Resources| {
        r.components
            .iter()
            .find(|c| c.spec.name == "statestore")
            .map(|c| (c.spec.kind.clone(), c.spec.metadata.clone()))
    };
    assert_eq!(
        state(&resources),
        state(&redis),
        "{folder}: the statestore differs"
    );
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let components = Components::load_declared(resources.components, &registry)
        .await
        .unwrap_or_else(|e| panic!("{folder}: {e}"));
    let pubsubs: Vec<(String, String)> = components
        .pubsubs()
        .map(|p| (p.spec.name.clone(), p.spec.kind.clone()))
        .collect();
    assert_eq!(pubsubs, [("pubsub".to_string(), kind.to_string())]);
}

/// `examples/components/jetstream` loads and starts.
#[tokio::test]
async fn jetstream_example() {
    example_folder("jetstream", "pubsub.jetstream").await;
}
