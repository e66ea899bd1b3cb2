//! The publish and subscribe building block: [`PubSub`], one pub/sub
//! component, to publish events to its topics and to pull a topic's events
//! through a [`Subscription`].
//!
//! Events are JSON by default, wrapped by the host in a CloudEvent as Dapr
//! wraps them, so any Dapr subscriber (HTTP, gRPC, another guest) reads
//! them. A subscription is Dapr's streaming subscription: the app's
//! consumer group (its app id) shares the topic's events with the app's
//! other subscribers, and every event must be answered ([`EventStatus`]):
//! an event not answered before the subscription is dropped is delivered
//! again.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasmdapr::dapr::pubsub as wit;

/// The metadata key that publishes bytes without the CloudEvent envelope.
const RAW_PAYLOAD: &str = "rawPayload";

/// One pub/sub component of the app, from [`crate::Dapr::pubsub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSub {
    name: String,
}

/// One event to publish: its data, content type and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    data: Vec<u8>,
    content_type: Option<String>,
    metadata: Vec<(String, String)>,
}

impl Message {
    /// `value` as JSON (`application/json`).
    ///
    /// ```no_run
    /// use wasmdapr_sdk::pubsub::Message;
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let message = Message::json(&serde_json::json!({"order": 17}))?.metadata("ttlInSeconds", "60");
    /// wasmdapr_sdk::Dapr::new().pubsub("pubsub").publish_message("orders", message)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        let data = serde_json::to_vec(value).map_err(|e| Error::json("the event", e))?;
        Ok(Self::bytes(data, "application/json"))
    }

    /// `data` as given, of `content_type` (`text/plain`,
    /// `application/octet-stream`, …).
    pub fn bytes(data: impl Into<Vec<u8>>, content_type: &str) -> Self {
        Self {
            data: data.into(),
            content_type: Some(content_type.to_owned()),
            metadata: Vec::new(),
        }
    }

    /// Adds a metadata entry (`ttlInSeconds`, `rawPayload`,
    /// `cloudevent.type`, broker options).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Publishes the data without the CloudEvent envelope (`rawPayload`):
    /// subscribers get the bytes as published.
    pub fn raw(self) -> Self {
        self.metadata(RAW_PAYLOAD, "true")
    }

    fn into_wit(self) -> wit::Message {
        wit::Message {
            data: self.data,
            content_type: self.content_type,
            metadata: self.metadata,
        }
    }
}

/// An entry of a [`PubSub::bulk_publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    /// The entry's id, unique within the request: failures name it.
    pub entry_id: String,
    /// The event.
    pub message: Message,
}

impl BulkEntry {
    /// An entry `entry_id` of `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(entry_id: &str, value: &T) -> Result<Self, Error> {
        Ok(Self {
            entry_id: entry_id.to_owned(),
            message: Message::json(value)?,
        })
    }

    /// An entry `entry_id` of `message`.
    pub fn new(entry_id: &str, message: Message) -> Self {
        Self {
            entry_id: entry_id.to_owned(),
            message,
        }
    }
}

/// An entry a bulk publish could not publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its [`BulkEntry::entry_id`].
    pub entry_id: String,
    /// Why.
    pub error: String,
}

impl PubSub {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes `value` as JSON to `topic`, in a CloudEvent envelope;
    /// returns once the broker holds it.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let pubsub = wasmdapr_sdk::Dapr::new().pubsub("pubsub");
    /// pubsub.publish("orders", &serde_json::json!({"order": 17, "qty": 2}))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish<T: Serialize + ?Sized>(&self, topic: &str, value: &T) -> Result<(), Error> {
        self.publish_message(topic, Message::json(value)?)
    }

    /// Publishes `data` as it is (`rawPayload`: no CloudEvent envelope), of
    /// `content_type`, for subscribers that are no CloudEvents consumers.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let pubsub = wasmdapr_sdk::Dapr::new().pubsub("pubsub");
    /// pubsub.publish_raw("telemetry", b"\x01\x02".to_vec(), "application/octet-stream")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_raw(
        &self,
        topic: &str,
        data: impl Into<Vec<u8>>,
        content_type: &str,
    ) -> Result<(), Error> {
        self.publish_message(topic, Message::bytes(data, content_type).raw())
    }

    /// Publishes `message` (any content type, with metadata) to `topic`.
    pub fn publish_message(&self, topic: &str, message: Message) -> Result<(), Error> {
        wit::publish(&self.name, topic, &message.into_wit()).map_err(Error::from)
    }

    /// Publishes many events to `topic`, each in its own envelope; returns
    /// the entries the broker did not take (empty: all were published). An
    /// [`Error`] means nothing was published (an unknown component, a
    /// forbidden topic, a duplicate entry id).
    ///
    /// ```no_run
    /// use wasmdapr_sdk::pubsub::BulkEntry;
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let pubsub = wasmdapr_sdk::Dapr::new().pubsub("pubsub");
    /// let entries = (1..=3)
    ///     .map(|n| BulkEntry::json(&n.to_string(), &serde_json::json!({"order": n})))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let failed = pubsub.bulk_publish("orders", entries)?;
    /// assert!(failed.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bulk_publish(
        &self,
        topic: &str,
        entries: impl IntoIterator<Item = BulkEntry>,
    ) -> Result<Vec<FailedEntry>, Error> {
        let entries: Vec<wit::BulkEntry> = entries
            .into_iter()
            .map(|e| wit::BulkEntry {
                entry_id: e.entry_id,
                message: e.message.into_wit(),
            })
            .collect();
        let failed = wit::bulk_publish(&self.name, topic, &entries, &[])?;
        Ok(failed
            .into_iter()
            .map(|f| FailedEntry {
                entry_id: f.entry_id,
                error: f.error,
            })
            .collect())
    }

    /// Subscribes to `topic` as this app's consumer group; the events come
    /// through the returned [`Subscription`] until it is dropped.
    ///
    /// ```no_run
    /// use wasmdapr_sdk::pubsub::EventStatus;
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Order {
    ///     order: u64,
    /// }
    /// let orders = wasmdapr_sdk::Dapr::new().pubsub("pubsub").subscribe("orders")?;
    /// for event in &orders {
    ///     let event = event?;
    ///     let status = match event.data::<Order>() {
    ///         Ok(order) => {
    ///             println!("order {}", order.order);
    ///             EventStatus::Success
    ///         }
    ///         // Not an order: never deliver it again.
    ///         Err(_) => EventStatus::Drop,
    ///     };
    ///     orders.ack(&event, status)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self, topic: &str) -> Result<Subscription, Error> {
        self.subscribe_with(topic, SubscribeOptions::default())
    }

    /// [`PubSub::subscribe`] with a dead-letter topic or metadata.
    ///
    /// ```no_run
    /// use wasmdapr_sdk::pubsub::SubscribeOptions;
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let options = SubscribeOptions::default().dead_letter_topic("orders-failed");
    /// let orders = wasmdapr_sdk::Dapr::new().pubsub("pubsub").subscribe_with("orders", options)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_with(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, Error> {
        let inner = wit::subscribe(
            &self.name,
            topic,
            &options.metadata,
            options.dead_letter_topic.as_deref(),
        )?;
        Ok(Subscription { inner })
    }
}

