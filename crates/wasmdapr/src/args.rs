//! The flags of the Dapr sidecar (named as `daprd`'s) and of a served app,
//! and how they, with the environment variables Dapr reads, map onto the
//! plain configuration of `wasmdapr-sidecar`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wasmdapr_api::http_app::HealthCheck;
use wasmdapr_api::internal::identity::DEFAULT_NAMESPACE;
use wasmdapr_api::{ApiConfig, ServerLimits};
use wasmdapr_host::limits::parse_duration;
use wasmdapr_host::{ByteSize, WasmAppConfig};
use wasmdapr_runtime::AppId;
use wasmdapr_sidecar::{AppConnection, MtlsConfig, ServeConfig, SidecarConfig, SidecarError};

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
    pub http_server: HttpServerArgs,
}

impl DaprArgs {
    /// `--max-body-size` in bytes.
    pub fn max_body_size(&self) -> usize {
        usize::try_from(self.max_body_size.0).unwrap_or(usize::MAX)
    }

    /// The sidecar of `app_id` these flags describe, with the API token of
    /// `DAPR_API_TOKEN` and the namespace of `NAMESPACE`, as daprd reads
    /// them. The PEM files of `--enable-mtls` are read here.
    pub fn sidecar_config(&self, app_id: AppId) -> Result<SidecarConfig, SidecarError> {
        Ok(SidecarConfig {
            resources_paths: self.resources_paths.clone(),
            listen_address: self.dapr_listen_address,
            http_port: self.dapr_http_port,
            grpc_port: self.dapr_grpc_port,
            internal_grpc_port: self.dapr_internal_grpc_port,
            api: ApiConfig {
                api_token: non_empty_env("DAPR_API_TOKEN"),
                max_body_size: self.max_body_size(),
                server: self.http_server.limits(),
            },
            config_file: self.config.clone(),
            mtls: self.enable_mtls.then(|| self.mtls()).transpose()?,
            namespace: non_empty_env("NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            ..SidecarConfig::new(app_id)
        })
    }

    /// The trust bundle of `--enable-mtls`: each PEM from its file, else
    /// from its environment variable (as daprd's `DAPR_TRUST_ANCHORS`, …).
    fn mtls(&self) -> Result<MtlsConfig, SidecarError> {
        let pem = |file: &Option<PathBuf>, flag: &str, env: &str| match file {
            Some(path) => std::fs::read(path)
                .map_err(|e| SidecarError::Mtls(format!("{flag} {}: {e}", path.display()))),
            None => non_empty_env(env)
                .map(String::into_bytes)
                .ok_or_else(|| SidecarError::Mtls(format!("--enable-mtls needs {flag} or {env}"))),
        };
        Ok(MtlsConfig {
            trust_anchors: pem(
                &self.trust_anchors_file,
                "--trust-anchors-file",
                "DAPR_TRUST_ANCHORS",
            )?,
            cert_chain: pem(
                &self.cert_chain_file,
                "--cert-chain-file",
                "DAPR_CERT_CHAIN",
            )?,
            cert_key: pem(&self.cert_key_file, "--cert-key-file", "DAPR_CERT_KEY")?,
        })
    }
}

/// An environment variable, unless unset or empty (Dapr reads an empty
/// token as none).
pub fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// How `wasmdapr sidecar` reaches its app, named as `daprd`'s flags.
#[derive(Args, Clone, Debug)]
pub struct AppArgs {
    /// The port the app listens on; without it the sidecar has no app
    /// (it can still invoke others).
    #[arg(long)]
    pub app_port: Option<u16>,
    /// The app's protocol: `http`, or `grpc` (Dapr's `AppCallback`
    /// service, as `dapr-ext-grpc` serves it).
    #[arg(long, default_value = "http", value_parser = ["http", "grpc"])]
    pub app_protocol: String,
    /// Requests the sidecar sends the app at once (0: no bound), as daprd:
    /// every request to an HTTP app, the invocations of a gRPC app; more
    /// wait for a slot.
    #[arg(long, default_value_t = 0)]
    pub app_max_concurrency: usize,
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
    pub app_health_probe_interval: Duration,
    /// The longest one health probe may take: milliseconds, as daprd's
    /// flag, or a duration (`1s`).
    #[arg(long, value_parser = millis_or_duration, default_value = "500")]
    pub app_health_probe_timeout: Duration,
}

impl AppArgs {
    /// The app on `--app-port`, if any, with the token of `APP_API_TOKEN`
    /// as daprd reads it.
    pub fn connection(&self) -> Option<AppConnection> {
        let port = self.app_port?;
        Some(AppConnection {
            address: SocketAddr::new(self.app_channel_address, port),
            app_token: non_empty_env("APP_API_TOKEN"),
            protocol: self.app_protocol.clone(),
            max_concurrency: Some(self.app_max_concurrency).filter(|n| *n > 0),
            health: self.enable_app_health_check.then(|| HealthCheck {
                path: self.app_health_check_path.clone(),
                interval: self.app_health_probe_interval,
                timeout: self.app_health_probe_timeout,
            }),
        })
    }
}

/// daprd's whole seconds (`5`), or a duration with a unit (`1500ms`).
fn seconds_or_duration(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => parse_duration(value),
    }
}

