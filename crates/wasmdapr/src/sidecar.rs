//! The embedded Dapr sidecar: components loaded from `--resources-path`
//! (or the embedded SQLite default), the runtime over them, and its HTTP and
//! gRPC front doors on their ports; name resolution (`--config`, else the
//! shared SQLite default) so it can invoke other apps and be found by them;
//! the internal endpoint other sidecars call it on (mutual TLS, with the
//! trust bundle of `--enable-mtls` or the machine-local one); and, for
//! `wasmdapr sidecar --app-port`, the [`HttpApp`] it delivers to.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wasmdapr_api::http_app::{HealthCheck, HttpAppConfig};
use wasmdapr_api::internal::certs::{CertError, LOCAL_CERT_VALIDITY};
use wasmdapr_api::internal::identity::{DEFAULT_NAMESPACE, DEFAULT_TRUST_DOMAIN, IdentityError};
use wasmdapr_api::internal::{CertificateAuthority, SidecarIdentity};
use wasmdapr_api::{ApiConfig, HttpApp, InternalClient};
use wasmdapr_components::nameresolution::sqlite::SqliteNameResolver;
use wasmdapr_host::limits::parse_duration;
use wasmdapr_host::outbound::{BoxBody, box_body};
use wasmdapr_host::{ByteSize, LocalDapr, LocalHttp};
use wasmdapr_runtime::api::{AppConnectionProperties, AppHealthProperties};
use wasmdapr_runtime::configuration::Configuration;
use wasmdapr_runtime::nameresolution::NameResolutionError;
use wasmdapr_runtime::{
    AppId, ComponentError, ComponentRegistry, ComponentSpec, Components, Runtime,
};
use wasmdapr_runtime::{ChannelError, NameResolver, RemoteInvocation};

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
    /// Port of the internal gRPC endpoint other sidecars call this one on
    /// (0: any free port). It listens on `--dapr-listen-address` too, and is
    /// what name resolution announces.
    #[arg(long, env = "DAPR_INTERNAL_GRPC_PORT", default_value_t = 50002)]
    pub dapr_internal_grpc_port: u16,
    /// Address the APIs listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub dapr_listen_address: IpAddr,
    /// Authenticate sidecars to each other with the trust bundle given by
    /// `--trust-anchors-file`, `--cert-chain-file` and `--cert-key-file`
    /// (or `DAPR_TRUST_ANCHORS`, `DAPR_CERT_CHAIN`, `DAPR_CERT_KEY` holding
    /// the PEM text), e.g. made by `wasmdapr certs`. Without it, the
    /// sidecars of one user on one machine share a bundle created
    /// automatically under `$XDG_DATA_HOME/wasmdapr/trust`.
    #[arg(long)]
    pub enable_mtls: bool,
    /// The trust anchors (CA certificates, PEM; Dapr's `ca.crt`).
    #[arg(long, value_name = "FILE", requires = "enable_mtls")]
    pub trust_anchors_file: Option<PathBuf>,
    /// This sidecar's certificate chain (PEM, its own certificate first),
    /// with the SPIFFE id `spiffe://<trust-domain>/ns/<namespace>/<app-id>`.
    #[arg(long, value_name = "FILE", requires = "enable_mtls")]
    pub cert_chain_file: Option<PathBuf>,
    /// The private key of that certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "enable_mtls")]
    pub cert_key_file: Option<PathBuf>,
    /// Largest request body the APIs accept; larger ones get 413.
    #[arg(long, default_value = "4MiB")]
    pub max_body_size: ByteSize,
    /// A Dapr Configuration resource (YAML); its `spec.nameResolution`
    /// chooses how app ids are resolved for service invocation. Without
    /// one, every wasmdapr process of the user shares a SQLite file
    /// (`$XDG_DATA_HOME/wasmdapr/nameresolution.db`, else
    /// `~/.local/share/wasmdapr/nameresolution.db`).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Timeouts and connection bound of the HTTP servers.
    #[command(flatten)]
    pub http_server: crate::serve::HttpServerArgs,
}

