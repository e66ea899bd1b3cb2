//! The subscriptions of an app, as daprd collects them before delivering
//! events: declarative `Subscription` resources and the app's answer to
//! `GET /dapr/subscribe`, turned into one shape ([`AppSubscription`]) with
//! its routing rules compiled ([`Routing`]); and how the app's answer to a
//! delivered event reads ([`AppVerdict`]).
//!
//! Routing is daprd's (`pkg/runtime/pubsub/subscriptions.go`,
//! `findMatchingRoute`): the rules in order, each `match` a CEL expression
//! over the CloudEvent bound as `event`; then `default` as an unconditional
//! rule, or (only when `default` is empty) the v1 `route`. The first rule
//! that holds wins; none: the event is dropped. CEL is the `cel` crate (the
//! maintained successor of `cel-interpreter`), not a hand-written subset.
//! As in daprd, JSON numbers of the event are doubles, and a missing field
//! is an evaluation error (not `false`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::resources::Subscription as DeclaredSubscription;

/// One subscription of the app to one topic of one pub/sub.
#[derive(Debug, Clone)]
pub struct AppSubscription {
    /// The pub/sub component.
    pub pubsub_name: String,
    /// The topic.
    pub topic: String,
    /// Passed to the broker on subscribe (`rawPayload`, broker options).
    pub metadata: BTreeMap<String, String>,
    /// Where events go.
    pub routing: Routing,
    /// Where events the app dropped (or that cannot be delivered) go.
    pub dead_letter_topic: Option<String>,
    /// Where it came from: `declarative` (a resource) or `programmatic`.
    pub origin: &'static str,
    /// Delivered in batches (`bulkSubscribe.enabled`), when set.
    pub bulk: Option<BulkConfig>,
}

/// How a bulk subscription batches its events: a batch is delivered when
/// it holds `max_messages` events or its first event has waited
/// `max_await`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkConfig {
    /// `maxMessagesCount`.
    pub max_messages: usize,
    /// `maxAwaitDurationMs`.
    pub max_await: std::time::Duration,
}

impl BulkConfig {
    /// daprd's default `maxMessagesCount` (`default_bulksub.go`).
    pub const DEFAULT_MAX_MESSAGES: usize = 100;
    /// daprd's default `maxAwaitDurationMs`.
    pub const DEFAULT_MAX_AWAIT_MS: u64 = 1000;
    /// The largest batch taken, whatever the app asks: every entry is held
    /// in memory until the app answers.
    pub const MAX_MESSAGES: usize = 10_000;
    /// The longest wait taken, whatever the app asks.
    pub const MAX_AWAIT_MS: u64 = 60_000;

    /// The batching of `bulkSubscribe`, when `enabled`: a count or a wait
    /// that is absent or not positive is daprd's default, one past our
    /// bounds is the bound.
    pub fn of(enabled: bool, max_messages: Option<i64>, max_await_ms: Option<i64>) -> Option<Self> {
        if !enabled {
            return None;
        }
        let max_messages =
            max_messages
                .filter(|n| *n > 0)
                .map_or(Self::DEFAULT_MAX_MESSAGES, |n| {
                    usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(Self::MAX_MESSAGES)
                });
        let max_await_ms = max_await_ms
            .filter(|n| *n > 0)
            .map_or(Self::DEFAULT_MAX_AWAIT_MS, |n| {
                u64::try_from(n).unwrap_or(u64::MAX).min(Self::MAX_AWAIT_MS)
            });
        Some(Self {
            max_messages,
            max_await: std::time::Duration::from_millis(max_await_ms),
        })
    }
}

/// Why a subscription could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// A `match` expression is not CEL.
    #[error(
        "subscription to topic {topic} of pubsub {pubsub}: match `{expression}` does not compile: {message}"
    )]
    BadMatch {
        /// The pub/sub.
        pubsub: String,
        /// The topic.
        topic: String,
        /// The expression.
        expression: String,
        /// The compiler's message.
        message: String,
    },
    /// The app's `/dapr/subscribe` answer is not a JSON array of subscriptions.
    #[error("the app's /dapr/subscribe answer cannot be read: {0}")]
    BadAnswer(String),
}

/// A compiled rule.
#[derive(Clone)]
struct Rule {
    /// `None`: matches every event.
    program: Option<Arc<cel::Program>>,
    expression: String,
    path: String,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("match", &self.expression)
            .field("path", &self.path)
            .finish()
    }
}

