//! [`ComponentRegistry`]: the one map from a component type (`state.redis`,
//! `nameresolution.sqlite`, later `pubsub.redis`, …) to the code that builds
//! it, for every component kind. The binary fills it from
//! `wasmdapr-components` (its `register` is the one list of types); the
//! runtime only looks types up.
//!
//! A component kind is the trait object its backends implement
//! (`dyn StateStore`, `dyn NameResolver`), marked by a [`Kind`] impl. The
//! registry is keyed by type name and remembers each entry's kind by
//! [`TypeId`], so a new building block adds `impl Kind for dyn PubSub` and
//! `registry.register::<dyn PubSub>("pubsub.redis", …)`, and nothing here.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::component::{ComponentError, ComponentSpec};
use crate::components::{AnyLoaded, KeyPrefix, Loaded};
use crate::nameresolution::NameResolver;
use crate::pubsub::{PubSub, TopicScopes};
use crate::state::StateStore;

/// The component kinds of Dapr, by the prefix of their types, with the noun
/// messages use. The kinds this build has no trait for yet are listed so
/// that a `pubsub.redis` component is reported as "no pub/sub components in
/// this build" rather than as a typo.
pub const DAPR_KINDS: &[(&str, &str)] = &[
    ("state", "state store"),
    ("pubsub", "pub/sub"),
    ("bindings", "binding"),
    ("secretstores", "secret store"),
    ("configuration", "configuration store"),
    ("lock", "lock store"),
    ("nameresolution", "name resolver"),
    ("middleware", "middleware"),
    ("crypto", "crypto provider"),
    ("conversation", "conversation"),
    ("workflow", "workflow backend"),
];

/// A component kind: implemented for the trait object its backends
/// implement (`dyn StateStore`). Declaring one is all a new building block
/// needs to use the registry, [`crate::Components`] and scoped lookups.
///
/// Implement it for the trait object of any lifetime
/// (`impl<'a> Kind for dyn PubSub + 'a`): the futures of async code that
/// hold a loaded component see the object's lifetime erased, and need the
/// impl to hold for every one. Only `'static` kinds are ever registered.
pub trait Kind: Send + Sync {
    /// The prefix of its component types: `state` for `state.redis`.
    const PREFIX: &'static str;
    /// What one is called in messages: `state store`.
    const NOUN: &'static str;
    /// Where the type is declared, for errors: `spec.type` in a Component,
    /// elsewhere for kinds configured by another resource.
    const TYPE_FIELD: &'static str = "spec.type";
    /// What the runtime keeps beside each loaded component of this kind,
    /// read from its spec once at load time (state: the key prefix).
    type Settings: Send + Sync + 'static;

    /// Reads (and so validates) [`Kind::Settings`] before the backend is
    /// built: a bad setting fails the load without connecting anywhere.
    fn settings(spec: &ComponentSpec) -> Result<Self::Settings, ComponentError>;
}

impl<'a> Kind for dyn StateStore + 'a {
    const PREFIX: &'static str = "state";
    const NOUN: &'static str = "state store";
    type Settings = KeyPrefix;

    fn settings(spec: &ComponentSpec) -> Result<KeyPrefix, ComponentError> {
        KeyPrefix::from_spec(spec)
    }
}

impl<'a> Kind for dyn PubSub + 'a {
    const PREFIX: &'static str = "pubsub";
    const NOUN: &'static str = "pub/sub";
    type Settings = TopicScopes;

    fn settings(spec: &ComponentSpec) -> Result<TopicScopes, ComponentError> {
        Ok(TopicScopes::from_spec(spec))
    }
}

impl<'a> Kind for dyn NameResolver + 'a {
    const PREFIX: &'static str = "nameresolution";
    const NOUN: &'static str = "name resolver";
    /// A Configuration's `spec.nameResolution.component` names it.
    const TYPE_FIELD: &'static str = "spec.nameResolution.component";
    type Settings = ();

