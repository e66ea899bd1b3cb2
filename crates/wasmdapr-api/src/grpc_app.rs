//! [`GrpcApp`]: the app channel to an ordinary process on `--app-port`
//! speaking Dapr's `AppCallback` gRPC service, as
//! `daprd --app-protocol grpc` talks to its app (`pkg/channel/grpc`,
//! `pkg/runtime/subscription/postman/grpc`, `GetSubscriptionsGRPC`):
//!
//! - an invocation (HTTP-shaped, from either API or another sidecar) is
//!   `OnInvoke` with `InvokeRequest{method, data, content_type,
//!   http_extension{verb, querystring}}`, its headers as call metadata; the
//!   answer comes back as a 200 with the app's data and content type, a gRPC
//!   error as the HTTP status of its code with the status as JSON, as daprd
//!   answers HTTP callers;
//! - the subscriptions are `ListTopicSubscriptions` (`UNIMPLEMENTED`: none),
//!   routed as daprd routes gRPC apps;
//! - an event is `OnTopicEvent` with the `TopicEventRequest` daprd's
//!   `GRPCEnvelopeFromSubscriptionMessage` builds; its status (and a gRPC
//!   error: `UNIMPLEMENTED` acks without dead-letter, any other retries) is
//!   read into the one verdict type of the runtime;
//! - a batch is `OnBulkTopicEvent`, falling back to
//!   `AppCallbackAlpha.OnBulkTopicEventAlpha1` on `UNIMPLEMENTED`;
//! - readiness: the port accepts connections and, with a health check,
//!   `AppCallbackHealthCheck.HealthCheck` succeeds.
//!
//! `APP_API_TOKEN` travels as `dapr-api-token` metadata on every call, and
//! `--app-max-concurrency` bounds the invocations in flight (as daprd's
//! gRPC channel does; events are not bounded by it).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as rt;
use rt::app_callback_alpha_client::AppCallbackAlphaClient;
use rt::app_callback_client::AppCallbackClient;
use rt::app_callback_health_check_client::AppCallbackHealthCheckClient;
use rt::topic_event_bulk_request_entry::Event as EntryEvent;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use wasmdapr_runtime::app_channel::http::BULK_EVENT_TYPE;
use wasmdapr_runtime::app_channel::{
    AppVerdict, BulkEvent, BulkEvents, SubscriptionsError, TopicEvent,
};
use wasmdapr_runtime::pubsub::cloudevent::{is_cloudevent, is_json, is_string};
use wasmdapr_runtime::pubsub::subscriptions::{AppSubscription, BulkConfig, RouteSpec, RuleSpec};
use wasmdapr_runtime::{AppChannel, AppId, AppRequest, AppResponse, ChannelError};

use crate::config::API_TOKEN_HEADER;
use crate::http_app::{AppSlots, HealthCheck, HttpAppConfig, wait_ready};
use crate::invoke::{content_type, verb_to_grpc};

/// What a [`GrpcApp`] needs: the same as an HTTP app (the health check's
/// path is unused: gRPC apps are probed with `HealthCheck`).
pub type GrpcAppConfig = HttpAppConfig;

/// An app reached over Dapr's `AppCallback` gRPC service.
#[derive(Debug, Clone)]
pub struct GrpcApp {
    app: String,
    address: SocketAddr,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    health: Option<HealthCheck>,
    max_body_size: usize,
    slots: AppSlots,
    channel: Channel,
}

/// Call metadata that describes the HTTP request, not the app's data, and
/// must not travel as gRPC metadata (HTTP/2 refuses connection headers).
const NOT_METADATA: [&str; 11] = [
    "content-type",
    "content-length",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "user-agent",
    "accept-encoding",
];

/// The CloudEvent attributes a `TopicEventRequest` has fields for; every
/// other attribute is an extension (daprd's `cloudEventDuplicateKeys`).
const CLOUDEVENT_FIELDS: [&str; 7] = [
    "id",
    "source",
    "datacontenttype",
    "type",
    "specversion",
    "data",
    "data_base64",
];