/// How `wasmdapr sidecar` reaches its app, named as `daprd`'s flags.
#[derive(Args, Clone, Debug)]
pub struct AppArgs {
    /// The port the app listens on; without it the sidecar has no app
    /// (it can still invoke others).
    #[arg(long)]
    pub app_port: Option<u16>,
    /// The app's protocol; only `http` is supported.
    #[arg(long, default_value = "http", value_parser = ["http"])]
    pub app_protocol: String,
    /// The address the app listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub app_channel_address: IpAddr,
    /// Also wait for the app's health path to answer 2xx before announcing
    /// the app (the port must accept connections in any case).
    #[arg(long)]
    pub enable_app_health_check: bool,
    /// The path of the app's health check.
    #[arg(long, default_value = wasmdapr_api::http_app::DEFAULT_HEALTH_PATH)]
    pub app_health_check_path: String,
    /// Time between health probes: whole seconds, as daprd's flag, or a
    /// duration (`500ms`).
    #[arg(long, value_parser = seconds_or_duration, default_value = "5")]
    pub app_health_probe_interval: std::time::Duration,
    /// The longest one health probe may take: milliseconds, as daprd's
    /// flag, or a duration (`1s`).
    #[arg(long, value_parser = millis_or_duration, default_value = "500")]
    pub app_health_probe_timeout: std::time::Duration,
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
    /// The app on `--app-port` could not be set up.
    #[error("the app: {0}")]
    App(#[from] ChannelError),
    /// The app could not be announced in (or withdrawn from) name resolution.
    #[error(transparent)]
    NameResolution(#[from] NameResolutionError),
    /// The identity of `--enable-mtls` is missing or unusable.
    #[error("mTLS: {0}")]
    Mtls(String),
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
    /// Where the internal endpoint listens (none without an identity).
    pub internal_addr: Option<SocketAddr>,
    /// The HTTP API's router and settings, also served in-process to the
    /// app's outbound requests to `http_addr` (see [`Sidecar::local_dapr`]).
    http_router: axum::Router,
    api_token: Option<String>,
    /// `--max-body-size`, also the largest answer taken from the app.
    max_body_size: usize,
    /// Where this sidecar announces its app and resolves others.
    name_resolver: Option<Arc<dyn NameResolver>>,
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

/// daprd's whole seconds (`5`), or a duration with a unit (`1500ms`).
fn seconds_or_duration(value: &str) -> Result<std::time::Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(seconds) => Ok(std::time::Duration::from_secs(seconds)),
        Err(_) => parse_duration(value),
    }
}

/// daprd's whole milliseconds (`500`), or a duration with a unit (`1s`).
fn millis_or_duration(value: &str) -> Result<std::time::Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(millis) => Ok(std::time::Duration::from_millis(millis)),
        Err(_) => parse_duration(value),
    }
}

/// The name resolver of `--config`'s `spec.nameResolution`, else the
/// SQLite default shared by every wasmdapr process of the user. A configured
/// resolver that cannot be opened is a configuration error; the default
/// failing (no home directory, read-only disk) only disables invoking other
/// apps, with a warning.
async fn name_resolver(
    config: Option<&std::path::Path>,
) -> Result<Option<Arc<dyn NameResolver>>, SidecarError> {
    let configured = match config {
        Some(path) => Configuration::load(path)?.name_resolution,
        None => None,
    };
    if let Some(spec) = configured {
        return Ok(Some(
            wasmdapr_components::nameresolution::open(&spec).await?,
        ));
    }
    let Some(dir) = SqliteNameResolver::default_dir() else {
        tracing::warn!("no home directory: other apps cannot be invoked (pass --config)");
        return Ok(None);
    };
    match SqliteNameResolver::open(&SqliteNameResolver::default_spec(&dir)).await {
        Ok(resolver) => Ok(Some(Arc::new(resolver))),
        Err(error) => {
            tracing::warn!(%error, "default name resolution unavailable: other apps cannot be invoked");
            Ok(None)
        }
    }
}

