//! The CloudEvents 1.0 envelope exactly as daprd builds it around a
//! published body (`NewCloudEvent` of `pkg/runtime/pubsub/cloudevents.go`,
//! `NewCloudEventsEnvelope`, `FromCloudEvent` and `ApplyMetadata` of
//! components-contrib `pubsub/envelope.go`):
//!
//! - a body that is not a CloudEvent is wrapped: `id` (a UUID v4),
//!   `specversion` `1.0`, `source` (the app id), `type`
//!   `com.dapr.event.sent`, `datacontenttype` (the request's, `text/plain`
//!   when none), `topic`, `pubsubname`, `traceid` = `traceparent`,
//!   `tracestate` (present even when empty), `time` (RFC 3339, seconds),
//!   and the body as `data` (JSON for `application/json`, text otherwise)
//!   or `data_base64` (`application/octet-stream`,
//!   `application/cloudevents+protobuf`); `cloudevent.*` metadata
//!   overrides `id`, `source`, `type`, `subject`, `traceid`,
//!   `traceparent`, `tracestate`;
//! - a body sent as `application/cloudevents+json` is the envelope itself:
//!   its fields are kept, `topic` and `pubsubname` overwritten, `time`,
//!   trace fields, `source` (`Dapr`), `type` and `specversion` filled only
//!   when missing, and no `cloudevent.*` override applies;
//! - `ttlInSeconds` (or `ttl`) adds `expiration` (RFC 3339, UTC) when the
//!   broker has no TTL of its own.
//!
//! Values are kept as the JSON text the client sent (compacted, as Go's
//! re-encoding does), so big numbers in `data` keep every digit; keys are
//! written in sorted order, as Go writes a map.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::value::RawValue;

use super::Metadata;

/// The content type of a structured CloudEvent.
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The `type` of events Dapr publishes.
pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
/// The `source` of a passed-through CloudEvent that has none.
pub const DEFAULT_SOURCE: &str = "Dapr";
/// The `datacontenttype` of a body published without a content type.
pub const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";

/// Whether `content_type` is `expected`, ignoring case and parameters
/// (`application/json; charset=utf-8` is `application/json`; a `+json`
/// suffix is not).
pub fn is_content_type(content_type: &str, expected: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    let essence = lower.split_once(';').map_or(lower.as_str(), |(e, _)| e);
    essence == expected
}

/// `application/json`.
pub fn is_json(content_type: &str) -> bool {
    is_content_type(content_type, "application/json")
}

/// `application/cloudevents+json`.
pub fn is_cloudevent(content_type: &str) -> bool {
    is_content_type(content_type, CLOUDEVENT_CONTENT_TYPE)
}

/// `application/octet-stream`.
pub fn is_binary(content_type: &str) -> bool {
    is_content_type(content_type, "application/octet-stream")
}

/// `text/*` or `application/xml`: content carried as a string.
pub fn is_string(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().starts_with("text/")
        || is_content_type(content_type, "application/xml")
}

/// Why no envelope could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A body declared `application/cloudevents+json` is not a JSON object.
    #[error("the body is not a JSON object: {0}")]
    NotAnObject(String),
}

/// What daprd knows of a publish when it builds the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvelopeInput<'a> {
    /// The publishing app's id.
    pub source: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The pub/sub component's name.
    pub pubsub: &'a str,
    /// The request's content type (empty: none).
    pub content_type: &'a str,
    /// The body.
    pub data: &'a [u8],
    /// The W3C `traceparent` of the publish.
    pub traceparent: &'a str,
    /// The W3C `tracestate` of the publish.
    pub tracestate: &'a str,
}

/// A CloudEvent as a map of attribute → JSON text.
#[derive(Debug, Clone)]
pub struct CloudEvent(BTreeMap<String, Box<RawValue>>);

fn json_string(value: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a string is always JSON")
}

/// `text` without the whitespace between JSON tokens (the text must be
/// valid JSON): what Go's re-encoding of a decoded value writes.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The first JSON value of `data` (Go's `Decoder.Decode` reads one value
/// and ignores what follows), compacted; `None` when there is none.
fn first_json_value(data: &[u8]) -> Option<Box<RawValue>> {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<&RawValue>();
    let value = values.next()?.ok()?;
    RawValue::from_string(compact(value.get())).ok()
}