/// daprd's whole milliseconds (`500`), or a duration with a unit (`1s`).
fn millis_or_duration(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(millis) => Ok(Duration::from_millis(millis)),
        Err(_) => parse_duration(value),
    }
}

/// Flags of a served app.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Also serve the app's HTTP handler to the outside on this address
    /// (e.g. `127.0.0.1:8080`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub app_listen: Option<SocketAddr>,
    /// Requests the app serves at once, each in its own instance; as many
    /// more may wait, and beyond that requests get 503 with `Retry-After`.
    /// The default is the engine's instance pool: handlers mostly wait on
    /// I/O, so the bound that matters is memory (this times `--max-memory`).
    #[arg(long, default_value_t = WasmAppConfig::DEFAULT_MAX_CONCURRENCY)]
    pub max_concurrency: usize,
}

impl ServeArgs {
    /// Instance-pool slots the engine needs to serve at this concurrency.
    pub fn pool_size(&self, default: u32) -> u32 {
        u32::try_from(self.max_concurrency)
            .unwrap_or(u32::MAX)
            .max(default)
    }

    /// How the app is served, with the body limit and server limits of the
    /// sidecar's flags.
    pub fn serve_config(&self, dapr: &DaprArgs) -> ServeConfig {
        ServeConfig {
            listen: self.app_listen,
            max_concurrency: self.max_concurrency,
            max_body_size: dapr.max_body_size(),
            server: dapr.http_server.limits(),
        }
    }
}

/// Timeouts and the connection bound of the public HTTP servers (the Dapr
/// HTTP API and `--app-listen`); daprd has no flags for these, so the names
/// are ours. See `wasmdapr_api::server` for what each does.
#[derive(Args, Clone, Copy, Debug)]
pub struct HttpServerArgs {
    /// The longest a client may take to send a request's headers; slower
    /// connections are closed.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub http_header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub http_idle_timeout: Duration,
    /// The longest a request body may pause; the request then fails.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub http_body_read_timeout: Duration,
    /// Connections each server keeps open at once; at the bound the one
    /// idle longest is closed for a new one (503 if none is idle). Default:
    /// half the process's open-file limit (at least 32).
    #[arg(long)]
    pub http_max_connections: Option<usize>,
}

impl HttpServerArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: self.http_header_read_timeout,
            idle_timeout: self.http_idle_timeout,
            body_read_timeout: self.http_body_read_timeout,
            max_connections: self
                .http_max_connections
                .unwrap_or_else(ServerLimits::default_max_connections),
        }
    }
}

#[cfg(test)]
mod tests {
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
