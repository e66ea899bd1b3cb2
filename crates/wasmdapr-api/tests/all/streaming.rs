//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`) over the real
//! gRPC server and the real in-memory broker: the protocol as daprd speaks
//! it (first message, `initial_response`, events, answers, the errors of a
//! bad stream), and `RemoteDapr`'s streaming subscription forwarding to it
//! (our sidecar as the "remote"), answering exactly as the local runtime.

use std::sync::Arc;
use std::time::Duration;

use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
use runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;
use runtime::topic_event_response::TopicEventResponseStatus as S;
use tokio::sync::mpsc;
use tonic::Code;
use tonic_types::StatusExt as _;
use wasmdapr_api::{ApiConfig, RemoteDapr};
use wasmdapr_runtime::api::{
    DaprApi, EventStatus, EventSubscription, PubSubApi, PublishEvent, StreamSubscribeRequest,
    TopicEvent,
};
use wasmdapr_runtime::{ErrorKind, ErrorKind::PubSubSubscribe};

use crate::{APP_ID, Sidecar, spec};

const WAIT: Duration = Duration::from_secs(10);

/// A sidecar over `pubsub` (the durable SQLite broker in a temporary
/// directory, redelivering after 100 ms: an event nobody holds waits for
/// the app's next subscription) and `scopedtopics` (in-memory; this app
/// may subscribe to `allowed` only).
async fn sidecar() -> (Sidecar, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut pubsub = spec("pubsub", "pubsub.sqlite", &[]);
    for (key, value) in [
        (
            "connectionString",
            dir.path().join("q.db").to_string_lossy().into_owned(),
        ),
        ("pollInterval", "50ms".into()),
        ("redeliverInterval", "100ms".into()),
    ] {
        pubsub.metadata.insert(key.into(), value);
    }
    let mut scoped = spec("scopedtopics", "pubsub.in-memory", &[]);
    scoped
        .metadata
        .insert("subscriptionScopes".into(), format!("{APP_ID}=allowed"));
    let sidecar = Sidecar::start_with(vec![pubsub, scoped], ApiConfig::default()).await;
    (sidecar, dir)
}

async fn publish(api: &dyn DaprApi, topic: &str, data: &str) {
    api.publish_event(PublishEvent {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        data: data.as_bytes().to_vec(),
        content_type: "application/json".into(),
        ..PublishEvent::default()
    })
    .await
    .unwrap();
}

fn initial(
    pubsub: &str,
    topic: &str,
    dlq: Option<&str>,
) -> runtime::SubscribeTopicEventsRequestAlpha1 {
    runtime::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            runtime::SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                metadata: Default::default(),
                dead_letter_topic: dlq.map(str::to_owned),
            },
        )),
    }
}

fn processed(id: &str, status: S) -> runtime::SubscribeTopicEventsRequestAlpha1 {
    runtime::SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(In::EventProcessed(
            runtime::SubscribeTopicEventsRequestProcessedAlpha1 {
                id: id.into(),
                status: Some(runtime::TopicEventResponse {
                    status: status as i32,
                }),
            },
        )),
    }
}

/// A raw client stream: what it sends, and the call's answer.
struct RawStream {
    tx: mpsc::Sender<runtime::SubscribeTopicEventsRequestAlpha1>,
    answers: Result<tonic::Streaming<runtime::SubscribeTopicEventsResponseAlpha1>, tonic::Status>,
}