    fn settings(_: &ComponentSpec) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// Builds a component of kind `K` from its spec (connecting to its server,
/// creating its table, …).
pub type Factory<K> =
    Arc<dyn Fn(ComponentSpec) -> BoxFuture<'static, Result<Arc<K>, ComponentError>> + Send + Sync>;

/// Builds a component of whatever kind its entry has, with its settings, for
/// [`crate::Components::load`], which does not know the kinds.
pub(crate) type ErasedLoad = Arc<
    dyn Fn(ComponentSpec) -> BoxFuture<'static, Result<Box<dyn AnyLoaded>, ComponentError>>
        + Send
        + Sync,
>;

/// The factory of a state store.
pub type StateStoreFactory = Factory<dyn StateStore>;

#[derive(Clone)]
struct Entry {
    kind: TypeId,
    /// The [`Factory<K>`] of the entry's kind.
    factory: Arc<dyn Any + Send + Sync>,
    load: ErasedLoad,
}

/// Component types this process can build, of every kind.
#[derive(Default, Clone)]
pub struct ComponentRegistry {
    types: BTreeMap<String, Entry>,
}

impl ComponentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component type of kind `K`, e.g.
    /// `register::<dyn StateStore>("state.redis", …)`. A later registration
    /// of the same type replaces the earlier one.
    ///
    /// # Panics
    ///
    /// When `type_name` is not `<K::PREFIX>.<name>`: that is a bug in the
    /// list of types, found the first time the process starts.
    pub fn register<K, F, Fut>(&mut self, type_name: &str, factory: F)
    where
        K: Kind + ?Sized + 'static,
        F: Fn(ComponentSpec) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<K>, ComponentError>> + Send + 'static,
    {
        assert!(
            kind_prefix(type_name) == Some(K::PREFIX),
            "component type `{type_name}` registered as a {} (`{}.*`)",
            K::NOUN,
            K::PREFIX
        );
        let factory: Factory<K> = Arc::new(move |spec| Box::pin(factory(spec)));
        let build = factory.clone();
        let load: ErasedLoad = Arc::new(move |spec| {
            let build = build.clone();
            Box::pin(async move {
                let settings = K::settings(&spec)?;
                let component = build(spec.clone()).await?;
                Ok(Box::new(Loaded::<K> {
                    spec,
                    component,
                    settings,
                }) as Box<dyn AnyLoaded>)
            })
        });
        self.types.insert(
            type_name.to_owned(),
            Entry {
                kind: TypeId::of::<K>(),
                factory: Arc::new(factory),
                load,
            },
        );
    }

    /// Registers a state store type, e.g. `state.redis`: shorthand for
    /// [`ComponentRegistry::register`]`::<dyn StateStore>`.
    pub fn register_state<F, Fut>(&mut self, type_name: &str, factory: F)
    where
        F: Fn(ComponentSpec) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn StateStore>, ComponentError>> + Send + 'static,
    {
        self.register::<dyn StateStore, _, _>(type_name, factory);
    }

    /// The factory of `type_name` when it is a type of kind `K`.
    pub fn factory<K: Kind + ?Sized + 'static>(&self, type_name: &str) -> Option<&Factory<K>> {
        self.types
            .get(type_name)
            .filter(|entry| entry.kind == TypeId::of::<K>())
            .and_then(|entry| entry.factory.downcast_ref::<Factory<K>>())
    }

    /// The factory of a state store type: shorthand for
    /// [`ComponentRegistry::factory`]`::<dyn StateStore>`.
    pub fn state(&self, type_name: &str) -> Option<&StateStoreFactory> {
        self.factory::<dyn StateStore>(type_name)
    }

    /// Builds the component `spec` declares as a `K`, or says why not: its
    /// type is unknown, or of another kind, or the backend failed.
    pub async fn build<K: Kind + ?Sized + 'static>(
        &self,
        spec: ComponentSpec,
    ) -> Result<Arc<K>, ComponentError> {
        let Some(factory) = self.factory::<K>(&spec.kind) else {
            return Err(self.unknown_type(&spec, K::TYPE_FIELD));
        };
        factory(spec).await
    }

    /// The registered types of kind `K`, in name order, for messages.
    pub fn types<K: Kind + ?Sized + 'static>(&self) -> Vec<&str> {
        self.types
            .iter()
            .filter(|(_, entry)| entry.kind == TypeId::of::<K>())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The erased builder of `spec`'s type, whatever its kind, or the error
    /// of an unknown type.
    pub(crate) fn loader(&self, spec: &ComponentSpec) -> Result<&ErasedLoad, ComponentError> {
        self.types
            .get(&spec.kind)
            .map(|entry| &entry.load)
            .ok_or_else(|| self.unknown_type(spec, "spec.type"))
    }

    /// Why `spec.kind` cannot be built: a typo of a kind this build has (with
    /// the types it knows), a kind it has no backends for yet, or no
    /// Dapr kind at all.
    fn unknown_type(&self, spec: &ComponentSpec, field: &str) -> ComponentError {
        let prefix = kind_prefix(&spec.kind).unwrap_or_default();
        let known: Vec<&str> = self
            .types
            .keys()
            .map(String::as_str)
            .filter(|t| kind_prefix(t) == Some(prefix))
            .collect();
        let noun = DAPR_KINDS
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, noun)| *noun);
        let message = match noun {
            Some(noun) if !known.is_empty() => format!(
                "unknown {noun} type `{}` (known: {})",
                spec.kind,
                known.join(", ")
            ),
            Some(noun) => format!(
                "`{}`: this build has no {noun} components yet (it has: {})",
                spec.kind,
                self.kinds().join(", ")
            ),
            None => format!(
                "`{}` is not a Dapr component type (`<kind>.<name>`, kind one of: {})",
                spec.kind,
                DAPR_KINDS
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        spec.field_error(field, message)
    }

    /// The kinds with at least one registered type, as `state.*`.
    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .types
            .keys()
            .filter_map(|t| kind_prefix(t))
            .map(|p| format!("{p}.*"))
            .collect();
        kinds.dedup();
        kinds
    }
}