/// Now, RFC 3339 to the second, in UTC (Go writes the local offset; a
/// sidecar's clock is UTC in practice, and UTC is what `expiration` uses).
fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A `cloudevent.<name>` override of `metadata`, matched
/// case-insensitively (daprd decodes them with mapstructure's `WeakDecode`).
fn override_of<'m>(metadata: &'m Metadata, name: &str) -> Option<&'m str> {
    metadata
        .iter()
        .find(|(key, _)| {
            key.len() == "cloudevent.".len() + name.len()
                && key[..11].eq_ignore_ascii_case("cloudevent.")
                && key[11..].eq_ignore_ascii_case(name)
        })
        .map(|(_, value)| value.as_str())
}

impl CloudEvent {
    /// The envelope of a publish (see the module's rules); `metadata` is
    /// the request's (for `cloudevent.*` overrides).
    pub fn new(input: EnvelopeInput<'_>, metadata: &Metadata) -> Result<Self, EnvelopeError> {
        if is_cloudevent(input.content_type) {
            return Self::passthrough(input);
        }
        let pick = |name: &str, default: &str| -> String {
            override_of(metadata, name).unwrap_or(default).to_owned()
        };
        let mut id = pick("id", "");
        let mut source = pick("source", input.source);
        let mut kind = pick("type", "");
        let subject = pick("subject", "");
        let mut trace = pick("traceid", input.traceparent);
        let tracestate = pick("tracestate", input.tracestate);
        if let Some(parent) = override_of(metadata, "traceparent").filter(|p| !p.is_empty()) {
            trace = parent.to_owned();
        }
        if id.is_empty() {
            id = uuid::Uuid::new_v4().to_string();
        }
        if source.is_empty() {
            source = DEFAULT_SOURCE.to_owned();
        }
        if kind.is_empty() {
            kind = DEFAULT_TYPE.to_owned();
        }
        let content_type = match input.content_type {
            "" => DEFAULT_DATA_CONTENT_TYPE,
            given => given,
        };
        let text = || json_string(&String::from_utf8_lossy(input.data));
        let (data_field, data) = if is_json(content_type) {
            ("data", first_json_value(input.data).unwrap_or_else(text))
        } else if is_binary(content_type)
            || is_content_type(content_type, "application/cloudevents+protobuf")
        {
            let encoded = base64::engine::general_purpose::STANDARD.encode(input.data);
            ("data_base64", json_string(&encoded))
        } else {
            ("data", text())
        };
        let mut ce = BTreeMap::new();
        let mut put = |key: &str, value: Box<RawValue>| {
            ce.insert(key.to_owned(), value);
        };
        put("id", json_string(&id));
        put("specversion", json_string("1.0"));
        put("datacontenttype", json_string(content_type));
        put("source", json_string(&source));
        put("type", json_string(&kind));
        put("topic", json_string(input.topic));
        put("pubsubname", json_string(input.pubsub));
        put("traceid", json_string(&trace));
        put("traceparent", json_string(&trace));
        put("tracestate", json_string(&tracestate));
        put("time", json_string(&rfc3339(SystemTime::now())));
        put(data_field, data);
        if !subject.is_empty() {
            put("subject", json_string(&subject));
        }
        Ok(CloudEvent(ce))
    }

    /// `FromCloudEvent`: the client's own envelope, completed.
    fn passthrough(input: EnvelopeInput<'_>) -> Result<Self, EnvelopeError> {
        let mut ce: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(input.data)
            .map_err(|e| EnvelopeError::NotAnObject(e.to_string()))?;
        for value in ce.values_mut() {
            let compacted = compact(value.get());
            if compacted.len() != value.get().len() {
                *value = RawValue::from_string(compacted).expect("compacted JSON is JSON");
            }
        }
        ce.entry("time".into())
            .or_insert_with(|| json_string(&rfc3339(SystemTime::now())));
        if !ce.contains_key("traceid") {
            ce.insert("traceid".into(), json_string(input.traceparent));
            ce.insert("traceparent".into(), json_string(input.traceparent));
        }
        ce.entry("tracestate".into())
            .or_insert_with(|| json_string(input.tracestate));
        ce.insert("topic".into(), json_string(input.topic));
        ce.insert("pubsubname".into(), json_string(input.pubsub));
        // Go tests `m[key] == nil`: a JSON null counts as missing.
        for (key, default) in [
            ("source", DEFAULT_SOURCE),
            ("type", DEFAULT_TYPE),
            ("specversion", "1.0"),
        ] {
            if ce.get(key).is_none_or(|v| v.get() == "null") {
                ce.insert(key.into(), json_string(default));
            }
        }
        Ok(CloudEvent(ce))
    }