/// How to subscribe, for [`PubSub::subscribe_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    dead_letter_topic: Option<String>,
    metadata: Vec<(String, String)>,
}

impl SubscribeOptions {
    /// Events answered [`EventStatus::Drop`] go to `topic`.
    pub fn dead_letter_topic(mut self, topic: &str) -> Self {
        self.dead_letter_topic = Some(topic.to_owned());
        self
    }

    /// Adds subscription metadata (`rawPayload`, broker options).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }
}

/// What the app did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Processed: never delivered again.
    Success,
    /// Not processed: delivered again; with a dead-letter topic it goes
    /// there instead (as in Dapr without a resiliency policy).
    Retry,
    /// Refused: not delivered again (sent to the dead-letter topic, if the
    /// subscription has one).
    Drop,
}

/// An event a [`Subscription`] delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The CloudEvent id, which [`Subscription::ack`] answers.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// The pub/sub component.
    pub pubsub: String,
    /// The CloudEvent `type`.
    pub event_type: String,
    /// The CloudEvent `source` (the publisher's app id).
    pub source: String,
    /// The CloudEvent `specversion`.
    pub spec_version: String,
    /// The content type of [`Event::bytes`].
    pub data_content_type: String,
    /// The other CloudEvent attributes (`traceparent`, `time`, custom
    /// extensions), values that are no strings as JSON.
    pub extensions: Vec<(String, String)>,
    data: Vec<u8>,
}

impl Event {
    /// The data, deserialized from JSON.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.data).map_err(|e| Error::json("the event's data", e))
    }

    /// The data as bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The data as text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.data).map_err(|e| Error {
            code: Error::UTF8.to_owned(),
            message: format!("the event's data is not UTF-8: {e}"),
            status: 0,
        })
    }

    /// The extension attribute `name`, if the event has it.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An open subscription to one topic, from [`PubSub::subscribe`]. Iterate
/// it (`for event in &subscription`) or call [`Subscription::next_event`];
/// answer every event with [`Subscription::ack`]. Dropping it ends the
/// subscription; events not answered are delivered again.
#[derive(Debug)]
pub struct Subscription {
    inner: wit::Subscription,
}

impl Subscription {
    /// Waits for the next event; `None` once the subscription has ended
    /// (the host shuts down).
    pub fn next_event(&self) -> Result<Option<Event>, Error> {
        Ok(self.inner.next()?.map(|e| Event {
            id: e.id,
            topic: e.topic,
            pubsub: e.pubsub,
            event_type: e.type_,
            source: e.source,
            spec_version: e.spec_version,
            data_content_type: e.data_content_type,
            extensions: e.extensions,
            data: e.data,
        }))
    }

    /// Answers `event`: acked ([`EventStatus::Success`]), delivered again
    /// ([`EventStatus::Retry`]) or dropped ([`EventStatus::Drop`]). Each
    /// event is answered once; answering it again is an error.
    pub fn ack(&self, event: &Event, status: EventStatus) -> Result<(), Error> {
        let status = match status {
            EventStatus::Success => wit::EventStatus::Success,
            EventStatus::Retry => wit::EventStatus::Retry,
            EventStatus::Drop => wit::EventStatus::Drop,
        };
        self.inner.ack(&event.id, status).map_err(Error::from)
    }
}

impl Iterator for &Subscription {
    type Item = Result<Event, Error>;

    /// The next event; the iteration ends with the subscription.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}