/// `state` of `state.redis`; `None` without a dot.
fn kind_prefix(type_name: &str) -> Option<&str> {
    type_name.split_once('.').map(|(prefix, _)| prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_id::AppId;
    use crate::nameresolution::NameResolutionError;

    struct Resolver;

    #[async_trait::async_trait]
    impl NameResolver for Resolver {
        fn kind(&self) -> &'static str {
            "test"
        }
        async fn register(&self, _: &AppId, _: &str) -> Result<(), NameResolutionError> {
            Ok(())
        }
        async fn resolve(&self, _: &AppId) -> Result<Option<String>, NameResolutionError> {
            Ok(Some("here:1".into()))
        }
        async fn deregister(&self) -> Result<(), NameResolutionError> {
            Ok(())
        }
    }

    fn spec(kind: &str) -> ComponentSpec {
        ComponentSpec {
            name: "c".into(),
            kind: kind.into(),
            version: "v1".into(),
            metadata: Default::default(),
            scopes: Vec::new(),
            source: "test.yaml".into(),
        }
    }

    fn registry() -> ComponentRegistry {
        let mut registry = ComponentRegistry::new();
        registry.register::<dyn NameResolver, _, _>("nameresolution.test", |_| async {
            Ok(Arc::new(Resolver) as Arc<dyn NameResolver>)
        });
        registry
    }

    /// One registry holds every kind; a factory is found only as its own kind.
    #[tokio::test]
    async fn types_are_kept_by_kind() {
        let registry = registry();
        assert!(
            registry
                .factory::<dyn NameResolver>("nameresolution.test")
                .is_some()
        );
        assert!(registry.state("nameresolution.test").is_none());
        assert_eq!(
            registry.types::<dyn NameResolver>(),
            ["nameresolution.test"]
        );
        assert!(registry.types::<dyn StateStore>().is_empty());
        let resolver = registry
            .build::<dyn NameResolver>(spec("nameresolution.test"))
            .await
            .unwrap();
        let id = AppId::new("a").unwrap();
        assert_eq!(
            resolver.resolve(&id).await.unwrap().as_deref(),
            Some("here:1")
        );
    }

    /// An unknown type says which kind it would be and what this build has.
    #[tokio::test]
    async fn unknown_types_are_explained() {
        let registry = registry();
        let message = |kind: &str| {
            let registry = registry.clone();
            let spec = spec(kind);
            async move {
                registry
                    .build::<dyn NameResolver>(spec)
                    .await
                    .err()
                    .unwrap()
                    .to_string()
            }
        };
        let typo = message("nameresolution.mdns").await;
        assert!(
            typo.contains("spec.nameResolution.component")
                && typo.contains("unknown name resolver type `nameresolution.mdns`")
                && typo.contains("known: nameresolution.test"),
            "{typo}"
        );
        let later = registry.loader(&spec("pubsub.redis")).err().unwrap();
        assert!(
            later.to_string().contains(
                "spec.type: `pubsub.redis`: this build has no pub/sub components yet (it has: nameresolution.*)"
            ),
            "{later}"
        );
        let nonsense = registry.loader(&spec("redis")).err().unwrap();
        assert!(
            nonsense
                .to_string()
                .contains("`redis` is not a Dapr component type"),
            "{nonsense}"
        );
    }

    /// Registering a type under another kind's prefix is a bug caught at once.
    #[test]
    #[should_panic(expected = "registered as a name resolver")]
    fn a_type_of_the_wrong_kind_panics() {
        let mut registry = ComponentRegistry::new();
        registry.register::<dyn NameResolver, _, _>("state.x", |_| async {
            Ok(Arc::new(Resolver) as Arc<dyn NameResolver>)
        });
    }
}