/// The compiled routes of a subscription.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    rules: Vec<Rule>,
}

/// The routes of a subscription as written: rules, `default`, and the v1 `route`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteSpec {
    /// Tried in order.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// The path for events no rule matched.
    #[serde(default)]
    pub default: Option<String>,
}

/// One rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleSpec {
    /// A CEL expression; empty matches every event.
    #[serde(default, rename = "match")]
    pub matches: String,
    /// The app's path.
    #[serde(default)]
    pub path: String,
}

impl Routing {
    /// Compiles `routes`, with `route` (v1) used only when there is no
    /// `default`, as daprd does.
    pub fn compile(
        pubsub: &str,
        topic: &str,
        routes: &RouteSpec,
        route: Option<&str>,
    ) -> Result<Self, SubscriptionError> {
        let mut rules = Vec::with_capacity(routes.rules.len() + 1);
        for rule in &routes.rules {
            let program = if rule.matches.trim().is_empty() {
                None
            } else {
                let program = cel::Program::compile(&rule.matches).map_err(|e| {
                    SubscriptionError::BadMatch {
                        pubsub: pubsub.to_owned(),
                        topic: topic.to_owned(),
                        expression: rule.matches.clone(),
                        message: e.to_string(),
                    }
                })?;
                Some(Arc::new(program))
            };
            rules.push(Rule {
                program,
                expression: rule.matches.clone(),
                path: rule.path.clone(),
            });
        }
        let fallback = routes
            .default
            .as_deref()
            .filter(|d| !d.is_empty())
            .or(route.filter(|r| !r.is_empty()));
        if let Some(path) = fallback {
            rules.push(Rule {
                program: None,
                expression: String::new(),
                path: path.to_owned(),
            });
        }
        Ok(Self { rules })
    }

    /// Whether there is no rule at all (daprd drops such a subscription).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The path of the first rule `event` (the CloudEvent as JSON) matches;
    /// `Ok(None)`: none does. An expression that fails on this event (a
    /// missing field, a result that is no bool) is an error.
    pub fn route(&self, event: &serde_json::Value) -> Result<Option<&str>, String> {
        let mut context = None;
        for rule in &self.rules {
            let Some(program) = &rule.program else {
                return Ok(Some(&rule.path));
            };
            let context = context.get_or_insert_with(|| {
                let mut context = cel::Context::with_env(STDLIB.clone());
                context.add_variable_from_value("event", cel_value(event));
                context
            });
            match program.execute(context) {
                Ok(cel::Value::Bool(true)) => return Ok(Some(&rule.path)),
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => {
                    return Err(format!(
                        "match `{}` gave {other:?}, not a bool",
                        rule.expression
                    ));
                }
                Err(error) => return Err(format!("match `{}`: {error}", rule.expression)),
            }
        }
        Ok(None)
    }
}

/// CEL's standard environment, built once (building it registers every
/// standard function) and shared by every evaluation.
static STDLIB: std::sync::LazyLock<Arc<cel::Env>> =
    std::sync::LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// A JSON value as CEL sees it in daprd: numbers are doubles.
fn cel_value(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as J;
    match value {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => cel::Value::String(Arc::new(s.clone())),
        J::Array(items) => cel::Value::List(Arc::new(items.iter().map(cel_value).collect())),
        J::Object(fields) => {
            let map: HashMap<String, cel::Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), cel_value(v)))
                .collect();
            cel::Value::Map(map.into())
        }
    }
}

/// One entry of the app's `/dapr/subscribe` answer: both of daprd's shapes
/// (`route`, v1; `routes`, v2), fields may be mixed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgrammaticEntry {
    #[serde(default)]
    pubsubname: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    routes: Option<RouteSpec>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    bulk_subscribe: Option<ProgrammaticBulk>,
}

/// `bulkSubscribe` of a `/dapr/subscribe` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgrammaticBulk {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    max_messages_count: Option<i64>,
    #[serde(default)]
    max_await_duration_ms: Option<i64>,
}

