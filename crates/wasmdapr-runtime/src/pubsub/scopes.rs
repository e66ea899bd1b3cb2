//! [`TopicScopes`]: which apps may publish and subscribe to which topics of
//! a pub/sub component, from its metadata, as daprd reads it
//! (`pkg/scopes/scopes.go`, `IsOperationAllowed` of
//! `pkg/runtime/pubsub/adapter.go`):
//!
//! - `publishingScopes: "app1=topic1,topic2;app2=topic3;app3="`: per-app
//!   allow lists (`app3=`: no topic at all);
//! - `subscriptionScopes`: the same, for subscribing;
//! - `allowedTopics: "t1,t2"`: the only topics anybody may use;
//! - `protectedTopics: "t1"`: topics only apps whose scope lists them may use.
//!
//! Names are matched case-insensitively and spaces are stripped, as daprd
//! does. daprd reads the lists of its one app at load; a wasmdapr process
//! may host several apps over one component, so the lists of every app are
//! kept and the caller's app id picks its own.

use std::collections::HashMap;

use crate::component::ComponentSpec;

/// The topic scopes of one pub/sub component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicScopes {
    publishing: HashMap<String, Vec<String>>,
    subscription: HashMap<String, Vec<String>>,
    allowed: Vec<String>,
    protected: Vec<String>,
}

/// The value of metadata `name`, matched case-insensitively, spaces removed.
fn param(spec: &ComponentSpec, name: &str) -> Option<String> {
    spec.metadata
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.replace(' ', ""))
        .filter(|value| !value.is_empty())
}

/// `t1,t2` without duplicates, in order.
fn topics(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for topic in list.split(',') {
        if !out.iter().any(|t| t == topic) {
            out.push(topic.to_owned());
        }
    }
    out
}

/// `app1=t1,t2;app2=t3` as app → topics; entries without `=` are ignored.
fn per_app(list: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for entry in list.split(';') {
        let Some((app, list)) = entry.split_once('=') else {
            continue;
        };
        let known = out.entry(app.to_owned()).or_default();
        for topic in topics(list) {
            if !known.contains(&topic) {
                known.push(topic);
            }
        }
    }
    out
}

impl TopicScopes {
    /// Reads the four scope settings of `spec`.
    pub fn from_spec(spec: &ComponentSpec) -> Self {
        let of = |name| param(spec, name);
        TopicScopes {
            publishing: of("publishingScopes")
                .map(|l| per_app(&l))
                .unwrap_or_default(),
            subscription: of("subscriptionScopes")
                .map(|l| per_app(&l))
                .unwrap_or_default(),
            allowed: of("allowedTopics").map(|l| topics(&l)).unwrap_or_default(),
            protected: of("protectedTopics")
                .map(|l| topics(&l))
                .unwrap_or_default(),
        }
    }

    /// Whether `app` may publish to `topic`.
    pub fn may_publish(&self, app: &str, topic: &str) -> bool {
        self.allows(self.publishing.get(app), topic)
    }

    /// Whether `app` may subscribe to `topic`.
    pub fn may_subscribe(&self, app: &str, topic: &str) -> bool {
        self.allows(self.subscription.get(app), topic)
    }

    fn allows(&self, scoped: Option<&Vec<String>>, topic: &str) -> bool {
        let has = |list: &[String]| list.iter().any(|t| t == topic);
        if !self.allowed.is_empty() && !has(&self.allowed) {
            return false;
        }
        let scoped = scoped.map_or(&[][..], Vec::as_slice);
        if !has(&self.protected) && scoped.is_empty() {
            return true;
        }
        has(scoped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(metadata: &[(&str, &str)]) -> TopicScopes {
        let spec = ComponentSpec {
            name: "pubsub".into(),
            kind: "pubsub.in-memory".into(),
            version: "v1".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scopes: Vec::new(),
            source: "test.yaml".into(),
        };
        TopicScopes::from_spec(&spec)
    }

    /// The examples of Dapr's scoping docs: per-app lists, `app=` meaning no
    /// topic, apps not named being unrestricted, names case-insensitive
    /// and spaces ignored.
    #[test]
    fn publishing_scopes() {
        let s = scopes(&[("PublishingScopes", "app1=topic1; app2=topic2,topic3;app3=")]);
        assert!(s.may_publish("app1", "topic1"));
        assert!(!s.may_publish("app1", "topic2"));
        assert!(s.may_publish("app2", "topic3"));
        assert!(!s.may_publish("app3", "topic1"));
        assert!(s.may_publish("other", "anything"));
        // Subscribing is scoped separately.
        assert!(s.may_subscribe("app3", "topic1"));
    }

    /// `allowedTopics` restricts everyone; `protectedTopics` needs an
    /// explicit scope entry.
    #[test]
    fn allowed_and_protected_topics() {
        let s = scopes(&[
            ("allowedTopics", "a,b,secret"),
            ("protectedTopics", "secret"),
            ("subscriptionScopes", "reader=secret"),
            ("publishingScopes", "writer=secret,a"),
        ]);
        assert!(!s.may_publish("anyone", "c"));
        assert!(s.may_publish("anyone", "a"));
        assert!(!s.may_publish("anyone", "secret"));
        assert!(s.may_publish("writer", "secret"));
        assert!(
            !s.may_publish("writer", "b"),
            "a scoped app is limited to its list"
        );
        assert!(s.may_subscribe("reader", "secret"));
        assert!(!s.may_subscribe("writer", "secret"));
        assert!(scopes(&[]).may_publish("x", "y"));
    }
}
