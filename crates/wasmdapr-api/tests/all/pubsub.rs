//! Publishing through both doors and `RemoteDapr`, verified by subscribing
//! to the broker itself (the real `pubsub.in-memory` and `pubsub.sqlite`
//! through the `PubSub` trait): what arrives is daprd's CloudEvent, and
//! every refusal is daprd's status, code and rich details.

use std::sync::Arc;
use std::time::Duration;

use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::Code;
use tonic_types::StatusExt as _;
use wasmdapr_api::{ApiConfig, RemoteDapr};
use wasmdapr_runtime::api::{PubSubApi, PublishEvent};
use wasmdapr_runtime::pubsub::{PubSub, ReceivedMessage, SubscribeRequest, Subscription};
use wasmdapr_runtime::{AppId, ComponentRegistry, ComponentSpec, Components, Runtime};

use crate::{APP_ID, Sidecar, spec};

/// A sidecar over `pubsub` (in-memory), `durable` (SQLite in a temporary
/// directory), `scopedtopics` (this app may publish to `allowed` only)
/// and `closed` (an in-memory broker closed before the test, so every
/// publish to it fails), with the components kept to subscribe.
struct Fixture {
    sidecar: Sidecar,
    components: Arc<Components>,
    _dir: tempfile::TempDir,
}

async fn fixture(config: ApiConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut durable = spec("durable", "pubsub.sqlite", &[]);
    durable.metadata.insert(
        "connectionString".into(),
        dir.path().join("q.db").to_string_lossy().into_owned(),
    );
    durable
        .metadata
        .insert("pollInterval".into(), "50ms".into());
    let mut scoped = spec("scopedtopics", "pubsub.in-memory", &[]);
    scoped
        .metadata
        .insert("publishingScopes".into(), format!("{APP_ID}=allowed"));
    let specs: Vec<ComponentSpec> = vec![
        spec("pubsub", "pubsub.in-memory", &[]),
        spec("private", "pubsub.in-memory", &["other-app"]),
        spec("closed", "pubsub.in-memory", &[]),
        durable,
        scoped,
    ];
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let components = Arc::new(Components::load(specs, &registry).await.unwrap());
    broker(&components, "closed").close().await.unwrap();
    let runtime = Arc::new(Runtime::new(
        AppId::new(APP_ID).unwrap(),
        components.clone(),
    ));
    Fixture {
        sidecar: Sidecar::serve(runtime, config).await,
        components,
        _dir: dir,
    }
}

fn broker(components: &Components, name: &str) -> Arc<dyn PubSub> {
    components
        .scoped::<dyn PubSub>(name, &AppId::new(APP_ID).unwrap())
        .unwrap()
        .component
        .clone()
}

