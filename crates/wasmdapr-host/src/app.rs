//! [`Host`] loads apps; an [`App`] is a pre-linked app ready to instantiate.
//!
//! Linking (resolving every import against the host's functions) happens once
//! per app in [`Host::load`], producing an `InstancePre`; each run then only
//! allocates a pooled slot, maps memory copy-on-write and calls the entry point.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use wasmdapr_runtime::AppId;

use crate::artifact::{self, ArtifactCache, ArtifactSource, Compiled};
use crate::capabilities::Capabilities;
use crate::dapr::{self, DaprView};
use crate::engine::{EngineConfig, ticks_for};
use crate::error::HostError;
use crate::experimental_http::{self, ExperimentalHttp};
use crate::limits::{Limits, MemoryLimitExceeded, MemoryLimiter};
use crate::outbound::OutboundHooks;
use crate::p1_writev;

/// Epoch deadline of a run without `--timeout`: far enough never to arrive,
/// small enough that Wasmtime's `current + delta` cannot overflow.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// How a [`Host`] is set up.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// The engine.
    pub engine: EngineConfig,
    /// Where compiled code is cached; `None` compiles on every load.
    pub cache: Option<ArtifactCache>,
}

/// Store data of a WASI preview 1 module.
pub(crate) struct ModuleState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    /// The `wasi_experimental_http` ABI under the app's outbound policy.
    http: ExperimentalHttp,
}

/// Store data of a WASI preview 2 component.
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    dapr: DaprView,
    http: WasiHttpCtx,
    http_hooks: OutboundHooks,
}

impl ComponentState {
    /// The store data of one component instance holding exactly `caps`,
    /// its memory capped at `limits.max_memory`.
    pub(crate) fn new(caps: &Capabilities, limits: Limits) -> Result<Self, HostError> {
        Ok(Self {
            wasi: caps.wasi_builder()?.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.max_memory),
            dapr: DaprView::new(caps.dapr.clone()),
            http: WasiHttpCtx::new(),
            http_hooks: OutboundHooks::new(caps.outbound.clone()),
        })
    }

    /// The store's memory limiter, for [`Store::limiter`].
    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The Wasm host: one engine, the linkers holding every host function, and
/// the compiled-code cache.
pub struct Host {
    engine: Engine,
    modules: wasmtime::Linker<ModuleState>,
    components: wasmtime::component::Linker<ComponentState>,
    cache: Option<ArtifactCache>,
}

impl Host {
    /// Builds the engine and the linkers.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let engine = config.engine.build()?;
        let linker_error = |e: wasmtime::Error| HostError::Engine(format!("{e:#}"));

