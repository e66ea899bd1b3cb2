//! Outbound HTTP (`wasi:http/outgoing-handler`) under `--allow-host`: which
//! destinations are reached, which are refused before any connection, the
//! in-flight cap, timeouts, and the embedded sidecar served in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use test_programs_artifacts::P2_HTTP_GET;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wasmdapr_host::outbound::{BoxBody, box_body};
use wasmdapr_host::{AllowedHosts, Capabilities, Limits, LocalDapr, LocalHttp, OutboundPolicy};

use crate::{Ran, host, load, run_with};

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with 200
/// and `hello from the test server`, and counts the connections it accepted.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl TestServer {
    /// Starts it on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = "hello from the test server";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { addr, connections }
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Capabilities running `http_get` on `urls` under `outbound`.
fn caps(urls: &[String], outbound: OutboundPolicy) -> Capabilities {
    Capabilities {
        args: urls.to_vec(),
        outbound,
        ..Capabilities::default()
    }
}

/// A policy allowing exactly `allowed`.
pub fn allowing(allowed: &[&str]) -> OutboundPolicy {
    OutboundPolicy {
        allowed: AllowedHosts::parse(allowed).unwrap(),
        ..OutboundPolicy::default()
    }
}

/// Runs `http_get` with `urls` under `outbound`.
pub async fn get(urls: &[String], outbound: OutboundPolicy) -> Ran {
    let host = host();
    let app = load(&host, P2_HTTP_GET);
    let ran = run_with(&app, caps(urls, outbound), Limits::default()).await;
    assert_eq!(ran.result.as_ref().unwrap(), &0, "stderr: {}", ran.stderr);
    ran
}

/// A port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The same host on another port is refused before any connection: the
/// prototype's host-only match would have let it through.
#[tokio::test]
async fn other_port_of_an_allowed_host_is_refused_without_connecting() {
    let server = TestServer::start().await;
    let other = format!("http://127.0.0.1:{}", closed_port());
    let ran = get(&[server.url("/")], allowing(&[&other])).await;
    assert!(
        ran.stdout.contains("error ErrorCode::HttpRequestDenied"),
        "{}",
        ran.stdout
    );
    assert_eq!(server.connections(), 0);
}

/// The right host and port under another scheme is refused without connecting.
#[tokio::test]
async fn other_scheme_is_refused_without_connecting() {
    let server = TestServer::start().await;
    let https = format!("https://{}", server.addr);
    let ran = get(&[server.url("/")], allowing(&[&https])).await;
    assert!(ran.stdout.contains("HttpRequestDenied"), "{}", ran.stdout);
    assert_eq!(server.connections(), 0);
}

/// With no grant at all, nothing is reached.
#[tokio::test]
async fn nothing_is_allowed_by_default() {
    let server = TestServer::start().await;
    let ran = get(&[server.url("/")], OutboundPolicy::default()).await;
    assert!(ran.stdout.contains("HttpRequestDenied"), "{}", ran.stdout);
    assert_eq!(server.connections(), 0);
}

/// `http://127.0.0.1:*` allows any port of that host.
#[tokio::test]
async fn wildcard_port_is_allowed() {
    let server = TestServer::start().await;
    let ran = get(&[server.url("/x")], allowing(&["http://127.0.0.1:*"])).await;
    assert!(
        ran.stdout.contains("-> 200\nhello from the test server"),
        "{}",
        ran.stdout
    );
    assert_eq!(server.connections(), 1);
}

/// One request more than `max_in_flight` fails at once with
/// `connection-limit-reached`; the others complete.
#[tokio::test]
async fn requests_in_flight_are_capped() {
    let server = TestServer::start().await;
    let mut policy = allowing(&[&server.url("")]);
    policy.max_in_flight = 2;
    let urls = vec![server.url("/1"), server.url("/2"), server.url("/3")];
    let ran = get(&urls, policy).await;
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("-> 200")).count(),
        2,
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!(
            "GET {} -> error ErrorCode::ConnectionLimitReached",
            urls[2]
        )),
        "{}",
        ran.stdout
    );
    assert_eq!(server.connections(), 2);
}

/// Answers in-process like the sidecar would: echoes the path and the
/// `dapr-api-token` it received, and counts the calls.
struct EchoSidecar {
    calls: AtomicUsize,
    hang: bool,
}

impl LocalHttp for EchoSidecar {
    fn handle(
        &self,
        request: http::Request<BoxBody>,
    ) -> BoxFuture<'static, http::Response<BoxBody>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let token = request
            .headers()
            .get("dapr-api-token")
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .unwrap_or_else(|| "none".into());
        let body = format!("in-process {} token={token}", request.uri().path());
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            http::Response::new(box_body(
                Full::new(Bytes::from(body)).map_err(|e| match e {}),
            ))
        })
    }
}

fn sidecar(implicit_grant: bool, hang: bool) -> (Arc<EchoSidecar>, LocalDapr) {
    let handler = Arc::new(EchoSidecar {
        calls: AtomicUsize::new(0),
        hang,
    });
    let local = LocalDapr {
        addr: SocketAddr::from(([127, 0, 0, 1], closed_port())),
        api_token: Some("s3cret".into()),
        implicit_grant,
        handler: handler.clone(),
    };
    (handler, local)
}

/// The sidecar's address is served in-process (nothing listens on that
/// port), under `localhost` too, with the host adding `dapr-api-token`.
#[tokio::test]
async fn sidecar_address_is_served_in_process_with_the_token() {
    let (handler, local) = sidecar(true, false);
    let port = local.addr.port();
    let policy = OutboundPolicy {
        local: Some(Arc::new(local)),
        ..OutboundPolicy::default()
    };
    let urls = vec![
        format!("http://127.0.0.1:{port}/v1.0/state/statestore/k"),
        format!("http://localhost:{port}/v1.0/healthz"),
    ];
    let ran = get(&urls, policy).await;
    assert!(
        ran.stdout
            .contains("-> 200\nin-process /v1.0/state/statestore/k token=s3cret"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("in-process /v1.0/healthz token=s3cret"),
        "{}",
        ran.stdout
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
}

/// Without the implicit grant, the sidecar is reachable only through an
/// `--allow-host` for its address.
#[tokio::test]
async fn sidecar_needs_a_grant() {
    let (handler, local) = sidecar(false, false);
    let port = local.addr.port();
    let local = Arc::new(local);
    let url = vec![format!("http://127.0.0.1:{port}/v1.0/healthz")];
    let denied = OutboundPolicy {
        local: Some(local.clone()),
        ..OutboundPolicy::default()
    };
    let ran = get(&url, denied).await;
    assert!(ran.stdout.contains("HttpRequestDenied"), "{}", ran.stdout);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0);
    let granted = OutboundPolicy {
        local: Some(local),
        ..allowing(&[&format!("http://127.0.0.1:{port}")])
    };
    let ran = get(&url, granted).await;
    assert!(
        ran.stdout.contains("in-process /v1.0/healthz"),
        "{}",
        ran.stdout
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
}

/// A response that never comes ends at the outbound timeout with an error
/// value, not a hung guest.
#[tokio::test]
async fn outbound_timeout_ends_a_hung_request() {
    let (_handler, local) = sidecar(true, true);
    let port = local.addr.port();
    let policy = OutboundPolicy {
        local: Some(Arc::new(local)),
        timeout: Duration::from_millis(200),
        ..OutboundPolicy::default()
    };
    let ran = get(&[format!("http://127.0.0.1:{port}/hang")], policy).await;
    assert!(ran.stdout.contains("HttpResponseTimeout"), "{}", ran.stdout);
}
