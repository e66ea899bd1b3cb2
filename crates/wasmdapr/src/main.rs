//! `wasmdapr`: the command line. Wiring only: parsing flags, building the
//! host, printing errors and choosing exit codes.

mod args;
mod certs;
mod exit_code;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wasmdapr_api::RemoteDapr;
use wasmdapr_api::remote::RemoteError;
use wasmdapr_host::limits::parse_duration;
use wasmdapr_host::{
    AllowedHost, ArtifactCache, ByteSize, Capabilities, DirGrant, EngineConfig, EnvVar, Host,
    HostConfig, HostError, Limits, OutboundPolicy, Output, RemoteDaprHttp,
};
use wasmdapr_runtime::{AppId, DaprApi};
use wasmdapr_sidecar::{ServeError, ServedApp, Sidecar, SidecarError};

use crate::args::{AppArgs, DaprArgs, ServeArgs, non_empty_env};

/// The process's allocator: jemalloc, configured by [`JEMALLOC_CONF`].
///
/// With glibc's malloc the sidecar stayed at 7-9x its idle memory after
/// bursts of 4 MiB bodies, queries and bulk reads (`bench/memory.sh`): the
/// arenas those bursts grew were kept. jemalloc returns them.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer jemalloc reads at start-up (`malloc_conf`).
#[cfg(all(unix, not(target_env = "musl")))]
#[repr(transparent)]
pub struct JemallocConf(*const std::ffi::c_char);

// SAFETY: it points to a static, immutable C string.
#[cfg(all(unix, not(target_env = "musl")))]
unsafe impl Sync for JemallocConf {}

/// jemalloc's options: a background thread purges freed pages on its own
/// schedule, so an idle process, which allocates nothing that would trigger
/// a purge, still gives memory back; freed pages go back to the system
/// after about a second (`dirty_decay_ms`, `muzzy_decay_ms`).
#[cfg(all(unix, not(target_env = "musl")))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static JEMALLOC_CONF: JemallocConf =
    JemallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000".as_ptr());

/// Run WebAssembly apps as secure, millisecond-start services with the Dapr building blocks.
#[derive(Parser)]
#[command(name = "wasmdapr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an app (a WASI preview 1 module, a WASI preview 2 component, or a
    /// `.cwasm`) to completion; its exit code becomes ours. A component
    /// exporting `wasi:http/incoming-handler` is served instead, until
    /// Ctrl-C, SIGTERM or the shutdown API.
    Run(Box<RunArgs>),
    /// Run the Dapr sidecar alone (like `daprd`), for apps that are not Wasm.
    Sidecar(Box<SidecarArgs>),
    /// Compile an app ahead of time into a `.cwasm` that `run` starts without compiling.
    ///
    /// A `.cwasm` is native code: run only the ones you compiled yourself.
    Compile(CompileArgs),
    /// Create a trust bundle and issue sidecar certificates for mutual TLS
    /// between sidecars (`--enable-mtls`).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
}

#[derive(Args)]
struct CacheArgs {
    /// Where compiled code is cached [default: $WASMDAPR_CACHE_DIR, else
    /// $XDG_CACHE_HOME/wasmdapr, else ~/.cache/wasmdapr].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile on every start; read and write no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn cache(&self) -> Option<ArtifactCache> {
        if self.no_cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(ArtifactCache::default_dir)
            .map(ArtifactCache::new)
    }
}

