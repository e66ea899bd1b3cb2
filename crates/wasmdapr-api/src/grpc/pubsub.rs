//! The publish methods: `PublishEvent`, `BulkPublishEvent` and its
//! deprecated alias `BulkPublishEventAlpha1` (which the Python SDK falls
//! back to on `UNIMPLEMENTED`). Events are bytes, used as given; the
//! caller's `traceparent` / `tracestate` metadata is continued in the
//! envelope. A bulk publish that fails (entries the broker did not take
//! included) fails the call with an empty response, as in daprd.
//!
//! `SubscribeTopicEventsAlpha1` is the streaming subscription: a thin
//! translation onto the runtime's [`EventSubscription`](wasmdapr_runtime::api::EventSubscription).

use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::{Request, Response, Status};
use wasmdapr_runtime::api::{
    BulkEvent, BulkPublishEntry, BulkPublishEvent, EventStatus, PublishEvent,
    StreamSubscribeRequest, TopicEvent, TraceContext,
};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{GrpcApi, status};

impl GrpcApi {
    pub(super) async fn publish_event(
        &self,
        request: Request<runtime::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        let trace = TraceContext::from_headers(&request.metadata().clone().into_headers());
        let r = request.into_inner();
        self.api
            .publish_event(PublishEvent {
                pubsub_name: r.pubsub_name,
                topic: r.topic,
                data: r.data,
                content_type: r.data_content_type,
                metadata: r.metadata,
                trace,
            })
            .await
            .map(Response::new)
            .map_err(status)
    }

    pub(super) async fn bulk_publish_event(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        let trace = TraceContext::from_headers(&request.metadata().clone().into_headers());
        let r = request.into_inner();
        let entries = r
            .entries
            .into_iter()
            .map(|e| BulkPublishEntry {
                entry_id: e.entry_id,
                event: BulkEvent::Bytes(e.event),
                content_type: e.content_type,
                // A proto map cannot tell absent from empty; daprd (Go)
                // sees an absent map as none.
                metadata: (!e.metadata.is_empty()).then_some(e.metadata),
            })
            .collect();
        self.api
            .bulk_publish_event(BulkPublishEvent {
                pubsub_name: r.pubsub_name,
                topic: r.topic,
                entries,
                metadata: r.metadata,
                trace,
                malformed_body: None,
            })
            .await
            .map(|()| Response::new(runtime::BulkPublishResponse::default()))
            .map_err(|e| status(e.error))
    }

    pub(super) async fn bulk_publish_event_alpha1(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        self.bulk_publish_event(request).await
    }
}

// ---------------------------------------------------------------- streaming subscriptions

/// The response stream of `SubscribeTopicEventsAlpha1`.
pub type SubscribeTopicEventsStream = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<runtime::SubscribeTopicEventsResponseAlpha1, Status>>
            + Send,
    >,
>;

/// Responses queued for the client; each event waits for its answer, so
/// this only smooths the hand-over.
const RESPONSE_BUFFER: usize = 16;

/// A daprd plain error of a streaming subscription.
fn stream_error(message: &str) -> Status {
    status(ApiError::new(ErrorKind::PubSubSubscribe, message))
}

