//! Dapr's declarative `Subscription` resource, in both of its versions:
//! `dapr.io/v1alpha1` (one `route`) and `dapr.io/v2alpha1` (`routes` with
//! rules). Like daprd, the loader turns both into one shape,
//! [`Subscription`], with a v1alpha1 `route` as the default route.
//!
//! ```yaml
//! apiVersion: dapr.io/v2alpha1
//! kind: Subscription
//! metadata:
//!   name: orders
//! spec:
//!   pubsubname: pubsub
//!   topic: orders
//!   routes:
//!     rules:
//!     - match: event.type == "order.created"
//!       path: /orders/created
//!     default: /orders
//!   deadLetterTopic: poison
//!   bulkSubscribe:
//!     enabled: true
//!     maxMessagesCount: 100
//!     maxAwaitDurationMs: 40
//! scopes: [checkout]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ResourceMeta, read_document};
use crate::component::{ComponentError, scalar_text};

/// A declarative subscription, whichever version declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `metadata.name`.
    pub name: String,
    /// The `apiVersion` it was declared with.
    pub version: SubscriptionVersion,
    /// `spec.pubsubname`: the pub/sub component.
    pub pubsub_name: String,
    /// `spec.topic`.
    pub topic: String,
    /// `spec.metadata`, passed to the broker on subscribe.
    pub metadata: BTreeMap<String, String>,
    /// Where events are delivered.
    pub routes: Routes,
    /// `spec.deadLetterTopic`: where undeliverable events go.
    pub dead_letter_topic: Option<String>,
    /// `spec.bulkSubscribe`.
    pub bulk_subscribe: BulkSubscribe,
    /// `scopes`: the app ids it applies to; empty means every app.
    pub scopes: Vec<String>,
    /// The file it came from (for messages).
    pub source: PathBuf,
}

/// The `apiVersion` of a [`Subscription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionVersion {
    /// `dapr.io/v1alpha1`: one `spec.route`.
    V1Alpha1,
    /// `dapr.io/v2alpha1`: `spec.routes` with rules.
    V2Alpha1,
}

/// Where a subscription's events go: the first rule whose `match` holds,
/// else `default`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Routes {
    /// Tried in order.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    /// The path for events no rule matched.
    #[serde(default)]
    pub default: Option<String>,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteRule {
    /// A CEL expression over the event (`event.type == "x"`); empty matches all.
    #[serde(default, rename = "match")]
    pub matches: String,
    /// The app's path for matching events.
    pub path: String,
}

/// `spec.bulkSubscribe`: deliver events to the app in batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkSubscribe {
    /// Whether events are delivered in batches.
    #[serde(default)]
    pub enabled: bool,
    /// The most events in one batch.
    #[serde(default)]
    pub max_messages_count: Option<u32>,
    /// The longest a batch waits to fill, in milliseconds.
    #[serde(default)]
    pub max_await_duration_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubscription {
    metadata: Option<ResourceMeta>,
    spec: Option<RawSpec>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    pubsubname: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_yaml::Value>,
    /// v1alpha1.
    route: Option<String>,
    /// v2alpha1.
    routes: Option<Routes>,
    dead_letter_topic: Option<String>,
    #[serde(default)]
    bulk_subscribe: BulkSubscribe,
}

