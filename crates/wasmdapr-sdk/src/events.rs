//! Receiving pub/sub events in an HTTP-handler app: declare the topics once
//! in [`Subscriptions`] and let [`Subscriptions::dispatch`] answer the
//! sidecar, instead of hand-writing `GET /dapr/subscribe` and a route per
//! topic.
//!
//! Dapr delivers an event by `POST`ing a CloudEvent
//! (`application/cloudevents+json`) to the subscription's route, on a fresh
//! instance of the app; the app's answer decides what happens to it
//! ([`EventStatus`]). This module is plain data (no import is called), so
//! it works the same whichever WASI HTTP crate the app serves requests
//! with:
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmdapr_sdk::events::{EventStatus, Subscriptions, Topic};
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64, amount: u64 }
//!
//! fn subscriptions() -> Subscriptions {
//!     Subscriptions::new().topic(Topic::new("pubsub", "orders").dead_letter("orders-failed"), |event| {
//!         match event.data::<Order>() {
//!             Ok(order) if order.amount > 0 => EventStatus::Success,
//!             Ok(_) => EventStatus::Drop,       // never valid: to the dead-letter topic
//!             Err(_) => EventStatus::Drop,
//!         }
//!     })
//! }
//!
//! // In the app's incoming-handler, with the request's method, path and body:
//! # let (method, path, body) = ("POST", "/orders", Vec::<u8>::new());
//! if let Some(answer) = subscriptions().dispatch(method, path, &body) {
//!     // write answer.status, answer.content_type and answer.body
//! }
//! ```

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::Error;
pub use crate::pubsub::EventStatus;

/// Dapr's name of a status in a subscriber's answer
/// (`{"status": "SUCCESS" | "RETRY" | "DROP"}`).
fn status_name(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Success => "SUCCESS",
        EventStatus::Retry => "RETRY",
        EventStatus::Drop => "DROP",
    }
}

/// One topic the app subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pubsub: String,
    topic: String,
    route: String,
    dead_letter: Option<String>,
    metadata: Vec<(String, String)>,
}

impl Topic {
    /// `topic` of the pub/sub component `pubsub`, delivered to the route
    /// `/{topic}` (change it with [`Topic::route`]).
    pub fn new(pubsub: &str, topic: &str) -> Self {
        Self {
            pubsub: pubsub.to_owned(),
            topic: topic.to_owned(),
            route: format!("/{}", topic.trim_start_matches('/')),
            dead_letter: None,
            metadata: Vec::new(),
        }
    }

    /// Delivers the topic's events to `route` (a path, `/` added if
    /// missing).
    pub fn route(mut self, route: &str) -> Self {
        self.route = format!("/{}", route.trim_start_matches('/'));
        self
    }

    /// Sends the events answered [`EventStatus::Drop`] (or failing past
    /// the retry policy) to `topic` of the same pub/sub.
    pub fn dead_letter(mut self, topic: &str) -> Self {
        self.dead_letter = Some(topic.to_owned());
        self
    }

    /// Subscription metadata, e.g. `rawPayload=true` to receive events
    /// published raw.
    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_owned(), value.to_owned()));
        self
    }

    fn declaration(&self) -> Value {
        let mut declared = json!({
            "pubsubname": self.pubsub,
            "topic": self.topic,
            "route": self.route,
        });
        if let Some(dead_letter) = &self.dead_letter {
            declared["deadLetterTopic"] = json!(dead_letter);
        }
        if !self.metadata.is_empty() {
            let metadata: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            declared["metadata"] = Value::Object(metadata);
        }
        declared
    }
}

/// An event as the app receives it: a CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    attributes: Map<String, Value>,
}

