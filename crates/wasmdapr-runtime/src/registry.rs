//! [`ComponentRegistry`]: the one place that maps a component type
//! (`state.redis`) to the code that builds it. The binary fills it from
//! `wasmdapr-components`; the runtime only looks types up.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::component::{ComponentError, ComponentSpec};
use crate::state::StateStore;

/// Builds a state store from its component spec (connecting to its server,
/// creating its table, …).
pub type StateStoreFactory = Arc<
    dyn Fn(ComponentSpec) -> BoxFuture<'static, Result<Arc<dyn StateStore>, ComponentError>>
        + Send
        + Sync,
>;

/// Component types this process can build.
#[derive(Default, Clone)]
pub struct ComponentRegistry {
    state: BTreeMap<String, StateStoreFactory>,
}

impl ComponentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a state store type, e.g. `state.redis`.
    pub fn register_state<F, Fut>(&mut self, kind: &str, factory: F)
    where
        F: Fn(ComponentSpec) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn StateStore>, ComponentError>> + Send + 'static,
    {
        self.state.insert(
            kind.to_owned(),
            Arc::new(move |spec| Box::pin(factory(spec))),
        );
    }

    /// The factory of a state store type.
    pub fn state(&self, kind: &str) -> Option<&StateStoreFactory> {
        self.state.get(kind)
    }

    /// Every registered state store type, for messages.
    pub fn state_kinds(&self) -> Vec<&str> {
        self.state.keys().map(String::as_str).collect()
    }
}