impl GrpcApp {
    /// The channel described by `config`; connections are made when needed.
    pub fn new(config: GrpcAppConfig) -> Result<Self, ChannelError> {
        let app = config.app_id.to_string();
        let failed = |reason: String| ChannelError::Failed {
            app: app.clone(),
            reason,
        };
        let token = config
            .app_token
            .filter(|t| !t.is_empty())
            .map(|t| {
                MetadataValue::try_from(t.as_str())
                    .map_err(|_| failed("APP_API_TOKEN is not a valid metadata value".into()))
            })
            .transpose()?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", config.address))
            .map_err(|e| failed(format!("no valid app address: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            address: config.address,
            app,
            token,
            health: config.health,
            max_body_size: config.max_body_size,
            slots: AppSlots::new(config.max_concurrency),
            channel,
        })
    }

    /// Where the app listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn client(&self) -> AppCallbackClient<Channel> {
        AppCallbackClient::new(self.channel.clone())
            .max_decoding_message_size(self.max_body_size)
            .max_encoding_message_size(self.max_body_size)
    }

    fn failed(&self, reason: String) -> ChannelError {
        ChannelError::Failed {
            app: self.app.clone(),
            reason,
        }
    }

    /// `message` as a call with `metadata` and the app token.
    fn request<T>(&self, message: T, mut metadata: MetadataMap) -> tonic::Request<T> {
        if let Some(token) = &self.token {
            metadata.insert(API_TOKEN_HEADER, token.clone());
        }
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata;
        request
    }

    /// Waits until the app's port accepts connections and, when a health
    /// check is configured, `HealthCheck` succeeds; gives up after `limit`
    /// (`None`: waits as long as it takes, logging every 5 s).
    pub async fn wait_ready(&self, limit: Option<Duration>) -> Result<(), ChannelError> {
        wait_ready(&self.app, self.address, self.health.as_ref(), limit, || {
            self.probe()
        })
        .await
    }

    /// The health check, if configured: `HealthCheck` succeeds.
    async fn probe(&self) -> Result<(), String> {
        let Some(health) = &self.health else {
            return Ok(());
        };
        let mut client = AppCallbackHealthCheckClient::new(self.channel.clone());
        let mut request = self.request((), MetadataMap::new());
        request.set_timeout(health.timeout);
        match tokio::time::timeout(health.timeout, client.health_check(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!(
                "HealthCheck failed: {:?} {}",
                status.code(),
                status.message()
            )),
            Err(_) => Err(format!("HealthCheck took longer than {:?}", health.timeout)),
        }
    }
}

/// `headers` as gRPC call metadata: names lower-cased by `http`, values
/// that are no printable ASCII and the request's own headers left out.
fn metadata_of<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if NOT_METADATA.contains(&lower.as_str())
            || lower.starts_with("grpc-")
            || lower.starts_with(':')
            || lower.ends_with("-bin")
        {
            continue;
        }
        let (Ok(key), Ok(value)) = (
            MetadataKey::<tonic::metadata::Ascii>::from_bytes(lower.as_bytes()),
            MetadataValue::try_from(value),
        ) else {
            continue;
        };
        metadata.append(key, value);
    }
    metadata
}

/// daprd's HTTP status of a gRPC code (`invokev1.HTTPStatusFromCode`, the
/// mapping of gRPC's HTTP/JSON transcoding).
fn http_status_of(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        Code::Cancelled => S::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON value as a protobuf `Value` (daprd marshals the extensions to
/// JSON and reads them back into a `Struct`).
fn proto_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(proto_value).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(proto_struct(fields.iter())),
    };
    prost_types::Value { kind: Some(kind) }
}

fn proto_struct<'a>(
    fields: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields.map(|(k, v)| (k.clone(), proto_value(v))).collect(),
    }
}

