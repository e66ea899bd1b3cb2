//! The resources loader and the component registry together, as a sidecar
//! uses them: folders of multi-document files loaded into [`Components`],
//! then looked up per app.

use std::path::PathBuf;
use std::sync::Arc;

use wasmdapr_runtime::components::LookupError;
use wasmdapr_runtime::resources::subscription::SubscriptionVersion;
use wasmdapr_runtime::state::{
    DeleteRequest, GetRequest, SetRequest, StateError, StateFeatures, StateStore, StateValue,
};
use wasmdapr_runtime::{AppId, ComponentRegistry, ComponentSpec, Components, Resources};

/// A store that keeps nothing: the tests are about loading, not state.
struct NullStore;

#[async_trait::async_trait]
impl StateStore for NullStore {
    fn features(&self) -> StateFeatures {
        StateFeatures::default()
    }
    async fn get(&self, _: GetRequest) -> Result<Option<StateValue>, StateError> {
        Ok(None)
    }
    async fn set(&self, _: SetRequest) -> Result<(), StateError> {
        Ok(())
    }
    async fn delete(&self, _: DeleteRequest) -> Result<(), StateError> {
        Ok(())
    }
}

/// A fresh directory under the system's temporary directory holding `files`.
fn folder(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wasmdapr-resources-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn registry() -> ComponentRegistry {
    let mut registry = ComponentRegistry::new();
    registry.register::<dyn StateStore, _, _>("state.null", |_| async {
        Ok(Arc::new(NullStore) as Arc<dyn StateStore>)
    });
    registry
        .register::<dyn StateStore, _, _>("state.unreachable", |spec: ComponentSpec| async move {
            Err(spec.init_error("connection refused"))
        });
    registry
}

const FIRST: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.null
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: private
spec:
  type: state.null
  version: v1
scopes: [billing]
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: external
spec:
  baseUrl: https://example.com
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: old-style
spec:
  pubsubname: pubsub
  topic: orders
  route: /orders
";

const SECOND: &str = "\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: new-style
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - match: event.type == \"created\"
      path: /created
    default: /orders
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: optional
spec:
  type: state.unreachable
  ignoreErrors: true
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: typo
spec:
  type: state.nosuch
  ignoreErrors: true
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: resilient
spec:
  policies:
    timeouts:
      general: 5s
";

/// Two files of several documents each: components (one without a
/// version, read as v1), both Subscription versions, a Resiliency; an
/// unknown kind is skipped; components that cannot be built but say
/// `ignoreErrors` are skipped; the rest load and are looked up by scope.
#[tokio::test]
async fn a_folder_of_every_kind_loads() {
    let dir = folder(
        "every-kind",
        &[("a.yaml", FIRST), ("b.yml", SECOND), ("notes.txt", "x")],
    );
    let resources = Resources::load_dirs(std::slice::from_ref(&dir)).unwrap();
    let names: Vec<&str> = resources
        .components
        .iter()
        .map(|c| c.spec.name.as_str())
        .collect();
    assert_eq!(names, ["statestore", "private", "optional", "typo"]);
    assert_eq!(resources.components[0].spec.version, "v1");
    let versions: Vec<(&str, SubscriptionVersion)> = resources
        .subscriptions
        .iter()
        .map(|s| (s.name.as_str(), s.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("old-style", SubscriptionVersion::V1Alpha1),
            ("new-style", SubscriptionVersion::V2Alpha1)
        ]
    );
    assert_eq!(
        resources.subscriptions[0].routes.default.as_deref(),
        Some("/orders")
    );
    assert_eq!(resources.subscriptions[1].routes.rules[0].path, "/created");
    assert_eq!(resources.resiliencies[0].name, "resilient");

    let components = Components::load_declared(resources.components, &registry())
        .await
        .unwrap();
    let loaded: Vec<&str> = components.specs().map(|s| s.name.as_str()).collect();
    assert_eq!(loaded, ["private", "statestore"]);

    let orders = AppId::new("orders").unwrap();
    let billing = AppId::new("billing").unwrap();
    assert!(
        components
            .scoped::<dyn StateStore>("statestore", &orders)
            .is_ok()
    );
    assert_eq!(
        components
            .scoped::<dyn StateStore>("private", &orders)
            .err(),
        Some(LookupError::NotFound)
    );
    assert!(
        components
            .scoped::<dyn StateStore>("private", &billing)
            .is_ok()
    );
    assert_eq!(
        components
            .scoped::<dyn StateStore>("optional", &orders)
            .err(),
        Some(LookupError::NotFound)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Without `ignoreErrors`, a component that cannot be built fails the load,
/// naming it; a component name declared in two files is refused.
#[tokio::test]
async fn errors_still_stop_the_load() {
    let strict = SECOND.replace("  ignoreErrors: true\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: typo", "---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: typo");
    let dir = folder("strict", &[("b.yaml", &strict)]);
    let resources = Resources::load_dirs(std::slice::from_ref(&dir)).unwrap();
    let err = Components::load_declared(resources.components, &registry())
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("component `optional` (state.unreachable): connection refused"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);

    let dir = folder("twice", &[("a.yaml", FIRST), ("c.yaml", FIRST)]);
    let err = Resources::load_dirs(std::slice::from_ref(&dir)).unwrap_err();
    assert!(
        err.to_string().contains("already declared in") && err.to_string().contains("a.yaml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// With no state store at all, the lookup says "not configured", which
/// the state block maps to `ERR_STATE_STORE_NOT_CONFIGURED`.
#[tokio::test]
async fn no_component_of_a_kind_is_not_configured() {
    let components = Components::load(Vec::new(), &registry()).await.unwrap();
    let app = AppId::new("orders").unwrap();
    assert_eq!(
        components
            .scoped::<dyn StateStore>("statestore", &app)
            .err(),
        Some(LookupError::NotConfigured)
    );
}
