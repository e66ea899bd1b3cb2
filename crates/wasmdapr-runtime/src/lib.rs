//! The Dapr building blocks of wasmdapr, independent of any transport and of
//! Wasm: every front door (the HTTP API, the gRPC API, the WIT imports of
//! guests) is a thin translation onto this crate.
//!
//! # Layout
//!
//! - [`api`]: one trait per building block, next to its types
//!   ([`StateApi`](api::StateApi), [`PubSubApi`](api::PubSubApi),
//!   [`InvokeApi`](api::InvokeApi),
//!   [`MetadataApi`](api::MetadataApi)), and [`DaprApi`], their supertrait
//!   with no method of its own: what every front door holds.
//! - [`app_channel`]: [`AppChannel`], how the runtime reaches its app
//!   (invocations, subscriptions, events, batches), and Dapr's HTTP app
//!   protocol written once for every [`HttpAppChannel`].
//! - [`runtime`]: [`Runtime`], the local implementation over loaded
//!   [`Components`], one module per block (`runtime/state.rs`: store
//!   lookup, scopes, key prefixing and validation, error mapping;
//!   `runtime/pubsub.rs`: publish with the envelope and topic scopes;
//!   `runtime/invoke.rs`; `runtime/metadata.rs`).
//! - [`components`]: [`Components`], the loaded components of every kind,
//!   and their scoped lookup.
//! - [`error`]: [`ApiError`], Dapr's error table (code, HTTP status, gRPC code).
//! - [`state`]: the [`StateStore`](state::StateStore) trait backends implement
//!   (with defaults for bulk reads and writes), shared write semantics, and
//!   the query language ([`state::query`]).
//! - [`pubsub`]: the [`PubSub`](pubsub::PubSub) trait brokers implement
//!   (publish, bulk publish, subscriptions that ack after their handler),
//!   the CloudEvents envelope ([`pubsub::cloudevent`]) and topic scopes
//!   ([`pubsub::scopes`]).
//! - [`component`]: a Dapr `Component` resource ([`ComponentSpec`]).
//! - [`registry`]: [`ComponentRegistry`], component type → factory, for
//!   every component kind.
//! - [`resources`]: [`Resources`], the loader of resources folders
//!   (`Component`, `Subscription`, `Resiliency`, `Configuration`).
//! - [`app_id`]: [`AppId`], the validated identity of an app.
//! - [`invoke`]: service invocation: [`InvokeRequest`], routing to the own
//!   app or to another app's sidecar ([`RemoteInvoker`]), hop-by-hop
//!   headers and `traceparent`.
//! - [`nameresolution`]: [`NameResolver`], app id → sidecar address.

#![deny(missing_docs)]

pub mod api;
pub mod app_channel;
pub mod app_id;
pub mod component;
pub mod components;
pub mod error;
pub mod invoke;
pub mod nameresolution;
pub mod pubsub;
pub mod registry;
pub mod resources;
pub mod runtime;
pub mod state;

pub use api::DaprApi;
pub use app_channel::{AppChannel, AppRequest, AppResponse, ChannelError, HttpAppChannel};
pub use app_id::AppId;
pub use component::{ComponentDeclaration, ComponentError, ComponentSpec};
pub use components::Components;
pub use error::{ApiError, ErrorKind, GrpcCode};
pub use invoke::{InvokeRequest, InvokeResponse, RemoteInvocation, RemoteInvoker};
pub use nameresolution::NameResolver;
pub use registry::ComponentRegistry;
pub use resources::Resources;
pub use runtime::Runtime;