/// A subscription of group `reader` to `topic`, and what it receives.
async fn listen(
    f: &Fixture,
    pubsub: &str,
    topic: &str,
) -> (Subscription, mpsc::UnboundedReceiver<ReceivedMessage>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let subscription = broker(&f.components, pubsub)
        .subscribe(
            SubscribeRequest {
                topic: topic.into(),
                consumer_group: "reader".into(),
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
    (subscription, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<ReceivedMessage>) -> ReceivedMessage {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("subscription open")
}

fn cloudevent(m: &ReceivedMessage) -> Value {
    serde_json::from_slice(&m.data).expect("a JSON CloudEvent")
}

/// `POST /v1.0/publish/{pubsub}/{topic…}` answers 204 with no body; the
/// broker holds daprd's CloudEvent: the topic with its slashes, the JSON
/// body as `data`, the caller's trace continued, the metadata passed on.
#[tokio::test]
async fn http_publish_builds_the_cloudevent() {
    let f = fixture(ApiConfig::default()).await;
    let (_s, mut rx) = listen(&f, "pubsub", "orders/eu").await;
    let response = f
        .sidecar
        .client
        .post(
            f.sidecar
                .url("/v1.0/publish/pubsub/orders/eu?metadata.ttlInSeconds=60&metadata.k=v"),
        )
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(r#"{"orderId": 12345678901234567890}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let m = next(&mut rx).await;
    assert_eq!(m.metadata["k"], "v");
    let text = String::from_utf8(m.data.clone()).unwrap();
    assert!(
        text.contains(r#""data":{"orderId":12345678901234567890}"#),
        "{text}"
    );
    let ce = cloudevent(&m);
    assert_eq!(ce["source"], APP_ID);
    assert_eq!(ce["topic"], "orders/eu");
    assert_eq!(ce["pubsubname"], "pubsub");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert!(ce["expiration"].is_string());
    let traceparent = ce["traceparent"].as_str().unwrap();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert_eq!(ce["traceid"], ce["traceparent"]);

    // PUT too, a CloudEvent passed through, and raw payloads untouched.
    f.sidecar
        .client
        .put(f.sidecar.url("/v1.0/publish/pubsub/orders/eu"))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"id":"mine","type":"my.type","data":"x","ext":1}"#)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let ce = cloudevent(&next(&mut rx).await);
    assert_eq!(
        (ce["id"].as_str(), ce["type"].as_str()),
        (Some("mine"), Some("my.type"))
    );
    assert_eq!(
        (ce["ext"].as_i64(), ce["source"].as_str()),
        (Some(1), Some("Dapr"))
    );
    f.sidecar
        .client
        .post(
            f.sidecar
                .url("/v1.0/publish/pubsub/orders/eu?metadata.rawPayload=true"),
        )
        .body(vec![0u8, 255])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(next(&mut rx).await.data, [0u8, 255]);
}

/// The refusals of daprd's table over HTTP: unknown, out-of-scope and
/// nameless pub/subs and empty topics are 404, a topic outside the
/// publishing scopes 403, a bad `rawPayload` 400, a CloudEvent that is no
/// object 500, a broker failure 500 — each with its code and `ErrorInfo`.
#[tokio::test]
async fn http_publish_errors() {
    let f = fixture(ApiConfig {
        max_body_size: 1024,
        ..ApiConfig::default()
    })
    .await;
    let post = |path: &str, content_type: &str, body: &'static str| {
        let request = f
            .sidecar
            .client
            .post(f.sidecar.url(path))
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let cases = [
        (
            "/v1.0/publish/nope/t",
            "text/plain",
            "x",
            404,
            "ERR_PUBSUB_NOT_FOUND",
            "DAPR_PUBSUB_NOT_FOUND",
        ),
        (
            "/v1.0/publish/private/t",
            "text/plain",
            "x",
            404,
            "ERR_PUBSUB_NOT_FOUND",
            "DAPR_PUBSUB_NOT_FOUND",
        ),
        (
            "/v1.0/publish//t",
            "text/plain",
            "x",
            404,
            "ERR_PUBSUB_EMPTY",
            "DAPR_PUBSUB_NAME_EMPTY",
        ),
        (
            "/v1.0/publish/pubsub/",
            "text/plain",
            "x",
            404,
            "ERR_TOPIC_NAME_EMPTY",
            "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        ),
        (
            "/v1.0/publish/pubsub",
            "text/plain",
            "x",
            404,
            "ERR_TOPIC_NAME_EMPTY",
            "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        ),
        (
            "/v1.0/publish/scopedtopics/other",
            "text/plain",
            "x",
            403,
            "ERR_PUBSUB_FORBIDDEN",
            "DAPR_PUBSUB_FORBIDDEN",
        ),
        (
            "/v1.0/publish/pubsub/t?metadata.rawPayload=maybe",
            "text/plain",
            "x",
            400,
            "ERR_PUBSUB_REQUEST_METADATA",
            "DAPR_PUBSUB_METADATA_DESERIALIZATION",
        ),
        (
            "/v1.0/publish/pubsub/t",
            "application/cloudevents+json",
            "[1]",
            500,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
        ),
        (
            "/v1.0/publish/closed/t",
            "text/plain",
            "x",
            500,
            "ERR_PUBSUB_PUBLISH_MESSAGE",
            "DAPR_PUBSUB_PUBLISH_MESSAGE",
        ),
    ];
    for (path, content_type, body, status, code, reason) in cases {
        let (got, answer) = post(path, content_type, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert_eq!(answer["errorCode"], code, "{path}: {answer}");
        let info = answer["details"]
            .as_array()
            .and_then(|d| {
                d.iter()
                    .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
            })
            .unwrap_or_else(|| panic!("{path}: no ErrorInfo in {answer}"));
        assert_eq!(info["reason"], reason, "{path}");
    }
    let (_, forbidden) = post("/v1.0/publish/scopedtopics/other", "text/plain", "x").await;
    assert_eq!(
        forbidden["message"],
        format!("topic other is not allowed for app id {APP_ID}")
    );
    let (_, allowed) = post("/v1.0/publish/scopedtopics/allowed", "text/plain", "x").await;
    assert_eq!(allowed, Value::Null, "204 without a body");
    let big = "x".repeat(2048);
    let response = f
        .sidecar
        .client
        .post(f.sidecar.url("/v1.0/publish/pubsub/t"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// Bulk publish on the stable and the alpha route: each entry its own
/// envelope (JSON, text, base64 bytes) on the durable broker; malformed
/// bodies and entries are 400 `ERR_PUBSUB_EVENTS_SER` with nothing
/// published; a broker failure is 500 with daprd's `failedEntries` body.
#[tokio::test]
async fn http_bulk_publish() {
    let f = fixture(ApiConfig::default()).await;
    let (_s, mut rx) = listen(&f, "durable", "bulk").await;
    for route in [
        "/v1.0/publish/bulk/durable/bulk",
        "/v1.0-alpha1/publish/bulk/durable/bulk",
    ] {
        let response = f
            .sidecar
            .client
            .post(f.sidecar.url(route))
            .json(&json!([
                {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
                {"entryId": "2", "event": "hello", "contentType": "text/plain", "metadata": {"k": "v"}},
                {"entryId": "3", "event": "AP8=", "contentType": "application/octet-stream"},
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            204,
            "{route}: {:?}",
            response.text().await
        );
        let got: Vec<Value> = [
            next(&mut rx).await,
            next(&mut rx).await,
            next(&mut rx).await,
        ]
        .iter()
        .map(cloudevent)
        .collect();
        assert_eq!(got[0]["data"], json!({"n": 1}));
        assert_eq!(got[1]["data"], "hello");
        assert_eq!(got[2]["data_base64"], "AP8=");
        assert_ne!(
            got[0]["traceparent"], got[1]["traceparent"],
            "a span per entry"
        );
    }
    let bad_bodies = [
        (json!({"not": "an array"}), "DAPR_PUBSUB_UNMARSHAL_EVENTS"),
        (
            json!([{"entryId": "1", "event": {"a": 1}, "contentType": "text/plain"}]),
            "DAPR_PUBSUB_MARSHAL_ENVELOPE",
        ),
        (
            json!([{"entryId": "1", "event": 1, "contentType": ""}]),
            "DAPR_PUBSUB_MARSHAL_ENVELOPE",
        ),
        (
            json!([{"entryId": "1", "event": 1, "contentType": "application/json"},
                {"entryId": "1", "event": 2, "contentType": "application/json"}]),
            "DAPR_PUBSUB_MARSHAL_EVENTS",
        ),
        (
            json!([{"event": 1, "contentType": "application/json"}]),
            "DAPR_PUBSUB_MARSHAL_EVENTS",
        ),
    ];
    for (body, reason) in bad_bodies {
        let response = f
            .sidecar
            .client
            .post(f.sidecar.url("/v1.0/publish/bulk/durable/bulk"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["errorCode"], "ERR_PUBSUB_EVENTS_SER", "{body}");
        assert!(answer.to_string().contains(reason), "{body}: {answer}");
    }
    let response = f
        .sidecar
        .client
        .post(f.sidecar.url("/v1.0/publish/bulk/nope/bulk"))
        .body("not even JSON")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "the pub/sub is checked before the body"
    );
    let response = f
        .sidecar
        .client
        .post(f.sidecar.url("/v1.0/publish/bulk/closed/t"))
        .json(&json!([
            {"entryId": "a", "event": 1, "contentType": "application/json"},
            {"entryId": "b", "event": 2, "contentType": "application/json"},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errorCode"], "ERR_PUBSUB_PUBLISH_MESSAGE");
    let failed: Vec<&str> = answer["failedEntries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entryId"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["a", "b"]);
    assert!(answer["failedEntries"][0]["error"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.try_recv().is_err(),
        "nothing was published by the refused bulks"
    );
}

/// gRPC `PublishEvent`, `BulkPublishEvent` and `BulkPublishEventAlpha1`
/// publish as HTTP does (an empty content type is `text/plain`); refusals
/// carry daprd's gRPC codes and `ErrorInfo` reasons; a failed bulk fails
/// the call.
#[tokio::test]
async fn grpc_publish() {
    let f = fixture(ApiConfig::default()).await;
    let (_s, mut rx) = listen(&f, "pubsub", "g").await;
    let mut c = DaprClient::connect(f.sidecar.grpc.clone()).await.unwrap();
    let publish = |pubsub: &str, topic: &str| runtime::PublishEventRequest {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        data: b"plain".to_vec(),
        ..Default::default()
    };
    c.publish_event(publish("pubsub", "g")).await.unwrap();
    let ce = cloudevent(&next(&mut rx).await);
    assert_eq!(
        (ce["data"].as_str(), ce["datacontenttype"].as_str()),
        (Some("plain"), Some("text/plain"))
    );
    let bulk = |pubsub: &str| runtime::BulkPublishRequest {
        pubsub_name: pubsub.into(),
        topic: "g".into(),
        entries: vec![runtime::BulkPublishRequestEntry {
            entry_id: "e1".into(),
            event: br#"{"a":1}"#.to_vec(),
            content_type: "application/json".into(),
            metadata: Default::default(),
        }],
        metadata: Default::default(),
    };
    let answer = c
        .bulk_publish_event(bulk("pubsub"))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.failed_entries.is_empty());
    assert_eq!(cloudevent(&next(&mut rx).await)["data"], json!({"a": 1}));
    #[allow(deprecated)]
    let answer = c
        .bulk_publish_event_alpha1(bulk("pubsub"))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.failed_entries.is_empty());
    assert_eq!(cloudevent(&next(&mut rx).await)["data"], json!({"a": 1}));

    let cases = [
        (
            c.publish_event(publish("nope", "t")).await.unwrap_err(),
            Code::InvalidArgument,
            "DAPR_PUBSUB_NOT_FOUND",
        ),
        (
            c.publish_event(publish("pubsub", "")).await.unwrap_err(),
            Code::InvalidArgument,
            "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        ),
        (
            c.publish_event(publish("", "t")).await.unwrap_err(),
            Code::InvalidArgument,
            "DAPR_PUBSUB_NAME_EMPTY",
        ),
        (
            c.publish_event(publish("scopedtopics", "other"))
                .await
                .unwrap_err(),
            Code::PermissionDenied,
            "DAPR_PUBSUB_FORBIDDEN",
        ),
        (
            c.publish_event(publish("closed", "t")).await.unwrap_err(),
            Code::Internal,
            "DAPR_PUBSUB_PUBLISH_MESSAGE",
        ),
        (
            c.bulk_publish_event(bulk("closed")).await.unwrap_err(),
            Code::Internal,
            "DAPR_PUBSUB_PUBLISH_MESSAGE",
        ),
    ];
    for (status, code, reason) in cases {
        assert_eq!(status.code(), code, "{status:?}");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, reason);
    }
    let mut duplicate = bulk("pubsub");
    duplicate.entries.push(duplicate.entries[0].clone());
    let status = c.bulk_publish_event(duplicate).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "DAPR_PUBSUB_MARSHAL_EVENTS"
    );
}

/// `RemoteDapr` publishes through another sidecar's gRPC API: the event
/// arrives, and the remote's refusals come back as the same errors.
#[tokio::test]
async fn remote_publish() {
    let f = fixture(ApiConfig::default()).await;
    let (_s, mut rx) = listen(&f, "pubsub", "remote").await;
    let remote = RemoteDapr::connect(&f.sidecar.grpc, None).await.unwrap();
    remote
        .publish_event(PublishEvent {
            pubsub_name: "pubsub".into(),
            topic: "remote".into(),
            data: br#"{"via":"grpc"}"#.to_vec(),
            content_type: "application/json".into(),
            ..PublishEvent::default()
        })
        .await
        .unwrap();
    let ce = cloudevent(&next(&mut rx).await);
    assert_eq!(ce["data"], json!({"via": "grpc"}));
    let err = remote
        .publish_event(PublishEvent {
            pubsub_name: "scopedtopics".into(),
            topic: "other".into(),
            ..PublishEvent::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.http_status()),
        ("ERR_PUBSUB_FORBIDDEN", 403)
    );
    let err = remote
        .bulk_publish_event(wasmdapr_runtime::api::BulkPublishEvent {
            pubsub_name: "closed".into(),
            topic: "t".into(),
            entries: vec![wasmdapr_runtime::api::BulkPublishEntry {
                entry_id: "x".into(),
                event: wasmdapr_runtime::api::BulkEvent::Bytes(b"1".to_vec()),
                content_type: "application/json".into(),
                metadata: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.error.code(), "ERR_PUBSUB_PUBLISH_MESSAGE");
}