impl Event {
    /// Reads a delivered CloudEvent (the body of Dapr's `POST`).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(attributes)) => Ok(Self { attributes }),
            Ok(_) => Err(Error::json(
                "the event",
                <serde_json::Error as serde::de::Error>::custom("a CloudEvent is a JSON object"),
            )),
            Err(e) => Err(Error::json("the event", e)),
        }
    }

    /// A string attribute (`id`, `source`, `type`, `topic`, `pubsubname`,
    /// `traceparent`, an extension …), `None` when missing or not a string.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)?.as_str()
    }

    /// The event's id (the same on every redelivery: use it to make
    /// processing idempotent).
    pub fn id(&self) -> &str {
        self.attribute("id").unwrap_or_default()
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        self.attribute("topic").unwrap_or_default()
    }

    /// The pub/sub component it came from.
    pub fn pubsub(&self) -> &str {
        self.attribute("pubsubname").unwrap_or_default()
    }

    /// The data's content type (`datacontenttype`).
    pub fn content_type(&self) -> &str {
        self.attribute("datacontenttype").unwrap_or_default()
    }

    /// The data, deserialized from JSON: the CloudEvent's `data` (a JSON
    /// value, or a string holding JSON), or its `data_base64`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.attributes.get("data") {
            Some(Value::String(text)) => serde_json::from_str(text)
                .or_else(|_| serde_json::from_value(Value::String(text.clone())))
                .map_err(|e| Error::json("the event's data", e)),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| Error::json("the event's data", e)),
            None => serde_json::from_slice(&self.data_bytes()?)
                .map_err(|e| Error::json("the event's data", e)),
        }
    }

    /// The data as bytes: a string `data` as its UTF-8, other JSON as its
    /// text, `data_base64` decoded; empty when there is none.
    pub fn data_bytes(&self) -> Result<Vec<u8>, Error> {
        match (self.attributes.get("data"), self.attribute("data_base64")) {
            (Some(Value::String(text)), _) => Ok(text.clone().into_bytes()),
            (Some(value), _) => Ok(value.to_string().into_bytes()),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| Error {
                    code: Error::JSON.to_owned(),
                    message: format!("the event's data_base64: {e}"),
                    status: 0,
                }),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// An answer for the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    fn json(value: &Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }
}

type Handler = Box<dyn Fn(&Event) -> EventStatus>;

/// The app's subscriptions and their handlers.
#[derive(Default)]
pub struct Subscriptions {
    topics: Vec<(Topic, Handler)>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.topics.iter().map(|(topic, _)| topic))
            .finish()
    }
}

impl Subscriptions {
    /// No subscription yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to `topic`, handing each of its events to `handler`.
    pub fn topic(
        mut self,
        topic: Topic,
        handler: impl Fn(&Event) -> EventStatus + 'static,
    ) -> Self {
        self.topics.push((topic, Box::new(handler)));
        self
    }

    /// The answer to `GET /dapr/subscribe`: the declarations, in Dapr's
    /// programmatic-subscription JSON.
    pub fn declarations(&self) -> Value {
        Value::Array(self.topics.iter().map(|(t, _)| t.declaration()).collect())
    }

