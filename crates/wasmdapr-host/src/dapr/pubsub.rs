//! `wasmdapr:dapr/pubsub`: publishing onto
//! [`PubSubApi`](wasmdapr_runtime::api::PubSubApi)'s publish methods, and
//! the `subscription` resource over its streaming subscription
//! ([`EventSubscription`]), in-process: no network hop, no token.
//!
//! `next` is an async host call: a guest waiting for an event holds no host
//! thread, only its instance's slot, and the run's `--timeout` stops it as
//! it stops any other wait. An instance holds at most
//! [`MAX_SUBSCRIPTIONS`] subscriptions at once; each ends when the guest
//! drops it or the instance ends (the table is dropped with the store), and
//! the events it did not answer are then delivered again.

use wasmtime::component::Resource;

use wasmdapr_runtime::api::pubsub::{
    BulkEvent, BulkPublishEntry, BulkPublishEvent, EventStatus, EventSubscription, PublishEvent,
    StreamSubscribeRequest, TopicEvent, TraceContext,
};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::generated::wasmdapr::dapr::pubsub::{
    BulkEntry, Event, EventStatus as WitStatus, FailedEntry, Host, HostSubscription, Message,
};
use super::{DaprView, Error, Metadata, call, metadata};

/// The most subscriptions one instance may hold open at once: each holds a
/// broker subscription and its undelivered events in the host.
pub const MAX_SUBSCRIPTIONS: usize = 16;

/// The content type of a message that names none (the WIT's default).
const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// A guest's `subscription` resource: the host's open streaming
/// subscription.
pub struct GuestSubscription(EventSubscription);

fn publish_event(pubsub: String, topic: String, message: Message) -> PublishEvent {
    PublishEvent {
        pubsub_name: pubsub,
        topic,
        data: message.data,
        content_type: message
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        metadata: metadata(message.metadata),
        trace: TraceContext::default(),
    }
}

fn bulk_entry(entry: BulkEntry) -> BulkPublishEntry {
    let Message {
        data,
        content_type,
        metadata: entry_metadata,
    } = entry.message;
    BulkPublishEntry {
        entry_id: entry.entry_id,
        event: BulkEvent::Bytes(data),
        content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        // As over gRPC: an entry without metadata has none of its own.
        metadata: (!entry_metadata.is_empty()).then(|| metadata(entry_metadata)),
    }
}

fn event(e: TopicEvent) -> Event {
    let mut extensions: Metadata = e
        .extensions
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (key, value)
        })
        .collect();
    extensions.sort();
    Event {
        id: e.id,
        topic: e.topic,
        pubsub: e.pubsub_name,
        type_: e.event_type,
        source: e.source,
        spec_version: e.spec_version,
        data_content_type: e.data_content_type,
        data: e.data,
        extensions,
    }
}

fn status(s: WitStatus) -> EventStatus {
    match s {
        WitStatus::Success => EventStatus::Success,
        WitStatus::Retry => EventStatus::Retry,
        WitStatus::Drop => EventStatus::Drop,
    }
}

impl Host for DaprView {
    async fn publish(
        &mut self,
        pubsub: String,
        topic: String,
        message: Message,
    ) -> wasmtime::Result<Result<(), Error>> {
        let event = publish_event(pubsub, topic, message);
        Ok(call(self, |api| api.publish_event(event)).await)
    }

    async fn bulk_publish(
        &mut self,
        pubsub: String,
        topic: String,
        entries: Vec<BulkEntry>,
        metadata_: Metadata,
    ) -> wasmtime::Result<Result<Vec<FailedEntry>, Error>> {
        let api = match self.api() {
            Ok(api) => api,
            Err(e) => return Ok(Err(e)),
        };
        let request = BulkPublishEvent {
            pubsub_name: pubsub,
            topic,
            entries: entries.into_iter().map(bulk_entry).collect(),
            metadata: metadata(metadata_),
            trace: TraceContext::default(),
            malformed_body: None,
        };
        Ok(match api.bulk_publish_event(request).await {
            Ok(()) => Ok(Vec::new()),
            // Entries the broker did not take: the request itself was fine.
            Err(e) if !e.failed_entries.is_empty() => Ok(e
                .failed_entries
                .into_iter()
                .map(|f| FailedEntry {
                    entry_id: f.entry_id,
                    error: f.error,
                })
                .collect()),
            Err(e) => {
                tracing::debug!(code = e.error.code(), message = %e.error.message, "dapr call failed");
                Err(e.error.into())
            }
        })
    }

    async fn subscribe(
        &mut self,
        pubsub: String,
        topic: String,
        metadata_: Metadata,
        dead_letter_topic: Option<String>,
    ) -> wasmtime::Result<Result<Resource<GuestSubscription>, Error>> {
        let api = match self.granted() {
            Ok(api) => api,
            Err(e) => return Ok(Err(e)),
        };
        if self.subscriptions >= MAX_SUBSCRIPTIONS {
            return Ok(Err(ApiError::new(
                ErrorKind::PubSubSubscribe,
                format!(
                    "an instance may hold at most {MAX_SUBSCRIPTIONS} subscriptions open; drop one first"
                ),
            )
            .into()));
        }
        let request = StreamSubscribeRequest {
            pubsub_name: pubsub,
            topic,
            metadata: metadata(metadata_),
            dead_letter_topic,
        };
        let subscription = match api.subscribe_events(request).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(code = e.code(), message = %e.message, "dapr call failed");
                return Ok(Err(e.into()));
            }
        };
        let handle = self.table().push(GuestSubscription(subscription))?;
        self.subscriptions += 1;
        Ok(Ok(handle))
    }
}

impl HostSubscription for DaprView {
    async fn next(
        &mut self,
        subscription: Resource<GuestSubscription>,
    ) -> wasmtime::Result<Result<Option<Event>, Error>> {
        // A handle that is not in the table is a host fault: a trap.
        let subscription = self.table().get_mut(&subscription)?;
        Ok(match subscription.0.next().await {
            Ok(e) => Ok(e.map(event)),
            Err(e) => Err(e.into()),
        })
    }

    async fn ack(
        &mut self,
        subscription: Resource<GuestSubscription>,
        id: String,
        status_: WitStatus,
    ) -> wasmtime::Result<Result<(), Error>> {
        let subscription = self.table().get_mut(&subscription)?;
        Ok(subscription
            .0
            .respond(&id, status(status_))
            .map_err(Error::from))
    }

    async fn drop(&mut self, subscription: Resource<GuestSubscription>) -> wasmtime::Result<()> {
        // Dropping the host side ends the subscription.
        self.table().delete(subscription)?;
        self.subscriptions -= 1;
        Ok(())
    }
}