#[derive(Args)]
struct RunArgs {
    /// The app: `.wasm`, `.wat` or `.cwasm`.
    app: PathBuf,
    /// Arguments for the app (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
    /// The app id [default: the file name without extension, `.` read as `-`].
    #[arg(long)]
    app_id: Option<AppId>,
    /// Grant a host directory: `HOST[::GUEST]`. Repeatable. No files otherwise.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<DirGrant>,
    /// Give the app an environment variable: `KEY=VALUE`. Repeatable. No environment otherwise.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<EnvVar>,
    /// Memory limit of the instance (e.g. `64MiB`, `1GiB`).
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_MEMORY)]
    max_memory: ByteSize,
    /// Wall-clock limit of the run (e.g. `500ms`, `10s`) [default: none].
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Let the app send HTTP requests to `SCHEME://HOST[:PORT]` (scheme
    /// `http`, `https` or `*`; host `*` or `*.DOMAIN` allowed; port `*` for
    /// any, else the scheme's default). Repeatable. Nothing otherwise.
    #[arg(long = "allow-host", value_name = "URL")]
    allow_hosts: Vec<AllowedHost>,
    /// Outbound HTTP requests the app may have in flight at once (for
    /// `wasi_experimental_http` modules: responses not yet closed); more
    /// fail at once.
    #[arg(long, default_value_t = OutboundPolicy::DEFAULT_MAX_IN_FLIGHT)]
    max_outbound_requests: usize,
    /// Longest connect, first-byte and between-bytes wait of an outbound request.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    outbound_timeout: Duration,
    /// Do not let the app call the embedded sidecar's HTTP address unless an
    /// `--allow-host` grants it (by default it may: the implicit Dapr grant).
    #[arg(long)]
    no_dapr_grant: bool,
    /// Forward the app's typed Dapr imports over gRPC to this sidecar (a
    /// real `daprd` or another `wasmdapr sidecar`, e.g.
    /// `http://127.0.0.1:50001`) instead of starting the embedded one.
    #[arg(long, env = "DAPR_GRPC_ENDPOINT", value_name = "URL")]
    dapr_endpoint: Option<String>,
    /// The HTTP API of that sidecar (e.g. `http://127.0.0.1:3500`): the app
    /// is told it in `DAPR_HTTP_ENDPOINT` and may call it (the implicit
    /// Dapr grant), with `DAPR_API_TOKEN` added by the host.
    #[arg(
        long,
        env = "DAPR_HTTP_ENDPOINT",
        value_name = "URL",
        requires = "dapr_endpoint",
        value_parser = parse_http_endpoint
    )]
    dapr_http_endpoint: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    dapr: DaprArgs,
}

#[derive(Args)]
struct SidecarArgs {
    /// The id of the app this sidecar serves.
    #[arg(long, env = "APP_ID")]
    app_id: AppId,
    #[command(flatten)]
    dapr: DaprArgs,
    #[command(flatten)]
    app: AppArgs,
}

#[derive(Args)]
struct CompileArgs {
    /// The app: `.wasm` or `.wat`.
    app: PathBuf,
    /// Output file [default: the app's path with the extension `.cwasm`].
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Sidecar(args) => run_sidecar(*args),
        Command::Compile(args) => compile(args).map_err(Failure::Host),
        Command::Certs(command) => certs::run(command).map_err(Failure::Certs),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {failure}");
            if let Failure::Host(HostError::Trap {
                backtrace: Some(backtrace),
                ..
            }) = &failure
            {
                eprintln!("{}", backtrace.trim_end());
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Everything a command can fail with, each with its exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Certs(wasmdapr_api::internal::certs::CertError),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Host(error) | Failure::Serve(ServeError::App(error)) => {
                exit_code::for_error(error)
            }
            Failure::Sidecar(error) | Failure::Serve(ServeError::Sidecar(error)) => {
                exit_code::for_sidecar(error)
            }
            Failure::Certs(wasmdapr_api::internal::certs::CertError::Io { .. }) => exit_code::USAGE,
            Failure::Certs(_) => exit_code::CONFIG,
            Failure::Remote(_) => exit_code::UNAVAILABLE,
            Failure::Serve(ServeError::Unreachable { .. }) => exit_code::USAGE,
            Failure::Serve(ServeError::Listen { .. } | ServeError::Serve(_)) => {
                exit_code::UNAVAILABLE
            }
        }
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, HostError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Engine(format!("cannot start the async runtime: {e}")))
}

fn run_sidecar(args: SidecarArgs) -> Result<u8, Failure> {
    tokio_runtime()?.block_on(async {
        let sidecar = Sidecar::start(args.dapr.sidecar_config(args.app_id)?).await?;
        let internal = sidecar
            .internal_addr
            .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
        eprintln!(
            "wasmdapr sidecar for app '{}': HTTP API on {}, gRPC API on {}, internal endpoint on {internal}",
            sidecar.runtime.app_id(),
            sidecar.http_addr,
            sidecar.grpc_addr
        );
        if let Some(app) = args.app.connection() {
            sidecar.connect_app(app).await?;
        }
        sidecar.wait().await?;
        Ok(0)
    })
}

