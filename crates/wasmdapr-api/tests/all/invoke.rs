//! Service invocation end to end inside one test process: real sidecars
//! (HTTP and gRPC servers over real runtimes), real apps (axum servers on
//! 127.0.0.1:0 reached through [`HttpApp`]), real name resolution (the
//! SQLite resolver on a temporary file) and the real hop between sidecars
//! (the internal endpoint, gRPC over mutual TLS).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use tokio::net::TcpListener;
use wasmdapr_api::http_app::{HealthCheck, HttpAppConfig};
use wasmdapr_api::internal::{CertificateAuthority, SidecarIdentity};
use wasmdapr_api::{ApiConfig, HttpApp, InternalClient, RemoteDapr};
use wasmdapr_components::nameresolution::sqlite::SqliteNameResolver;
use wasmdapr_runtime::api::InvokeApi;
use wasmdapr_runtime::invoke::TraceParent;
use wasmdapr_runtime::{AppId, Components, InvokeRequest, NameResolver, RemoteInvocation, Runtime};

use crate::{Sidecar, TOKEN};

/// What the app saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A tiny HTTP app: records every request; `/healthz` answers 503 until
/// `healthy`, `/status/<n>` answers `n` with a body, `/big/<n>` `n` bytes,
/// anything else 201 with
/// `x-app: <name>` and the body echoed.
#[derive(Clone)]
pub(crate) struct App {
    name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    healthy: Arc<std::sync::atomic::AtomicBool>,
    addr: SocketAddr,
}

impl App {
    pub(crate) async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = App {
            name,
            seen: Arc::default(),
            healthy: Arc::new(true.into()),
            addr: listener.local_addr().unwrap(),
        };
        let router = axum::Router::new().fallback(handle).with_state(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        app
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().last().cloned().expect("the app saw a request")
    }

    /// The channel to this app, sending `token` as its app token.
    pub(crate) fn channel(&self, token: Option<&str>) -> HttpApp {
        HttpApp::new(HttpAppConfig {
            app_id: AppId::new(self.name).unwrap(),
            address: self.addr,
            app_token: token.map(str::to_owned),
            health: Some(HealthCheck {
                interval: Duration::from_millis(20),
                ..HealthCheck::default()
            }),
            max_body_size: 1 << 20,
            max_concurrency: None,
        })
        .unwrap()
    }
}

async fn handle(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    if path == "/healthz" {
        let healthy = app.healthy.load(std::sync::atomic::Ordering::SeqCst);
        return if healthy {
            StatusCode::OK.into_response()
        } else {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        };
    }
    app.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: body.clone(),
    });
    if let Some(size) = path.strip_prefix("/big/") {
        return vec![b'x'; size.parse().unwrap()].into_response();
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return (code, format!("app says {}", code.as_u16())).into_response();
    }
    (StatusCode::CREATED, [("x-app", app.name)], body).into_response()
}

/// A sidecar for `app_id` over no components, resolving through the
/// SQLite file in `nr_dir` and registered there with its internal endpoint,
/// whose identity is issued from the trust bundle in `nr_dir/trust` (one
/// bundle per test), with `token` as its API token.
pub(crate) async fn sidecar(
    app_id: &str,
    nr_dir: &std::path::Path,
    token: Option<&str>,
) -> Sidecar {
    let id = AppId::new(app_id).unwrap();
    let ca = CertificateAuthority::local(&nr_dir.join("trust"), "public").unwrap();
    let identity = ca
        .identity("default", &id, Duration::from_secs(3600))
        .unwrap();
    sidecar_as(identity, nr_dir, token).await
}