impl GrpcApi {
    /// `SubscribeTopicEventsAlpha1`, as daprd serves it: the first message
    /// must be an `initial_request` (else `initial request is required`);
    /// the subscription is opened ([`PubSubApi::subscribe_events`]: unknown
    /// pub/sub, forbidden topic and broker errors end the call), answered
    /// by an `initial_response` before any event; then each event goes out
    /// as an `event_message` and each `event_processed` answers one. A
    /// second `initial_request` ends the call (`duplicate initial request
    /// received`); the client closing its side ends the subscription, and
    /// the events it did not answer are delivered again.
    pub(super) async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<tonic::Streaming<runtime::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<SubscribeTopicEventsStream>, Status> {
        use runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
        use runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;

        let mut incoming = request.into_inner();
        let initial = match incoming.message().await? {
            Some(runtime::SubscribeTopicEventsRequestAlpha1 {
                subscribe_topic_events_request_type: Some(In::InitialRequest(initial)),
            }) => initial,
            _ => return Err(stream_error("initial request is required")),
        };
        let mut subscription = self
            .api
            .subscribe_events(StreamSubscribeRequest {
                pubsub_name: initial.pubsub_name,
                topic: initial.topic,
                metadata: initial.metadata,
                dead_letter_topic: initial.dead_letter_topic,
            })
            .await
            .map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(RESPONSE_BUFFER);
        let response = |out| runtime::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(out),
        };
        tx.send(Ok(response(Out::InitialResponse(
            runtime::SubscribeTopicEventsResponseInitialAlpha1 {},
        ))))
        .await
        .map_err(|_| Status::cancelled("the client went away"))?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = subscription.next() => match event {
                        Ok(Some(event)) => {
                            let out = response(Out::EventMessage(topic_event_request(event)));
                            if tx.send(Ok(out)).await.is_err() {
                                break;
                            }
                        }
                        // The runtime shuts down: the call ends.
                        Ok(None) => break,
                        Err(error) => {
                            let _ = tx.send(Err(status(error))).await;
                            break;
                        }
                    },
                    message = incoming.message() => match message {
                        Ok(Some(runtime::SubscribeTopicEventsRequestAlpha1 {
                            subscribe_topic_events_request_type: Some(In::EventProcessed(processed)),
                        })) => {
                            let answer = event_status(processed.status);
                            if let Err(error) = subscription.respond(&processed.id, answer) {
                                // daprd logs an answer nobody awaits and goes on.
                                tracing::warn!(%error, "streaming subscription: answer ignored");
                            }
                        }
                        Ok(Some(_)) => {
                            let _ = tx.send(Err(stream_error("duplicate initial request received"))).await;
                            break;
                        }
                        // The client closed its side or went away: unsubscribed.
                        Ok(None) | Err(_) => break,
                    },
                    () = tx.closed() => break,
                }
            }
            // Dropping the subscription ends it; unanswered events are redelivered.
            drop(subscription);
        });
        Ok(Response::new(Box::pin(receiver_stream(rx))))
    }
}

/// The items of `rx` as a stream, ending when every sender is gone.
pub(crate) fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// The status of an `event_processed` answer: none is `SUCCESS` (proto's
/// zero value, as daprd reads it), an unknown one `RETRY` (daprd retries
/// an unknown status).
fn event_status(answer: Option<dapr::dapr::proto::runtime::v1::TopicEventResponse>) -> EventStatus {
    use dapr::dapr::proto::runtime::v1::topic_event_response::TopicEventResponseStatus as S;
    match answer.map(|a| S::try_from(a.status)) {
        None | Some(Ok(S::Success)) => EventStatus::Success,
        Some(Ok(S::Drop)) => EventStatus::Drop,
        Some(Ok(S::Retry)) | Some(Err(_)) => EventStatus::Retry,
    }
}

/// A [`TopicEvent`] as the `TopicEventRequest` daprd sends.
pub(crate) fn topic_event_request(event: TopicEvent) -> runtime::TopicEventRequest {
    runtime::TopicEventRequest {
        id: event.id,
        source: event.source,
        r#type: event.event_type,
        spec_version: event.spec_version,
        data_content_type: event.data_content_type,
        data: event.data,
        topic: event.topic,
        pubsub_name: event.pubsub_name,
        path: event.path,
        extensions: Some(json_struct(event.extensions)),
    }
}

/// A `TopicEventRequest` back as the [`TopicEvent`] it carries.
pub(crate) fn topic_event(request: runtime::TopicEventRequest) -> TopicEvent {
    TopicEvent {
        id: request.id,
        source: request.source,
        event_type: request.r#type,
        spec_version: request.spec_version,
        data_content_type: request.data_content_type,
        data: request.data,
        topic: request.topic,
        pubsub_name: request.pubsub_name,
        path: request.path,
        extensions: request
            .extensions
            .map(|s| {
                s.fields
                    .into_iter()
                    .map(|(k, v)| (k, proto_to_json(v)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn json_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_proto(v)))
            .collect(),
    }
}

/// A JSON value as a `google.protobuf.Value` (what `protojson` makes of it).
fn json_to_proto(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_to_proto).collect(),
        }),
        J::Object(map) => Kind::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A `google.protobuf.Value` as JSON.
fn proto_to_json(value: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    match value.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(list)) => {
            J::Array(list.values.into_iter().map(proto_to_json).collect())
        }
        Some(Kind::StructValue(s)) => J::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| (k, proto_to_json(v)))
                .collect(),
        ),
    }
}