/// A `--dapr-http-endpoint`, checked: an absolute `http` or `https` URL
/// with a host. Kept as given, which is how the app is told it.
fn parse_http_endpoint(value: &str) -> Result<String, String> {
    remote_dapr_http(value, None, false)
        .map(|_| value.to_owned())
        .ok_or_else(|| "expected http://HOST[:PORT] or https://HOST[:PORT]".into())
}

/// The remote sidecar's HTTP API at `endpoint`, if it is an HTTP URL with a host.
fn remote_dapr_http(
    endpoint: &str,
    api_token: Option<String>,
    implicit_grant: bool,
) -> Option<RemoteDaprHttp> {
    let uri: http::Uri = endpoint.parse().ok()?;
    RemoteDaprHttp::new(&uri, api_token, implicit_grant)
}

/// The variables `dapr run` gives an app (`APP_ID`, `DAPR_HTTP_PORT`, …),
/// added to the guest's `--env` as part of the implicit Dapr grant; a
/// variable the user set with `--env` wins.
fn add_dapr_env(env: &mut Vec<EnvVar>, dapr: &[(&str, String)]) {
    for (key, value) in dapr {
        if !env.iter().any(|e| e.key == *key) {
            env.push(EnvVar {
                key: (*key).to_owned(),
                value: value.clone(),
            });
        }
    }
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let engine = EngineConfig::default();
    let host = Host::new(HostConfig {
        cache: args.cache.cache(),
        // A served app needs a pool slot per concurrent request.
        engine: EngineConfig {
            max_instances: args.serve.pool_size(engine.max_instances),
            ..engine
        },
    })?;
    let app_id = match args.app_id.clone() {
        Some(id) => id,
        None => default_app_id(&args.app)?,
    };
    let app = host.load(&args.app, &app_id)?;
    let no_dapr_grant = args.no_dapr_grant;
    let outbound = OutboundPolicy {
        allowed: args.allow_hosts.into_iter().collect(),
        max_in_flight: args.max_outbound_requests,
        timeout: args.outbound_timeout,
        local: None,
        remote: None,
    };
    let mut caps = Capabilities {
        program_name: args
            .app
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args: args.args,
        env: args.env,
        dirs: args.dirs,
        stdin: true,
        stdout: Output::Inherit,
        stderr: Output::Inherit,
        // Dapr is granted below, once the sidecar's runtime exists; the
        // rest stays denied.
        ..Capabilities::default()
    };
    let limits = Limits {
        max_memory: args.max_memory,
        timeout: args.timeout,
    };
    let serve = args.serve.serve_config(&args.dapr);
    tokio_runtime()?.block_on(async {
        if let Some(endpoint) = &args.dapr_endpoint {
            // A sidecar elsewhere: the guest's Dapr calls go there over gRPC
            // (with this process's DAPR_API_TOKEN), and no local one starts.
            let token = non_empty_env("DAPR_API_TOKEN");
            let remote = RemoteDapr::connect(endpoint, token.as_deref()).await?;
            // Its HTTP API, if named, is the app's to call like a local
            // sidecar's: announced, granted, and with the token added here.
            let remote_http = args
                .dapr_http_endpoint
                .as_ref()
                .and_then(|endpoint| remote_dapr_http(endpoint, token.clone(), !no_dapr_grant));
            if !no_dapr_grant {
                let mut dapr_env = Vec::new();
                if let Some(id) = &args.app_id {
                    dapr_env.push(("APP_ID", id.to_string()));
                }
                if let Some(endpoint) = &args.dapr_http_endpoint {
                    dapr_env.push(("DAPR_HTTP_ENDPOINT", endpoint.clone()));
                }
                add_dapr_env(&mut caps.env, &dapr_env);
            }
            let caps = Capabilities {
                dapr: Some(Arc::new(remote) as Arc<dyn DaprApi>),
                outbound: OutboundPolicy {
                    remote: remote_http.map(Arc::new),
                    ..outbound
                },
                ..caps
            };
            if app.is_handler() {
                return serve_app(app, caps, limits, serve, None).await;
            }
            return run_command(app, caps, limits).await;
        }
        // The sidecar serves the app's Dapr API to other processes while it runs.
        let sidecar = Sidecar::start(args.dapr.sidecar_config(app.id().clone())?).await?;
        tracing::info!(http = %sidecar.http_addr, grpc = %sidecar.grpc_addr, "sidecar started");
        if !no_dapr_grant {
            let mut dapr_env = vec![
                ("APP_ID", app.id().to_string()),
                ("DAPR_HTTP_PORT", sidecar.http_addr.port().to_string()),
                ("DAPR_GRPC_PORT", sidecar.grpc_addr.port().to_string()),
            ];
            // Apps (and SDKs) look for the port on 127.0.0.1; a sidecar on
            // another address is named in full.
            let ip = sidecar.http_addr.ip();
            if !ip.is_loopback() && !ip.is_unspecified() {
                dapr_env.push((
                    "DAPR_HTTP_ENDPOINT",
                    format!("http://{}", sidecar.http_addr),
                ));
            }
            add_dapr_env(&mut caps.env, &dapr_env);
        }
        // The guest's typed Dapr imports call the same runtime, so its app id
        // and component scopes apply to them as to the HTTP API.
        let caps = Capabilities {
            dapr: Some(sidecar.runtime.clone() as Arc<dyn DaprApi>),
            // Outbound HTTP to the sidecar's own address is served in-process.
            outbound: OutboundPolicy {
                local: Some(Arc::new(sidecar.local_dapr(!no_dapr_grant))),
                ..outbound
            },
            ..caps
        };
        if app.is_handler() {
            return serve_app(app, caps, limits, serve, Some(sidecar)).await;
        }
        run_command(app, caps, limits).await
    })
}