/// A sidecar of `identity`'s app, as [`sidecar`] describes.
pub(crate) async fn sidecar_as(
    identity: SidecarIdentity,
    nr_dir: &std::path::Path,
    token: Option<&str>,
) -> Sidecar {
    let resolver = SqliteNameResolver::open(&SqliteNameResolver::default_spec(nr_dir))
        .await
        .unwrap();
    let resolver: Arc<dyn NameResolver> = Arc::new(resolver);
    let invoker = Arc::new(InternalClient::new(identity.clone(), 1 << 20));
    let id = identity.id.app_id.clone();
    let runtime = Arc::new(
        Runtime::new(id.clone(), Arc::new(Components::default())).with_remote_invocation(
            RemoteInvocation {
                resolver: resolver.clone(),
                invoker,
            },
        ),
    );
    let config = ApiConfig {
        api_token: token.map(str::to_owned),
        ..ApiConfig::default()
    };
    let mut sidecar = Sidecar::serve(runtime.clone(), config.clone()).await;
    let internal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal_addr = internal.local_addr().unwrap();
    let stop = runtime.clone();
    tokio::spawn(async move {
        wasmdapr_api::internal::serve_internal(internal, runtime, &identity, &config, async move {
            stop.shutdown_requested().await
        })
        .await
    });
    sidecar.internal_addr = Some(internal_addr);
    resolver
        .register(&id, &internal_addr.to_string())
        .await
        .unwrap();
    sidecar
}

fn invoke_body(response: &reqwest::Response) -> (u16, Option<String>) {
    (
        response.status().as_u16(),
        response
            .headers()
            .get("x-app")
            .map(|v| v.to_str().unwrap().to_owned()),
    )
}

