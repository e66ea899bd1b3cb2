//! [`DaprApi`]: the building blocks as every front door sees them. The HTTP
//! API, the gRPC API and the guests' WIT imports translate onto this trait;
//! [`crate::Runtime`] implements it over local components, and a remote client
//! can implement it over a real Dapr sidecar.
//!
//! Keys here are the caller's keys: prefixing with the app id happens behind
//! the trait.

use async_trait::async_trait;

use crate::error::ApiError;
use crate::invoke::{InvokeRequest, InvokeResponse};
use crate::state::query::QueryResponse;
use crate::state::{DeleteRequest, GetRequest, Metadata, Operation, SetRequest, StateValue};

/// One key of a bulk get: its value, or the error reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkStateItem {
    /// The key.
    pub key: String,
    /// The value; `None` when the key does not exist or on error.
    pub value: Option<StateValue>,
    /// Why this key could not be read.
    pub error: Option<String>,
}

/// A component as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Its name.
    pub name: String,
    /// Its type, e.g. `state.redis`.
    pub kind: String,
    /// Its version, e.g. `v1`.
    pub version: String,
    /// Dapr's feature names (`ETAG`, `TRANSACTIONAL`, …).
    pub capabilities: Vec<String>,
}

/// What `GET /v1.0/metadata` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeMetadata {
    /// The app id.
    pub id: String,
    /// This runtime's version.
    pub runtime_version: String,
    /// The components visible to the app.
    pub components: Vec<ComponentInfo>,
}

/// The Dapr building blocks.
#[async_trait]
pub trait DaprApi: Send + Sync + 'static {
    /// Reads one key; `None` when it does not exist.
    async fn get_state(
        &self,
        store: &str,
        request: GetRequest,
    ) -> Result<Option<StateValue>, ApiError>;

    /// Reads many keys, at most `parallelism` backend requests at a time
    /// (0: the store's best, batched where the backend can); per-key
    /// failures are reported per key, in the caller's order. More than
    /// [`crate::runtime::MAX_BULK_GET_KEYS`] keys is a malformed request.
    async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
        parallelism: usize,
        metadata: Metadata,
    ) -> Result<Vec<BulkStateItem>, ApiError>;

    /// Saves items, in order; the first failure stops and is returned.
    async fn save_state(&self, store: &str, items: Vec<SetRequest>) -> Result<(), ApiError>;

    /// Deletes one key.
    async fn delete_state(&self, store: &str, request: DeleteRequest) -> Result<(), ApiError>;

    /// Deletes many keys, in order; the first failure stops and is returned.
    async fn delete_bulk_state(
        &self,
        store: &str,
        requests: Vec<DeleteRequest>,
    ) -> Result<(), ApiError>;

    /// Applies operations atomically (the store must be transactional).
    async fn transact_state(
        &self,
        store: &str,
        operations: Vec<Operation>,
        metadata: Metadata,
    ) -> Result<(), ApiError>;

    /// Runs a query (Dapr's query JSON) on a store that supports queries.
    async fn query_state(
        &self,
        store: &str,
        query: serde_json::Value,
        metadata: Metadata,
    ) -> Result<QueryResponse, ApiError>;

    /// Invokes `request` on the app `app_id` (service invocation): this
    /// runtime's own app through its app channel, another app through its
    /// sidecar. The app's answer, whatever its status, is `Ok` and unchanged;
    /// `Err` is `ERR_DIRECT_INVOKE` when it could not be delivered.
    async fn invoke(
        &self,
        app_id: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError>;

    /// Whether the sidecar is ready (`/v1.0/healthz`): a runtime waiting for
    /// its app (`--app-port`) is not, until the app is connected, so
    /// orchestrators hold traffic back as they do with Dapr. Implementations
    /// with no app of their own are always ready.
    fn ready(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Describes the runtime and its components.
    async fn metadata(&self) -> Result<RuntimeMetadata, ApiError>;

    /// Asks the process to shut down gracefully.
    fn shutdown(&self);
}