/// Runs a command app to its exit on a worker of the runtime, not on the
/// thread in `block_on` (which polls its future outside the workers). The
/// tasks the app's Dapr calls wait on (a Redis connection's driver, a
/// response on a socket) run on the workers: from `block_on`, every call
/// crossed threads twice, waking one with a futex each way (3.5 context
/// switches per typed state GET); on a worker, the woken task runs next on
/// the same thread.
async fn run_command(
    app: wasmdapr_host::App,
    caps: Capabilities,
    limits: Limits,
) -> Result<u8, Failure> {
    let run = tokio::spawn(async move { app.run(&caps, limits).await });
    match run.await {
        Ok(code) => Ok(exit_code::for_guest(code?)),
        // A panic of the host while running the app stays a panic, as it
        // was before the app ran on a worker.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => {
            Err(HostError::Engine(format!("the app's task was cancelled: {error}")).into())
        }
    }
}

/// Serves `app` (an HTTP handler) until Ctrl-C, SIGTERM or the shutdown
/// API, saying on stderr where.
async fn serve_app(
    app: wasmdapr_host::App,
    caps: Capabilities,
    limits: Limits,
    config: wasmdapr_sidecar::ServeConfig,
    sidecar: Option<Sidecar>,
) -> Result<u8, Failure> {
    let id = app.id().to_string();
    let served = ServedApp::start(app, caps, limits, config, sidecar).await?;
    match served.listen_addr() {
        Some(addr) => eprintln!("wasmdapr: serving app '{id}' on http://{addr}"),
        None => eprintln!("wasmdapr: serving app '{id}' to Dapr service invocation"),
    }
    served.wait().await?;
    Ok(0)
}

/// The app id of an app run without `--app-id`: its file stem, with `.`
/// (which Dapr forbids in ids) read as `-`.
fn default_app_id(app: &std::path::Path) -> Result<AppId, HostError> {
    let stem = app
        .file_stem()
        .map(|s| s.to_string_lossy().replace('.', "-"));
    AppId::new(stem.unwrap_or_default()).map_err(|e| HostError::Capability {
        what: "a default app id".into(),
        reason: format!("{e}; pass --app-id"),
    })
}

fn compile(args: CompileArgs) -> Result<u8, HostError> {
    let host = Host::new(HostConfig::default())?;
    let bytes = host.precompile(&args.app)?;
    let output = args
        .output
        .unwrap_or_else(|| args.app.with_extension("cwasm"));
    std::fs::write(&output, bytes).map_err(|source| HostError::Write {
        path: output.clone(),
        source,
    })?;
    Ok(0)
}
