//! Dapr's `Resiliency` resource: named policies (timeouts, retries, circuit
//! breakers) and the targets (apps, actors, components) they apply to. Read
//! here so a resources folder holding one loads; applying the policies is
//! the resiliency issue's work, and until then the loader reports each one
//! as not applied. Durations stay as written (`5s`, `1m30s`): the
//! resiliency block parses them, with its own errors.
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Resiliency
//! metadata:
//!   name: myresiliency
//! spec:
//!   policies:
//!     timeouts:
//!       general: 5s
//!     retries:
//!       important:
//!         policy: constant
//!         duration: 5s
//!         maxRetries: 30
//!     circuitBreakers:
//!       simpleCB:
//!         maxRequests: 1
//!         timeout: 30s
//!         trip: consecutiveFailures >= 5
//!   targets:
//!     apps:
//!       appB: { timeout: general, retry: important, circuitBreaker: simpleCB }
//!     components:
//!       statestore:
//!         outbound: { retry: important }
//! scopes: [checkout]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ResourceMeta, read_document};
use crate::component::ComponentError;

/// A Resiliency resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resiliency {
    /// `metadata.name`.
    pub name: String,
    /// `spec.policies`.
    pub policies: Policies,
    /// `spec.targets`.
    pub targets: Targets,
    /// `scopes`: the app ids it applies to; empty means every app.
    pub scopes: Vec<String>,
    /// The file it came from (for messages).
    pub source: PathBuf,
}

/// The named policies of a Resiliency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Timeout name → duration (`5s`).
    #[serde(default)]
    pub timeouts: BTreeMap<String, String>,
    /// Retry name → policy.
    #[serde(default)]
    pub retries: BTreeMap<String, RetryPolicy>,
    /// Circuit breaker name → policy.
    #[serde(default)]
    pub circuit_breakers: BTreeMap<String, CircuitBreakerPolicy>,
}

/// A retry policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// `constant` or `exponential`.
    #[serde(default)]
    pub policy: Option<String>,
    /// The wait between attempts (constant).
    #[serde(default)]
    pub duration: Option<String>,
    /// The longest wait between attempts (exponential).
    #[serde(default)]
    pub max_interval: Option<String>,
    /// The most retries; `-1` retries forever.
    #[serde(default)]
    pub max_retries: Option<i64>,
    /// Which failures are retried.
    #[serde(default)]
    pub matching: Option<RetryMatching>,
}

/// `matching` of a retry policy: status code ranges as text (`429,500-599`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RetryMatching {
    /// HTTP status codes retried.
    #[serde(default, rename = "httpStatusCodes")]
    pub http_status_codes: Option<String>,
    /// gRPC status codes retried.
    #[serde(default, rename = "gRPCStatusCodes")]
    pub grpc_status_codes: Option<String>,
}

/// A circuit breaker policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerPolicy {
    /// Requests let through while half-open.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// The period after which counts are cleared while closed.
    #[serde(default)]
    pub interval: Option<String>,
    /// How long it stays open.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The condition that opens it (`consecutiveFailures > 5`).
    #[serde(default)]
    pub trip: Option<String>,
}

/// What the policies apply to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// App id → policies for calls to it.
    #[serde(default)]
    pub apps: BTreeMap<String, TargetPolicies>,
    /// Actor type → policies.
    #[serde(default)]
    pub actors: BTreeMap<String, TargetPolicies>,
    /// Component name → policies, by direction.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentTargets>,
}

/// The policy names applied to one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPolicies {
    /// A name of `policies.timeouts`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// A name of `policies.retries`.
    #[serde(default)]
    pub retry: Option<String>,
    /// A name of `policies.circuitBreakers`.
    #[serde(default)]
    pub circuit_breaker: Option<String>,
    /// Actors: `id`, `type` or `both`.
    #[serde(default)]
    pub circuit_breaker_scope: Option<String>,
    /// How many per-id circuit breakers are kept.
    #[serde(default)]
    pub circuit_breaker_cache_size: Option<u32>,
}

/// The policies of a component target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ComponentTargets {
    /// Calls from the runtime to the component.
    #[serde(default)]
    pub outbound: Option<TargetPolicies>,
    /// Deliveries from the component to the app (pub/sub, bindings).
    #[serde(default)]
    pub inbound: Option<TargetPolicies>,
}

#[derive(Deserialize)]
struct RawResiliency {
    metadata: Option<ResourceMeta>,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    #[serde(default)]
    policies: Policies,
    #[serde(default)]
    targets: Targets,
}

impl Resiliency {
    /// Reads one `kind: Resiliency` document of `source` (its number
    /// `document`, from 1, for messages).
    pub fn from_yaml(
        value: serde_yaml::Value,
        source: &Path,
        document: usize,
    ) -> Result<Self, ComponentError> {
        let raw: RawResiliency = read_document(value, source, document)?;
        let name = raw
            .metadata
            .and_then(|m| m.name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ComponentError::Field {
                file: source.to_owned(),
                component: "?".into(),
                field: "metadata.name".into(),
                message: "is required".into(),
            })?;
        Ok(Self {
            name,
            policies: raw.spec.policies,
            targets: raw.spec.targets,
            scopes: raw.scopes,
            source: source.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dapr's documented example reads into policies and targets.
    #[test]
    fn reads_policies_and_targets() {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nscopes: [a]\n\
            spec:\n  policies:\n    timeouts:\n      general: 5s\n    retries:\n      important:\n\
            \x20       policy: constant\n        duration: 5s\n        maxRetries: -1\n\
            \x20       matching:\n          httpStatusCodes: 429,500-599\n          gRPCStatusCodes: 1-4\n\
            \x20   circuitBreakers:\n      cb:\n        maxRequests: 1\n        timeout: 30s\n        trip: consecutiveFailures >= 5\n\
            \x20 targets:\n    apps:\n      appB:\n        timeout: general\n        retry: important\n        circuitBreaker: cb\n\
            \x20   components:\n      statestore:\n        outbound:\n          retry: important\n";
        let value = serde_yaml::from_str(text).unwrap();
        let r = Resiliency::from_yaml(value, Path::new("r.yaml"), 1).unwrap();
        assert_eq!(r.name, "r");
        assert_eq!(r.scopes, ["a"]);
        assert_eq!(r.policies.timeouts["general"], "5s");
        let retry = &r.policies.retries["important"];
        assert_eq!(retry.max_retries, Some(-1));
        assert_eq!(
            retry
                .matching
                .as_ref()
                .unwrap()
                .grpc_status_codes
                .as_deref(),
            Some("1-4")
        );
        assert_eq!(r.policies.circuit_breakers["cb"].max_requests, Some(1));
        assert_eq!(
            r.targets.apps["appB"].circuit_breaker.as_deref(),
            Some("cb")
        );
        let outbound = r.targets.components["statestore"]
            .outbound
            .as_ref()
            .unwrap();
        assert_eq!(outbound.retry.as_deref(), Some("important"));
    }

    /// A Resiliency needs a name; a wrongly typed field names the document.
    #[test]
    fn errors() {
        let value = serde_yaml::from_str("kind: Resiliency\nspec: {}\n").unwrap();
        let err = Resiliency::from_yaml(value, Path::new("r.yaml"), 2).unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let value = serde_yaml::from_str(
            "kind: Resiliency\nmetadata:\n  name: r\nspec:\n  policies:\n    retries:\n      x:\n        maxRetries: lots\n",
        )
        .unwrap();
        let err = Resiliency::from_yaml(value, Path::new("r.yaml"), 2).unwrap_err();
        assert!(err.to_string().contains("r.yaml: document 2"), "{err}");
    }
}
