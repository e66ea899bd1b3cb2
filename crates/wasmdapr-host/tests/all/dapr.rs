//! The Dapr API of guests end to end: the built `examples/state-demo`
//! component runs its scenario through the typed imports (`wit/`, the SDK
//! and the host's `bindgen!` site) and then through `wasi:http` to the Dapr
//! HTTP API, served in-process by the real `wasmdapr-api` router, against a
//! real `wasmdapr_runtime::Runtime` over the real backends of
//! `wasmdapr-components` (Redis is the server at 127.0.0.1:6379; when it is
//! down the test fails, it never skips).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use test_programs_artifacts::EXAMPLE_STATE_DEMO;
use tower::ServiceExt;
use wasmdapr_api::ApiConfig;
use wasmdapr_host::capabilities::EnvVar;
use wasmdapr_host::outbound::{BoxBody, box_body};
use wasmdapr_host::{Capabilities, Limits, LocalDapr, LocalHttp, OutboundPolicy, RemoteDaprHttp};
use wasmdapr_runtime::state::{GetRequest, SetRequest};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec, Components, DaprApi, ErrorKind, Runtime};

use crate::{Ran, app_id, host, load, run_with};

/// The token the in-process sidecar of these tests demands; the host adds
/// it, the guest never sees it.
const API_TOKEN: &str = "host-held-token";

/// The real Dapr HTTP API router, answering in-process.
struct Router(axum::Router);

impl LocalHttp for Router {
    fn handle(
        &self,
        request: http::Request<BoxBody>,
    ) -> BoxFuture<'static, http::Response<BoxBody>> {
        let router = self.0.clone();
        Box::pin(async move {
            match router.oneshot(request.map(axum::body::Body::new)).await {
                Ok(response) => response.map(box_body),
                Err(never) => match never {},
            }
        })
    }
}

/// The sidecar of `api` as the host serves it to guests: its HTTP API at
/// 127.0.0.1 on a port where nothing listens (so only the in-process route
/// can answer), requiring [`API_TOKEN`], which the host adds.
fn local_dapr(api: Arc<dyn DaprApi>, implicit_grant: bool) -> LocalDapr {
    let config = ApiConfig {
        api_token: Some(API_TOKEN.into()),
        ..ApiConfig::default()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    LocalDapr {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        api_token: Some(API_TOKEN.into()),
        implicit_grant,
        handler: Arc::new(Router(wasmdapr_api::http::router(api, config))),
    }
}

/// A state store component named `statestore` of `kind`.
fn spec(kind: &str, metadata: &[(&str, &str)], scopes: &[&str]) -> ComponentSpec {
    ComponentSpec {
        name: "statestore".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        source: PathBuf::from("(test)"),
    }
}

/// Loads `specs` through the same registry the binary uses.
async fn components(specs: Vec<ComponentSpec>) -> Arc<Components> {
    let mut registry = ComponentRegistry::default();
    wasmdapr_components::register(&mut registry);
    Arc::new(
        Components::load(specs, &registry)
            .await
            .expect("load components"),
    )
}

/// Runs the state demo with `args`: its typed imports granted `dapr`, its
/// HTTP requests going to `sidecar` (told the port in `DAPR_HTTP_PORT`, as
/// `wasmdapr run` tells it).
async fn run_demo(
    dapr: Option<Arc<dyn DaprApi>>,
    sidecar: Option<LocalDapr>,
    args: &[&str],
) -> Ran {
    let host = host();
    let app = load(&host, EXAMPLE_STATE_DEMO);
    let env = sidecar
        .iter()
        .map(|local| EnvVar {
            key: "DAPR_HTTP_PORT".into(),
            value: local.addr.port().to_string(),
        })
        .collect();
    let caps = Capabilities {
        args: args.iter().map(|s| s.to_string()).collect(),
        env,
        dapr,
        outbound: OutboundPolicy {
            local: sidecar.map(Arc::new),
            ..OutboundPolicy::default()
        },
        ..Capabilities::default()
    };
    run_with(&app, caps, Limits::default()).await
}

/// Runs the state demo as `app` with `args` against one runtime on
/// `components`, through both doors, the sidecar implicitly granted or not.
async fn run_both(components: Arc<Components>, app: &str, grant: bool, args: &[&str]) -> Ran {
    let runtime: Arc<dyn DaprApi> = Arc::new(Runtime::new(app_id(app), components));
    let sidecar = local_dapr(runtime.clone(), grant);
    run_demo(Some(runtime), Some(sidecar), args).await
}

/// How many passes of the demo succeeded.
fn passes(ran: &Ran) -> usize {
    ran.stdout.matches("Test successfully!").count()
}

/// Runs the whole scenario as `app` on `components`, both passes, and checks
/// what the backend holds under the app-id prefix.
async fn scenario(components: Arc<Components>, app: &str) {
    let ran = run_both(components.clone(), app, true, &[]).await;
    assert_eq!(
        ran.result.as_ref().ok(),
        Some(&0),
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        ran.result,
        ran.stdout,
        ran.stderr
    );
    assert_eq!(passes(&ran), 2, "{}", ran.stdout);
    let http_pass = ran
        .stdout
        .split_once("pass 2: the Dapr HTTP API at http://127.0.0.1:")
        .map(|(_, after)| after)
        .expect("the HTTP pass ran against the port it was given");
    assert!(http_pass.contains("saving weapon"), "{}", ran.stdout);
    assert!(http_pass.contains("Test successfully!"), "{}", ran.stdout);

    let store = &components.state_stores().next().expect("a store").component;
    let get = |key: String| GetRequest {
        key,
        ..GetRequest::default()
    };
    let weapon = store
        .get(get(format!("{app}||weapon")))
        .await
        .unwrap()
        .expect("weapon is stored under `<app-id>||weapon`");
    assert_eq!(weapon.data, br#""Death Star""#);
    let planets = store
        .get(get(format!("{app}||planets")))
        .await
        .unwrap()
        .expect("planets is stored under `<app-id>||planets`");
    let planets: serde_json::Value = serde_json::from_slice(&planets.data).unwrap();
    assert_eq!(
        planets,
        serde_json::json!({"name": "Tatooine", "test": 123})
    );
    assert!(store.get(get("weapon".into())).await.unwrap().is_none());
}

/// Both passes of the demo succeed on the in-memory store.
#[tokio::test]
async fn state_demo_in_memory() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    scenario(components, "state-demo").await;
}

/// Both passes succeed on the SQLite store (the embedded default's type).
#[tokio::test]
async fn state_demo_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let components = components(vec![ComponentSpec::embedded_state_store(dir.path())]).await;
    scenario(components, "state-demo").await;
}