impl Subscription {
    /// Reads one `kind: Subscription` document of `source` (its number
    /// `document`, from 1, for messages), declared with `api_version`.
    pub fn from_yaml(
        value: serde_yaml::Value,
        api_version: &str,
        source: &Path,
        document: usize,
    ) -> Result<Self, ComponentError> {
        let raw: RawSubscription = read_document(value, source, document)?;
        let name = raw.metadata.and_then(|m| m.name).unwrap_or_default();
        let err = |field: &str, message: String| ComponentError::Field {
            file: source.to_owned(),
            component: if name.is_empty() {
                "?".into()
            } else {
                format!("Subscription {name}")
            },
            field: field.into(),
            message,
        };
        let version = match api_version {
            "dapr.io/v1alpha1" => SubscriptionVersion::V1Alpha1,
            "dapr.io/v2alpha1" => SubscriptionVersion::V2Alpha1,
            other => {
                return Err(err(
                    "apiVersion",
                    format!("`{other}` is not dapr.io/v1alpha1 or dapr.io/v2alpha1"),
                ));
            }
        };
        if name.is_empty() {
            return Err(err("metadata.name", "is required".into()));
        }
        let spec = raw.spec.ok_or_else(|| err("spec", "is required".into()))?;
        let required = |value: Option<String>, field: &str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(field, "is required".into()))
        };
        let pubsub_name = required(spec.pubsubname, "spec.pubsubname")?;
        let topic = required(spec.topic, "spec.topic")?;
        let routes = match version {
            SubscriptionVersion::V1Alpha1 => Routes {
                rules: Vec::new(),
                default: Some(required(spec.route, "spec.route")?),
            },
            SubscriptionVersion::V2Alpha1 => {
                let routes = spec.routes.unwrap_or_default();
                if routes.rules.is_empty() && routes.default.as_deref().unwrap_or("").is_empty() {
                    return Err(err(
                        "spec.routes",
                        "needs a default or at least one rule".into(),
                    ));
                }
                routes
            }
        };
        let mut metadata = BTreeMap::new();
        for (key, value) in spec.metadata {
            let text = scalar_text(value).ok_or_else(|| {
                err(
                    &format!("spec.metadata.{key}"),
                    "must be a string, number or boolean".into(),
                )
            })?;
            metadata.insert(key, text);
        }
        Ok(Self {
            name,
            version,
            pubsub_name,
            topic,
            metadata,
            routes,
            dead_letter_topic: spec.dead_letter_topic.filter(|t| !t.is_empty()),
            bulk_subscribe: spec.bulk_subscribe,
            scopes: raw.scopes,
            source: source.to_owned(),
        })
    }

    /// Whether it applies to `app_id`.
    pub fn in_scope(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == app_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Subscription, ComponentError> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
        Subscription::from_yaml(value, &api_version, Path::new("subs.yaml"), 1)
    }

    /// A v1alpha1 `route` becomes the default route, as daprd converts it.
    #[test]
    fn v1alpha1_route_is_the_default() {
        let sub = read(
            "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: s\n\
             spec:\n  pubsubname: pubsub\n  topic: orders\n  route: /orders\n  metadata:\n    rawPayload: true\n\
             scopes: [checkout]\n",
        )
        .unwrap();
        assert_eq!(sub.version, SubscriptionVersion::V1Alpha1);
        assert_eq!(
            (sub.pubsub_name.as_str(), sub.topic.as_str()),
            ("pubsub", "orders")
        );
        assert_eq!(sub.routes.default.as_deref(), Some("/orders"));
        assert!(sub.routes.rules.is_empty());
        assert_eq!(
            sub.metadata.get("rawPayload").map(String::as_str),
            Some("true")
        );
        assert!(sub.in_scope("checkout") && !sub.in_scope("other"));
    }

    /// v2alpha1 rules, dead-letter topic and bulk settings are read.
    #[test]
    fn v2alpha1_rules() {
        let sub = read(
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\n\
             spec:\n  pubsubname: pubsub\n  topic: orders\n  routes:\n    rules:\n\
             \x20   - match: event.type == \"created\"\n      path: /created\n    default: /orders\n\
             \x20 deadLetterTopic: poison\n  bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 100\n",
        )
        .unwrap();
        assert_eq!(sub.version, SubscriptionVersion::V2Alpha1);
        assert_eq!(sub.routes.rules[0].matches, "event.type == \"created\"");
        assert_eq!(sub.routes.rules[0].path, "/created");
        assert_eq!(sub.routes.default.as_deref(), Some("/orders"));
        assert_eq!(sub.dead_letter_topic.as_deref(), Some("poison"));
        assert!(sub.bulk_subscribe.enabled);
        assert_eq!(sub.bulk_subscribe.max_messages_count, Some(100));
        assert!(sub.in_scope("anyone"));
    }

    /// Missing fields are named; an unknown version is refused.
    #[test]
    fn errors_name_the_field() {
        let head = "kind: Subscription\nmetadata:\n  name: s\n";
        for (text, expected) in [
            (
                format!("apiVersion: dapr.io/v1alpha1\n{head}spec:\n  topic: t\n  route: /r\n"),
                "Subscription s`: spec.pubsubname: is required",
            ),
            (
                format!("apiVersion: dapr.io/v1alpha1\n{head}spec:\n  pubsubname: p\n  topic: t\n"),
                "spec.route: is required",
            ),
            (
                format!("apiVersion: dapr.io/v2alpha1\n{head}spec:\n  pubsubname: p\n  topic: t\n"),
                "spec.routes: needs a default",
            ),
            (
                format!("apiVersion: dapr.io/v9\n{head}"),
                "apiVersion: `dapr.io/v9`",
            ),
        ] {
            let err = read(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected `{expected}` in `{err}`");
        }
    }
}
