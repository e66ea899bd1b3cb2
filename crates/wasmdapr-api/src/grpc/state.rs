//! The state API's methods: `GetState`, `GetBulkState`, `SaveState`,
//! `DeleteState`, `DeleteBulkState`, `ExecuteStateTransaction`,
//! `QueryStateAlpha1`.

use std::collections::HashMap;

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::ApiError;
use wasmdapr_runtime::error::echo;
use wasmdapr_runtime::state::{
    Concurrency, Consistency, DeleteRequest, GetRequest, Operation, SetRequest, StateOptions, Ttl,
};

use super::GrpcApi;

fn concurrency(value: i32) -> Result<Concurrency, ApiError> {
    match value {
        0 => Ok(Concurrency::Unspecified),
        1 => Ok(Concurrency::FirstWrite),
        2 => Ok(Concurrency::LastWrite),
        other => Err(ApiError::malformed(format!(
            "concurrency {other} is not a StateConcurrency value"
        ))),
    }
}

fn consistency(value: i32) -> Result<Consistency, ApiError> {
    match value {
        0 => Ok(Consistency::Unspecified),
        1 => Ok(Consistency::Eventual),
        2 => Ok(Consistency::Strong),
        other => Err(ApiError::malformed(format!(
            "consistency {other} is not a StateConsistency value"
        ))),
    }
}

fn options(options: Option<common::StateOptions>) -> Result<StateOptions, ApiError> {
    let options = options.unwrap_or_default();
    Ok(StateOptions {
        concurrency: concurrency(options.concurrency)?,
        consistency: consistency(options.consistency)?,
    })
}

/// An ETag message: absent or empty means none.
fn etag(etag: Option<common::Etag>) -> Option<String> {
    etag.map(|e| e.value).filter(|e| !e.is_empty())
}

/// Keys are the runtime's to check (empty, or forging another app's
/// prefix), with the error it gives every door.
fn set_request(item: common::StateItem) -> Result<SetRequest, ApiError> {
    Ok(SetRequest {
        key: item.key,
        value: item.value,
        etag: etag(item.etag),
        options: options(item.options)?,
        metadata: item.metadata,
        // Parsed from the metadata by the runtime.
        ttl: Ttl::Unset,
    })
}

fn delete_request(item: common::StateItem) -> Result<DeleteRequest, ApiError> {
    Ok(DeleteRequest {
        key: item.key,
        etag: etag(item.etag),
        options: options(item.options)?,
        metadata: item.metadata,
    })
}

/// The state methods, from request message to response message; the
/// `Dapr` impl in `grpc/mod.rs` wraps them.
impl GrpcApi {
    pub(super) async fn get_state(
        &self,
        r: runtime::GetStateRequest,
    ) -> Result<runtime::GetStateResponse, ApiError> {
        let request = GetRequest {
            key: r.key,
            consistency: consistency(r.consistency)?,
            metadata: r.metadata,
        };
        // A missing key is an empty response, as in Dapr.
        Ok(match self.api.get_state(&r.store_name, request).await? {
            Some(v) => runtime::GetStateResponse {
                data: v.data,
                etag: v.etag.unwrap_or_default(),
                metadata: v.metadata,
            },
            None => runtime::GetStateResponse::default(),
        })
    }

    pub(super) async fn get_bulk_state(
        &self,
        r: runtime::GetBulkStateRequest,
    ) -> Result<runtime::GetBulkStateResponse, ApiError> {
        let parallelism = usize::try_from(r.parallelism).unwrap_or(0);
        let items = self
            .api
            .get_bulk_state(&r.store_name, r.keys, parallelism, r.metadata)
            .await?;
        let items = items
            .into_iter()
            .map(|item| {
                let value = item
                    .value
                    .unwrap_or_else(|| wasmdapr_runtime::state::StateValue {
                        data: Vec::new(),
                        etag: None,
                        metadata: HashMap::new(),
                    });
                runtime::BulkStateItem {
                    key: item.key,
                    data: value.data,
                    etag: value.etag.unwrap_or_default(),
                    error: item.error.unwrap_or_default(),
                    metadata: value.metadata,
                }
            })
            .collect();
        Ok(runtime::GetBulkStateResponse { items })
    }

    pub(super) async fn save_state(&self, r: runtime::SaveStateRequest) -> Result<(), ApiError> {
        // Every item is checked before any is written.
        let items = r
            .states
            .into_iter()
            .map(set_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.api.save_state(&r.store_name, items).await
    }

    pub(super) async fn delete_state(
        &self,
        r: runtime::DeleteStateRequest,
    ) -> Result<(), ApiError> {
        let request = DeleteRequest {
            key: r.key,
            etag: etag(r.etag),
            options: options(r.options)?,
            metadata: r.metadata,
        };
        self.api.delete_state(&r.store_name, request).await
    }

    pub(super) async fn delete_bulk_state(
        &self,
        r: runtime::DeleteBulkStateRequest,
    ) -> Result<(), ApiError> {
        let requests = r
            .states
            .into_iter()
            .map(delete_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.api.delete_bulk_state(&r.store_name, requests).await
    }

    pub(super) async fn execute_state_transaction(
        &self,
        r: runtime::ExecuteStateTransactionRequest,
    ) -> Result<(), ApiError> {
        let operations = r
            .operations
            .into_iter()
            .map(|op| {
                let item = op.request.ok_or_else(|| {
                    ApiError::malformed(format!(
                        "the `{}` operation has no request",
                        echo(&op.operation_type)
                    ))
                })?;
                match op.operation_type.as_str() {
                    "upsert" => set_request(item).map(Operation::Upsert),
                    "delete" => delete_request(item).map(Operation::Delete),
                    other => Err(ApiError::malformed(format!(
                        "operation type `{}` is not supported (upsert, delete)",
                        echo(other)
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.api
            .transact_state(&r.store_name, operations, r.metadata)
            .await
    }

    pub(super) async fn query_state_alpha1(
        &self,
        r: runtime::QueryStateRequest,
    ) -> Result<runtime::QueryStateResponse, ApiError> {
        let query = serde_json::from_str(&r.query)
            .map_err(|e| ApiError::malformed(format!("the query is not JSON: {e}")))?;
        let response = self
            .api
            .query_state(&r.store_name, query, r.metadata)
            .await?;
        Ok(runtime::QueryStateResponse {
            results: response
                .results
                .into_iter()
                .map(|item| runtime::QueryStateItem {
                    key: item.key,
                    data: item.data,
                    etag: item.etag.unwrap_or_default(),
                    error: String::new(),
                })
                .collect(),
            token: response.token.unwrap_or_default(),
            metadata: HashMap::new(),
        })
    }
}
