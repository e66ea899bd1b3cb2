//! [`Components`]: the components of a process, of every kind, built once
//! from the resources and shared by every app's [`Runtime`](crate::Runtime);
//! and [`Components::scoped`], the lookup every building block starts with
//! (a name and the caller's app id, honouring `scopes`), whose
//! [`LookupError`] each block maps to its own `ERR_*_NOT_FOUND`.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::app_id::AppId;
use crate::component::{ComponentDeclaration, ComponentError, ComponentSpec};
use crate::pubsub::{PubSub, TopicScopes};
use crate::registry::{ComponentRegistry, Kind};
use crate::state::StateStore;

/// Separator between the prefix and the key, as Dapr stores keys.
pub const KEY_SEPARATOR: &str = "||";

/// How a state store's keys are prefixed (`keyPrefix` metadata): the
/// [`Kind::Settings`] of state stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `<app-id>||key` (the default): apps sharing a store do not collide.
    AppId,
    /// `<store name>||key`: apps sharing a store share keys.
    Name,
    /// `key` as given.
    None,
    /// `<custom>||key`.
    Custom(String),
}

impl KeyPrefix {
    /// The prefix a spec's `keyPrefix` asks for; a custom prefix may not
    /// contain the separator, or it could forge another app's keys.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        Ok(match spec.metadata("keyPrefix") {
            None | Some("appid") => KeyPrefix::AppId,
            Some("name") => KeyPrefix::Name,
            Some("none") => KeyPrefix::None,
            Some(custom) if custom.contains(KEY_SEPARATOR) => {
                return Err(spec.field_error(
                    "spec.metadata.keyPrefix",
                    format!("`{custom}` cannot contain `{KEY_SEPARATOR}`"),
                ));
            }
            Some(custom) => KeyPrefix::Custom(custom.to_owned()),
        })
    }

    /// The part before the key, separator included (empty for `none`).
    pub fn head(&self, app: &AppId, store: &str) -> String {
        match self {
            KeyPrefix::AppId => format!("{app}{KEY_SEPARATOR}"),
            KeyPrefix::Name => format!("{store}{KEY_SEPARATOR}"),
            KeyPrefix::None => String::new(),
            KeyPrefix::Custom(c) => format!("{c}{KEY_SEPARATOR}"),
        }
    }
}

/// A loaded component of kind `K`.
pub struct Loaded<K: Kind + ?Sized> {
    /// Its declaration.
    pub spec: ComponentSpec,
    /// The backend.
    pub component: Arc<K>,
    /// What the runtime read from the spec for this kind.
    pub settings: K::Settings,
}

/// A loaded state store.
pub type LoadedStateStore = Loaded<dyn StateStore>;

impl LoadedStateStore {
    /// How this store's keys are prefixed.
    pub fn prefix(&self) -> &KeyPrefix {
        &self.settings
    }
}

/// A loaded pub/sub component.
pub type LoadedPubSub = Loaded<dyn PubSub>;

impl LoadedPubSub {
    /// Who may publish and subscribe to which topics.
    pub fn scopes(&self) -> &TopicScopes {
        &self.settings
    }

    /// The consumer group of `app`'s subscriptions: the component's
    /// `consumerID` when it sets one, else the app id (daprd injects the
    /// app id as `consumerID` when it is absent or blank), so replicas of
    /// an app share a topic's messages and other apps get their own copy.
    pub fn consumer_group(&self, app: &AppId) -> String {
        self.spec
            .metadata("consumerID")
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map_or_else(|| app.as_str().to_owned(), str::to_owned)
    }
}

/// A [`Loaded`] of any kind, as [`Components`] keeps them.
pub(crate) trait AnyLoaded: Send + Sync + 'static {
    fn spec(&self) -> &ComponentSpec;
    fn kind(&self) -> TypeId;
    fn as_any(&self) -> &dyn Any;
}

impl<K: Kind + ?Sized + 'static> AnyLoaded for Loaded<K> {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }
    fn kind(&self) -> TypeId {
        TypeId::of::<K>()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why a [`Components::scoped`] lookup found nothing; each building block
/// turns it into its own error (`ERR_STATE_STORE_NOT_CONFIGURED`,
/// `ERR_STATE_STORE_NOT_FOUND`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No component of the kind is loaded at all.
    #[error("no component of this kind is configured")]
    NotConfigured,
    /// None of that name, or it is not in the caller's scopes (the two are
    /// not told apart, so an app cannot probe for another's components).
    #[error("component not found")]
    NotFound,
}

/// The components of a process, loaded once and shared by every app's
/// [`Runtime`](crate::Runtime): by kind, then by name.
#[derive(Default)]
pub struct Components {
    by_kind: HashMap<TypeId, BTreeMap<String, Box<dyn AnyLoaded>>>,
}

impl Components {
    /// Builds every component of `specs` (declared in code, so none
    /// ignores errors): the first failure aborts the whole load.
    pub async fn load(
        specs: Vec<ComponentSpec>,
        registry: &ComponentRegistry,
    ) -> Result<Self, ComponentError> {
        Self::load_declared(specs.into_iter().map(Into::into).collect(), registry).await
    }

