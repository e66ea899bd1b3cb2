//! The pub/sub building block of [`Runtime`]: [`PubSubApi`] with daprd's
//! semantics, once for every door. In daprd's order: the component is
//! looked up within the app's scopes (`ERR_PUBSUB_EMPTY`,
//! `ERR_PUBSUB_NOT_FOUND`), the topic checked (`ERR_TOPIC_NAME_EMPTY`),
//! `rawPayload` read (`ERR_PUBSUB_REQUEST_METADATA`), the CloudEvents
//! envelope built unless raw (`ERR_PUBSUB_CLOUD_EVENTS_SER`), the topic
//! scopes applied (`ERR_PUBSUB_FORBIDDEN`), and the broker called
//! (`ERR_PUBSUB_PUBLISH_MESSAGE`).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::Runtime;
use crate::api::pubsub::MAX_BULK_PUBLISH_ENTRIES;
use crate::api::pubsub::{EventSubscription, StreamSubscribeRequest};
use crate::api::{BulkPublishError, BulkPublishEvent, PubSubApi, PublishEvent, TraceContext};
use crate::components::LoadedPubSub;
use crate::error::ApiError;
use crate::invoke::TraceParent;
use crate::pubsub::cloudevent::{CLOUDEVENT_CONTENT_TYPE, CloudEvent, EnvelopeInput};
use crate::pubsub::{
    BulkMessageEntry, BulkPublishRequest, MessageHandler, Metadata, PubSub, PubSubError,
    PublishRequest, SubscribeRequest, Subscription,
};

/// The metadata key of a publish that skips the envelope.
pub(crate) const RAW_PAYLOAD: &str = "rawPayload";

/// `rawPayload` as Go's `strconv.ParseBool` reads it; absent or empty is
/// `false`.
pub(crate) fn raw_payload(metadata: &Metadata) -> Result<bool, String> {
    match metadata.get(RAW_PAYLOAD).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(format!(
            "{RAW_PAYLOAD} value must be a valid boolean: actual is '{}'",
            crate::error::echo(other)
        )),
    }
}

/// The `traceparent` and `tracestate` of the publish's span: the caller's
/// trace continued with a new span id, or a new trace (whose state is
/// empty) when the caller sent none or a malformed one.
pub(super) fn producer_span(trace: &TraceContext) -> (String, String) {
    match trace.traceparent.as_deref().and_then(TraceParent::parse) {
        Some(parent) => (
            parent.child().to_string(),
            trace.tracestate.clone().unwrap_or_default(),
        ),
        None => (TraceParent::root().to_string(), String::new()),
    }
}

/// The checks every publish makes before its body is looked at.
struct Target<'a> {
    loaded: &'a LoadedPubSub,
    raw: bool,
}

impl Runtime {
    /// The component `name`, the topic and `rawPayload` checked in daprd's
    /// order.
    fn publish_target(
        &self,
        name: &str,
        topic: &str,
        metadata: &Metadata,
    ) -> Result<Target<'_>, ApiError> {
        if name.is_empty() {
            return Err(ApiError::pubsub(name).name_empty(metadata));
        }
        // daprd always has a publisher, so "no pub/sub loaded" is "not
        // found" too, never ERR_PUBSUB_NOT_CONFIGURED.
        let loaded = self
            .components
            .scoped::<dyn PubSub>(name, &self.app_id)
            .map_err(|_| ApiError::pubsub(name).not_found())?;
        if topic.is_empty() {
            return Err(ApiError::pubsub(name).topic_empty(metadata));
        }
        let raw = raw_payload(metadata)
            .map_err(|e| ApiError::pubsub(name).metadata_deserialize(metadata, e))?;
        Ok(Target { loaded, raw })
    }

    /// The envelope of one event, as JSON.
    fn envelope(
        &self,
        target: &Target<'_>,
        topic: &str,
        body: &[u8],
        content_type: &str,
        metadata: &Metadata,
        span: &(String, String),
    ) -> Result<Vec<u8>, ApiError> {
        let name = &target.loaded.spec.name;
        let input = EnvelopeInput {
            source: self.app_id.as_str(),
            topic,
            pubsub: name,
            content_type,
            data: body,
            traceparent: &span.0,
            tracestate: &span.1,
        };
        let mut event = CloudEvent::new(input, metadata)
            .map_err(|e| ApiError::pubsub(name).cloud_event_creation(self.app_id.as_str(), e))?;
        event.apply_ttl(target.loaded.component.features().message_ttl, metadata);
        Ok(event.to_json())
    }

    /// The topic scopes' verdict on publishing `topic`.
    fn check_publish_scope(&self, target: &Target<'_>, topic: &str) -> Result<(), ApiError> {
        if target
            .loaded
            .scopes()
            .may_publish(self.app_id.as_str(), topic)
        {
            Ok(())
        } else {
            Err(ApiError::pubsub(&target.loaded.spec.name).forbidden(topic, self.app_id.as_str()))
        }
    }
}