/// Opens `SubscribeTopicEventsAlpha1` sending `first` first.
async fn open(sidecar: &Sidecar, first: runtime::SubscribeTopicEventsRequestAlpha1) -> RawStream {
    let mut client = DaprClient::connect(sidecar.grpc.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    tx.send(first).await.unwrap();
    let outgoing =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let answers = tokio::time::timeout(WAIT, client.subscribe_topic_events_alpha1(outgoing))
        .await
        .expect("the call is answered")
        .map(tonic::Response::into_inner);
    RawStream { tx, answers }
}

impl RawStream {
    /// The next message, or the call's error.
    async fn recv(&mut self) -> Result<Out, tonic::Status> {
        let answers = self.answers.as_mut().map_err(|s| s.clone())?;
        let message = tokio::time::timeout(WAIT, answers.message())
            .await
            .expect("a message within 10 s")?
            .expect("the stream is open");
        Ok(message
            .subscribe_topic_events_response_type
            .expect("a message type"))
    }

    async fn event(&mut self) -> runtime::TopicEventRequest {
        match self.recv().await.unwrap() {
            Out::EventMessage(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }
}

/// The first message must be `initial_request`, answered by
/// `initial_response`; a second `initial_request` ends the call; an
/// unknown pub/sub is Dapr's `ERR_PUBSUB_NOT_FOUND`, a topic outside
/// `subscriptionScopes` and a missing topic daprd's plain errors
/// (`UNKNOWN`).
#[tokio::test]
async fn grpc_stream_protocol_and_errors() {
    let (sidecar, _dir) = sidecar().await;

    let mut s = open(&sidecar, processed("x", S::Success)).await;
    let e = s.recv().await.unwrap_err();
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(e.message().contains("initial request is required"), "{e:?}");

    let mut s = open(&sidecar, initial("pubsub", "dup", None)).await;
    assert!(matches!(s.recv().await.unwrap(), Out::InitialResponse(_)));
    s.tx.send(initial("pubsub", "dup", None)).await.unwrap();
    let e = s.recv().await.unwrap_err();
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(
        e.message().contains("duplicate initial request received"),
        "{e:?}"
    );

    let mut s = open(&sidecar, initial("nope", "t", None)).await;
    let e = s.recv().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.get_error_details()
            .error_info()
            .map(|i| i.reason.as_str()),
        Some("DAPR_PUBSUB_NOT_FOUND")
    );

    let mut s = open(&sidecar, initial("scopedtopics", "other", None)).await;
    let e = s.recv().await.unwrap_err();
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(
        e.message()
            .contains("subscription to topic 'other' on pubsub 'scopedtopics' is not allowed"),
        "{e:?}"
    );
    let mut s = open(&sidecar, initial("scopedtopics", "allowed", None)).await;
    assert!(matches!(s.recv().await.unwrap(), Out::InitialResponse(_)));

    let mut s = open(&sidecar, initial("pubsub", "", None)).await;
    let e = s.recv().await.unwrap_err();
    assert!(e.message().contains("topic is required"), "{e:?}");
}

/// Over the raw protocol: each event is the `TopicEventRequest` daprd
/// fills, the next one comes once it is answered SUCCESS, and an event
/// left unanswered when the client goes away is delivered to the app's
/// next stream, with the same id.
#[tokio::test]
async fn grpc_stream_acks_and_redelivers_on_close() {
    let (sidecar, _dir) = sidecar().await;
    let api: Arc<dyn DaprApi> = sidecar.runtime.clone();
    let mut s = open(&sidecar, initial("pubsub", "orders", None)).await;
    assert!(matches!(s.recv().await.unwrap(), Out::InitialResponse(_)));
    publish(&*api, "orders", r#"{"n":1}"#).await;
    let e = s.event().await;
    assert_eq!(e.data, br#"{"n":1}"#);
    assert_eq!(
        (e.topic.as_str(), e.pubsub_name.as_str(), e.path.as_str()),
        ("orders", "pubsub", "/")
    );
    assert_eq!(
        (e.source.as_str(), e.r#type.as_str()),
        (APP_ID, "com.dapr.event.sent")
    );
    assert_eq!(e.data_content_type, "application/json");
    let extensions = e.extensions.clone().unwrap().fields;
    assert!(extensions.contains_key("traceparent") && extensions.contains_key("time"));
    assert!(!extensions.contains_key("id") && !extensions.contains_key("data"));
    s.tx.send(processed(&e.id, S::Success)).await.unwrap();

    publish(&*api, "orders", r#"{"n":2}"#).await;
    let second = s.event().await;
    assert_eq!(second.data, br#"{"n":2}"#, "the acked event came again");
    drop(s);

    let mut s = open(&sidecar, initial("pubsub", "orders", None)).await;
    assert!(matches!(s.recv().await.unwrap(), Out::InitialResponse(_)));
    let again = s.event().await;
    assert_eq!(
        (again.id.as_str(), again.data.as_slice()),
        (second.id.as_str(), &br#"{"n":2}"#[..])
    );
    s.tx.send(processed(&again.id, S::Success)).await.unwrap();
}

async fn next(sub: &mut EventSubscription) -> TopicEvent {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event within 10 s")
        .expect("no error")
        .expect("the subscription is open")
}

fn request(topic: &str, dlq: Option<&str>) -> StreamSubscribeRequest {
    StreamSubscribeRequest {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        metadata: Default::default(),
        dead_letter_topic: dlq.map(str::to_owned),
    }
}

/// The same script through the local runtime and through `RemoteDapr`
/// (our sidecar's gRPC API as the remote): SUCCESS acks, RETRY redelivers
/// (same id), DROP sends the event to the dead-letter topic, an answer to
/// no awaited event is refused, an unknown pub/sub and a forbidden topic
/// are the same errors, and dropping the subscription leaves its
/// unanswered event to the next one.
#[tokio::test]
async fn remote_streaming_subscription_behaves_like_local() {
    let (sidecar, _dir) = sidecar().await;
    let local: Arc<dyn DaprApi> = sidecar.runtime.clone();
    let remote: Arc<dyn DaprApi> =
        Arc::new(RemoteDapr::connect(&sidecar.grpc, None).await.unwrap());
    for (api, tag) in [(local.clone(), "local"), (remote, "remote")] {
        let topic = format!("{tag}-t");
        let dlq = format!("{tag}-dlq");
        let mut sub = api
            .subscribe_events(request(&topic, Some(&dlq)))
            .await
            .unwrap();
        let mut dead = api.subscribe_events(request(&dlq, None)).await.unwrap();

        publish(&*local, &topic, r#"{"n":1}"#).await;
        let e = next(&mut sub).await;
        assert_eq!(e.data, br#"{"n":1}"#, "{tag}");
        assert_eq!(e.extensions["pubsubname"], "pubsub", "{tag}");
        let refused = sub
            .respond("not-delivered", EventStatus::Success)
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::MalformedRequest, "{tag}");
        sub.respond(&e.id, EventStatus::Success).unwrap();
        assert!(
            sub.respond(&e.id, EventStatus::Success).is_err(),
            "{tag}: answered twice"
        );

        publish(&*local, &topic, r#"{"n":2}"#).await;
        let e = next(&mut sub).await;
        assert_eq!(e.data, br#"{"n":2}"#, "{tag}: event 1 came again");
        sub.respond(&e.id, EventStatus::Drop).unwrap();
        let lost = next(&mut dead).await;
        assert_eq!(
            (lost.id.as_str(), lost.data.as_slice()),
            (e.id.as_str(), &br#"{"n":2}"#[..]),
            "{tag}"
        );
        assert_eq!(lost.topic, dlq, "{tag}");
        dead.respond(&lost.id, EventStatus::Success).unwrap();

        publish(&*local, &topic, r#"{"n":3}"#).await;
        let e = next(&mut sub).await;
        assert_eq!(e.data, br#"{"n":3}"#, "{tag}: the dropped event came again");
        drop(sub);

        // Without a dead-letter topic, RETRY redelivers.
        let mut sub = api.subscribe_events(request(&topic, None)).await.unwrap();
        let again = next(&mut sub).await;
        assert_eq!(
            again.id, e.id,
            "{tag}: the unanswered event goes to the next subscription"
        );
        sub.respond(&again.id, EventStatus::Retry).unwrap();
        let retried = next(&mut sub).await;
        assert_eq!(
            (retried.id.as_str(), retried.data.as_slice()),
            (e.id.as_str(), &br#"{"n":3}"#[..]),
            "{tag}"
        );
        sub.respond(&retried.id, EventStatus::Success).unwrap();

        let unknown = api
            .subscribe_events(StreamSubscribeRequest {
                pubsub_name: "nope".into(),
                ..request("t", None)
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::PubSubNotFound, "{tag}");
        let forbidden = api
            .subscribe_events(StreamSubscribeRequest {
                pubsub_name: "scopedtopics".into(),
                ..request("other", None)
            })
            .await
            .unwrap_err();
        assert_eq!(forbidden.kind, PubSubSubscribe, "{tag}");
        assert!(
            forbidden.message.contains("is not allowed"),
            "{tag}: {forbidden}"
        );
    }
}

/// Shutting the runtime down ends a streaming subscription: `next` says
/// it ended (`None`) rather than waiting forever.
#[tokio::test]
async fn shutdown_ends_streaming_subscriptions() {
    let (sidecar, _dir) = sidecar().await;
    let mut sub = sidecar
        .runtime
        .subscribe_events(request("t", None))
        .await
        .unwrap();
    wasmdapr_runtime::api::MetadataApi::shutdown(&*sidecar.runtime);
    let end = tokio::time::timeout(WAIT, sub.next()).await.expect("ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

/// A subscriber that goes away without answering does not refuse its
/// event: even with a dead-letter topic, the event is delivered again to
/// the app's next subscription and never dead-lettered (daprd's
/// `ErrSubscriptionClosed`).
#[tokio::test]
async fn unanswered_events_are_not_dead_lettered() {
    let (sidecar, _dir) = sidecar().await;
    let api: Arc<dyn DaprApi> = sidecar.runtime.clone();
    let mut sub = api
        .subscribe_events(request("held", Some("held-dlq")))
        .await
        .unwrap();
    publish(&*api, "held", r#"{"n":1}"#).await;
    let held = next(&mut sub).await;
    drop(sub);

    let mut sub = api
        .subscribe_events(request("held", Some("held-dlq")))
        .await
        .unwrap();
    let again = next(&mut sub).await;
    assert_eq!(again.id, held.id);
    sub.respond(&again.id, EventStatus::Success).unwrap();

    publish(&*api, "held-dlq", r#"{"marker":true}"#).await;
    let mut dead = api
        .subscribe_events(request("held-dlq", None))
        .await
        .unwrap();
    let first = next(&mut dead).await;
    assert_eq!(
        first.data, br#"{"marker":true}"#,
        "the held event was dead-lettered"
    );
}

/// An answer counts even when the subscriber goes away right after giving
/// it: each round drops its event and closes at once, and the next round
/// gets a new event (not the last one again) while the dead-letter topic
/// gets every dropped one. On a worker thread of a multi-threaded
/// runtime, tokio runs the task woken last (the one ending the
/// subscription) first: the order that tells a kept answer from a lost one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_then_a_close_keeps_the_answer() {
    let (sidecar, _dir) = sidecar().await;
    let local: Arc<dyn DaprApi> = sidecar.runtime.clone();
    let remote: Arc<dyn DaprApi> =
        Arc::new(RemoteDapr::connect(&sidecar.grpc, None).await.unwrap());
    for (api, tag) in [(local, "local"), (remote, "remote")] {
        let (topic, dlq) = (format!("{tag}-quick"), format!("{tag}-quick-dlq"));
        // On a worker thread, as a guest's instance or a gRPC stream runs.
        let (rounds, t, d) = (api.clone(), topic.clone(), dlq.clone());
        tokio::spawn(async move {
            for round in 0..10 {
                let mut sub = rounds
                    .subscribe_events(request(&t, Some(&d)))
                    .await
                    .unwrap();
                publish(&*rounds, &t, &format!(r#"{{"n":{round}}}"#)).await;
                let e = next(&mut sub).await;
                let expected = format!(r#"{{"n":{round}}}"#);
                assert_eq!(e.data, expected.as_bytes(), "round {round}");
                sub.respond(&e.id, EventStatus::Drop).unwrap();
                drop(sub);
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let mut dead = api.subscribe_events(request(&dlq, None)).await.unwrap();
        for round in 0..10 {
            let e = next(&mut dead).await;
            assert_eq!(e.data, format!(r#"{{"n":{round}}}"#).as_bytes(), "{tag}");
            dead.respond(&e.id, EventStatus::Success).unwrap();
        }
    }
}
