//! The building blocks as every front door sees them: one trait per block,
//! next to its types ([`StateApi`], [`PubSubApi`], [`InvokeApi`],
//! [`MetadataApi`]), and
//! [`DaprApi`], the one thing the doors hold (`Arc<dyn DaprApi>`).
//!
//! The HTTP API, the gRPC API and the guests' WIT imports translate onto
//! these traits; [`crate::Runtime`] implements them over local components,
//! and `RemoteDapr` (in `wasmdapr-api`) over a real Dapr sidecar.
//!
//! Adding a building block means a module here with its trait and types, a
//! supertrait bound on [`DaprApi`] and its blanket impl, and a module of
//! [`crate::runtime`] implementing it. `DaprApi` itself never grows a method:
//! a block's calls live in the block's trait, so a door or a test double
//! reads and implements one block at a time.
//!
//! Keys here are the caller's keys: prefixing with the app id happens behind
//! the traits. A caller names the block's trait to call its methods
//! (`use wasmdapr_runtime::api::StateApi;`), or imports them all with
//! [`prelude`].

pub mod invoke;
pub mod metadata;
pub mod pubsub;
pub mod state;

pub use invoke::InvokeApi;
pub use metadata::{
    AppConnectionProperties, AppHealthProperties, ComponentInfo, MetadataApi, RuntimeMetadata,
};
pub use pubsub::{
    BulkEvent, BulkPublishEntry, BulkPublishError, BulkPublishEvent, EventResponder, EventStatus,
    EventSubscription, PubSubApi, PublishEvent, StreamSubscribeRequest, TopicEvent, TraceContext,
};
pub use state::{BulkStateItem, StateApi};

/// Every block's trait, for callers that hold a [`DaprApi`] and use several
/// blocks: `use wasmdapr_runtime::api::prelude::*;`.
pub mod prelude {
    pub use super::{DaprApi, InvokeApi, MetadataApi, PubSubApi, StateApi};
}

/// All the building blocks: what a front door holds. It has no method of its
/// own; every type that implements each block's trait is a `DaprApi`.
pub trait DaprApi: StateApi + PubSubApi + InvokeApi + MetadataApi + Send + Sync + 'static {}

impl<T: StateApi + PubSubApi + InvokeApi + MetadataApi + ?Sized> DaprApi for T {}