/// The identity of this sidecar on the internal endpoint: the files (or
/// environment) of `--enable-mtls`, whose certificate must be this app's;
/// else a certificate issued at start from the machine-local trust bundle,
/// which every sidecar of the user shares with no configuration. Without a
/// home directory there is no local bundle: the sidecar then neither calls
/// nor accepts other sidecars (with a warning), as without name resolution.
fn identity(app_id: &AppId, args: &DaprArgs) -> Result<Option<SidecarIdentity>, SidecarError> {
    let mtls = |e: IdentityError| SidecarError::Mtls(e.to_string());
    if args.enable_mtls {
        let pem = |file: &Option<PathBuf>, flag: &str, env: &str| match file {
            Some(path) => std::fs::read(path)
                .map_err(|e| SidecarError::Mtls(format!("{flag} {}: {e}", path.display()))),
            None => std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .map(String::into_bytes)
                .ok_or_else(|| SidecarError::Mtls(format!("--enable-mtls needs {flag} or {env}"))),
        };
        let identity = SidecarIdentity::from_pem(
            &pem(
                &args.trust_anchors_file,
                "--trust-anchors-file",
                "DAPR_TRUST_ANCHORS",
            )?,
            &pem(
                &args.cert_chain_file,
                "--cert-chain-file",
                "DAPR_CERT_CHAIN",
            )?,
            &pem(&args.cert_key_file, "--cert-key-file", "DAPR_CERT_KEY")?,
        )
        .map_err(mtls)?;
        if &identity.id.app_id != app_id {
            return Err(SidecarError::Mtls(format!(
                "the certificate is {}, not of app '{app_id}'",
                identity.id
            )));
        }
        return Ok(Some(identity));
    }
    let Some(dir) = SqliteNameResolver::default_dir() else {
        tracing::warn!(
            "no home directory: no machine-local trust bundle, other sidecars cannot be called (pass --enable-mtls)"
        );
        return Ok(None);
    };
    let namespace = std::env::var("NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let local = CertificateAuthority::local(&dir.join("trust"), DEFAULT_TRUST_DOMAIN)
        .and_then(|ca| ca.identity(&namespace, app_id, LOCAL_CERT_VALIDITY));
    match local {
        Ok(identity) => Ok(Some(identity)),
        Err(CertError::Identity(e)) => Err(mtls(e)),
        Err(error) => {
            tracing::warn!(%error, "machine-local trust bundle unavailable: other sidecars cannot be called (pass --enable-mtls)");
            Ok(None)
        }
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
        let registry = registry();
        // Opening the name resolution database and issuing the sidecar's
        // certificate (key generation, on the blocking pool) overlap
        // loading the components, so they add little to a cold start.
        let identity = {
            let (app_id, args) = (app_id.clone(), args.clone());
            tokio::task::spawn_blocking(move || identity(&app_id, &args))
        };
        let (components, name_resolver, identity) = tokio::join!(
            Components::load(specs, &registry),
            name_resolver(args.config.as_deref()),
            identity
        );
        let (components, name_resolver) = (Arc::new(components?), name_resolver?);
        let identity = identity.map_err(|e| SidecarError::Mtls(e.to_string()))??;
        let config = ApiConfig {
            api_token: std::env::var("DAPR_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            max_body_size: usize::try_from(args.max_body_size.0).unwrap_or(usize::MAX),
            server: args.http_server.limits(),
        };
        let max_body_size = config.max_body_size;
        let mut runtime = Runtime::new(app_id, components);
        if let (Some(resolver), Some(identity)) = (&name_resolver, &identity) {
            let invoker = InternalClient::new(identity.clone(), config.max_body_size);
            runtime = runtime.with_remote_invocation(RemoteInvocation {
                resolver: resolver.clone(),
                invoker: Arc::new(invoker),
            });
        }
        let runtime = Arc::new(runtime);
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
        let internal = match &identity {
            Some(_) => Some(bind("internal gRPC", args.dapr_internal_grpc_port).await?),
            None => None,
        };
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
        let internal_addr = internal
            .as_ref()
            .map(|l| local("internal gRPC", l, args.dapr_internal_grpc_port))
            .transpose()?;
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
        let grpc_server = wasmdapr_api::serve_grpc(grpc, api, config.clone(), stopped(&runtime));
        tasks.spawn(async move { grpc_server.await.map_err(failed("gRPC")) });
        if let (Some(listener), Some(identity)) = (internal, identity) {
            let (runtime, stop) = (runtime.clone(), stopped(&runtime));
            tasks.spawn(async move {
                wasmdapr_api::internal::serve_internal(listener, runtime, &identity, &config, stop)
                    .await
                    .map_err(failed("internal gRPC"))
            });
        }
        tracing::info!(%http_addr, %grpc_addr, app = %runtime.app_id(), "Dapr APIs listening");
        Ok(Self {
            runtime,
            http_addr,
            grpc_addr,
            internal_addr,
            http_router,
            api_token,
            max_body_size,
            name_resolver,
            tasks,
        })
    }

    /// Connects the app on `--app-port` (if any): waits until it is ready
    /// (its port open and, with `--enable-app-health-check`, its health
    /// path answering 2xx) and makes it this runtime's app channel. The
    /// app token is `APP_API_TOKEN`, as with `daprd`.
    pub async fn connect_http_app(&self, args: &AppArgs) -> Result<(), SidecarError> {
        let Some(port) = args.app_port else {
            return Ok(());
        };
        // `/v1.0/healthz` answers 500 until the app is connected, as daprd's.
        self.runtime.expect_app();
        self.runtime.set_app_connection(AppConnectionProperties {
            port,
            protocol: args.app_protocol.clone(),
            channel_address: args.app_channel_address.to_string(),
            max_concurrency: 0,
            health: args.enable_app_health_check.then(|| {
                AppHealthProperties::new(
                    &args.app_health_check_path,
                    args.app_health_probe_interval,
                    args.app_health_probe_timeout,
                    0,
                )
            }),
        });
        let app = HttpApp::new(HttpAppConfig {
            app_id: self.runtime.app_id().clone(),
            address: SocketAddr::new(args.app_channel_address, port),
            app_token: std::env::var("APP_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            health: args.enable_app_health_check.then(|| HealthCheck {
                path: args.app_health_check_path.clone(),
                interval: args.app_health_probe_interval,
                timeout: args.app_health_probe_timeout,
            }),
            max_body_size: self.max_body_size,
        })?;
        // Like daprd, wait as long as the app takes to come up (logging
        // while waiting); Ctrl-C ends the wait.
        tokio::select! {
            ready = app.wait_ready(None) => ready?,
            _ = self.runtime.shutdown_requested() => return Ok(()),
        }
        if self.runtime.set_app_channel(Arc::new(app)).is_err() {
            tracing::warn!("an app channel was already connected; --app-port is ignored");
        }
        Ok(())
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
    ///
    /// While it runs, the app is announced in name resolution (so other
    /// sidecars can invoke it); on a clean stop it is withdrawn.
    pub async fn wait(mut self) -> Result<(), SidecarError> {
        if let (Some(resolver), Some(internal_addr)) = (&self.name_resolver, self.internal_addr) {
            // Other sidecars call the internal endpoint. Listening on every
            // address: announce loopback, which other sidecars on this
            // machine (the SQLite resolver's scope) reach.
            let mut announced = internal_addr;
            if announced.ip().is_unspecified() {
                announced.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            resolver
                .register(self.runtime.app_id(), &announced.to_string())
                .await?;
        }
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
        wasmdapr_runtime::api::MetadataApi::shutdown(&*self.runtime);
        if let Some(resolver) = &self.name_resolver
            && let Err(error) = resolver.deregister().await
        {
            tracing::warn!(%error, "could not withdraw the app from name resolution");
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Bare numbers are daprd's units (seconds for the interval, milliseconds
    /// for the timeout); durations with a unit are read as written.
    #[test]
    fn health_probe_flags_read_daprd_units() {
        assert_eq!(seconds_or_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds_or_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(millis_or_duration("500"), Ok(Duration::from_millis(500)));
        assert_eq!(millis_or_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(seconds_or_duration("soon").is_err());
    }
}