/// The HTTP API delivers `/v1.0/invoke/{id}/method/{method}` to the own app
/// over HttpApp: verb, raw path, query, end-to-end headers and body pass
/// through; hop-by-hop headers and the caller's token do not; the app token
/// is added; a traceparent is created; the app's status, headers and body
/// come back unchanged, non-2xx ones included.
#[tokio::test]
async fn http_invoke_reaches_the_own_app_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), Some(TOKEN)).await;
    let channel = app.channel(Some("app-token"));
    channel
        .wait_ready(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    s.runtime.set_app_channel(Arc::new(channel)).ok().unwrap();

    let response = s
        .client
        .put(s.url("/v1.0/invoke/myapp/method/orders/a%20b?x=1&y=two"))
        .header("dapr-api-token", TOKEN)
        .header("content-type", "application/json")
        .header("x-custom", "kept")
        .header("connection", "x-private")
        .header("x-private", "dropped")
        .body("{\"qty\":2}")
        .send()
        .await
        .unwrap();
    assert_eq!(invoke_body(&response), (201, Some("myapp".into())));
    assert_eq!(response.text().await.unwrap(), "{\"qty\":2}");
    let seen = app.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/orders/a%20b?x=1&y=two");
    assert_eq!(seen.body.as_ref(), b"{\"qty\":2}");
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.headers["dapr-api-token"], "app-token");
    assert!(seen.headers.get("x-private").is_none());
    let trace = seen.headers["traceparent"].to_str().unwrap();
    assert!(TraceParent::parse(trace).is_some(), "{trace}");

    for verb in ["GET", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(verb.as_bytes()).unwrap();
        let response = s
            .client
            .request(method, s.url("/v1.0/invoke/myapp/method/status/404"))
            .header("dapr-api-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{verb}");
        assert_eq!(app.last().method, verb);
        if verb != "HEAD" {
            assert_eq!(response.text().await.unwrap(), "app says 404");
        }
    }

    // The API token guards invocation like every other API.
    let response = s
        .client
        .get(s.url("/v1.0/invoke/myapp/method/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Any non-API path with a `dapr-app-id` header, or the `dapr-app-id:<id>@`
/// basic-auth user, is an invocation of that path; without either it is a 404.
#[tokio::test]
async fn dapr_app_id_header_forms() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), None).await;
    s.runtime
        .set_app_channel(Arc::new(app.channel(None)))
        .ok()
        .unwrap();

    let response = s
        .client
        .post(s.url("/v1/hello?q=1"))
        .header("dapr-app-id", "myapp")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(invoke_body(&response), (201, Some("myapp".into())));
    let seen = app.last();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("POST", "/v1/hello?q=1")
    );
    assert!(seen.headers.get("dapr-app-id").is_none());

    let response = reqwest::Client::new()
        .get(format!(
            "http://dapr-app-id:myapp@{}/basic/path",
            s.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let seen = app.last();
    assert_eq!(seen.uri, "/basic/path");
    assert!(seen.headers.get("authorization").is_none());

    let response = s.client.get(s.url("/v1/hello")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // The body limit holds for this form as for every route.
    let response = s
        .client
        .post(s.url("/v1/hello"))
        .header("dapr-app-id", "myapp")
        .body(vec![0u8; 5 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(app.seen().len(), 2);
}

/// An unknown app id, and the own id with no app connected, are
/// `ERR_DIRECT_INVOKE` 500 naming the id, over HTTP and gRPC.
#[tokio::test]
async fn undeliverable_invocations_are_err_direct_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let s = sidecar("myapp", dir.path(), None).await;
    for id in ["nobody", "myapp"] {
        let response = s
            .client
            .post(s.url(&format!("/v1.0/invoke/{id}/method/x")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
        assert!(body["message"].as_str().unwrap().contains(id), "{body}");
    }
    let mut grpc = DaprClient::connect(s.grpc.clone()).await.unwrap();
    let status = grpc
        .invoke_service(invoke_service("nobody", "x", 3, b""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(status.message().contains("ERR_DIRECT_INVOKE"), "{status:?}");
    assert!(status.message().contains("nobody"), "{status:?}");
}

fn invoke_service(id: &str, method: &str, verb: i32, body: &[u8]) -> runtime::InvokeServiceRequest {
    runtime::InvokeServiceRequest {
        id: id.into(),
        message: Some(common::InvokeRequest {
            method: method.into(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: body.to_vec(),
            }),
            content_type: "text/plain".into(),
            http_extension: Some(common::HttpExtension {
                verb,
                querystring: "k=v".into(),
            }),
        }),
    }
}

/// A client calls sidecar A for app `billing`; A resolves `billing` in the
/// shared SQLite file to sidecar B, which delivers to its app with B's app
/// token, naming the caller. The trace id the client started is kept
/// across both hops.
/// The hop is authenticated by the sidecars' certificates (mutual TLS on
/// the internal endpoint), not by the API token.
#[tokio::test]
async fn sidecar_to_sidecar_through_name_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let nr = dir.path();
    let billing = App::start("billing").await;
    let a = sidecar("checkout", nr, Some(TOKEN)).await;
    let b = sidecar("billing", nr, Some(TOKEN)).await;
    b.runtime
        .set_app_channel(Arc::new(billing.channel(Some("billing-token"))))
        .ok()
        .unwrap();

    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = a
        .client
        .post(a.url("/v1.0/invoke/billing/method/charge?amount=5"))
        .header("dapr-api-token", TOKEN)
        .header("traceparent", trace)
        .body("card")
        .send()
        .await
        .unwrap();
    assert_eq!(invoke_body(&response), (201, Some("billing".into())));
    assert_eq!(response.text().await.unwrap(), "card");
    let seen = billing.last();
    assert_eq!(seen.uri, "/charge?amount=5");
    assert_eq!(seen.headers["dapr-api-token"], "billing-token");
    assert_eq!(seen.headers["dapr-caller-app-id"], "checkout");
    assert_eq!(seen.headers["dapr-callee-app-id"], "billing");
    let got = TraceParent::parse(seen.headers["traceparent"].to_str().unwrap()).unwrap();
    let sent = TraceParent::parse(trace).unwrap();
    assert_eq!(got.trace_id, sent.trace_id);
    assert_ne!(got.parent_id, sent.parent_id);

    // The app's own error answer crosses both hops unchanged.
    let response = a
        .client
        .get(a.url("/v1.0/invoke/billing/method/status/409"))
        .header("dapr-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.text().await.unwrap(), "app says 409");
}

/// gRPC `InvokeService`: the HTTP extension's verb and query, the metadata
/// as headers and the data as body reach the app; a 2xx answer is the
/// response, any other an error of the matching code with
/// `dapr-http-status`. `RemoteDapr::invoke` reads both back.
#[tokio::test]
async fn grpc_invoke_service_and_remote_dapr() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), None).await;
    s.runtime
        .set_app_channel(Arc::new(app.channel(None)))
        .ok()
        .unwrap();
    let mut grpc = DaprClient::connect(s.grpc.clone()).await.unwrap();
    let mut request = tonic::Request::new(invoke_service("myapp", "echo", 4, b"payload"));
    request
        .metadata_mut()
        .insert("x-custom", "from-grpc".parse().unwrap());
    let response = grpc.invoke_service(request).await.unwrap();
    assert_eq!(response.metadata().get("dapr-http-status").unwrap(), "201");
    let response = response.into_inner();
    assert_eq!(response.data.unwrap().value, b"payload");
    let seen = app.last();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("PUT", "/echo?k=v")
    );
    assert_eq!(seen.headers["x-custom"], "from-grpc");
    assert_eq!(seen.headers["content-type"], "text/plain");

    let status = grpc
        .invoke_service(invoke_service("myapp", "status/404", 1, b""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.metadata().get("dapr-http-status").unwrap(), "404");

    let remote = RemoteDapr::connect(&s.grpc, None).await.unwrap();
    let mut request = InvokeRequest::new(http::Method::POST, "echo");
    request.body = Bytes::from_static(b"via remote");
    let answer = remote.invoke("myapp", request).await.unwrap();
    assert_eq!(answer.body().as_ref(), b"via remote");
    let answer = remote
        .invoke("myapp", InvokeRequest::new(http::Method::GET, "status/418"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 418);
    let err = remote
        .invoke("nobody", InvokeRequest::new(http::Method::GET, "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ERR_DIRECT_INVOKE");
}

/// HttpApp waits for the app's health path to answer 2xx before it is
/// ready, and gives up with a reason when the port never opens.
#[tokio::test]
async fn http_app_readiness_probe() {
    let app = App::start("myapp").await;
    app.healthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let channel = app.channel(None);
    let err = channel
        .wait_ready(Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let flip = app.healthy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        flip.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    channel
        .wait_ready(Some(Duration::from_secs(5)))
        .await
        .unwrap();

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let nobody = HttpApp::new(HttpAppConfig {
        app_id: AppId::new("ghost").unwrap(),
        address: addr,
        app_token: None,
        health: None,
        max_body_size: 1 << 20,
        max_concurrency: None,
    })
    .unwrap();
    let err = nobody
        .wait_ready(Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not open"), "{err}");
    let err = wasmdapr_runtime::HttpAppChannel::call(
        &nobody,
        http::Request::builder()
            .uri("/x")
            .body(Bytes::new())
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
}

/// An app's answer larger than the body limit fails the delivery
/// (ERR_DIRECT_INVOKE naming the limit) instead of being buffered; one
/// within the limit passes.
#[tokio::test]
async fn answers_over_the_body_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), None).await;
    s.runtime
        .set_app_channel(Arc::new(app.channel(None)))
        .ok()
        .unwrap();
    let ok = s
        .client
        .get(s.url("/v1.0/invoke/myapp/method/big/1048576"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().len(), 1 << 20);
    let response = s
        .client
        .get(s.url("/v1.0/invoke/myapp/method/big/1048577"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"].as_str().unwrap().contains("1048576 bytes"),
        "{body}"
    );
}

/// A sidecar told to expect its app answers `/v1.0/healthz` with 500
/// ERR_HEALTH_NOT_READY until the app is connected (`/healthz/outbound` is
/// 204 throughout), then 204.
#[tokio::test]
async fn healthz_waits_for_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), None).await;
    let status = |path: &'static str| {
        let (client, url) = (s.client.clone(), s.url(path));
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(status("/v1.0/healthz").await.status(), 204);
    s.runtime.expect_app();
    let response = status("/v1.0/healthz").await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_HEALTH_NOT_READY");
    assert_eq!(status("/v1.0/healthz/outbound").await.status(), 204);
    s.runtime
        .set_app_channel(Arc::new(app.channel(None)))
        .ok()
        .unwrap();
    assert_eq!(status("/v1.0/healthz").await.status(), 204);
}
