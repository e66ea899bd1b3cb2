//! The embedded Dapr sidecar: components loaded from `--resources-path`
//! (or the embedded SQLite default), the runtime over them, and its HTTP and
//! gRPC front doors on their ports.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wasmdapr_api::ApiConfig;
use wasmdapr_host::outbound::{BoxBody, box_body};
use wasmdapr_host::{ByteSize, LocalDapr, LocalHttp};
use wasmdapr_runtime::{
    AppId, ComponentError, ComponentRegistry, ComponentSpec, Components, Runtime,
};

/// Where the default state store keeps its file, relative to the working directory.
pub const EMBEDDED_DIR: &str = ".wasmdapr";

/// Flags of the Dapr sidecar, named as `daprd`'s.
#[derive(Args, Clone)]
pub struct DaprArgs {
    /// A directory of Dapr component YAML. Repeatable. Without one, a SQLite
    /// state store named `statestore` is kept in `.wasmdapr/state.db`.
    #[arg(long = "resources-path", value_name = "DIR")]
    pub resources_paths: Vec<PathBuf>,
    /// Port of the Dapr HTTP API (0: any free port).
    #[arg(long, env = "DAPR_HTTP_PORT", default_value_t = 3500)]
    pub dapr_http_port: u16,
    /// Port of the Dapr gRPC API (0: any free port).
    #[arg(long, env = "DAPR_GRPC_PORT", default_value_t = 50001)]
    pub dapr_grpc_port: u16,
    /// Address the APIs listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub dapr_listen_address: IpAddr,
    /// Largest request body the APIs accept; larger ones get 413.
    #[arg(long, default_value = "4MiB")]
    pub max_body_size: ByteSize,
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// Component configuration.
    #[error(transparent)]
    Components(#[from] ComponentError),
    /// A port could not be opened.
    #[error("cannot listen on {addr} for the Dapr {api} API: {source}")]
    Listen {
        /// HTTP or gRPC.
        api: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("the Dapr {api} API stopped: {message}")]
    Serve {
        /// HTTP or gRPC.
        api: &'static str,
        /// Why.
        message: String,
    },
}

/// A running sidecar.
pub struct Sidecar {
    /// The runtime its APIs serve.
    pub runtime: Arc<Runtime>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// The HTTP API's router and settings, also served in-process to the
    /// app's outbound requests to `http_addr` (see [`Sidecar::local_dapr`]).
    http_router: axum::Router,
    api_token: Option<String>,
    tasks: tokio::task::JoinSet<Result<(), SidecarError>>,
}

/// The sidecar's axum router as the host's [`LocalHttp`]: one request is one
/// `oneshot` call, with no socket in between.
struct InProcessHttp(axum::Router);

impl LocalHttp for InProcessHttp {
    fn handle(
        &self,
        request: axum::http::Request<BoxBody>,
    ) -> Pin<Box<dyn Future<Output = axum::http::Response<BoxBody>> + Send + 'static>> {
        let router = self.0.clone();
        Box::pin(async move {
            let request = request.map(axum::body::Body::new);
            match router.oneshot(request).await {
                Ok(response) => response.map(box_body),
                Err(never) => match never {},
            }
        })
    }
}

/// The registry of every component type this binary has.
fn registry() -> ComponentRegistry {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    registry
}

impl Sidecar {
    /// Loads the components and starts both APIs.
    pub async fn start(app_id: AppId, args: &DaprArgs) -> Result<Self, SidecarError> {
        let specs = if args.resources_paths.is_empty() {
            vec![ComponentSpec::embedded_state_store(std::path::Path::new(
                EMBEDDED_DIR,
            ))]
        } else {
            ComponentSpec::load_dirs(&args.resources_paths)?
        };
        let components = Arc::new(Components::load(specs, &registry()).await?);
        let runtime = Arc::new(Runtime::new(app_id, components));
        let config = ApiConfig {
            api_token: std::env::var("DAPR_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            max_body_size: usize::try_from(args.max_body_size.0).unwrap_or(usize::MAX),
        };
        let bind = |api: &'static str, port: u16| {
            let addr = SocketAddr::new(args.dapr_listen_address, port);
            async move {
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SidecarError::Listen { api, addr, source })
            }
        };
        let http = bind("HTTP", args.dapr_http_port).await?;
        let grpc = bind("gRPC", args.dapr_grpc_port).await?;
        let local = |api, listener: &TcpListener, port| {
            listener
                .local_addr()
                .map_err(|source| SidecarError::Listen {
                    api,
                    addr: SocketAddr::new(args.dapr_listen_address, port),
                    source,
                })
        };
        let http_addr = local("HTTP", &http, args.dapr_http_port)?;
        let grpc_addr = local("gRPC", &grpc, args.dapr_grpc_port)?;
        let http_router = wasmdapr_api::http::router(runtime.clone(), config.clone());
        let api_token = config.api_token.clone().filter(|t| !t.is_empty());
        // Both servers stop when the runtime is asked to shut down.
        let stopped = |rt: &Arc<Runtime>| {
            let rt = rt.clone();
            async move { rt.shutdown_requested().await }
        };
        let failed = |api: &'static str| {
            move |e: std::io::Error| SidecarError::Serve {
                api,
                message: e.to_string(),
            }
        };
        let api: Arc<dyn wasmdapr_runtime::DaprApi> = runtime.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let http_server =
            wasmdapr_api::serve_http(http, api.clone(), config.clone(), stopped(&runtime));
        tasks.spawn(async move { http_server.await.map_err(failed("HTTP")) });
        let grpc_server = wasmdapr_api::serve_grpc(grpc, api, config, stopped(&runtime));
        tasks.spawn(async move { grpc_server.await.map_err(failed("gRPC")) });
        tracing::info!(%http_addr, %grpc_addr, app = %runtime.app_id(), "Dapr APIs listening");
        Ok(Self {
            runtime,
            http_addr,
            grpc_addr,
            http_router,
            api_token,
            tasks,
        })
    }

    /// The sidecar's HTTP API served in-process to a guest's outbound
    /// requests to [`Sidecar::http_addr`]: the same router as on the socket,
    /// with `dapr-api-token` added by the host. `implicit_grant` lets the
    /// app call it without an `--allow-host` for that address.
    pub fn local_dapr(&self, implicit_grant: bool) -> LocalDapr {
        LocalDapr {
            addr: self.http_addr,
            api_token: self.api_token.clone(),
            implicit_grant,
            handler: Arc::new(InProcessHttp(self.http_router.clone())),
        }
    }

    /// Runs until the shutdown API is called, Ctrl-C or SIGTERM arrives, or
    /// a server fails; then stops both servers gracefully.
    pub async fn wait(mut self) -> Result<(), SidecarError> {
        let signal = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    },
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        };
        let first = tokio::select! {
            _ = signal => None,
            _ = self.runtime.shutdown_requested() => None,
            done = self.tasks.join_next() => done,
        };
        wasmdapr_runtime::DaprApi::shutdown(&*self.runtime);
        if let Some(Ok(Err(error))) = first {
            return Err(error);
        }
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Err(error)) = done {
                return Err(error);
            }
        }
        Ok(())
    }
}
