//! Black-box tests of the Dapr HTTP and gRPC APIs: real servers on
//! 127.0.0.1:0 over a real [`Runtime`] with the real `state.in-memory`
//! backend (and the real pub/sub brokers in `pubsub`), spoken to with reqwest, raw TCP and the generated Dapr gRPC
//! client.

mod errors;
mod grpc;
mod http;
mod internal;
mod invoke;
mod pubsub;
mod remote;
mod streaming;
mod token;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wasmdapr_api::ApiConfig;
use wasmdapr_runtime::state::{
    DeleteRequest, GetRequest, SetRequest, StateError, StateFeatures, StateStore, StateValue,
};
use wasmdapr_runtime::{AppId, ComponentRegistry, ComponentSpec, Components, DaprApi, Runtime};

/// The app id every fixture runs as.
pub const APP_ID: &str = "myapp";
/// The token of [`Sidecar::with_token`].
pub const TOKEN: &str = "s3cret-token";

/// A running pair of servers over one runtime.
pub struct Sidecar {
    /// `http://127.0.0.1:<port>` of the HTTP API.
    pub http: String,
    /// The HTTP API's address, for raw TCP.
    pub http_addr: SocketAddr,
    /// `http://127.0.0.1:<port>` of the gRPC API.
    pub grpc: String,
    /// The internal endpoint's address, when one is served
    /// ([`invoke::sidecar`]).
    pub internal_addr: Option<SocketAddr>,
    /// The runtime behind both.
    pub runtime: Arc<Runtime>,
    /// The HTTP server task; it ends when the runtime is asked to shut down.
    pub http_task: JoinHandle<std::io::Result<()>>,
    /// A reqwest client.
    pub client: reqwest::Client,
}

/// A component spec as YAML would give it.
pub fn spec(name: &str, kind: &str, scopes: &[&str]) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: Default::default(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        source: PathBuf::from("(test)"),
    }
}

/// The components of the usual fixture: `statestore` (in-memory),
/// `scoped` (in-memory, for another app only) and `notx` (a store without
/// transactions or queries).
pub fn usual_specs() -> Vec<ComponentSpec> {
    vec![
        spec("statestore", "state.in-memory", &[]),
        spec("scoped", "state.in-memory", &["other-app"]),
        spec("notx", "state.test-basic", &[]),
    ]
}

impl Sidecar {
    /// The usual fixture without a token.
    pub async fn start() -> Self {
        Self::start_with(usual_specs(), ApiConfig::default()).await
    }

    /// The usual fixture requiring [`TOKEN`].
    pub async fn with_token() -> Self {
        let config = ApiConfig {
            api_token: Some(TOKEN.into()),
            ..ApiConfig::default()
        };
        Self::start_with(usual_specs(), config).await
    }

    /// Both servers over a runtime of `specs`, configured by `config`.
    pub async fn start_with(specs: Vec<ComponentSpec>, config: ApiConfig) -> Self {
        let mut registry = ComponentRegistry::new();
        wasmdapr_components::register(&mut registry);
        registry.register_state("state.test-basic", |_spec| async {
            Ok(Arc::new(BasicStore::default()) as Arc<dyn StateStore>)
        });
        let components = Components::load(specs, &registry)
            .await
            .expect("components load");
        let runtime = Arc::new(Runtime::new(
            AppId::new(APP_ID).expect("app id"),
            Arc::new(components),
        ));
        Self::serve(runtime, config).await
    }

    /// Both servers over `runtime`, configured by `config`.
    pub async fn serve(runtime: Arc<Runtime>, config: ApiConfig) -> Self {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let http_addr = http.local_addr().expect("http addr");
        let grpc_addr = grpc.local_addr().expect("grpc addr");
        let api: Arc<dyn DaprApi> = runtime.clone();
        let stop = runtime.clone();
        let http_task = tokio::spawn(wasmdapr_api::serve_http(
            http,
            api.clone(),
            config.clone(),
            async move { stop.shutdown_requested().await },
        ));
        let stop = runtime.clone();
        tokio::spawn(wasmdapr_api::serve_grpc(grpc, api, config, async move {
            stop.shutdown_requested().await
        }));
        Sidecar {
            http: format!("http://{http_addr}"),
            http_addr,
            grpc: format!("http://{grpc_addr}"),
            internal_addr: None,
            runtime,
            http_task,
            client: reqwest::Client::new(),
        }
    }

    /// `{http}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }
}

/// A minimal store with only get, set and delete: no ETags, transactions,
/// TTL or queries, to prove the APIs report a missing feature.
#[derive(Default)]
pub struct BasicStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
}

#[async_trait]
impl StateStore for BasicStore {
    fn features(&self) -> StateFeatures {
        StateFeatures::default()
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(&request.key).map(|data| StateValue {
            data: data.clone(),
            etag: None,
            metadata: Default::default(),
        }))
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(request.key, request.value);
        Ok(())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&request.key);
        Ok(())
    }
}
