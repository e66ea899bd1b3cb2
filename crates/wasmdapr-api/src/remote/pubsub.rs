//! The publishing calls, over `PublishEvent` and `BulkPublishEvent` (with
//! `BulkPublishEventAlpha1` for sidecars older than Dapr 1.17, as the
//! Python SDK falls back). The caller's trace context travels as
//! `traceparent` / `tracestate` metadata, so the remote sidecar continues it.

use async_trait::async_trait;
use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::Code;
use wasmdapr_runtime::api::{
    BulkPublishError, BulkPublishEvent, PubSubApi, PublishEvent, TraceContext,
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
}