/// Both passes succeed on the real Redis server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_demo_redis() {
    let components = components(vec![spec(
        "state.redis",
        &[("redisHost", "127.0.0.1:6379")],
        &[],
    )])
    .await;
    scenario(components, "state-demo-host-test").await;
}

/// A store that does not exist is the `ERR_STATE_STORE_NOT_FOUND` error
/// through both doors: the typed imports' error value (not a trap) and the
/// HTTP API's `errorCode`, each reported by the guest, which exits 1.
#[tokio::test]
async fn unknown_store_is_an_error_value() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let ran = run_both(components, "state-demo", true, &["no-such-store"]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    assert_eq!(
        ran.stderr
            .matches("error: ERR_STATE_STORE_NOT_FOUND")
            .count(),
        2,
        "{}",
        ran.stderr
    );
    assert_eq!(passes(&ran), 0, "{}", ran.stdout);
}

/// Without the implicit Dapr grant (`--no-dapr-grant`) the HTTP pass is
/// refused before reaching the sidecar; the typed imports still work.
#[tokio::test]
async fn http_pass_needs_the_dapr_grant() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let ran = run_both(components, "state-demo", false, &[]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    assert_eq!(passes(&ran), 1, "{}", ran.stdout);
    assert!(ran.stderr.contains("HttpRequestDenied"), "{}", ran.stderr);
}

/// A store scoped to another app id is invisible: the same error as a store
/// that does not exist.
#[tokio::test]
async fn store_scoped_to_another_app_is_invisible() {
    let components = components(vec![spec("state.in-memory", &[], &["other-app"])]).await;
    let ran = run_both(components, "state-demo", true, &[]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    assert_eq!(
        ran.stderr
            .matches("error: ERR_STATE_STORE_NOT_FOUND")
            .count(),
        2,
        "{}",
        ran.stderr
    );
    assert_eq!(passes(&ran), 0, "{}", ran.stdout);
}

/// Without the Dapr grant the component still links and every typed call
/// is the `ERR_DAPR_NOT_GRANTED` error value; with no sidecar and no
/// outbound grant, the HTTP pass is refused too.
#[tokio::test]
async fn no_dapr_grant_is_an_error_value() {
    let ran = run_demo(None, None, &[]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    let (code, _, _) = ErrorKind::DaprNotGranted.row();
    assert_eq!(code, "ERR_DAPR_NOT_GRANTED");
    assert!(
        ran.stderr.contains(&format!("error: {code}")),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("HttpRequestDenied"), "{}", ran.stderr);
    assert_eq!(passes(&ran), 0, "{}", ran.stdout);
}

/// The benchmark guest reads an existing key N times through each door and
/// reports N latencies' percentiles; a missing key is an error, not a
/// benchmark of misses; `hold` reads once and stays alive.
#[tokio::test]
pub async fn p2_bench_state_get() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let runtime: Arc<dyn DaprApi> = Arc::new(Runtime::new(app_id("bench"), components));
    runtime
        .save_state(
            "statestore",
            vec![SetRequest {
                key: "k".into(),
                value: br#"{"name":"Tatooine"}"#.to_vec(),
                ..SetRequest::default()
            }],
        )
        .await
        .unwrap();
    let host = host();
    let app = load(&host, test_programs_artifacts::P2_BENCH_STATE_GET);
    let run = |args: &[&str]| {
        let sidecar = local_dapr(runtime.clone(), true);
        let caps = Capabilities {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![EnvVar {
                key: "DAPR_HTTP_PORT".into(),
                value: sidecar.addr.port().to_string(),
            }],
            dapr: Some(runtime.clone()),
            outbound: OutboundPolicy {
                local: Some(Arc::new(sidecar)),
                ..OutboundPolicy::default()
            },
            ..Capabilities::default()
        };
        run_with(&app, caps, Limits::default())
    };
    for mode in ["typed", "http"] {
        let ran = run(&[mode, "statestore", "k", "20"]).await;
        assert_eq!(ran.result.as_ref().ok(), Some(&0), "{}", ran.stderr);
        let line = ran.stdout.trim_end();
        assert!(line.starts_with(&format!("{mode} n=20 ")), "{line}");
        let field = |name: &str| -> f64 {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        assert!(
            field("p50_us") > 0.0 && field("p50_us") <= field("p99_us"),
            "{line}"
        );

        let ran = run(&[mode, "statestore", "missing", "5"]).await;
        assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stdout);
        assert_eq!(ran.stdout, "");
    }
    let ran = run(&["hold", "statestore", "k", "10"]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&0), "{}", ran.stderr);
    let ran = run(&["typed", "statestore", "k", "many"]).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    assert!(ran.stderr.contains("not a number: many"), "{}", ran.stderr);
}