    /// Parses a CloudEvent (a JSON object), as a subscriber receives one.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        serde_json::from_slice(bytes)
            .map(CloudEvent)
            .map_err(|e| EnvelopeError::NotAnObject(e.to_string()))
    }

    /// `ApplyMetadata`: with a TTL in `metadata` (`ttl` or `ttlInSeconds`:
    /// seconds > 0, or a Go duration such as `10s`) and a broker without
    /// TTLs of its own, `expiration` is set to now + TTL. An unparsable TTL
    /// is ignored, as daprd ignores it.
    pub fn apply_ttl(&mut self, broker_has_ttl: bool, metadata: &Metadata) {
        if broker_has_ttl {
            return;
        }
        let Some(ttl) = ttl_of(metadata) else {
            return;
        };
        let at = SystemTime::now()
            .checked_add(ttl)
            // Past year 9999 nothing can be written; the far future will do.
            .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
        let at = at.min(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
        self.0
            .insert("expiration".into(), json_string(&rfc3339(at)));
    }

    /// `HasExpired`: an `expiration` that parses and is in the past.
    pub fn has_expired(&self, now: SystemTime) -> bool {
        self.str("expiration")
            .and_then(|e| humantime::parse_rfc3339_weak(&e).ok())
            .is_some_and(|at| at < now)
    }

    /// A string attribute (`None` when missing or not a string).
    pub fn str(&self, name: &str) -> Option<String> {
        serde_json::from_str::<String>(self.0.get(name)?.get()).ok()
    }

    /// Sets a string attribute, replacing any value it had.
    pub fn set_str(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), json_string(value));
    }

    /// An attribute's JSON text.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.get())
    }

    /// The attribute names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The envelope as JSON, keys sorted.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("raw JSON values always serialize")
    }
}

/// The TTL of `ttl` or `ttlInSeconds` (the first present, names
/// case-insensitive), as components-contrib's `TryGetTTL` reads it.
pub fn ttl_of(metadata: &Metadata) -> Option<Duration> {
    let value = ["ttl", "ttlInSeconds"].iter().find_map(|name| {
        metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    })?;
    if value.is_empty() {
        return None;
    }
    if let Some(duration) = go_duration(value) {
        return Some(duration);
    }
    match value.parse::<i64>() {
        Ok(seconds) if seconds > 0 => Some(Duration::from_secs(seconds.unsigned_abs())),
        _ => None,
    }
}

