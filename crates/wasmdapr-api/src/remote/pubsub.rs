//! The publishing calls, over `PublishEvent` and `BulkPublishEvent` (with
//! `BulkPublishEventAlpha1` for sidecars older than Dapr 1.17, as the
//! Python SDK falls back). The caller's trace context travels as
//! `traceparent` / `tracestate` metadata, so the remote sidecar continues it.
//!
//! A streaming subscription is the remote sidecar's
//! `SubscribeTopicEventsAlpha1` stream: its events are handed on as they
//! come, the answers sent back on the same stream; dropping the
//! subscription cancels the call, so the remote redelivers what was not
//! answered.

use async_trait::async_trait;
use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::Code;
use wasmdapr_runtime::api::pubsub::MAX_UNANSWERED_EVENTS;
use wasmdapr_runtime::api::{
    BulkPublishError, BulkPublishEvent, EventResponder, EventStatus, EventSubscription, PubSubApi,
    PublishEvent, StreamSubscribeRequest, TraceContext,
};
use wasmdapr_runtime::pubsub::FailedEntry;
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{RemoteDapr, api_error};

impl RemoteDapr {
    /// [`RemoteDapr::request`] with the caller's trace context.
    fn traced<T>(&self, message: T, trace: &TraceContext) -> tonic::Request<T> {
        let mut request = self.request(message);
        for (name, value) in [
            ("traceparent", &trace.traceparent),
            ("tracestate", &trace.tracestate),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| v.parse().ok()) {
                request.metadata_mut().insert(name, value);
            }
        }
        request
    }
}

#[async_trait]
impl PubSubApi for RemoteDapr {
    async fn publish_event(&self, event: PublishEvent) -> Result<(), ApiError> {
        let message = runtime::PublishEventRequest {
            pubsub_name: event.pubsub_name,
            topic: event.topic,
            data: event.data,
            data_content_type: event.content_type,
            metadata: event.metadata,
        };
        self.client
            .clone()
            .publish_event(self.traced(message, &event.trace))
            .await
            .map_err(|s| api_error(s, ErrorKind::PubSubPublishMessage))?;
        Ok(())
    }