/// Why [`Runtime::subscribe`] started no subscription.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// No pub/sub of that name in the app's scopes.
    #[error("pubsub {0} is not found")]
    NotFound(String),
    /// `subscriptionScopes`, `allowedTopics` or `protectedTopics` forbid it.
    #[error("app {app} may not subscribe to topic {topic} of pubsub {pubsub}")]
    Forbidden {
        /// The app.
        app: String,
        /// The pub/sub.
        pubsub: String,
        /// The topic.
        topic: String,
    },
    /// The broker refused.
    #[error("pubsub {pubsub}: {error}")]
    Broker {
        /// The pub/sub.
        pubsub: String,
        /// Its error.
        error: PubSubError,
    },
}

impl Runtime {
    /// Subscribes this app to `topic` of `pubsub`: within the app's scopes
    /// and the component's topic scopes (`subscriptionScopes`, …), in the
    /// app's consumer group ([`LoadedPubSub::consumer_group`]), each
    /// message handed to `handler` and acked when it returns `Ok`. This is
    /// what subscriptions (declarative, programmatic, streaming) start
    /// their delivery with.
    pub async fn subscribe(
        &self,
        pubsub: &str,
        topic: &str,
        metadata: Metadata,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, SubscribeError> {
        let loaded = self
            .components
            .scoped::<dyn PubSub>(pubsub, &self.app_id)
            .map_err(|_| SubscribeError::NotFound(pubsub.to_owned()))?;
        if !loaded.scopes().may_subscribe(self.app_id.as_str(), topic) {
            return Err(SubscribeError::Forbidden {
                app: self.app_id.to_string(),
                pubsub: pubsub.to_owned(),
                topic: topic.to_owned(),
            });
        }
        let request = SubscribeRequest {
            topic: topic.to_owned(),
            consumer_group: loaded.consumer_group(&self.app_id),
            metadata,
        };
        loaded
            .component
            .subscribe(request, handler)
            .await
            .map_err(|error| SubscribeError::Broker {
                pubsub: pubsub.to_owned(),
                error,
            })
    }
}

#[async_trait]
impl PubSubApi for Runtime {
    async fn publish_event(&self, event: PublishEvent) -> Result<(), ApiError> {
        let PublishEvent {
            pubsub_name,
            topic,
            data,
            content_type,
            mut metadata,
            trace,
        } = event;
        let target = self.publish_target(&pubsub_name, &topic, &metadata)?;
        let span = producer_span(&trace);
        let (data, content_type) = if target.raw {
            // As daprd's gRPC door: the trace travels in the metadata, for
            // brokers that carry it, since there is no envelope to hold it.
            metadata.insert("traceid".into(), span.0.clone());
            metadata.insert("tracestate".into(), span.1.clone());
            (data, (!content_type.is_empty()).then_some(content_type))
        } else {
            let envelope =
                self.envelope(&target, &topic, &data, &content_type, &metadata, &span)?;
            (envelope, Some(CLOUDEVENT_CONTENT_TYPE.to_owned()))
        };
        self.check_publish_scope(&target, &topic)?;
        let request = PublishRequest {
            topic: topic.clone(),
            data,
            content_type,
            metadata,
        };
        target
            .loaded
            .component
            .publish(request)
            .await
            .map_err(|e| ApiError::pubsub(&pubsub_name).publish_message(&topic, e))
    }