/// A Go `time.ParseDuration` string (`1h30m`, `1.5s`, `-2m`, `0`);
/// negative durations are zero, as `TryGetTTL` clamps them.
fn go_duration(text: &str) -> Option<Duration> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * nanos_per;
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(total.min(u64::MAX as f64) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn input<'a>(content_type: &'a str, data: &'a [u8]) -> EnvelopeInput<'a> {
        EnvelopeInput {
            source: "orders",
            topic: "new",
            pubsub: "pubsub",
            content_type,
            data,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate: "",
        }
    }

    fn json_of(ce: &CloudEvent) -> Value {
        serde_json::from_slice(&ce.to_json()).unwrap()
    }

    /// A JSON body is wrapped with every attribute daprd writes, the trace
    /// fields present even when empty, `time` to the second, big numbers
    /// kept digit for digit, and the JSON compacted.
    #[test]
    fn json_body_is_wrapped() {
        let body = br#"{ "n": 12345678901234567890123, "s": "a b" }"#;
        let ce = CloudEvent::new(
            input("application/json; charset=utf-8", body),
            &Metadata::new(),
        )
        .unwrap();
        let text = String::from_utf8(ce.to_json()).unwrap();
        assert!(
            text.contains(r#""data":{"n":12345678901234567890123,"s":"a b"}"#),
            "{text}"
        );
        let v = json_of(&ce);
        let id = v["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["source"], "orders");
        assert_eq!(v["type"], "com.dapr.event.sent");
        assert_eq!(v["datacontenttype"], "application/json; charset=utf-8");
        assert_eq!(
            (v["topic"].as_str(), v["pubsubname"].as_str()),
            (Some("new"), Some("pubsub"))
        );
        assert_eq!(v["traceid"], v["traceparent"]);
        assert_eq!(v["tracestate"], "");
        let time = v["time"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(time).is_ok() && time.len() == 20,
            "{time}"
        );
        assert!(v.get("subject").is_none() && v.get("expiration").is_none());
        let keys: Vec<&str> = ce.names().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    /// `data` vs `data_base64` by content type, as components-contrib
    /// decides: JSON (exact type, not `+json`) parsed, invalid JSON as a
    /// string, binary base64, everything else text; no type is
    /// `text/plain`.
    #[test]
    fn data_by_content_type() {
        let data = |ct: &str, body: &[u8]| {
            json_of(&CloudEvent::new(input(ct, body), &Metadata::new()).unwrap())
        };
        assert_eq!(data("application/json", b"[1,2]")["data"], json!([1, 2]));
        assert_eq!(data("application/json", b"not json")["data"], "not json");
        assert_eq!(data("application/json", b"")["data"], "");
        assert_eq!(data("application/problem+json", b"{}")["data"], "{}");
        let bin = data("application/octet-stream", &[0, 255, 1]);
        assert_eq!(bin["data_base64"], "AP8B");
        assert!(bin.get("data").is_none());
        assert_eq!(
            data("application/cloudevents+protobuf", b"x")["data_base64"],
            "eA=="
        );
        let plain = data("", b"hello");
        assert_eq!(
            (plain["data"].as_str(), plain["datacontenttype"].as_str()),
            (Some("hello"), Some("text/plain"))
        );
        assert_eq!(data("text/xml", b"<a/>")["data"], "<a/>");
        assert_eq!(
            data("application/json", b"{\"a\":1} trailing")["data"],
            json!({"a": 1})
        );
    }

    /// `cloudevent.*` metadata overrides id, source, type, subject and the
    /// trace fields (case-insensitively; `traceparent` over `traceid`), but
    /// never data, topic, pubsubname or datacontenttype; an empty source
    /// falls back to `Dapr`.
    #[test]
    fn cloudevent_overrides() {
        let metadata: Metadata = [
            ("cloudevent.id", "my-id"),
            ("CloudEvent.Type", "my.type"),
            ("cloudevent.subject", "s1"),
            ("cloudevent.traceid", "tid"),
            ("cloudevent.traceparent", "tp"),
            ("cloudevent.tracestate", "ts"),
            ("cloudevent.topic", "other"),
            ("cloudevent.pubsubname", "other"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = json_of(&CloudEvent::new(input("text/plain", b"x"), &metadata).unwrap());
        assert_eq!(v["id"], "my-id");
        assert_eq!(v["type"], "my.type");
        assert_eq!(v["subject"], "s1");
        assert_eq!(
            (v["traceid"].as_str(), v["traceparent"].as_str()),
            (Some("tp"), Some("tp"))
        );
        assert_eq!(v["tracestate"], "ts");
        assert_eq!(
            (v["topic"].as_str(), v["pubsubname"].as_str()),
            (Some("new"), Some("pubsub"))
        );
        assert_eq!(v["source"], "orders");
        let empty_source: Metadata = [("cloudevent.source".to_string(), String::new())].into();
        let v = json_of(&CloudEvent::new(input("text/plain", b"x"), &empty_source).unwrap());
        assert_eq!(v["source"], "Dapr");
    }

    /// A body sent as a CloudEvent is kept (its id, data, extensions),
    /// topic and pubsubname overwritten, missing attributes filled with
    /// daprd's defaults (`Dapr` as source, not the app id), existing trace
    /// fields kept, overrides ignored; a body that is no JSON object fails.
    #[test]
    fn cloudevents_pass_through() {
        let body = br#"{"id":"e1","data":{"big":98765432109876543210},"myext":"x","topic":"spoofed","traceid":"mine","time":"2020-01-01T00:00:00Z","source":null}"#;
        let overrides: Metadata = [("cloudevent.id".to_string(), "ignored".to_string())].into();
        let ce = CloudEvent::new(input("application/cloudevents+json", body), &overrides).unwrap();
        let text = String::from_utf8(ce.to_json()).unwrap();
        assert!(text.contains(r#""big":98765432109876543210"#), "{text}");
        let v = json_of(&ce);
        assert_eq!(v["id"], "e1");
        assert_eq!(v["myext"], "x");
        assert_eq!(
            (v["topic"].as_str(), v["pubsubname"].as_str()),
            (Some("new"), Some("pubsub"))
        );
        assert_eq!(v["source"], "Dapr");
        assert_eq!(v["type"], "com.dapr.event.sent");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["traceid"], "mine");
        assert!(
            v.get("traceparent").is_none(),
            "kept as the client sent it: {v}"
        );
        assert_eq!(v["tracestate"], "");
        assert_eq!(v["time"], "2020-01-01T00:00:00Z");

        let v = json_of(
            &CloudEvent::new(
                input("application/cloudevents+json", b"{}"),
                &Metadata::new(),
            )
            .unwrap(),
        );
        assert!(v.get("id").is_none(), "no id is made up: {v}");
        assert_eq!(v["traceid"], v["traceparent"]);
        for bad in [&b"[1]"[..], b"\"s\"", b"nope", b"null"] {
            let err = CloudEvent::new(input("application/cloudevents+json", bad), &Metadata::new());
            assert!(matches!(err, Err(EnvelopeError::NotAnObject(_))), "{bad:?}");
        }
    }

    /// `ttlInSeconds` / `ttl` set `expiration` unless the broker has TTLs;
    /// a bad TTL is ignored; an expired envelope reads as expired.
    #[test]
    fn ttl_sets_expiration() {
        let with = |k: &str, v: &str| -> Metadata { [(k.to_string(), v.to_string())].into() };
        let mut ce = CloudEvent::new(input("text/plain", b"x"), &Metadata::new()).unwrap();
        ce.apply_ttl(false, &with("ttlInSeconds", "60"));
        let at = humantime::parse_rfc3339(&ce.str("expiration").unwrap()).unwrap();
        let left = at.duration_since(SystemTime::now()).unwrap().as_secs();
        assert!((58..=60).contains(&left), "{left}");
        assert!(!ce.has_expired(SystemTime::now()));
        assert!(ce.has_expired(SystemTime::now() + Duration::from_secs(120)));

        let mut native = CloudEvent::new(input("text/plain", b"x"), &Metadata::new()).unwrap();
        native.apply_ttl(true, &with("ttlInSeconds", "60"));
        assert!(native.str("expiration").is_none());
        // `0` is a Go duration: it expires at once, as in daprd.
        let mut zero = CloudEvent::new(input("text/plain", b"x"), &Metadata::new()).unwrap();
        zero.apply_ttl(false, &with("ttlInSeconds", "0"));
        assert!(zero.str("expiration").is_some());
        for bad in ["-5", "soon", ""] {
            let mut ce = CloudEvent::new(input("text/plain", b"x"), &Metadata::new()).unwrap();
            ce.apply_ttl(false, &with("ttlInSeconds", bad));
            assert!(ce.str("expiration").is_none(), "{bad}");
        }
        assert_eq!(ttl_of(&with("TTL", "1m30s")), Some(Duration::from_secs(90)));
        assert_eq!(
            ttl_of(&with("ttl", "1.5s")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(ttl_of(&with("ttl", "-3s")), Some(Duration::ZERO));
        assert_eq!(
            ttl_of(&with("ttlInSeconds", "99999999999999")).map(|d| d.as_secs()),
            Some(99_999_999_999_999)
        );
        let mut huge = CloudEvent::new(input("text/plain", b"x"), &Metadata::new()).unwrap();
        huge.apply_ttl(false, &with("ttlInSeconds", "9223372036854775807"));
        assert_eq!(
            huge.str("expiration").as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
    }
}
