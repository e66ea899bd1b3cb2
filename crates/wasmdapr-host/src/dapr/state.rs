//! `wasmdapr:dapr/state`: the state API, onto [`DaprApi`](wasmdapr_runtime::DaprApi)'s state methods.

use wasmdapr_runtime::ApiError;
use wasmdapr_runtime::api::BulkStateItem;
use wasmdapr_runtime::state::query::QueryResponse;
use wasmdapr_runtime::state::{
    self as rt, DeleteRequest, GetRequest, SetRequest, StateOptions, StateValue,
};

use super::generated::wasmdapr::dapr::state::Host;
use super::{
    BulkItem, Concurrency, Consistency, DaprView, DeleteItem, Error, Item, Metadata, Operation,
    QueryItem, SaveItem, WitQueryResponse, call, metadata, metadata_out,
};

fn consistency(c: Consistency) -> rt::Consistency {
    match c {
        Consistency::Unspecified => rt::Consistency::Unspecified,
        Consistency::Eventual => rt::Consistency::Eventual,
        Consistency::Strong => rt::Consistency::Strong,
    }
}

fn options(c: Concurrency, s: Consistency) -> StateOptions {
    StateOptions {
        concurrency: match c {
            Concurrency::Unspecified => rt::Concurrency::Unspecified,
            Concurrency::FirstWrite => rt::Concurrency::FirstWrite,
            Concurrency::LastWrite => rt::Concurrency::LastWrite,
        },
        consistency: consistency(s),
    }
}

fn item(v: StateValue) -> Item {
    Item {
        value: v.data,
        etag: v.etag,
        metadata: metadata_out(v.metadata),
    }
}

impl From<SaveItem> for SetRequest {
    fn from(s: SaveItem) -> Self {
        SetRequest {
            key: s.key,
            value: s.value,
            etag: s.etag,
            options: options(s.concurrency, s.consistency),
            metadata: metadata(s.metadata),
            // Parsed from the metadata by the runtime.
            ttl: Default::default(),
        }
    }
}

impl From<DeleteItem> for DeleteRequest {
    fn from(d: DeleteItem) -> Self {
        DeleteRequest {
            key: d.key,
            etag: d.etag,
            options: options(d.concurrency, d.consistency),
            metadata: metadata(d.metadata),
        }
    }
}

impl Host for DaprView {
    async fn get(
        &mut self,
        store: String,
        key: String,
        consistency_: Consistency,
        metadata_: Metadata,
    ) -> wasmtime::Result<Result<Option<Item>, Error>> {
        let request = GetRequest {
            key,
            consistency: consistency(consistency_),
            metadata: metadata(metadata_),
        };
        Ok(call(self, |api| api.get_state(&store, request))
            .await
            .map(|v| v.map(item)))
    }

    async fn get_bulk(
        &mut self,
        store: String,
        keys: Vec<String>,
        parallelism: u32,
        metadata_: Metadata,
    ) -> wasmtime::Result<Result<Vec<BulkItem>, Error>> {
        let items = call(self, |api| {
            api.get_bulk_state(&store, keys, parallelism as usize, metadata(metadata_))
        })
        .await;
        Ok(items.map(|items| {
            items
                .into_iter()
                .map(|BulkStateItem { key, value, error }| BulkItem {
                    key,
                    item: value.map(item),
                    error,
                })
                .collect()
        }))
    }

    async fn save(
        &mut self,
        store: String,
        items: Vec<SaveItem>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let items = items.into_iter().map(SetRequest::from).collect();
        Ok(call(self, |api| api.save_state(&store, items)).await)
    }

    async fn delete(
        &mut self,
        store: String,
        item: DeleteItem,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(call(self, |api| api.delete_state(&store, item.into())).await)
    }

    async fn transaction(
        &mut self,
        store: String,
        operations: Vec<Operation>,
        metadata_: Metadata,
    ) -> wasmtime::Result<Result<(), Error>> {
        let operations = operations
            .into_iter()
            .map(|op| match op {
                Operation::Upsert(s) => rt::Operation::Upsert(s.into()),
                Operation::Delete(d) => rt::Operation::Delete(d.into()),
            })
            .collect();
        Ok(call(self, |api| {
            api.transact_state(&store, operations, metadata(metadata_))
        })
        .await)
    }

    async fn query(
        &mut self,
        store: String,
        query: String,
        metadata_: Metadata,
    ) -> wasmtime::Result<Result<WitQueryResponse, Error>> {
        // The query arrives as text so the WIT stays free of a JSON type;
        // bad JSON is the same malformed-request error the HTTP API gives.
        let query: serde_json::Value = match serde_json::from_str(&query) {
            Ok(q) => q,
            Err(e) => {
                return Ok(Err(
                    ApiError::malformed(format!("invalid query JSON: {e}")).into()
                ));
            }
        };
        let response = call(self, |api| {
            api.query_state(&store, query, metadata(metadata_))
        })
        .await;
        Ok(
            response.map(|QueryResponse { results, token }| WitQueryResponse {
                results: results
                    .into_iter()
                    .map(|r| QueryItem {
                        key: r.key,
                        value: r.data,
                        etag: r.etag,
                    })
                    .collect(),
                token,
            }),
        )
    }
}