    /// Answers a request of the sidecar: `GET /dapr/subscribe` with the
    /// declarations, a `POST` to a subscription's route with its handler's
    /// status. `None` for any other request (the app's own routes). An
    /// event that is no CloudEvent is answered `DROP`: delivering it again
    /// cannot make it readable.
    pub fn dispatch(&self, method: &str, path: &str, body: &[u8]) -> Option<Answer> {
        let path = path.split('?').next().unwrap_or_default();
        if method.eq_ignore_ascii_case("GET") && path == "/dapr/subscribe" {
            return Some(Answer::json(&self.declarations()));
        }
        if !method.eq_ignore_ascii_case("POST") {
            return None;
        }
        let (_, handler) = self.topics.iter().find(|(t, _)| t.route == path)?;
        let status = match Event::parse(body) {
            Ok(event) => handler(&event),
            Err(_) => EventStatus::Drop,
        };
        Some(Answer::json(&json!({ "status": status_name(status) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions() -> Subscriptions {
        Subscriptions::new()
            .topic(
                Topic::new("pubsub", "orders").dead_letter("failed"),
                |event| match event.data::<serde_json::Value>() {
                    Ok(order) if order["amount"].as_u64() > Some(0) => EventStatus::Success,
                    Ok(order) if order["amount"] == 0 => EventStatus::Drop,
                    _ => EventStatus::Retry,
                },
            )
            .topic(
                Topic::new("pubsub", "raw")
                    .route("inbox/raw")
                    .metadata("rawPayload", "true"),
                |event| match event.data_bytes() {
                    Ok(bytes) if bytes == b"\x00\x01" => EventStatus::Success,
                    _ => EventStatus::Retry,
                },
            )
    }

    fn status(answer: Option<Answer>) -> String {
        let answer = answer.expect("an answer");
        assert_eq!(
            (answer.status, answer.content_type),
            (200, "application/json")
        );
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        body["status"].as_str().unwrap().to_owned()
    }

    #[test]
    fn declarations_are_daprs_json() {
        let answer = subscriptions()
            .dispatch("GET", "/dapr/subscribe", b"")
            .unwrap();
        let declared: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            declared,
            json!([
                {"pubsubname": "pubsub", "topic": "orders", "route": "/orders",
                 "deadLetterTopic": "failed"},
                {"pubsubname": "pubsub", "topic": "raw", "route": "/inbox/raw",
                 "metadata": {"rawPayload": "true"}},
            ])
        );
    }

    #[test]
    fn events_are_routed_to_their_handler() {
        let subs = subscriptions();
        let event = |data: Value| {
            json!({"id": "1", "specversion": "1.0", "type": "com.dapr.event.sent",
                   "source": "app", "topic": "orders", "pubsubname": "pubsub",
                   "datacontenttype": "application/json", "data": data})
            .to_string()
        };
        let post = |path: &str, body: &str| subs.dispatch("POST", path, body.as_bytes());
        assert_eq!(
            status(post("/orders", &event(json!({"amount": 3})))),
            "SUCCESS"
        );
        assert_eq!(
            status(post("/orders?x=1", &event(json!({"amount": 0})))),
            "DROP"
        );
        assert_eq!(
            status(post("/orders", &event(json!("not an order")))),
            "RETRY"
        );
        assert_eq!(status(post("/orders", "not json")), "DROP");
        assert_eq!(status(post("/orders", "[1]")), "DROP");
        let raw = json!({"id": "2", "data_base64": "AAE=", "datacontenttype": "application/octet-stream"});
        assert_eq!(status(post("/inbox/raw", &raw.to_string())), "SUCCESS");
        assert_eq!(post("/elsewhere", "{}"), None);
        assert_eq!(subs.dispatch("GET", "/orders", b""), None);
    }

    #[test]
    fn data_in_every_shape() {
        let event = |ce: Value| Event::parse(ce.to_string().as_bytes()).unwrap();
        let json_data =
            event(json!({"id": "a", "topic": "t", "pubsubname": "p", "data": {"n": 1}}));
        assert_eq!(
            (json_data.id(), json_data.topic(), json_data.pubsub()),
            ("a", "t", "p")
        );
        assert_eq!(json_data.data::<Value>().unwrap(), json!({"n": 1}));
        assert_eq!(json_data.data_bytes().unwrap(), b"{\"n\":1}");
        // text/plain data holding JSON, as a raw publish of JSON text arrives
        let text = event(json!({"data": "{\"n\":2}", "datacontenttype": "text/plain"}));
        assert_eq!(text.data::<Value>().unwrap(), json!({"n": 2}));
        assert_eq!(text.content_type(), "text/plain");
        let plain = event(json!({"data": "hello"}));
        assert_eq!(plain.data::<String>().unwrap(), "hello");
        let b64 = event(json!({"data_base64": "eyJuIjozfQ=="}));
        assert_eq!(b64.data::<Value>().unwrap(), json!({"n": 3}));
        assert!(event(json!({"data_base64": "!!"})).data_bytes().is_err());
        assert_eq!(event(json!({})).data_bytes().unwrap(), b"");
    }
}
