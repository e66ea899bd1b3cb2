//! [`Runtime`]: the [`DaprApi`](crate::DaprApi) of one app over the
//! components loaded for the process ([`Components`]). This is where Dapr's
//! semantics live once, one module per building block, each implementing
//! its block's trait of [`crate::api`]:
//!
//! - [`state`]: store lookup and scopes, key prefixing, validation of keys
//!   and TTLs, and the mapping of store errors to Dapr's error table;
//! - [`pubsub`]: publishing: component lookup and checks in daprd's order,
//!   the CloudEvents envelope, topic scopes, broker errors;
//! - `delivery`: events to the app: its subscriptions (declarative and
//!   `GET /dapr/subscribe`) started on their brokers, each message routed
//!   and `POST`ed on the app channel, acked, retried or dead-lettered as
//!   the app answers;
//! - `outbox`: the transactional outbox: a state transaction's upserts
//!   published to a topic when, and only when, the transaction commits;
//! - `streaming`: streaming subscriptions: the same delivery, to a
//!   subscriber that pulls each event and answers it;
//! - [`invoke`]: service invocation, to the own app or another app's sidecar;
//! - [`metadata`]: what the sidecar reports about itself, its extended
//!   attributes, readiness and shutdown.
//!
//! This file holds what the blocks share: the [`Runtime`] and its wiring.

mod delivery;
mod invoke;
mod metadata;
mod outbox;
mod pubsub;
mod state;
mod streaming;

pub use delivery::{AppSubscriptions, DeliveryOptions};
pub use outbox::OutboxRelays;
pub use pubsub::SubscribeError;

use std::sync::Arc;

use crate::app_channel::AppChannel;
use crate::app_id::AppId;
use crate::components::Components;
use crate::invoke::RemoteInvocation;

/// The most keys one bulk get may ask for; more is refused with
/// `ERR_MALFORMED_REQUEST` (400) naming this limit. Dapr sets no such limit
/// (only its request body size bounds the key count), but every key's value
/// is held in memory until the answer is written, so the count is bounded
/// here, generously: 100,000 keys (the bulk of issue 10's load test).
pub const MAX_BULK_GET_KEYS: usize = 100_000;

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
    /// Markers of outbox transactions that failed (see `outbox`).
    outbox_failed: Arc<outbox::FailedMarkers>,
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
            outbox_failed: Arc::default(),
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