    /// Builds every declared component, in order (the resources loader puts
    /// secret stores first, so the others can refer to them). A component
    /// that cannot be built fails the whole load, so a process never runs
    /// half-configured, unless it says `spec.ignoreErrors: true`: then it is
    /// skipped with a warning, as daprd does.
    pub async fn load_declared(
        declarations: Vec<ComponentDeclaration>,
        registry: &ComponentRegistry,
    ) -> Result<Self, ComponentError> {
        let mut components = Self::default();
        for declaration in declarations {
            let ComponentDeclaration {
                spec,
                ignore_errors,
                ..
            } = declaration;
            let (name, kind) = (spec.name.clone(), spec.kind.clone());
            let built = match registry.loader(&spec) {
                Ok(load) => load(spec).await,
                Err(error) => Err(error),
            };
            match built {
                Ok(loaded) => {
                    tracing::info!(%name, %kind, "component ready");
                    components
                        .by_kind
                        .entry(loaded.kind())
                        .or_default()
                        .insert(name, loaded);
                }
                Err(error) if ignore_errors => {
                    tracing::warn!(%name, %kind, %error, "component skipped (spec.ignoreErrors)");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(components)
    }

    /// The component `name` of kind `K` if `app` may use it (its `scopes`
    /// are empty or name `app`).
    pub fn scoped<K: Kind + ?Sized + 'static>(
        &self,
        name: &str,
        app: &AppId,
    ) -> Result<&Loaded<K>, LookupError> {
        let of_kind = self
            .by_kind
            .get(&TypeId::of::<K>())
            .filter(|named| !named.is_empty())
            .ok_or(LookupError::NotConfigured)?;
        of_kind
            .get(name)
            .and_then(|loaded| loaded.as_any().downcast_ref::<Loaded<K>>())
            .filter(|loaded| loaded.spec.in_scope(app.as_str()))
            .ok_or(LookupError::NotFound)
    }

    /// Every loaded component of kind `K`, by name, whatever its scopes.
    pub fn of_kind<K: Kind + ?Sized + 'static>(&self) -> impl Iterator<Item = &Loaded<K>> {
        self.by_kind
            .get(&TypeId::of::<K>())
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|loaded| loaded.as_any().downcast_ref::<Loaded<K>>())
    }

    /// The declarations of every loaded component, of every kind (for the
    /// metadata API), in kind then name order.
    pub fn specs(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.by_kind
            .values()
            .flat_map(BTreeMap::values)
            .map(|loaded| loaded.spec())
    }

    /// The pub/sub components, by name.
    pub fn pubsubs(&self) -> impl Iterator<Item = &LoadedPubSub> {
        self.of_kind::<dyn PubSub>()
    }

    /// The state stores, by name.
    pub fn state_stores(&self) -> impl Iterator<Item = &LoadedStateStore> {
        self.of_kind::<dyn StateStore>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        DeleteRequest, GetRequest, SetRequest, StateError, StateFeatures, StateValue,
    };

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

    fn spec(name: &str, kind: &str, scopes: &[&str]) -> ComponentSpec {
        ComponentSpec {
            name: name.into(),
            kind: kind.into(),
            version: "v1".into(),
            metadata: Default::default(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            source: "test.yaml".into(),
        }
    }

    fn registry() -> ComponentRegistry {
        let mut registry = ComponentRegistry::new();
        registry.register_state("state.null", |_| async {
            Ok(Arc::new(NullStore) as Arc<dyn StateStore>)
        });
        registry.register_state("state.broken", |spec: ComponentSpec| async move {
            Err(spec.init_error("no server"))
        });
        registry
    }

    fn app(id: &str) -> AppId {
        AppId::new(id).unwrap()
    }

    /// The scoped lookup: not configured, not found, out of scope, found.
    #[tokio::test]
    async fn scoped_lookup() {
        let none = Components::default();
        assert_eq!(
            none.scoped::<dyn StateStore>("a", &app("x")).err(),
            Some(LookupError::NotConfigured)
        );
        let components = Components::load(
            vec![
                spec("a", "state.null", &[]),
                spec("b", "state.null", &["billing"]),
            ],
            &registry(),
        )
        .await
        .unwrap();
        let found = components.scoped::<dyn StateStore>("a", &app("x")).unwrap();
        assert_eq!(found.spec.name, "a");
        assert_eq!(found.prefix(), &KeyPrefix::AppId);
        assert_eq!(
            components
                .scoped::<dyn StateStore>("nosuch", &app("x"))
                .err(),
            Some(LookupError::NotFound)
        );
        assert_eq!(
            components.scoped::<dyn StateStore>("b", &app("x")).err(),
            Some(LookupError::NotFound)
        );
        assert!(
            components
                .scoped::<dyn StateStore>("b", &app("billing"))
                .is_ok()
        );
        assert_eq!(components.state_stores().count(), 2);
        assert_eq!(components.specs().count(), 2);
    }

    /// A component that cannot be built fails the load, unless it says
    /// `ignoreErrors`: then it is skipped and the others load.
    #[tokio::test]
    async fn ignore_errors_skips_a_broken_component() {
        let broken = |ignore_errors| ComponentDeclaration {
            spec: spec("broken", "state.broken", &[]),
            ignore_errors,
            auth_secret_store: None,
        };
        let err = Components::load_declared(
            vec![broken(false), spec("a", "state.null", &[]).into()],
            &registry(),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("no server"), "{err}");
        let unknown = ComponentDeclaration {
            spec: spec("typo", "state.nosuch", &[]),
            ignore_errors: true,
            auth_secret_store: None,
        };
        let components = Components::load_declared(
            vec![broken(true), unknown, spec("a", "state.null", &[]).into()],
            &registry(),
        )
        .await
        .unwrap();
        let names: Vec<&str> = components.specs().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a"]);
    }

    /// A bad `keyPrefix` fails the load before the backend is built.
    #[tokio::test]
    async fn key_prefix_is_checked_at_load() {
        let mut bad = spec("a", "state.null", &[]);
        bad.metadata.insert("keyPrefix".into(), "x||y".into());
        let err = Components::load(vec![bad], &registry())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("spec.metadata.keyPrefix"), "{err}");
    }
}