/// The subscriptions of the app's `GET /dapr/subscribe` answer (an empty
/// body is none). Entries with no route at all are left out with a
/// warning, as daprd does; a `match` that does not compile fails the
/// whole answer, as in daprd.
pub fn parse_programmatic(body: &[u8]) -> Result<Vec<AppSubscription>, SubscriptionError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let entries: Vec<ProgrammaticEntry> =
        serde_json::from_slice(body).map_err(|e| SubscriptionError::BadAnswer(e.to_string()))?;
    let mut subscriptions = Vec::with_capacity(entries.len());
    for entry in entries {
        let routing = Routing::compile(
            &entry.pubsubname,
            &entry.topic,
            &entry.routes.unwrap_or_default(),
            entry.route.as_deref(),
        )?;
        if routing.is_empty() {
            tracing::warn!(
                pubsub = %entry.pubsubname,
                topic = %entry.topic,
                "the app's subscription has no route; it is left out"
            );
            continue;
        }
        subscriptions.push(AppSubscription {
            pubsub_name: entry.pubsubname,
            topic: entry.topic,
            metadata: entry.metadata.unwrap_or_default(),
            routing,
            dead_letter_topic: entry.dead_letter_topic.filter(|t| !t.is_empty()),
            origin: "programmatic",
            bulk: entry.bulk_subscribe.and_then(|b| {
                BulkConfig::of(b.enabled, b.max_messages_count, b.max_await_duration_ms)
            }),
        });
    }
    Ok(subscriptions)
}

impl AppSubscription {
    /// A declarative `Subscription` resource, compiled.
    pub fn declared(sub: &DeclaredSubscription) -> Result<Self, SubscriptionError> {
        let routes = RouteSpec {
            rules: sub
                .routes
                .rules
                .iter()
                .map(|r| RuleSpec {
                    matches: r.matches.clone(),
                    path: r.path.clone(),
                })
                .collect(),
            default: sub.routes.default.clone(),
        };
        Ok(Self {
            pubsub_name: sub.pubsub_name.clone(),
            topic: sub.topic.clone(),
            metadata: sub.metadata.clone(),
            routing: Routing::compile(&sub.pubsub_name, &sub.topic, &routes, None)?,
            dead_letter_topic: sub.dead_letter_topic.clone(),
            origin: "declarative",
            bulk: BulkConfig::of(
                sub.bulk_subscribe.enabled,
                sub.bulk_subscribe.max_messages_count.map(i64::from),
                sub.bulk_subscribe.max_await_duration_ms.map(i64::from),
            ),
        })
    }

    /// A subscription a gRPC app listed (`ListTopicSubscriptions`), with
    /// daprd's routing of gRPC apps (`parseRoutingRulesGRPC`): the rules,
    /// then `default`; with none at all, one rule to the empty path, so
    /// every event is delivered with `path` empty (the app routes by topic).
    /// The v1 `route` does not exist for gRPC apps.
    pub fn listed_by_grpc_app(
        pubsub_name: String,
        topic: String,
        metadata: BTreeMap<String, String>,
        routes: RouteSpec,
        dead_letter_topic: String,
        bulk: Option<BulkConfig>,
    ) -> Result<Self, SubscriptionError> {
        let mut routing = Routing::compile(&pubsub_name, &topic, &routes, None)?;
        if routing.is_empty() {
            routing.rules.push(Rule {
                program: None,
                expression: String::new(),
                path: String::new(),
            });
        }
        Ok(Self {
            pubsub_name,
            topic,
            metadata,
            routing,
            dead_letter_topic: Some(dead_letter_topic).filter(|t| !t.is_empty()),
            origin: "programmatic",
            bulk,
        })
    }
}

/// The subscriptions of `app_id`: the declarative ones in its scope, in
/// load order, then the programmatic ones, each replacing a declarative
/// one of the same pub/sub and topic (daprd's precedence); at most one per
/// (pub/sub, topic).
pub fn merge(
    app_id: &str,
    declared: &[DeclaredSubscription],
    programmatic: Vec<AppSubscription>,
) -> Vec<AppSubscription> {
    let mut merged: Vec<AppSubscription> = Vec::new();
    for sub in declared.iter().filter(|s| s.in_scope(app_id)) {
        match AppSubscription::declared(sub) {
            Ok(sub) => merged.push(sub),
            Err(error) => tracing::error!(
                file = %sub.source.display(),
                %error,
                "Subscription `{}` is not applied",
                sub.name
            ),
        }
    }
    for sub in programmatic {
        merged.retain(|m| !(m.pubsub_name == sub.pubsub_name && m.topic == sub.topic));
        merged.push(sub);
    }
    let mut seen = std::collections::HashSet::new();
    merged.retain(|m| seen.insert((m.pubsub_name.clone(), m.topic.clone())));
    merged
}