        let mut modules = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |s: &mut ModuleState| &mut s.wasi)
            .map_err(linker_error)?;
        p1_writev::add_to_linker(&mut modules, |s: &mut ModuleState| &mut s.wasi)
            .map_err(linker_error)?;
        experimental_http::add_to_linker(&mut modules, |s: &mut ModuleState| &mut s.http)
            .map_err(linker_error)?;

        let mut components = wasmtime::component::Linker::new(&engine);
        // This includes `wasi:cli/exit.exit-with-code` (WASI 0.2.12), so a
        // component can exit with any status a preview 1 module can.
        wasmtime_wasi::p2::add_to_linker_async(&mut components).map_err(linker_error)?;
        // `wasi:http` only (the rest of WASI is linked above); whom a guest
        // may call is decided per request by its `OutboundHooks`.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut components)
            .map_err(linker_error)?;
        // The Dapr imports are always linked, granted or not, so one
        // component loads either way; without a grant every call is an error.
        dapr::add_to_linker(&mut components, |s: &mut ComponentState| &mut s.dapr)
            .map_err(linker_error)?;

        Ok(Self {
            engine,
            modules,
            components,
            cache: config.cache,
        })
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads and links the app at `path` under the id `app_id`.
    pub fn load(&self, path: &Path, app_id: &AppId) -> Result<App, HostError> {
        let (compiled, source) = artifact::load(&self.engine, self.cache.as_ref(), path)?;
        tracing::debug!(app = %app_id, path = %path.display(), ?source, "loaded app");
        let link_error = |e: wasmtime::Error| HostError::Link {
            app: app_id.to_string(),
            reason: format!("{e:#}"),
        };
        let entry = match compiled {
            Compiled::Module(module) => {
                Entry::Module(self.modules.instantiate_pre(&module).map_err(link_error)?)
            }
            Compiled::Component(component) => {
                let pre = self
                    .components
                    .instantiate_pre(&component)
                    .map_err(link_error)?;
                // A handler is served even when it also exports `wasi:cli/run`
                // (a Rust `bin` built for wasm32-wasip2 always does).
                if let Ok(handler) = ProxyPre::new(pre.clone()) {
                    Entry::Handler(handler)
                } else {
                    let command = CommandPre::new(pre).map_err(|e| HostError::NotRunnable {
                        app: app_id.to_string(),
                        reason: format!(
                            "it does not export `wasi:cli/run` (to run) \
                             or `wasi:http/incoming-handler` (to serve) ({e:#})"
                        ),
                    })?;
                    Entry::Command(command)
                }
            }
        };
        Ok(App {
            id: app_id.clone(),
            path: path.to_owned(),
            source,
            engine: self.engine.clone(),
            entry,
        })
    }

    /// Compiles the app at `path` ahead of time: the bytes of a `.cwasm` that
    /// [`Host::load`] accepts on an engine with the same settings.
    pub fn precompile(&self, path: &Path) -> Result<Vec<u8>, HostError> {
        artifact::precompile(&self.engine, path)
    }
}

enum Entry {
    /// A WASI preview 1 module: its start section runs on instantiation, then `_start` if exported.
    Module(wasmtime::InstancePre<ModuleState>),
    /// A WASI preview 2 component exporting `wasi:cli/run`.
    Command(CommandPre<ComponentState>),
    /// A WASI preview 2 component exporting `wasi:http/incoming-handler`:
    /// served by a [`crate::WasmApp`], one instance per request.
    Handler(ProxyPre<ComponentState>),
}

/// A loaded, linked app. Cheap to run many times, from many tasks at once.
pub struct App {
    id: AppId,
    path: PathBuf,
    source: ArtifactSource,
    engine: Engine,
    entry: Entry,
}

