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
//!
//! # Layout
//!
//! One file per WIT interface of a building block, each the `Host` impl of
//! [`DaprView`] for it: `state`, `invoke`, `pubsub`. What they share is here: the
//! one `bindgen!`, the view, the error value and `types` conversions. A new
//! block is a new interface in `wit/`, a new file, and one line in
//! [`add_to_linker`].

mod invoke;
mod pubsub;
mod state;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};

use wasmdapr_runtime::state as rt;
use wasmdapr_runtime::{ApiError, DaprApi, ErrorKind};

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "app",
        // Async: a state call awaits the backend (Redis, SQLite) without
        // blocking the executor. Trappable: the outer `wasmtime::Result`
        // carries traps, the inner `result<_, error>` what the guest sees.
        imports: { default: async | trappable | tracing },
        require_store_data_send: true,
        // A guest's subscription handle is the host's open streaming
        // subscription, held in the view's own resource table.
        with: {
            "wasmdapr:dapr/pubsub.subscription": super::pubsub::GuestSubscription,
        },
    });
}

pub use generated::wasmdapr::dapr::invoke::{Request as InvokeCall, Response as InvokeAnswer};
pub use generated::wasmdapr::dapr::state::{
    BulkItem, DeleteItem, Item, Operation, QueryItem, QueryResponse as WitQueryResponse, SaveItem,
};
pub use generated::wasmdapr::dapr::types::{Concurrency, Consistency, Error, Metadata};

/// What one instance sees of the Dapr API: the granted [`DaprApi`], or
/// none, and the Dapr resources it holds (its open subscriptions), which
/// end with the instance.
#[derive(Default)]
pub struct DaprView {
    api: Option<Arc<dyn DaprApi>>,
    /// The instance's Dapr resources. A table of its own rather than the
    /// store's WASI table: the view is all a Dapr import borrows. In a
    /// mutex only so the view is `Sync` (the imports' futures borrow it
    /// across awaits); it is reached through `&mut self`, never locked.
    table: std::sync::Mutex<ResourceTable>,
    /// How many subscriptions the instance holds open.
    subscriptions: usize,
}

impl DaprView {
    /// A view over `api`; `None` refuses every call with the
    /// [`ErrorKind::DaprNotGranted`] error value: its absence is an error the
    /// guest can report, not a trap or a missing import (the same component
    /// links whether or not it is granted Dapr).
    pub fn new(api: Option<Arc<dyn DaprApi>>) -> Self {
        Self {
            api,
            table: std::sync::Mutex::new(ResourceTable::new()),
            subscriptions: 0,
        }
    }

    /// The instance's resource table.
    fn table(&mut self) -> &mut ResourceTable {
        self.table
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The granted API, owned (for a call that outlives a borrow of the
    /// view).
    fn granted(&self) -> Result<Arc<dyn DaprApi>, Error> {
        self.api.clone().ok_or_else(not_granted)
    }

    fn api(&self) -> Result<&dyn DaprApi, Error> {
        self.api.as_deref().ok_or_else(not_granted)
    }
}

/// What every import answers without the grant.
fn not_granted() -> Error {
    ApiError::new(
        ErrorKind::DaprNotGranted,
        "this app was not granted the Dapr API",
    )
    .into()
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
    generated::wasmdapr::dapr::pubsub::add_to_linker::<T, HasSelf<DaprView>>(linker, view)?;
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

impl generated::wasmdapr::dapr::types::Host for DaprView {}