    async fn bulk_publish_event(&self, event: BulkPublishEvent) -> Result<(), BulkPublishError> {
        let BulkPublishEvent {
            pubsub_name,
            topic,
            entries,
            metadata,
            trace,
            malformed_body,
        } = event;
        let target = self.publish_target(&pubsub_name, &topic, &metadata)?;
        let errors = ApiError::pubsub(&pubsub_name);
        let app = self.app_id.as_str();
        if let Some(error) = malformed_body {
            return Err(errors.unmarshal_events(app, &topic, error).into());
        }
        if entries.len() > MAX_BULK_PUBLISH_ENTRIES {
            return Err(errors
                .marshal_events(
                    app,
                    &topic,
                    format!(
                        "a bulk publish carries at most {MAX_BULK_PUBLISH_ENTRIES} entries; this one has {}",
                        entries.len()
                    ),
                )
                .into());
        }
        let mut ids = HashSet::with_capacity(entries.len());
        let mut messages = Vec::with_capacity(entries.len());
        for entry in entries {
            let bytes = entry
                .event
                .into_bytes(&entry.content_type)
                .map_err(|e| errors.marshal_envelope(app, &topic, e))?;
            if entry.entry_id.is_empty() || !ids.insert(entry.entry_id.clone()) {
                return Err(errors
                    .marshal_events(
                        app,
                        &topic,
                        "entryId is duplicated or not present for entry",
                    )
                    .into());
            }
            let entry_metadata = match entry.metadata {
                Some(own) => {
                    let mut merged = metadata.clone();
                    merged.extend(own);
                    merged
                }
                None => Metadata::new(),
            };
            let (event, content_type) = if target.raw {
                (bytes, entry.content_type)
            } else {
                // Each entry is a span of its own, as in daprd.
                let span = producer_span(&trace);
                let envelope = self.envelope(
                    &target,
                    &topic,
                    &bytes,
                    &entry.content_type,
                    &entry_metadata,
                    &span,
                )?;
                (envelope, entry.content_type)
            };
            messages.push(BulkMessageEntry {
                entry_id: entry.entry_id,
                event,
                content_type,
                metadata: entry_metadata,
            });
        }
        self.check_publish_scope(&target, &topic)?;
        let failed = target
            .loaded
            .component
            .bulk_publish(BulkPublishRequest {
                topic: topic.clone(),
                entries: messages,
                metadata,
            })
            .await;
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(BulkPublishError {
                error: errors.publish_message(&topic, &first.error),
                failed_entries: failed,
            }),
        }
    }

    async fn subscribe_events(
        &self,
        request: StreamSubscribeRequest,
    ) -> Result<EventSubscription, ApiError> {
        self.open_event_stream(request).await
    }
}

#[cfg(test)]
mod tests {
    //! The runtime's publish logic (lookup, checks, envelope, scopes, error
    //! mapping) over a broker defined here that records what it receives;
    //! real brokers are tested by the conformance suite of
    //! `wasmdapr-components`.

    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;
    use crate::api::{BulkEvent, BulkPublishEntry};
    use crate::app_id::AppId;
    use crate::component::ComponentSpec;
    use crate::components::Components;
    use crate::pubsub::{FailedEntry, HandlerError, PubSubFeatures, ReceivedMessage};
    use crate::registry::ComponentRegistry;

    /// Records every publish and subscription; fails publishes whose
    /// topic is `broken`.
    #[derive(Default)]
    struct Recorder {
        published: Mutex<Vec<PublishRequest>>,
        subscribed: Mutex<Vec<SubscribeRequest>>,
        ttl: bool,
    }