/// What the app's answer to a delivered event means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppVerdict {
    /// Taken: ack.
    Success,
    /// Not taken: deliver again.
    Retry(String),
    /// Refused for good: ack, to the dead-letter topic when there is one.
    Drop(String),
    /// The app has no handler for it (a gRPC app's `UNIMPLEMENTED`): acked,
    /// and not dead-lettered, as daprd does.
    Unhandled(String),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn routing(rules: &[(&str, &str)], default: Option<&str>, route: Option<&str>) -> Routing {
        let spec = RouteSpec {
            rules: rules
                .iter()
                .map(|(m, p)| RuleSpec {
                    matches: m.to_string(),
                    path: p.to_string(),
                })
                .collect(),
            default: default.map(str::to_owned),
        };
        Routing::compile("p", "t", &spec, route).unwrap()
    }

    /// First matching rule wins, then `default`; `route` counts only
    /// without `default`; numbers are doubles; a missing field is an error.
    #[test]
    fn rules_in_order_then_default() {
        let r = routing(
            &[
                (r#"event.type == "widget""#, "/widgets"),
                ("event.data.amount > 100.0", "/big"),
                (r#"event.data.name.startsWith("x")"#, "/x"),
            ],
            Some("/products"),
            Some("/ignored"),
        );
        let ev = |t: &str, data| json!({"type": t, "data": data});
        assert_eq!(r.route(&ev("widget", json!({}))).unwrap(), Some("/widgets"));
        assert_eq!(
            r.route(&ev("other", json!({"amount": 500}))).unwrap(),
            Some("/big")
        );
        assert_eq!(
            r.route(&ev("other", json!({"amount": 5, "name": "xy"})))
                .unwrap(),
            Some("/x")
        );
        assert_eq!(
            r.route(&ev("other", json!({"amount": 5, "name": "y"})))
                .unwrap(),
            Some("/products")
        );
        // `amount` missing: an error, not `false`.
        assert!(r.route(&ev("other", json!({}))).is_err());
        assert!(
            routing(&[("event.type", "/a")], None, None)
                .route(&ev("x", json!({})))
                .is_err(),
            "a non-bool result is an error"
        );
        let v1 = routing(&[], None, Some("/orders"));
        assert_eq!(v1.route(&json!({})).unwrap(), Some("/orders"));
        let none = routing(&[(r#"event.type == "a""#, "/a")], None, None);
        assert_eq!(none.route(&ev("b", json!({}))).unwrap(), None);
        assert!(routing(&[], None, None).is_empty());
        let has = routing(
            &[("has(event.data.x) && event.data.x in [1.0, 2.0]", "/h")],
            None,
            None,
        );
        assert_eq!(has.route(&ev("b", json!({"x": 2}))).unwrap(), Some("/h"));
        assert_eq!(has.route(&ev("b", json!({}))).unwrap(), None);
    }

    /// Both shapes of `/dapr/subscribe`; a route-less entry is left out; a
    /// bad `match` fails the answer; an empty body is no subscription.
    #[test]
    fn programmatic_shapes() {
        let subs = parse_programmatic(
            br#"[
              {"pubsubname":"pubsub","topic":"orders","route":"/orders",
               "metadata":{"rawPayload":"true"},"deadLetterTopic":"dlq"},
              {"pubsubname":"pubsub","topic":"inventory",
               "routes":{"rules":[{"match":"event.type == \"widget\"","path":"/widgets"}],"default":"/products"}},
              {"pubsubname":"pubsub","topic":"nowhere"}
            ]"#,
        )
        .unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].topic, "orders");
        assert_eq!(subs[0].metadata["rawPayload"], "true");
        assert_eq!(subs[0].dead_letter_topic.as_deref(), Some("dlq"));
        assert_eq!(subs[0].routing.route(&json!({})).unwrap(), Some("/orders"));
        assert_eq!(
            subs[1].routing.route(&json!({"type": "widget"})).unwrap(),
            Some("/widgets")
        );
        assert!(parse_programmatic(b"").unwrap().is_empty());
        assert!(matches!(
            parse_programmatic(br#"[{"pubsubname":"p","topic":"t","routes":{"rules":[{"match":"event.type ==","path":"/x"}]}}]"#),
            Err(SubscriptionError::BadMatch { .. })
        ));
        assert!(matches!(
            parse_programmatic(b"{}"),
            Err(SubscriptionError::BadAnswer(_))
        ));
    }

    /// Declarative ones in scope first; a programmatic one replaces a
    /// declarative one of the same topic.
    #[test]
    fn programmatic_replaces_declarative() {
        let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: a\n\
                    spec:\n  pubsubname: p\n  topic: t\n  route: /declared\n---\n\
                    apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: b\n\
                    spec:\n  pubsubname: p\n  topic: u\n  route: /u\nscopes: [other]\n---\n\
                    apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: c\n\
                    spec:\n  pubsubname: p\n  topic: v\n  route: /v\nscopes: [me]\n";
        let declared = crate::Resources::parse(yaml, std::path::Path::new("s.yaml"))
            .unwrap()
            .subscriptions;
        let merged = merge("me", &declared, Vec::new());
        let topics: Vec<&str> = merged.iter().map(|s| s.topic.as_str()).collect();
        assert_eq!(topics, ["t", "v"]);
        let programmatic =
            parse_programmatic(br#"[{"pubsubname":"p","topic":"t","route":"/mine"}]"#).unwrap();
        let merged = merge("me", &declared, programmatic);
        let routes: Vec<(&str, Option<&str>)> = merged
            .iter()
            .map(|s| (s.topic.as_str(), s.routing.route(&json!({})).unwrap()))
            .collect();
        assert_eq!(routes, [("v", Some("/v")), ("t", Some("/mine"))]);
    }

    /// `bulkSubscribe` of `/dapr/subscribe` and of a resource: off unless
    /// enabled; absent or non-positive values are daprd's defaults (100,
    /// 1 s); values past our bounds are the bounds.
    #[test]
    fn bulk_subscribe_settings() {
        let subs = parse_programmatic(
            br#"[{"pubsubname":"p","topic":"a","route":"/a",
                  "bulkSubscribe":{"enabled":true,"maxMessagesCount":5,"maxAwaitDurationMs":40}},
                 {"pubsubname":"p","topic":"b","route":"/b","bulkSubscribe":{"enabled":true}},
                 {"pubsubname":"p","topic":"c","route":"/c","bulkSubscribe":{"enabled":false,"maxMessagesCount":5}},
                 {"pubsubname":"p","topic":"d","route":"/d"},
                 {"pubsubname":"p","topic":"e","route":"/e",
                  "bulkSubscribe":{"enabled":true,"maxMessagesCount":-1,"maxAwaitDurationMs":99999999}}]"#,
        )
        .unwrap();
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            subs[0].bulk,
            Some(BulkConfig {
                max_messages: 5,
                max_await: ms(40)
            })
        );
        assert_eq!(
            subs[1].bulk,
            Some(BulkConfig {
                max_messages: 100,
                max_await: ms(1000)
            })
        );
        assert_eq!((subs[2].bulk, subs[3].bulk), (None, None));
        assert_eq!(
            subs[4].bulk,
            Some(BulkConfig {
                max_messages: 100,
                max_await: ms(60_000)
            })
        );
        let yaml = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: a\n\
                    spec:\n  pubsubname: p\n  topic: t\n  routes:\n    default: /t\n\
                    \x20 bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 7\n";
        let declared = crate::Resources::parse(yaml, std::path::Path::new("s.yaml"))
            .unwrap()
            .subscriptions;
        assert_eq!(
            merge("me", &declared, Vec::new())[0].bulk,
            Some(BulkConfig {
                max_messages: 7,
                max_await: ms(1000)
            })
        );
    }

    /// A gRPC app's subscription without routes gets daprd's empty path.
    #[test]
    fn grpc_subscription_without_routes_has_the_empty_path() {
        let sub = AppSubscription::listed_by_grpc_app(
            "p".into(),
            "t".into(),
            BTreeMap::new(),
            RouteSpec::default(),
            String::new(),
            None,
        )
        .unwrap();
        assert_eq!(sub.routing.route(&json!({})).unwrap(), Some(""));
        assert_eq!(sub.dead_letter_topic, None);
    }
}
