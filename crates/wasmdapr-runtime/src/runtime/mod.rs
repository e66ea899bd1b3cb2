//! [`Runtime`]: the [`DaprApi`](crate::DaprApi) of one app over the
//! components loaded for the process ([`Components`]). This is where Dapr's
//! semantics live once, one module per building block, each implementing
//! its block's trait of [`crate::api`]:
//!
//! - [`state`]: store lookup and scopes, key prefixing, validation of keys
//!   and TTLs, and the mapping of store errors to Dapr's error table;
//! - [`invoke`]: service invocation, to the own app or another app's sidecar;
//! - [`metadata`]: what the sidecar reports about itself, its extended
//!   attributes, readiness and shutdown.
//!
//! This file holds what the blocks share: the [`Runtime`] and its wiring.

mod invoke;
mod metadata;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::app_channel::AppChannel;
use crate::app_id::AppId;
use crate::component::{ComponentError, ComponentSpec};
use crate::invoke::RemoteInvocation;
use crate::registry::ComponentRegistry;
use crate::state::StateStore;

/// Separator between the prefix and the key, as Dapr stores keys.
pub const KEY_SEPARATOR: &str = "||";

/// The most keys one bulk get may ask for; more is refused with
/// `ERR_MALFORMED_REQUEST` (400) naming this limit. Dapr sets no such limit
/// (only its request body size bounds the key count), but every key's value
/// is held in memory until the answer is written, so the count is bounded
/// here, generously: 100,000 keys (the bulk of issue 10's load test).
pub const MAX_BULK_GET_KEYS: usize = 100_000;

/// How a store's keys are prefixed (`keyPrefix` metadata).
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
    fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
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
    fn head(&self, app: &AppId, store: &str) -> String {
        match self {
            KeyPrefix::AppId => format!("{app}{KEY_SEPARATOR}"),
            KeyPrefix::Name => format!("{store}{KEY_SEPARATOR}"),
            KeyPrefix::None => String::new(),
            KeyPrefix::Custom(c) => format!("{c}{KEY_SEPARATOR}"),
        }
    }
}

/// A loaded state store.
pub struct LoadedStateStore {
    /// Its declaration.
    pub spec: ComponentSpec,
    /// The backend.
    pub store: Arc<dyn StateStore>,
    prefix: KeyPrefix,
}

/// The components of a process, loaded once and shared by every app's [`Runtime`].
#[derive(Default)]
pub struct Components {
    state: BTreeMap<String, LoadedStateStore>,
}

impl Components {
    /// Builds every component of `specs`; the first failure aborts the whole
    /// load so a process never runs half-configured.
    pub async fn load(
        specs: Vec<ComponentSpec>,
        registry: &ComponentRegistry,
    ) -> Result<Self, ComponentError> {
        let mut state = BTreeMap::new();
        for spec in specs {
            if spec.kind.starts_with("state.") {
                let Some(factory) = registry.state(&spec.kind) else {
                    return Err(spec.field_error(
                        "spec.type",
                        format!(
                            "unknown state store type `{}` (known: {})",
                            spec.kind,
                            registry.state_kinds().join(", ")
                        ),
                    ));
                };
                let prefix = KeyPrefix::from_spec(&spec)?;
                let store = factory(spec.clone()).await?;
                tracing::info!(name = %spec.name, kind = %spec.kind, "state store ready");
                state.insert(
                    spec.name.clone(),
                    LoadedStateStore {
                        spec,
                        store,
                        prefix,
                    },
                );
            } else {
                return Err(spec.field_error(
                    "spec.type",
                    format!(
                        "`{}` is not a building block this runtime supports yet (state.*)",
                        spec.kind
                    ),
                ));
            }
        }
        Ok(Self { state })
    }

    /// The state stores, by name.
    pub fn state_stores(&self) -> impl Iterator<Item = &LoadedStateStore> {
        self.state.values()
    }
}

/// The Dapr API of one app.
pub struct Runtime {
    app_id: AppId,
    components: Arc<Components>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The app this runtime delivers to. Set once, after start, because the
    /// app (a Wasm component, or a process on `--app-port`) is usually
    /// brought up after its sidecar.
    app_channel: std::sync::OnceLock<Arc<dyn AppChannel>>,
    /// How other apps are reached; `None`: only the own app is invocable.
    remote: Option<RemoteInvocation>,
    /// Set by [`Runtime::expect_app`]: not ready until the app is connected.
    expects_app: std::sync::atomic::AtomicBool,
    /// The metadata block's own state (extended attributes, app connection).
    metadata: metadata::MetadataState,
}

impl Runtime {
    /// The runtime of `app_id` over `components`.
    pub fn new(app_id: AppId, components: Arc<Components>) -> Self {
        Self {
            app_id,
            components,
            shutdown: tokio::sync::watch::Sender::new(false),
            app_channel: std::sync::OnceLock::new(),
            remote: None,
            expects_app: std::sync::atomic::AtomicBool::new(false),
            metadata: metadata::MetadataState::default(),
        }
    }

    /// Lets this runtime invoke other apps: resolved by `remote.resolver`,
    /// called through their sidecars by `remote.invoker`.
    pub fn with_remote_invocation(mut self, remote: RemoteInvocation) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Connects the app this runtime serves. A runtime has at most one app:
    /// a second call returns the channel it was given back as the error.
    pub fn set_app_channel(&self, channel: Arc<dyn AppChannel>) -> Result<(), Arc<dyn AppChannel>> {
        self.app_channel.set(channel)
    }

    /// Declares that an app will be connected: until it is,
    /// [`MetadataApi::ready`](crate::api::MetadataApi::ready) reports `ERR_HEALTH_NOT_READY`.
    pub fn expect_app(&self) {
        self.expects_app
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The app this runtime serves, once connected.
    pub fn app_channel(&self) -> Option<&Arc<dyn AppChannel>> {
        self.app_channel.get()
    }

    /// The app id.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// Resolves once [`MetadataApi::shutdown`](crate::api::MetadataApi::shutdown) has been called.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|requested| *requested).await;
    }
}
