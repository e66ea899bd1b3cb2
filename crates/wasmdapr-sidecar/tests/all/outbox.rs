//! The transactional outbox, end to end: a state transaction on a store
//! with `outboxPublishPubsub` / `outboxPublishTopic`, sent to the sidecar's
//! HTTP API, publishes its upserts to the topic when it commits (and only
//! then), through the internal topic and the relay, to a real app
//! subscribed to the topic (the HTTP app of `delivery`).

use std::time::Duration;

use serde_json::{Value, json};

use super::delivery::{TestApp, resources, serve, sidecar};

/// An SQLite store `outboxstore` (no key prefix, so the test can read the
/// relay's markers), publishing to `neworder` on the `sqlite` broker
/// (`pubsub`: the outbox pub/sub of the store, `sqlite` unless given), and
/// a subscription of `neworder` to `/ok-orders`.
fn outbox_yaml(dir: &std::path::Path, pubsub: &str) -> String {
    format!(
        "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: outboxstore\n\
         spec:\n  type: state.sqlite\n  version: v1\n  metadata:\n\
         \x20 - name: connectionString\n    value: {}\n\
         \x20 - name: keyPrefix\n    value: none\n\
         \x20 - name: outboxPublishPubsub\n    value: {pubsub}\n\
         \x20 - name: outboxPublishTopic\n    value: neworder\n---\n\
         apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\n\
         spec:\n  pubsubname: sqlite\n  topic: neworder\n  routes:\n    default: /ok-orders\n",
        dir.join("state.db").display()
    )
}

async fn transact(http: std::net::SocketAddr, operations: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{http}/v1.0/state/outboxstore/transaction"))
        .json(&json!({ "operations": operations }))
        .send()
        .await
        .unwrap()
}

async fn get_state(http: std::net::SocketAddr, key: &str) -> (u16, String) {
    let answer = reqwest::get(format!("http://{http}/v1.0/state/outboxstore/{key}"))
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Waits until the marker `id` is deleted from the store (at most 10 s).
async fn marker_deleted(http: std::net::SocketAddr, id: &str) {
    for _ in 0..200 {
        if get_state(http, id).await.0 == 204 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("marker {id} still in the store");
}

/// Each upsert is published once, as daprd publishes it: a CloudEvent whose
/// id is its marker, with the upsert's metadata as attributes, the value
/// as data; deletes publish nothing; the state is written; the markers are
/// gone afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_publishes_its_upserts_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::default();
    let addr = serve(app.clone()).await;
    let yaml = outbox_yaml(dir.path(), "sqlite");
    let sidecar = sidecar("orders", dir.path(), resources(dir.path(), &yaml), addr).await;
    let http = sidecar.http_addr;

    let answer = transact(
        http,
        json!([
            {"operation": "upsert", "request": {"key": "1", "value": "2",
              "metadata": {"outbox.cloudevent.myapp": "myapp1", "data": "a", "id": "b"}}},
            {"operation": "upsert", "request": {"key": "o2", "value": {"item": "book"}}},
            {"operation": "delete", "request": {"key": "gone"}},
        ]),
    )
    .await;
    assert_eq!(answer.status(), 204, "{:?}", answer.text().await);

    let got = app.wait_for("/ok-orders", 2).await;
    let by_data = |data: &Value| {
        got.iter()
            .map(|r| &r.event)
            .find(|e| &e["data"] == data)
            .unwrap_or_else(|| panic!("no event with data {data}: {got:?}"))
            .clone()
    };
    let text = by_data(&json!("2"));
    let id = text["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("outbox-"), "{text}");
    assert_eq!(text["outbox.cloudevent.myapp"], "myapp1");
    assert_eq!(text["topic"], "neworder");
    assert_eq!(text["pubsubname"], "sqlite");
    assert_eq!(text["source"], "orders");
    assert_eq!(text["datacontenttype"], "text/plain");
    let object = by_data(&json!({"item": "book"}));
    assert_eq!(object["datacontenttype"], "application/json");
    assert_ne!(object["id"], text["id"]);

    assert_eq!(get_state(http, "1").await, (200, "\"2\"".into()));
    assert_eq!(
        get_state(http, "o2").await,
        (200, "{\"item\":\"book\"}".into())
    );
    marker_deleted(http, &id).await;
    marker_deleted(http, object["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.deliveries("/ok-orders").len(), 2, "each upsert once");
    sidecar.shutdown().await.unwrap();
}

/// An upsert marked `outbox.projection` is not written: the upsert of the
/// same key publishes its value instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_projection_is_published_instead_of_the_stored_value() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::default();
    let addr = serve(app.clone()).await;
    let yaml = outbox_yaml(dir.path(), "sqlite");
    let sidecar = sidecar("orders", dir.path(), resources(dir.path(), &yaml), addr).await;
    let http = sidecar.http_addr;

    let answer = transact(
        http,
        json!([
            {"operation": "upsert", "request": {"key": "order1",
              "value": {"orderId": "7hf8374s", "type": "book", "name": "The name of the wind"}}},
            {"operation": "upsert", "request": {"key": "order1", "value": {"orderId": "7hf8374s"},
              "metadata": {"outbox.projection": "true"}}},
        ]),
    )
    .await;
    assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
    let got = app.wait_for("/ok-orders", 1).await;
    assert_eq!(got[0].event["data"], json!({"orderId": "7hf8374s"}));
    let (status, stored) = get_state(http, "order1").await;
    assert_eq!(status, 200);
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["name"], "The name of the wind");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.deliveries("/ok-orders").len(), 1);
    sidecar.shutdown().await.unwrap();
}

/// A transaction that fails (an ETag mismatch) writes nothing and publishes
/// nothing, though its internal message reached the broker; the next one
/// is published at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_transaction_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::default();
    let addr = serve(app.clone()).await;
    let yaml = outbox_yaml(dir.path(), "sqlite");
    let sidecar = sidecar("orders", dir.path(), resources(dir.path(), &yaml), addr).await;
    let http = sidecar.http_addr;

    let failed = transact(
        http,
        json!([{"operation": "upsert", "request": {"key": "x", "value": "lost", "etag": "999",
                 "options": {"concurrency": "first-write"}}}]),
    )
    .await;
    assert!(
        !failed.status().is_success(),
        "{}",
        failed.text().await.unwrap()
    );
    assert_eq!(get_state(http, "x").await.0, 204);
    let ok = transact(
        http,
        json!([{"operation": "upsert", "request": {"key": "y", "value": "kept"}}]),
    )
    .await;
    assert_eq!(ok.status(), 204);
    let got = app.wait_for("/ok-orders", 1).await;
    assert_eq!(got[0].event["data"], "kept");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let all = app.deliveries("/ok-orders");
    assert_eq!(all.len(), 1, "the failed upsert was published: {all:?}");
    sidecar.shutdown().await.unwrap();
}

/// An outbox whose pub/sub is not loaded refuses the transaction with
/// daprd's `ERR_PUBLISH_OUTBOX` and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_without_its_pubsub_refuses_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::default();
    let addr = serve(app.clone()).await;
    let yaml = outbox_yaml(dir.path(), "missing");
    let sidecar = sidecar("orders", dir.path(), resources(dir.path(), &yaml), addr).await;
    let http = sidecar.http_addr;
    let answer = transact(
        http,
        json!([{"operation": "upsert", "request": {"key": "z", "value": 1}}]),
    )
    .await;
    assert_eq!(answer.status(), 500);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_PUBLISH_OUTBOX", "{body}");
    assert_eq!(get_state(http, "z").await.0, 204);
    sidecar.shutdown().await.unwrap();
}
