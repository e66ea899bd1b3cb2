//! Backends of the Dapr building blocks (state stores, pub/sub brokers,
//! bindings, secret stores, …), one module per backend, each implementing the
//! runtime's trait for its kind and registered with the runtime's component
//! registry by the binary through [`register`].
//!
//! # Layout
//!
//! - [`state`]: state stores — [`state::memory`] (`state.in-memory`),
//!   [`state::sqlite`] (`state.sqlite`, the embedded default),
//!   [`state::redis`] (`state.redis`), [`state::postgres`]
//!   (`state.postgresql`).
//! - [`pubsub`]: pub/sub brokers — [`pubsub::memory`]
//!   (`pubsub.in-memory`), [`pubsub::sqlite`] (`pubsub.sqlite`, the
//!   embedded default), [`pubsub::redis`] (`pubsub.redis`, Redis Streams),
//!   [`pubsub::jetstream`] (`pubsub.jetstream`, NATS JetStream),
//!   [`pubsub::mqtt3`] (`pubsub.mqtt3`, MQTT 3.1.1), [`pubsub::rabbitmq`]
//!   (`pubsub.rabbitmq`, AMQP 0-9-1).
//! - [`nameresolution`]: name resolvers — [`nameresolution::sqlite`]
//!   (`nameresolution.sqlite`, the default).
//!
//! [`register`] lists every component type of every kind, once; the
//! runtime's registry builds them by type (`state.redis`), and a new
//! backend or a new kind (`pubsub.*`, `bindings.*`, `secretstores.*`,
//! `configuration.*`, `lock.*`) is one more line there.
//!
//! This crate knows no HTTP API and no Wasm, and depends only on
//! `wasmdapr-runtime`. The conformance suites every backend of a kind
//! passes are `tests/state_conformance.rs` and `tests/pubsub_conformance.rs`.

#![deny(missing_docs)]

pub mod nameresolution;
pub mod pubsub;
mod sqlite_file;
pub mod state;

use std::sync::Arc;

use wasmdapr_runtime::pubsub::PubSub;
use wasmdapr_runtime::state::StateStore;
use wasmdapr_runtime::{ComponentRegistry, NameResolver};

/// Registers every component type of this crate, of every kind: the one
/// place that lists the backends.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register::<dyn StateStore, _, _>("state.in-memory", |spec| async move {
        let store = state::memory::MemoryStateStore::from_spec(&spec)?;
        Ok(Arc::new(store) as Arc<dyn StateStore>)
    });
    registry.register::<dyn StateStore, _, _>("state.sqlite", |spec| async move {
        let store = state::sqlite::SqliteStateStore::open(&spec).await?;
        Ok(Arc::new(store) as Arc<dyn StateStore>)
    });
    registry.register::<dyn StateStore, _, _>("state.redis", |spec| async move {
        let store = state::redis::RedisStateStore::connect(&spec).await?;
        Ok(Arc::new(store) as Arc<dyn StateStore>)
    });
    registry.register::<dyn StateStore, _, _>("state.postgresql", |spec| async move {
        let store = state::postgres::PostgresStateStore::connect(&spec).await?;
        Ok(Arc::new(store) as Arc<dyn StateStore>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.in-memory", |spec| async move {
        let broker = pubsub::memory::MemoryPubSub::from_spec(&spec)?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.sqlite", |spec| async move {
        let broker = pubsub::sqlite::SqlitePubSub::open(&spec).await?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.redis", |spec| async move {
        let broker = pubsub::redis::RedisPubSub::connect(&spec).await?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.jetstream", |spec| async move {
        let broker = pubsub::jetstream::JetStreamPubSub::connect(&spec).await?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.mqtt3", |spec| async move {
        let broker = pubsub::mqtt3::MqttPubSub::connect(&spec).await?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn PubSub, _, _>("pubsub.rabbitmq", |spec| async move {
        let broker = pubsub::rabbitmq::RabbitMqPubSub::connect(&spec).await?;
        Ok(Arc::new(broker) as Arc<dyn PubSub>)
    });
    registry.register::<dyn NameResolver, _, _>("nameresolution.sqlite", |spec| async move {
        let resolver = nameresolution::sqlite::SqliteNameResolver::open(&spec).await?;
        Ok(Arc::new(resolver) as Arc<dyn NameResolver>)
    });
}