impl App {
    /// The app id.
    pub fn id(&self) -> &AppId {
        &self.id
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether its code was compiled, taken from the cache, or precompiled.
    pub fn source(&self) -> ArtifactSource {
        self.source
    }

    /// Whether the app is an HTTP handler (it exports
    /// `wasi:http/incoming-handler`) to serve with a [`crate::WasmApp`]
    /// rather than to [`App::run`].
    pub fn is_handler(&self) -> bool {
        matches!(self.entry, Entry::Handler(_))
    }

    /// The pre-linked handler, when the app is one.
    pub(crate) fn handler(&self) -> Option<&ProxyPre<ComponentState>> {
        match &self.entry {
            Entry::Handler(pre) => Some(pre),
            _ => None,
        }
    }

    /// Runs the app to completion in a fresh instance and returns its exit code.
    ///
    /// An exit through `proc_exit` / `wasi:cli/exit` is a normal return with
    /// that code; a `wasi:cli/run` that returns `err` is exit code 1. Traps and
    /// limits are errors.
    pub async fn run(&self, caps: &Capabilities, limits: Limits) -> Result<i32, HostError> {
        let outcome = match &self.entry {
            Entry::Module(pre) => {
                let mut builder = caps.wasi_builder()?;
                let state = ModuleState {
                    wasi: builder.build_p1(),
                    limiter: MemoryLimiter::new(limits.max_memory),
                    http: ExperimentalHttp::new(caps.outbound.clone()),
                };
                let mut store = self.store(state, limits.timeout);
                store.limiter(|s| &mut s.limiter);
                with_timeout(limits.timeout, run_module(pre, &mut store)).await
            }
            Entry::Command(pre) => {
                let state = ComponentState::new(caps, limits)?;
                let mut store = self.store(state, limits.timeout);
                store.limiter(|s| &mut s.limiter);
                with_timeout(limits.timeout, run_command(pre, &mut store)).await
            }
            Entry::Handler(_) => {
                return Err(HostError::NotRunnable {
                    app: self.id.to_string(),
                    reason: "it is an HTTP handler (`wasi:http/incoming-handler`), \
                             which is served, not run to completion"
                        .into(),
                });
            }
        };
        match outcome {
            Some(Ok(code)) => Ok(code),
            Some(Err(error)) => self.classify(error, limits),
            None => Err(HostError::Timeout {
                app: self.id.to_string(),
                limit: limits.timeout.unwrap_or_default(),
            }),
        }
    }

    fn store<T>(&self, state: T, timeout: Option<Duration>) -> Store<T> {
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(timeout.map_or(NO_DEADLINE, ticks_for));
        store.epoch_deadline_trap();
        store
    }

    /// Sorts a failed run into exit, limit, or trap.
    pub(crate) fn classify(
        &self,
        error: wasmtime::Error,
        limits: Limits,
    ) -> Result<i32, HostError> {
        if let Some(exit) = find::<I32Exit>(&error) {
            return Ok(exit.0);
        }
        let app = self.id.to_string();
        if find::<MemoryLimitExceeded>(&error).is_some() {
            return Err(HostError::MemoryLimit {
                app,
                limit: limits.max_memory,
            });
        }
        let trap = find::<Trap>(&error);
        if let (Some(Trap::Interrupt), Some(limit)) = (trap, limits.timeout) {
            return Err(HostError::Timeout { app, limit });
        }
        let message = match trap {
            Some(trap) => trap.to_string(),
            // A host function failed in a way that ends the guest: report the
            // whole cause chain.
            None => format!("{:#}", error),
        };
        // Wasmtime attaches the backtrace as context of the top-level error.
        let backtrace = error
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| {
                let text = bt.to_string();
                text.strip_prefix("error while executing at ")
                    .map(str::to_owned)
                    .unwrap_or(text)
            })
            .filter(|bt| !bt.trim().is_empty());
        Err(HostError::Trap {
            app,
            message,
            backtrace,
        })
    }
}

async fn run_module(
    pre: &wasmtime::InstancePre<ModuleState>,
    store: &mut Store<ModuleState>,
) -> wasmtime::Result<i32> {
    // Instantiation runs the start section: for apps built like the
    // AssemblyScript prototype, that is the whole program.
    let instance = pre.instantiate_async(&mut *store).await?;
    if let Some(start) = instance.get_func(&mut *store, "_start") {
        let start = start.typed::<(), ()>(&*store)?;
        start.call_async(&mut *store, ()).await?;
    }
    Ok(0)
}

async fn run_command(
    pre: &CommandPre<ComponentState>,
    store: &mut Store<ComponentState>,
) -> wasmtime::Result<i32> {
    let command = pre.instantiate_async(&mut *store).await?;
    let result = command.wasi_cli_run().call_run(&mut *store).await?;
    Ok(if result.is_ok() { 0 } else { 1 })
}

/// Runs `future` under the wall-clock limit. Epoch interruption stops guest
/// *code*; this also stops a guest blocked in a host call (a long sleep, a
/// read), by dropping the run, which Wasmtime supports at any await point.
async fn with_timeout<F: Future>(timeout: Option<Duration>, future: F) -> Option<F::Output> {
    match timeout {
        Some(limit) => tokio::time::timeout(limit, future).await.ok(),
        None => Some(future.await),
    }
}

/// Finds an error of type `E` in `error` or its cause chain.
fn find<E: std::error::Error + Send + Sync + 'static>(error: &wasmtime::Error) -> Option<&E> {
    error
        .downcast_ref::<E>()
        .or_else(|| error.chain().find_map(|cause| cause.downcast_ref::<E>()))
}
