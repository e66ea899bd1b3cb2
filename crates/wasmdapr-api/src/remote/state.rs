//! The state calls, over `GetState`, `GetBulkState`, `SaveState`,
//! `DeleteState`, `DeleteBulkState`, `ExecuteStateTransaction` and
//! `QueryStateAlpha1`.

use async_trait::async_trait;
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::api::BulkStateItem;
use wasmdapr_runtime::api::StateApi;
use wasmdapr_runtime::state::query::{QueryItem, QueryResponse};
use wasmdapr_runtime::state::{
    Concurrency, Consistency, DeleteRequest, GetRequest, Metadata, Operation, SetRequest,
    StateOptions, StateValue,
};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{RemoteDapr, api_error};

fn concurrency(c: Concurrency) -> i32 {
    match c {
        Concurrency::Unspecified => 0,
        Concurrency::FirstWrite => 1,
        Concurrency::LastWrite => 2,
    }
}

fn consistency(c: Consistency) -> i32 {
    match c {
        Consistency::Unspecified => 0,
        Consistency::Eventual => 1,
        Consistency::Strong => 2,
    }
}

fn options(o: StateOptions) -> Option<common::StateOptions> {
    (o != StateOptions::default()).then(|| common::StateOptions {
        concurrency: concurrency(o.concurrency),
        consistency: consistency(o.consistency),
    })
}

fn etag(etag: Option<String>) -> Option<common::Etag> {
    etag.map(|value| common::Etag { value })
}

fn optional(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn set_item(r: SetRequest) -> common::StateItem {
    common::StateItem {
        key: r.key,
        value: r.value,
        etag: etag(r.etag),
        metadata: r.metadata,
        options: options(r.options),
    }
}

fn delete_item(r: DeleteRequest) -> common::StateItem {
    common::StateItem {
        key: r.key,
        value: Vec::new(),
        etag: etag(r.etag),
        metadata: r.metadata,
        options: options(r.options),
    }
}

#[async_trait]
impl StateApi for RemoteDapr {
    async fn get_state(&self, store: &str, r: GetRequest) -> Result<Option<StateValue>, ApiError> {
        let response = self
            .client
            .clone()
            .get_state(self.request(runtime::GetStateRequest {
                store_name: store.to_owned(),
                key: r.key,
                consistency: consistency(r.consistency),
                metadata: r.metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateGet))?
            .into_inner();
        // Dapr answers a missing key with an empty response.
        if response.data.is_empty() && response.etag.is_empty() {
            return Ok(None);
        }
        Ok(Some(StateValue {
            data: response.data,
            etag: optional(response.etag),
            metadata: response.metadata,
        }))
    }

    async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
        parallelism: usize,
        metadata: Metadata,
    ) -> Result<Vec<BulkStateItem>, ApiError> {
        let response = self
            .client
            .clone()
            .get_bulk_state(self.request(runtime::GetBulkStateRequest {
                store_name: store.to_owned(),
                keys,
                parallelism: i32::try_from(parallelism).unwrap_or(i32::MAX),
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateBulkGet))?
            .into_inner();
        Ok(response
            .items
            .into_iter()
            .map(|item| {
                let present = !(item.data.is_empty() && item.etag.is_empty());
                BulkStateItem {
                    key: item.key,
                    value: present.then(|| StateValue {
                        data: item.data,
                        etag: optional(item.etag),
                        metadata: item.metadata,
                    }),
                    error: optional(item.error),
                }
            })
            .collect())
    }

    async fn save_state(&self, store: &str, items: Vec<SetRequest>) -> Result<(), ApiError> {
        self.client
            .clone()
            .save_state(self.request(runtime::SaveStateRequest {
                store_name: store.to_owned(),
                states: items.into_iter().map(set_item).collect(),
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateSave))?;
        Ok(())
    }

    async fn delete_state(&self, store: &str, r: DeleteRequest) -> Result<(), ApiError> {
        self.client
            .clone()
            .delete_state(self.request(runtime::DeleteStateRequest {
                store_name: store.to_owned(),
                key: r.key,
                etag: etag(r.etag),
                options: options(r.options),
                metadata: r.metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateDelete))?;
        Ok(())
    }

    async fn delete_bulk_state(
        &self,
        store: &str,
        requests: Vec<DeleteRequest>,
    ) -> Result<(), ApiError> {
        self.client
            .clone()
            .delete_bulk_state(self.request(runtime::DeleteBulkStateRequest {
                store_name: store.to_owned(),
                states: requests.into_iter().map(delete_item).collect(),
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateBulkDelete))?;
        Ok(())
    }

    async fn transact_state(
        &self,
        store: &str,
        operations: Vec<Operation>,
        metadata: Metadata,
    ) -> Result<(), ApiError> {
        let operations = operations
            .into_iter()
            .map(|op| match op {
                Operation::Upsert(r) => runtime::TransactionalStateOperation {
                    operation_type: "upsert".into(),
                    request: Some(set_item(r)),
                },
                Operation::Delete(r) => runtime::TransactionalStateOperation {
                    operation_type: "delete".into(),
                    request: Some(delete_item(r)),
                },
            })
            .collect();
        self.client
            .clone()
            .execute_state_transaction(self.request(runtime::ExecuteStateTransactionRequest {
                store_name: store.to_owned(),
                operations,
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateTransaction))?;
        Ok(())
    }

    async fn query_state(
        &self,
        store: &str,
        query: serde_json::Value,
        metadata: Metadata,
    ) -> Result<QueryResponse, ApiError> {
        let response = self
            .client
            .clone()
            .query_state_alpha1(self.request(runtime::QueryStateRequest {
                store_name: store.to_owned(),
                query: query.to_string(),
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateQuery))?
            .into_inner();
        Ok(QueryResponse {
            results: response
                .results
                .into_iter()
                .map(|r| QueryItem {
                    key: r.key,
                    data: r.data,
                    etag: optional(r.etag),
                })
                .collect(),
            token: optional(response.token),
        })
    }
}