    async fn bulk_publish_event(&self, event: BulkPublishEvent) -> Result<(), BulkPublishError> {
        if let Some(error) = event.malformed_body {
            return Err(ApiError::pubsub(&event.pubsub_name)
                .unmarshal_events("", &event.topic, error)
                .into());
        }
        let mut entries = Vec::with_capacity(event.entries.len());
        for e in event.entries {
            let bytes = e.event.into_bytes(&e.content_type).map_err(|error| {
                ApiError::pubsub(&event.pubsub_name).marshal_envelope("", &event.topic, error)
            })?;
            entries.push(runtime::BulkPublishRequestEntry {
                entry_id: e.entry_id,
                event: bytes,
                content_type: e.content_type,
                metadata: e.metadata.unwrap_or_default(),
            });
        }
        let message = runtime::BulkPublishRequest {
            pubsub_name: event.pubsub_name,
            topic: event.topic.clone(),
            entries,
            metadata: event.metadata,
        };
        let mut client = self.client.clone();
        let answer = match client
            .bulk_publish_event(self.traced(message.clone(), &event.trace))
            .await
        {
            // Deprecated, but the only bulk publish of Dapr before 1.17.
            #[allow(deprecated)]
            Err(status) if status.code() == Code::Unimplemented => {
                client
                    .bulk_publish_event_alpha1(self.traced(message, &event.trace))
                    .await
            }
            other => other,
        };
        let response = answer
            .map_err(|s| BulkPublishError::from(api_error(s, ErrorKind::PubSubPublishMessage)))?
            .into_inner();
        let failed: Vec<FailedEntry> = response
            .failed_entries
            .into_iter()
            .map(|f| FailedEntry {
                entry_id: f.entry_id,
                error: f.error,
            })
            .collect();
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(BulkPublishError {
                error: ApiError::new(
                    ErrorKind::PubSubPublishMessage,
                    format!(
                        "error when publishing to topic {} in pubsub: {}",
                        event.topic, first.error
                    ),
                ),
                failed_entries: failed,
            }),
        }
    }

    async fn subscribe_events(
        &self,
        request: StreamSubscribeRequest,
    ) -> Result<EventSubscription, ApiError> {
        use runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Out;
        use runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as In;

        let fail = |s| api_error(s, ErrorKind::PubSubSubscribe);
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(MAX_UNANSWERED_EVENTS);
        let initial = runtime::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Out::InitialRequest(
                runtime::SubscribeTopicEventsRequestInitialAlpha1 {
                    pubsub_name: request.pubsub_name,
                    topic: request.topic,
                    metadata: request.metadata,
                    dead_letter_topic: request.dead_letter_topic,
                },
            )),
        };
        out_tx
            .try_send(initial)
            .map_err(|_| ApiError::new(ErrorKind::PubSubSubscribe, "cannot queue the request"))?;
        let outgoing = crate::grpc::pubsub::receiver_stream(out_rx);
        let mut incoming = self
            .client
            .clone()
            .subscribe_topic_events_alpha1(self.request(outgoing))
            .await
            .map_err(fail)?
            .into_inner();
        // The remote answers `initial_response` once subscribed, before
        // any event (an error instead: it refused).
        match incoming.message().await.map_err(fail)? {
            Some(runtime::SubscribeTopicEventsResponseAlpha1 {
                subscribe_topic_events_response_type: Some(In::InitialResponse(_)),
            }) => {}
            _ => {
                return Err(ApiError::new(
                    ErrorKind::PubSubSubscribe,
                    "the remote sidecar did not confirm the subscription",
                ));
            }
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = incoming.message() => message,
                    // The subscriber went away: dropping `incoming` cancels the call.
                    () = events_tx.closed() => break,
                };
                let item = match message {
                    Ok(Some(runtime::SubscribeTopicEventsResponseAlpha1 {
                        subscribe_topic_events_response_type: Some(In::EventMessage(event)),
                    })) => Ok(crate::grpc::pubsub::topic_event(event)),
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(status) => Err(api_error(status, ErrorKind::PubSubSubscribe)),
                };
                let end = item.is_err();
                if events_tx.send(item).await.is_err() || end {
                    break;
                }
            }
            // The subscriber is gone (or the stream failed). Its answers
            // may still be queued: let them go out, then the request
            // stream ends and the remote ends the call. Cancelling at once
            // could lose them (the events would come again). Events still
            // arriving meanwhile stay unanswered: the remote redelivers
            // them.
            let drained = async { while let Ok(Some(_)) = incoming.message().await {} };
            if tokio::time::timeout(CLOSE_GRACE, drained).await.is_err() {
                tracing::debug!("the remote streaming subscription did not end in time; cancelled");
            }
        });
        Ok(EventSubscription::new(
            events_rx,
            Box::new(RemoteResponder(out_tx)),
        ))
    }
}

/// How long a closed subscription waits for the remote to end the call
/// after its answers went out.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers sent back on the remote stream.
struct RemoteResponder(tokio::sync::mpsc::Sender<runtime::SubscribeTopicEventsRequestAlpha1>);

impl EventResponder for RemoteResponder {
    fn respond(&self, id: &str, status: EventStatus) -> Result<(), ApiError> {
        use runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Out;
        use runtime::topic_event_response::TopicEventResponseStatus as S;
        let status = match status {
            EventStatus::Success => S::Success,
            EventStatus::Retry => S::Retry,
            EventStatus::Drop => S::Drop,
        };
        let answer = runtime::SubscribeTopicEventsRequestAlpha1 {
            subscribe_topic_events_request_type: Some(Out::EventProcessed(
                runtime::SubscribeTopicEventsRequestProcessedAlpha1 {
                    id: id.to_owned(),
                    status: Some(runtime::TopicEventResponse {
                        status: status as i32,
                    }),
                },
            )),
        };
        self.0.try_send(answer).map_err(|error| {
            ApiError::new(
                ErrorKind::PubSubSubscribe,
                match error {
                    tokio::sync::mpsc::error::TrySendError::Full(_) => {
                        "too many answers wait to be sent to the remote sidecar"
                    }
                    tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                        "the remote subscription has ended"
                    }
                },
            )
        })
    }
}