/// A string attribute of the CloudEvent (anything else is empty, as daprd's
/// `ExtractCloudEventProperty`).
fn attribute(event: &serde_json::Value, name: &str) -> String {
    event
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The parts of a CloudEvent a gRPC app receives (daprd's
/// `GRPCEnvelopeFromSubscriptionMessage` and `extractCloudEvent`):
/// `data_base64` decoded; a `data` string as its bytes for string content
/// types, re-serialised JSON for JSON content types, nothing for others;
/// every other attribute an extension. Fails (a retry) on data that does
/// not fit its content type.
fn cloud_event_request(event: &serde_json::Value) -> Result<rt::TopicEventCeRequest, String> {
    let data_content_type = attribute(event, "datacontenttype");
    let data = match (event.get("data_base64"), event.get("data")) {
        (Some(encoded), _) if !encoded.is_null() => {
            let encoded = encoded
                .as_str()
                .ok_or("`data_base64` of the event is no string")?;
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("`data_base64` of the event is no base64: {e}"))?
        }
        (_, Some(data)) if !data.is_null() => {
            if is_string(&data_content_type) {
                data.as_str()
                    .ok_or("the event's data is no string but its content type is")?
                    .as_bytes()
                    .to_vec()
            } else if is_json(&data_content_type) || is_cloudevent(&data_content_type) {
                serde_json::to_vec(data).expect("JSON")
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let extensions = event
        .as_object()
        .map(|fields| {
            proto_struct(
                fields
                    .iter()
                    .filter(|(k, _)| !CLOUDEVENT_FIELDS.contains(&k.as_str())),
            )
        })
        .unwrap_or_default();
    Ok(rt::TopicEventCeRequest {
        id: attribute(event, "id"),
        source: attribute(event, "source"),
        r#type: attribute(event, "type"),
        spec_version: attribute(event, "specversion"),
        data_content_type,
        data,
        extensions: Some(extensions),
    })
}

/// The verdict of a `TopicEventResponse` status.
fn verdict_of_status(status: i32, what: &str) -> AppVerdict {
    use rt::topic_event_response::TopicEventResponseStatus as S;
    match S::try_from(status) {
        Ok(S::Success) => AppVerdict::Success,
        Ok(S::Retry) => AppVerdict::Retry(format!("the app answered RETRY for {what}")),
        Ok(S::Drop) => AppVerdict::Drop(format!("the app answered DROP for {what}")),
        Err(_) => AppVerdict::Retry(format!(
            "the app answered an unknown status {status} for {what}"
        )),
    }
}

/// The verdict of a gRPC error: `UNIMPLEMENTED` (no handler) acks without
/// dead-letter, anything else retries, as in daprd.
fn verdict_of_error(status: &Status) -> AppVerdict {
    let reason = format!("the app failed: {:?} {}", status.code(), status.message());
    if status.code() == Code::Unimplemented {
        AppVerdict::Unhandled(reason)
    } else {
        AppVerdict::Retry(reason)
    }
}

#[async_trait]
impl AppChannel for GrpcApp {
    async fn invoke(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        let _slot = self.slots.acquire(&self.app).await?;
        let (parts, body) = request.into_parts();
        let verb = verb_to_grpc(&parts.method).map_err(|e| self.failed(e.to_string()))?;
        let message = common::InvokeRequest {
            method: parts.uri.path().trim_start_matches('/').to_owned(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: body.to_vec(),
            }),
            content_type: content_type(&parts.headers),
            http_extension: Some(common::HttpExtension {
                verb: verb as i32,
                querystring: parts.uri.query().unwrap_or_default().to_owned(),
            }),
        };
        let metadata = metadata_of(
            parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        );
        let result = self
            .client()
            .on_invoke(self.request(message, metadata))
            .await;
        let mut answer = http::Response::new(Bytes::new());
        match result {
            Ok(response) => {
                let (metadata, message, _) = response.into_parts();
                for (key, value) in metadata.into_headers() {
                    let Some(key) = key else { continue };
                    if NOT_METADATA.contains(&key.as_str()) || key.as_str().starts_with("grpc-") {
                        continue;
                    }
                    answer.headers_mut().append(key, value);
                }
                if let Ok(value) = http::HeaderValue::from_str(&message.content_type)
                    && !message.content_type.is_empty()
                {
                    answer
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, value);
                }
                *answer.body_mut() = message.data.map(|d| d.value).unwrap_or_default().into();
            }
            // A transport failure (the app is not listening) carries its cause.
            Err(status)
                if status.code() == Code::Unavailable
                    && std::error::Error::source(&status).is_some() =>
            {
                return Err(self.failed(format!(
                    "cannot reach the app at {}: {}",
                    self.address,
                    status.message()
                )));
            }
            Err(status) => {
                // As daprd answers an HTTP caller of a gRPC app: the HTTP
                // status of the code, the status as JSON.
                *answer.status_mut() = http_status_of(status.code());
                answer.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                let body = serde_json::json!({
                    "code": status.code() as i32,
                    "message": status.message(),
                });
                *answer.body_mut() = Bytes::from(serde_json::to_vec(&body).expect("JSON"));
            }
        }
        Ok(answer)
    }

    async fn subscriptions(
        &self,
        _app_id: &AppId,
    ) -> Result<Vec<AppSubscription>, SubscriptionsError> {
        let listed = match self
            .client()
            .list_topic_subscriptions(self.request((), MetadataMap::new()))
            .await
        {
            Ok(listed) => listed.into_inner(),
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!("the gRPC app does not implement ListTopicSubscriptions");
                return Ok(Vec::new());
            }
            Err(status) => {
                return Err(SubscriptionsError::Unreachable(self.failed(format!(
                    "ListTopicSubscriptions failed: {:?} {}",
                    status.code(),
                    status.message()
                ))));
            }
        };
        listed
            .subscriptions
            .into_iter()
            .map(|s| {
                let routes = s
                    .routes
                    .map(|r| RouteSpec {
                        rules: r
                            .rules
                            .into_iter()
                            .map(|rule| RuleSpec {
                                matches: rule.r#match,
                                path: rule.path,
                            })
                            .collect(),
                        default: Some(r.default).filter(|d| !d.is_empty()),
                    })
                    .unwrap_or_default();
                let bulk = s.bulk_subscribe.and_then(|b| {
                    BulkConfig::of(
                        b.enabled,
                        Some(i64::from(b.max_messages_count)),
                        Some(i64::from(b.max_await_duration_ms)),
                    )
                });
                AppSubscription::listed_by_grpc_app(
                    s.pubsub_name,
                    s.topic,
                    s.metadata.into_iter().collect::<BTreeMap<_, _>>(),
                    routes,
                    s.dead_letter_topic,
                    bulk,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SubscriptionsError::Refused(e.to_string()))
    }

    async fn deliver_event(&self, event: TopicEvent) -> Result<AppVerdict, ChannelError> {
        let ce = match cloud_event_request(&event.event) {
            Ok(ce) => ce,
            Err(reason) => return Ok(AppVerdict::Retry(reason)),
        };
        let message = rt::TopicEventRequest {
            id: ce.id,
            source: ce.source,
            r#type: ce.r#type,
            spec_version: ce.spec_version,
            data_content_type: ce.data_content_type,
            data: ce.data,
            topic: event.topic,
            pubsub_name: event.pubsub.clone(),
            path: event.path,
            extensions: ce.extensions,
        };
        let mut metadata: HashMap<&str, &str> = event
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        metadata.insert("pubsubname", &event.pubsub);
        if let Some(traceparent) = &event.traceparent {
            metadata.insert("traceparent", traceparent);
            if let Some(state) = &event.tracestate {
                metadata.insert("tracestate", state);
            }
        }
        let request = self.request(message, metadata_of(metadata));
        Ok(match self.client().on_topic_event(request).await {
            Ok(answer) => verdict_of_status(answer.into_inner().status, "the event"),
            Err(status) => verdict_of_error(&status),
        })
    }

    async fn deliver_bulk(&self, events: BulkEvents) -> Result<Vec<AppVerdict>, ChannelError> {
        let mut verdicts: Vec<Option<AppVerdict>> = vec![None; events.entries.len()];
        let mut entries = Vec::with_capacity(events.entries.len());
        let mut ids = Vec::with_capacity(events.entries.len());
        for (index, entry) in events.entries.iter().enumerate() {
            let event = match &entry.event {
                BulkEvent::Raw(bytes) => EntryEvent::Bytes(bytes.to_vec()),
                BulkEvent::CloudEvent(event) => match cloud_event_request(event) {
                    Ok(ce) => EntryEvent::CloudEvent(ce),
                    Err(reason) => {
                        verdicts[index] = Some(AppVerdict::Retry(reason));
                        continue;
                    }
                },
            };
            entries.push(rt::TopicEventBulkRequestEntry {
                entry_id: entry.entry_id.clone(),
                content_type: entry.content_type.clone(),
                metadata: entry.metadata.clone(),
                event: Some(event),
            });
            ids.push((index, entry.entry_id.as_str()));
        }
        let message = rt::TopicEventBulkRequest {
            id: events.id.clone(),
            entries,
            metadata: events.metadata.clone(),
            topic: events.topic.clone(),
            pubsub_name: events.pubsub.clone(),
            r#type: BULK_EVENT_TYPE.to_owned(),
            path: events.path.clone(),
        };
        let mut metadata: HashMap<&str, &str> = events
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(traceparent) = &events.traceparent {
            metadata.insert("traceparent", traceparent);
        }
        let metadata = metadata_of(metadata);
        let mut result = self
            .client()
            .on_bulk_topic_event(self.request(message.clone(), metadata.clone()))
            .await;
        if matches!(&result, Err(status) if status.code() == Code::Unimplemented) {
            tracing::debug!("the gRPC app has no OnBulkTopicEvent; trying OnBulkTopicEventAlpha1");
            // Deprecated, and the point: apps built before v1.17 have only it.
            #[allow(deprecated)]
            let alpha = AppCallbackAlphaClient::new(self.channel.clone())
                .max_decoding_message_size(self.max_body_size)
                .max_encoding_message_size(self.max_body_size)
                .on_bulk_topic_event_alpha1(self.request(message, metadata))
                .await;
            result = alpha;
        }
        let statuses: HashMap<String, i32> = match result {
            Ok(answer) => answer
                .into_inner()
                .statuses
                .into_iter()
                .map(|s| (s.entry_id, s.status))
                .collect(),
            Err(status) => {
                let verdict = verdict_of_error(&status);
                for (index, _) in &ids {
                    verdicts[*index] = Some(verdict.clone());
                }
                HashMap::new()
            }
        };
        for (index, id) in ids {
            if verdicts[index].is_none() {
                verdicts[index] = Some(match statuses.get(id) {
                    Some(status) => verdict_of_status(*status, &format!("entry {id}")),
                    None => AppVerdict::Retry(format!("the app did not answer for entry {id}")),
                });
            }
        }
        Ok(verdicts
            .into_iter()
            .map(|v| v.unwrap_or(AppVerdict::Retry("not delivered".into())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope daprd gives a gRPC app: JSON data re-serialised,
    /// strings as bytes, base64 decoded, other content types empty, every
    /// non-field attribute an extension.
    #[test]
    fn cloud_event_as_grpc() {
        let ce = cloud_event_request(&serde_json::json!({
            "id": "1", "source": "s", "type": "t", "specversion": "1.0",
            "datacontenttype": "application/json", "data": {"a": 1},
            "topic": "orders", "pubsubname": "p", "traceparent": "00-x", "custom": true
        }))
        .unwrap();
        assert_eq!(ce.data, br#"{"a":1}"#);
        assert_eq!((ce.id.as_str(), ce.r#type.as_str()), ("1", "t"));
        let ext = ce.extensions.unwrap().fields;
        let mut keys: Vec<&str> = ext.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["custom", "pubsubname", "topic", "traceparent"]);
        let text = cloud_event_request(
            &serde_json::json!({"datacontenttype": "text/plain", "data": "hi"}),
        )
        .unwrap();
        assert_eq!(text.data, b"hi");
        let b64 = cloud_event_request(&serde_json::json!({"data_base64": "AP8="})).unwrap();
        assert_eq!(b64.data, [0, 255]);
        let other =
            cloud_event_request(&serde_json::json!({"datacontenttype": "image/png", "data": "x"}))
                .unwrap();
        assert!(other.data.is_empty());
        assert!(cloud_event_request(&serde_json::json!({"data_base64": "!!"})).is_err());
        assert!(
            cloud_event_request(&serde_json::json!({"datacontenttype": "text/plain", "data": 5}))
                .is_err()
        );
    }

    /// Statuses and errors read as daprd reads them.
    #[test]
    fn verdicts() {
        assert_eq!(verdict_of_status(0, "e"), AppVerdict::Success);
        assert!(matches!(verdict_of_status(1, "e"), AppVerdict::Retry(_)));
        assert!(matches!(verdict_of_status(2, "e"), AppVerdict::Drop(_)));
        assert!(matches!(verdict_of_status(7, "e"), AppVerdict::Retry(_)));
        assert!(matches!(
            verdict_of_error(&Status::unimplemented("no")),
            AppVerdict::Unhandled(_)
        ));
        assert!(matches!(
            verdict_of_error(&Status::internal("boom")),
            AppVerdict::Retry(_)
        ));
    }

    /// Request headers that are no metadata stay behind.
    #[test]
    fn headers_as_metadata() {
        let metadata = metadata_of([
            ("Content-Type", "text/plain"),
            ("connection", "close"),
            ("dapr-caller-app-id", "a"),
            ("grpc-timeout", "1S"),
            ("X-Custom", "v"),
            ("bad", "line\nbreak"),
        ]);
        let mut keys: Vec<String> = metadata
            .keys()
            .map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => k.as_str().to_owned(),
                tonic::metadata::KeyRef::Binary(k) => k.as_str().to_owned(),
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["dapr-caller-app-id", "x-custom"]);
    }
}
