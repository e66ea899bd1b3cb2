//! [`StateApi`]: the state building block as the doors call it.

use async_trait::async_trait;

use crate::error::ApiError;
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

/// The state building block. Requests carry the caller's keys and raw
/// metadata; the implementation validates them (empty keys, forged
/// prefixes, `ttlInSeconds`) before any store sees them, so the doors need
/// no checks of their own.
#[async_trait]
pub trait StateApi: Send + Sync + 'static {
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

    /// Saves items, in order; the first failure stops and is returned. An
    /// invalid item (empty or forged key, bad TTL) refuses the whole request
    /// before anything is written, as Dapr checks every key first.
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
}
