//! The host side of `wit/` (`wasmdapr:dapr@0.1.0`): the Dapr building blocks
//! a guest imports, served in-process by a [`DaprApi`].
//!
//! Every import is a thin translation onto the same [`DaprApi`] the sidecar's
//! HTTP and gRPC APIs call, so a guest call runs the same code and gets the
//! same Dapr error code as an HTTP call would: an [`ApiError`] becomes the WIT
//! `error { code, message }` value. App id prefixes and component scopes apply
//! because the `DaprApi` the embedder grants is the app's own runtime.
//!
//! Two kinds of failure are kept apart, as in Wasmtime's `wasi-keyvalue`: a
//! failure the guest can handle is a WIT `error` value (inside `Ok` of the
//! outer `wasmtime::Result`), a host fault is a trap (the outer `Err`). Every
//! failure of the Dapr API is the former; nothing here traps today.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use wasmdapr_runtime::api::BulkStateItem;
use wasmdapr_runtime::state::query::QueryResponse;
use wasmdapr_runtime::state::{
    self as rt, DeleteRequest, GetRequest, SetRequest, StateOptions, StateValue,
};
use wasmdapr_runtime::{ApiError, DaprApi, ErrorKind, InvokeRequest};

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "app",
        // Async: a state call awaits the backend (Redis, SQLite) without
        // blocking the executor. Trappable: the outer `wasmtime::Result`
        // carries traps, the inner `result<_, error>` what the guest sees.
        imports: { default: async | trappable | tracing },
        require_store_data_send: true,
    });
}

pub use generated::wasmdapr::dapr::invoke::{Request as InvokeCall, Response as InvokeAnswer};
pub use generated::wasmdapr::dapr::state::{
    BulkItem, DeleteItem, Item, Operation, QueryItem, QueryResponse as WitQueryResponse, SaveItem,
};
pub use generated::wasmdapr::dapr::types::{Concurrency, Consistency, Error, Metadata};

/// What one instance sees of the Dapr API: the granted [`DaprApi`], or none.
#[derive(Clone, Default)]
pub struct DaprView {
    api: Option<Arc<dyn DaprApi>>,
}

impl DaprView {
    /// A view over `api`; `None` refuses every call with the
    /// [`ErrorKind::DaprNotGranted`] error value: its absence is an error the
    /// guest can report, not a trap or a missing import (the same component
    /// links whether or not it is granted Dapr).
    pub fn new(api: Option<Arc<dyn DaprApi>>) -> Self {
        Self { api }
    }

    fn api(&self) -> Result<&dyn DaprApi, Error> {
        self.api.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorKind::DaprNotGranted,
                "this app was not granted the Dapr API",
            )
            .into()
        })
    }
}

/// Adds the `wasmdapr:dapr` imports to `linker`; `view` picks each store's
/// [`DaprView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &mut DaprView,
) -> wasmtime::Result<()> {
    generated::wasmdapr::dapr::types::add_to_linker::<T, HasSelf<DaprView>>(linker, view)?;
    generated::wasmdapr::dapr::state::add_to_linker::<T, HasSelf<DaprView>>(linker, view)?;
    generated::wasmdapr::dapr::invoke::add_to_linker::<T, HasSelf<DaprView>>(linker, view)?;
    Ok(())
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error {
            code: e.code().to_owned(),
            status: e.http_status(),
            message: e.message,
        }
    }
}

/// Runs `call` against the granted API and turns its failure into the
/// guest-visible error value. Never a trap: every Dapr failure is the guest's
/// to handle.
async fn call<'a, R, F>(
    view: &'a DaprView,
    call: impl FnOnce(&'a dyn DaprApi) -> F,
) -> Result<R, Error>
where
    F: Future<Output = Result<R, ApiError>>,
{
    let api = view.api()?;
    call(api).await.map_err(|e| {
        tracing::debug!(code = e.code(), message = %e.message, "dapr call failed");
        Error::from(e)
    })
}

fn metadata(m: Metadata) -> rt::Metadata {
    m.into_iter().collect()
}

fn metadata_out(m: rt::Metadata) -> Metadata {
    let mut m: Metadata = m.into_iter().collect();
    // HashMap order is random; a stable order makes guest output reproducible.
    m.sort();
    m
}

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

impl generated::wasmdapr::dapr::types::Host for DaprView {}

impl generated::wasmdapr::dapr::state::Host for DaprView {
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

/// A guest's call as the runtime's [`InvokeRequest`]; a verb or header that
/// is not valid HTTP is the guest's malformed request.
fn invoke_request(call: InvokeCall) -> Result<InvokeRequest, ApiError> {
    let verb = http::Method::from_bytes(call.verb.as_bytes())
        .map_err(|_| ApiError::malformed(format!("`{}` is not an HTTP verb", call.verb)))?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in call.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::malformed(format!("`{name}` is not a header name")))?;
        let value = http::HeaderValue::from_str(&value)
            .map_err(|_| ApiError::malformed(format!("the value of `{name}` is not valid")))?;
        headers.append(name, value);
    }
    Ok(InvokeRequest {
        method: call.method,
        verb,
        query: call.query,
        headers,
        body: call.body.into(),
    })
}

impl generated::wasmdapr::dapr::invoke::Host for DaprView {
    async fn call(
        &mut self,
        app_id: String,
        request: InvokeCall,
    ) -> wasmtime::Result<Result<InvokeAnswer, Error>> {
        let request = match invoke_request(request) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        let response = call(self, |api| api.invoke(&app_id, request)).await;
        Ok(response.map(|response| {
            let (parts, body) = response.into_parts();
            InvokeAnswer {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            }
        }))
    }
}