    #[async_trait]
    impl PubSub for Recorder {
        fn features(&self) -> PubSubFeatures {
            PubSubFeatures {
                message_ttl: self.ttl,
                ..PubSubFeatures::default()
            }
        }
        async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
            if request.topic == "broken" {
                return Err(PubSubError::Backend("connection refused".into()));
            }
            self.published.lock().unwrap().push(request);
            Ok(())
        }
        async fn subscribe(
            &self,
            request: SubscribeRequest,
            _: Arc<dyn MessageHandler>,
        ) -> Result<Subscription, PubSubError> {
            self.subscribed.lock().unwrap().push(request);
            let (stop, _) = Subscription::signal();
            Ok(Subscription::new(stop, tokio::spawn(async {})))
        }
    }

    /// A component to load: `(name, metadata, scopes)`.
    type Declared<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

    /// Components with one `Recorder` per declaration.
    async fn components(specs: &[Declared<'_>]) -> (Arc<Components>, Vec<Arc<Recorder>>) {
        let mut registry = ComponentRegistry::new();
        let made: Arc<Mutex<Vec<Arc<Recorder>>>> = Arc::default();
        let sink = made.clone();
        registry.register::<dyn PubSub, _, _>("pubsub.recorder", move |spec| {
            let broker = Arc::new(Recorder {
                ttl: spec.metadata("nativeTTL").is_some(),
                ..Recorder::default()
            });
            sink.lock().unwrap().push(broker.clone());
            async move { Ok(broker as Arc<dyn PubSub>) }
        });
        let specs = specs
            .iter()
            .map(|(name, metadata, scopes)| ComponentSpec {
                name: name.to_string(),
                kind: "pubsub.recorder".into(),
                version: "v1".into(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                source: "test.yaml".into(),
            })
            .collect();
        let components = Components::load(specs, &registry).await.unwrap();
        let made = made.lock().unwrap().clone();
        (Arc::new(components), made)
    }

    fn runtime(app: &str, components: &Arc<Components>) -> Runtime {
        Runtime::new(AppId::new(app).unwrap(), components.clone())
    }

    fn event(pubsub: &str, topic: &str, body: &str, content_type: &str) -> PublishEvent {
        PublishEvent {
            pubsub_name: pubsub.into(),
            topic: topic.into(),
            data: body.as_bytes().to_vec(),
            content_type: content_type.into(),
            ..PublishEvent::default()
        }
    }

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A publish reaches the broker as a CloudEvent from the app, with the
    /// caller's trace continued (same trace id, new span), the metadata
    /// passed on, and the envelope's content type.
    #[tokio::test]
    async fn publish_wraps_in_a_cloudevent() {
        let (c, brokers) = components(&[("pubsub", &[], &[])]).await;
        let mut e = event("pubsub", "orders/eu", r#"{"id": 7}"#, "application/json");
        e.metadata = meta(&[("ttlInSeconds", "30"), ("k", "v")]);
        e.trace.traceparent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        e.trace.tracestate = Some("vendor=x".into());
        runtime("orders", &c).publish_event(e).await.unwrap();
        let published = brokers[0].published.lock().unwrap();
        let request = &published[0];
        assert_eq!(request.topic, "orders/eu");
        assert_eq!(
            request.content_type.as_deref(),
            Some(CLOUDEVENT_CONTENT_TYPE)
        );
        assert_eq!(request.metadata["k"], "v");
        let ce: Value = serde_json::from_slice(&request.data).unwrap();
        assert_eq!(ce["source"], "orders");
        assert_eq!(ce["pubsubname"], "pubsub");
        assert_eq!(ce["topic"], "orders/eu");
        assert_eq!(ce["data"], serde_json::json!({"id": 7}));
        let traceparent = ce["traceparent"].as_str().unwrap();
        assert!(traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(
            !traceparent.contains("b7ad6b7169203331"),
            "a new span: {traceparent}"
        );
        assert_eq!(ce["tracestate"], "vendor=x");
        assert!(ce["expiration"].is_string(), "no native TTL: {ce}");
    }

    /// `rawPayload` publishes the body untouched, the trace in the
    /// metadata; a `rawPayload` that is no boolean is refused; a broker
    /// with its own TTL gets no `expiration`.
    #[tokio::test]
    async fn raw_payload_and_native_ttl() {
        let (c, brokers) =
            components(&[("raw", &[], &[]), ("ttl", &[("nativeTTL", "yes")], &[])]).await;
        let rt = runtime("orders", &c);
        for yes in ["true", "1", "T", "True"] {
            let mut e = event("raw", "t", "raw bytes", "");
            e.metadata = meta(&[("rawPayload", yes)]);
            rt.publish_event(e).await.unwrap();
        }
        let published = brokers[0].published.lock().unwrap().clone();
        assert_eq!(published.len(), 4);
        assert_eq!(published[0].data, b"raw bytes");
        assert!(published[0].metadata["traceid"].starts_with("00-"));
        assert_eq!(published[0].content_type, None);
        let mut e = event("raw", "t", "x", "");
        e.metadata = meta(&[("rawPayload", "yes")]);
        let err = rt.publish_event(e).await.unwrap_err();
        assert_eq!(
            (err.code(), err.http_status(), err.reason()),
            (
                "ERR_PUBSUB_REQUEST_METADATA",
                400,
                Some("DAPR_PUBSUB_METADATA_DESERIALIZATION")
            )
        );
        assert_eq!(err.details().metadata["rawPayload"], "yes");

        let mut e = event("ttl", "t", "x", "");
        e.metadata = meta(&[("ttlInSeconds", "30")]);
        rt.publish_event(e).await.unwrap();
        let ce: Value =
            serde_json::from_slice(&brokers[1].published.lock().unwrap()[0].data).unwrap();
        assert!(ce.get("expiration").is_none(), "{ce}");
    }

    /// The errors of daprd's table, in daprd's order of checks: empty
    /// name 404, unknown or out-of-scope or none loaded 404, empty topic
    /// 404, bad CloudEvent 500, forbidden topic 403, broker failure 500.
    #[tokio::test]
    async fn errors_match_daprd() {
        let (c, brokers) = components(&[
            ("pubsub", &[("publishingScopes", "orders=allowed")], &[]),
            ("private", &[], &["billing"]),
        ])
        .await;
        let rt = runtime("orders", &c);
        let check = |e: ApiError, code: &str, status: u16, reason: &str| {
            assert_eq!(
                (e.code(), e.http_status(), e.reason()),
                (code, status, Some(reason)),
                "{e}"
            );
            e
        };
        let e = rt
            .publish_event(event("", "allowed", "x", ""))
            .await
            .unwrap_err();
        check(e, "ERR_PUBSUB_EMPTY", 404, "DAPR_PUBSUB_NAME_EMPTY");
        let e = rt
            .publish_event(event("nope", "allowed", "x", ""))
            .await
            .unwrap_err();
        let e = check(e, "ERR_PUBSUB_NOT_FOUND", 404, "DAPR_PUBSUB_NOT_FOUND");
        assert_eq!(e.message, "pubsub nope is not found");
        assert_eq!(e.details().resource, None);
        let e = rt
            .publish_event(event("private", "t", "x", ""))
            .await
            .unwrap_err();
        check(e, "ERR_PUBSUB_NOT_FOUND", 404, "DAPR_PUBSUB_NOT_FOUND");
        let none = Arc::new(Components::default());
        let e = runtime("orders", &none)
            .publish_event(event("pubsub", "t", "x", ""))
            .await
            .unwrap_err();
        check(e, "ERR_PUBSUB_NOT_FOUND", 404, "DAPR_PUBSUB_NOT_FOUND");
        let e = rt
            .publish_event(event("pubsub", "", "x", ""))
            .await
            .unwrap_err();
        let e = check(
            e,
            "ERR_TOPIC_NAME_EMPTY",
            404,
            "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        );
        assert_eq!(e.message, "topic is empty in pubsub pubsub");
        let e = rt
            .publish_event(event("pubsub", "allowed", "[1]", CLOUDEVENT_CONTENT_TYPE))
            .await
            .unwrap_err();
        let e = check(
            e,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            500,
            "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
        );
        assert_eq!(e.grpc_code(), crate::GrpcCode::InvalidArgument);
        let e = rt
            .publish_event(event("pubsub", "other", "x", ""))
            .await
            .unwrap_err();
        let e = check(e, "ERR_PUBSUB_FORBIDDEN", 403, "DAPR_PUBSUB_FORBIDDEN");
        assert_eq!(e.message, "topic other is not allowed for app id orders");
        let resource = e.details().resource.clone().unwrap();
        assert_eq!(
            (
                resource.resource_type.as_str(),
                resource.resource_name.as_str()
            ),
            ("pubsub", "pubsub")
        );
        assert_eq!(resource.description, e.message);
        let (c2, _) = components(&[("pubsub", &[], &[])]).await;
        let e = runtime("orders", &c2)
            .publish_event(event("pubsub", "broken", "x", ""))
            .await
            .unwrap_err();
        let e = check(
            e,
            "ERR_PUBSUB_PUBLISH_MESSAGE",
            500,
            "DAPR_PUBSUB_PUBLISH_MESSAGE",
        );
        assert_eq!(
            e.message,
            "error when publishing to topic broken in pubsub pubsub: connection refused"
        );
        assert_eq!(e.details().metadata["topic"], "broken");
        assert!(brokers[0].published.lock().unwrap().is_empty());
        // Another app unrestricted by the scopes publishes anywhere.
        runtime("shipping", &c)
            .publish_event(event("pubsub", "other", "x", ""))
            .await
            .unwrap();
    }

    fn entry(id: &str, body: &str, metadata: Option<Metadata>) -> BulkPublishEntry {
        BulkPublishEntry {
            entry_id: id.into(),
            event: BulkEvent::Bytes(body.as_bytes().to_vec()),
            content_type: "application/json".into(),
            metadata,
        }
    }

    /// A bulk publish wraps each entry in its own envelope with its own
    /// span, merges entry metadata over the request's only for entries that
    /// have some, refuses missing or duplicate ids and too many entries
    /// before publishing anything, and reports the entries the broker
    /// failed with `ERR_PUBSUB_PUBLISH_MESSAGE`.
    #[tokio::test]
    async fn bulk_publish() {
        let (c, brokers) = components(&[("pubsub", &[], &[])]).await;
        let rt = runtime("orders", &c);
        let bulk = |topic: &str, entries| BulkPublishEvent {
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            entries,
            metadata: meta(&[("ttlInSeconds", "60"), ("shared", "r")]),
            trace: TraceContext::default(),
            malformed_body: None,
        };
        rt.bulk_publish_event(bulk(
            "t",
            vec![
                entry("1", "1", Some(meta(&[("shared", "e")]))),
                entry("2", "2", None),
            ],
        ))
        .await
        .unwrap();
        {
            let published = brokers[0].published.lock().unwrap();
            assert_eq!(published.len(), 2);
            let ce: Vec<Value> = published
                .iter()
                .map(|p| serde_json::from_slice(&p.data).unwrap())
                .collect();
            assert_eq!(
                (ce[0]["data"].as_i64(), ce[1]["data"].as_i64()),
                (Some(1), Some(2))
            );
            assert_ne!(ce[0]["traceparent"], ce[1]["traceparent"]);
            assert_eq!(published[0].metadata["shared"], "e");
            assert!(ce[0]["expiration"].is_string());
            assert!(published[1].metadata.is_empty());
            assert!(ce[1].get("expiration").is_none(), "{}", ce[1]);
        }
        for entries in [
            vec![entry("1", "1", None), entry("1", "2", None)],
            vec![entry("", "1", None)],
            vec![entry("x", "1", None); MAX_BULK_PUBLISH_ENTRIES + 1],
        ] {
            let err = rt.bulk_publish_event(bulk("t", entries)).await.unwrap_err();
            assert_eq!(err.error.code(), "ERR_PUBSUB_EVENTS_SER");
            assert_eq!(err.error.reason(), Some("DAPR_PUBSUB_MARSHAL_EVENTS"));
            assert!(err.failed_entries.is_empty());
        }
        assert_eq!(brokers[0].published.lock().unwrap().len(), 2);
        let err = rt
            .bulk_publish_event(bulk(
                "broken",
                vec![entry("a", "1", None), entry("b", "2", None)],
            ))
            .await
            .unwrap_err();
        assert_eq!(err.error.code(), "ERR_PUBSUB_PUBLISH_MESSAGE");
        assert_eq!(
            err.failed_entries,
            [
                FailedEntry {
                    entry_id: "a".into(),
                    error: "connection refused".into()
                },
                FailedEntry {
                    entry_id: "b".into(),
                    error: "connection refused".into()
                },
            ]
        );
    }

    /// A JSON event becomes bytes as daprd's `ConvertEventToBytes` makes
    /// them, and a mismatch with its content type is refused.
    #[test]
    fn bulk_events_by_content_type() {
        let json =
            |t: &str| BulkEvent::Json(serde_json::value::RawValue::from_string(t.into()).unwrap());
        let ok = |t: &str, ct: &str| json(t).into_bytes(ct).unwrap();
        assert_eq!(ok(r#""AP8B""#, "application/octet-stream"), [0, 255, 1]);
        assert_eq!(ok(r#""hi""#, "text/plain"), b"hi");
        assert_eq!(ok(r#""<a/>""#, "application/xml"), b"<a/>");
        assert_eq!(
            ok(r#"{ "a" : [1, 2] }"#, "application/json"),
            br#"{"a":[1,2]}"#
        );
        assert_eq!(ok(r#""s""#, "application/cloudevents+json"), br#""s""#);
        for (t, ct) in [
            ("1", "application/octet-stream"),
            (r#""not base64!""#, "application/octet-stream"),
            ("{}", "text/plain"),
            ("{}", ""),
            ("{}", "application/x-custom"),
        ] {
            assert!(json(t).into_bytes(ct).is_err(), "{t} as {ct}");
        }
        assert_eq!(BulkEvent::Bytes(vec![1]).into_bytes("").unwrap(), [1]);
    }

    /// The metadata API lists the pub/subs the app may use, with Dapr's
    /// feature names.
    #[tokio::test]
    async fn metadata_lists_pubsubs() {
        use crate::api::MetadataApi;
        let (c, _) = components(&[
            ("pubsub", &[("nativeTTL", "yes")], &[]),
            ("private", &[], &["billing"]),
        ])
        .await;
        let m = runtime("orders", &c).metadata().await.unwrap();
        let listed: Vec<(&str, &str, Vec<String>)> = m
            .components
            .iter()
            .map(|c| (c.name.as_str(), c.kind.as_str(), c.capabilities.clone()))
            .collect();
        assert_eq!(
            listed,
            [("pubsub", "pubsub.recorder", vec!["MESSAGE_TTL".to_string()])]
        );
    }

    /// A subscription is in the app's consumer group (or the component's
    /// `consumerID`), within the app's component scopes and the topic's
    /// subscription scopes.
    #[tokio::test]
    async fn subscriptions_are_scoped_and_grouped() {
        let (c, brokers) = components(&[
            ("pubsub", &[("subscriptionScopes", "orders=mine")], &[]),
            ("shared", &[("consumerID", "one-group")], &[]),
            ("private", &[], &["billing"]),
        ])
        .await;
        let rt = runtime("orders", &c);
        let handler: Arc<dyn MessageHandler> =
            Arc::new(|_: ReceivedMessage| async { Ok::<(), HandlerError>(()) });
        let sub = |pubsub: &'static str, topic: &'static str| {
            rt.subscribe(pubsub, topic, Metadata::new(), handler.clone())
        };
        sub("pubsub", "mine").await.unwrap().close().await;
        assert!(matches!(
            sub("pubsub", "theirs").await,
            Err(SubscribeError::Forbidden { .. })
        ));
        assert!(matches!(
            sub("private", "t").await,
            Err(SubscribeError::NotFound(_))
        ));
        sub("shared", "t").await.unwrap().close().await;
        let groups: Vec<String> = brokers[..2]
            .iter()
            .flat_map(|b| b.subscribed.lock().unwrap().clone())
            .map(|r| r.consumer_group)
            .collect();
        assert_eq!(groups, ["orders", "one-group"]);
    }

    /// `rawPayload` follows Go's `ParseBool`.
    #[test]
    fn raw_payload_parses_like_go() {
        for (v, want) in [
            ("", Ok(false)),
            ("1", Ok(true)),
            ("F", Ok(false)),
            ("TRUE", Ok(true)),
        ] {
            assert_eq!(raw_payload(&meta(&[("rawPayload", v)])), want, "{v}");
        }
        assert!(raw_payload(&meta(&[("rawPayload", "yes")])).is_err());
        assert_eq!(raw_payload(&Metadata::new()), Ok(false));
    }
}