/// A Dapr HTTP API over TCP on 127.0.0.1 demanding [`API_TOKEN`], serving
/// `api` until the test ends; its address.
async fn dapr_http_server(api: Arc<dyn DaprApi>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ApiConfig {
        api_token: Some(API_TOKEN.into()),
        ..ApiConfig::default()
    };
    tokio::spawn(wasmdapr_api::serve_http(
        listener,
        api,
        config,
        std::future::pending(),
    ));
    addr
}

/// A sidecar elsewhere (`--dapr-http-endpoint`): the demo's HTTP pass
/// reaches its Dapr HTTP API over the network at `DAPR_HTTP_ENDPOINT`,
/// implicitly granted, with the token added by the host (the guest has
/// none; the server demands it). Without the implicit grant it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sidecar_http_api_with_the_host_token() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let runtime: Arc<dyn DaprApi> = Arc::new(Runtime::new(app_id("state-demo"), components));
    let addr = dapr_http_server(runtime.clone()).await;
    let endpoint = format!("http://{addr}");
    let run = |grant: bool| {
        let remote =
            RemoteDaprHttp::new(&endpoint.parse().unwrap(), Some(API_TOKEN.into()), grant).unwrap();
        let caps = Capabilities {
            env: vec![EnvVar {
                key: "DAPR_HTTP_ENDPOINT".into(),
                value: endpoint.clone(),
            }],
            dapr: Some(runtime.clone()),
            outbound: OutboundPolicy {
                remote: Some(Arc::new(remote)),
                ..OutboundPolicy::default()
            },
            ..Capabilities::default()
        };
        async move {
            let host = host();
            let app = load(&host, EXAMPLE_STATE_DEMO);
            run_with(&app, caps, Limits::default()).await
        }
    };
    let ran = run(true).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&0), "{}", ran.stderr);
    assert_eq!(passes(&ran), 2, "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains(&format!("pass 2: the Dapr HTTP API at {endpoint},")),
        "{}",
        ran.stdout
    );

    let ran = run(false).await;
    assert_eq!(ran.result.as_ref().ok(), Some(&1), "{}", ran.stderr);
    assert_eq!(passes(&ran), 1, "{}", ran.stdout);
    assert!(ran.stderr.contains("HttpRequestDenied"), "{}", ran.stderr);
}

/// The host's token goes to the remote sidecar's address only: another
/// allowed destination (here a second Dapr HTTP API demanding the same
/// token) gets the guest's request without it, and answers 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sidecar_token_goes_nowhere_else() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let runtime: Arc<dyn DaprApi> = Arc::new(Runtime::new(app_id("http_get"), components));
    let remote = dapr_http_server(runtime.clone()).await;
    let other = dapr_http_server(runtime).await;
    let endpoint: http::Uri = format!("http://{remote}").parse().unwrap();
    let policy = OutboundPolicy {
        remote: Some(Arc::new(
            RemoteDaprHttp::new(&endpoint, Some(API_TOKEN.into()), true).unwrap(),
        )),
        ..crate::http::allowing(&[&format!("http://{other}")])
    };
    let urls = [remote, other].map(|a| format!("http://{a}/v1.0/state/statestore/missing"));
    let ran = crate::http::get(&urls, policy).await;
    assert!(
        ran.stdout.contains(&format!("GET {} -> 204", urls[0])),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!("GET {} -> 401", urls[1])),
        "{}",
        ran.stdout
    );
}
