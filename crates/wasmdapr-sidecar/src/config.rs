//! What a [`Sidecar`](crate::Sidecar) is started with: plain data, so an
//! embedder needs no command line; `wasmdapr` maps its flags (named as
//! daprd's) and environment variables onto these.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use wasmdapr_api::ApiConfig;
use wasmdapr_api::http_app::HealthCheck;
use wasmdapr_api::internal::identity::DEFAULT_NAMESPACE;
use wasmdapr_components::nameresolution::sqlite::SqliteNameResolver;
use wasmdapr_runtime::AppId;
use wasmdapr_runtime::runtime::DeliveryOptions;

/// Where the default state store keeps its file, relative to the working directory.
pub const EMBEDDED_DIR: &str = ".wasmdapr";

/// How a sidecar is started.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// The id of the app this sidecar serves.
    pub app_id: AppId,
    /// Folders of Dapr component YAML (`--resources-path`). Without one, a
    /// SQLite state store named `statestore` and a SQLite pub/sub named
    /// `pubsub` are kept in `embedded_dir`.
    pub resources_paths: Vec<PathBuf>,
    /// Where the default state store and pub/sub keep their files when there are no
    /// resources folders ([`EMBEDDED_DIR`] by default).
    pub embedded_dir: PathBuf,
    /// The address every API listens on (`--dapr-listen-address`).
    pub listen_address: IpAddr,
    /// Port of the Dapr HTTP API (0: any free port).
    pub http_port: u16,
    /// Port of the Dapr gRPC API (0: any free port).
    pub grpc_port: u16,
    /// Port of the internal endpoint other sidecars call (0: any free
    /// port); it is what name resolution announces.
    pub internal_grpc_port: u16,
    /// What the HTTP and gRPC APIs share: the API token (`DAPR_API_TOKEN`),
    /// the body limit, the HTTP servers' timeouts and connection bound.
    pub api: ApiConfig,
    /// A Dapr Configuration resource (`--config`) whose
    /// `spec.nameResolution` chooses how app ids are resolved; without one,
    /// the SQLite default in `data_dir`.
    pub config_file: Option<PathBuf>,
    /// The identity given by `--enable-mtls`; without one, a certificate is
    /// issued at start from the machine-local trust bundle in `data_dir`.
    pub mtls: Option<MtlsConfig>,
    /// The namespace of the machine-local identity (`NAMESPACE`).
    pub namespace: String,
    /// Where the state every sidecar of the user shares lives: the default
    /// name resolution database and the machine-local trust bundle
    /// (`trust/`). Without one (no home directory), the sidecar neither
    /// invokes other apps nor is reached by them, with a warning.
    pub data_dir: Option<PathBuf>,
    /// How pub/sub events are delivered to the app (the delivery timeout,
    /// when a failure goes to the dead-letter topic).
    pub delivery: DeliveryOptions,
}

impl SidecarConfig {
    /// The defaults of `daprd` for `app_id`: ports 3500, 50001 and 50002 on
    /// 127.0.0.1, the embedded state store in [`EMBEDDED_DIR`], the
    /// machine-local trust bundle and name resolution of the user.
    pub fn new(app_id: AppId) -> Self {
        Self {
            app_id,
            resources_paths: Vec::new(),
            embedded_dir: PathBuf::from(EMBEDDED_DIR),
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 3500,
            grpc_port: 50001,
            internal_grpc_port: 50002,
            api: ApiConfig::default(),
            config_file: None,
            mtls: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            data_dir: SqliteNameResolver::default_dir(),
            delivery: DeliveryOptions::default(),
        }
    }
}

/// The trust bundle of `--enable-mtls`, as PEM text. The certificate must
/// be of the sidecar's app (`spiffe://<trust-domain>/ns/<namespace>/<app-id>`).
#[derive(Clone)]
pub struct MtlsConfig {
    /// The trust anchors (CA certificates; Dapr's `ca.crt`).
    pub trust_anchors: Vec<u8>,
    /// This sidecar's certificate chain, its own certificate first.
    pub cert_chain: Vec<u8>,
    /// The private key of that certificate.
    pub cert_key: Vec<u8>,
}

/// `Debug` leaves the PEM text out: the key is a secret.
impl std::fmt::Debug for MtlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsConfig").finish_non_exhaustive()
    }
}

/// An ordinary app process the sidecar delivers to (`--app-port`), as daprd.
#[derive(Clone, Debug)]
pub struct AppConnection {
    /// Where the app listens (`--app-channel-address`:`--app-port`).
    pub address: SocketAddr,
    /// Sent as `dapr-api-token` on every delivery (`APP_API_TOKEN`).
    pub app_token: Option<String>,
    /// `--app-protocol`: `grpc` is Dapr's `AppCallback` service, anything
    /// else HTTP; the metadata API reports it as given.
    pub protocol: String,
    /// `--app-max-concurrency`: requests in flight to the app at once (as
    /// daprd: every request of an HTTP app, the invocations of a gRPC app).
    pub max_concurrency: Option<usize>,
    /// A health path that must also answer 2xx before the app is announced
    /// (`--enable-app-health-check`); the port must accept connections in
    /// any case.
    pub health: Option<HealthCheck>,
}
