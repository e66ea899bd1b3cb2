//! The legacy `wasi_experimental_http` ABI: hand-written `.wat` guests
//! (`xhttp_*`) against a real HTTP server on 127.0.0.1 and against an
//! in-process sidecar, under the same outbound policy as `wasi:http`; every
//! error code a guest can cause, and what reaches the network when a call
//! fails (nothing).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use test_programs_artifacts::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmdapr_host::outbound::{BoxBody, box_body};
use wasmdapr_host::{Capabilities, Limits, LocalDapr, LocalHttp, OutboundPolicy};
use wasmtime_wasi_http::io::TokioIo;

use crate::http::{allowing, closed_port};
use crate::{Ran, host, load, run_with};

/// A real HTTP/1.1 server (hyper) on 127.0.0.1 that echoes each request as
/// `METHOD PATH host=HOST type=CONTENT-TYPE length=CONTENT-LENGTH body=BODY`,
/// with status NNN for a path `/status/NNN` (else 200) and the headers
/// `x-test: Hello`, `x-multi: a`, `x-multi: b`; `/big` is answered with
/// [`big_body`]. It counts connections.
struct EchoServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl EchoServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service_fn(echo)),
                );
            }
        });
        Self { addr, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn echo(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "-".into())
    };
    let line = format!(
        "{} {} host={} type={} length={}",
        request.method(),
        request.uri(),
        header("host"),
        header("content-type"),
        header("content-length"),
    );
    let status = request
        .uri()
        .path()
        .strip_prefix("/status/")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    if request.uri().path() == "/big" {
        return Ok(http::Response::new(Full::new(Bytes::from(big_body()))));
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let text = format!("{line} body={}", String::from_utf8_lossy(&body));
    Ok(http::Response::builder()
        .status(status)
        .header("x-test", "Hello")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}

/// What the echo server sends for `/big`: 256 KiB, many network reads.
fn big_body() -> String {
    "0123456789abcdef".repeat(16 * 1024)
}

/// Runs `guest` with `args` under `outbound`; it must exit 0.
async fn run_guest(guest: &str, args: &[&str], outbound: OutboundPolicy) -> Ran {
    let host = host();
    let app = load(&host, guest);
    let caps = Capabilities {
        args: args.iter().map(|s| s.to_string()).collect(),
        outbound,
        ..Capabilities::default()
    };
    let ran = run_with(&app, caps, Limits::default()).await;
    assert_eq!(ran.result.as_ref().unwrap(), &0, "stderr: {}", ran.stderr);
    ran
}

/// The mini-curl `xhttp_fetch` with `requests` (METHOD, URL, HEADERS, BODY).
async fn fetch(requests: &[[&str; 4]], outbound: OutboundPolicy) -> Ran {
    let args: Vec<&str> = requests.iter().flatten().copied().collect();
    run_guest(XHTTP_FETCH, &args, outbound).await
}

/// Happy path against a real server: method, URL, headers and body arrive
/// (the host sets `host` and `content-length`), a 4xx is a successful call
/// with its status, the body streams out in five-byte reads, handles start
/// at 0 and count up while responses are open, close frees one (a second
/// close of it is error 1) and the next request reuses it.
#[tokio::test]
pub(crate) async fn xhttp_fetch() {
    let server = EchoServer::start().await;
    let post = server.url("/v1/things?x=1");
    let missing = server.url("/status/404");
    let ran = fetch(
        &[
            [
                "POST",
                &post,
                "Content-Type: application/json\n",
                r#"{"a":1}"#,
            ],
            ["GET", &missing, "", ""],
        ],
        allowing(&[&server.url("")]),
    )
    .await;
    let host = server.addr.to_string();
    assert_eq!(
        ran.stdout,
        format!(
            "POST {post} -> 200 (handle 0)\n\
             POST /v1/things?x=1 host={host} type=application/json length=7 body={{\"a\":1}}\n\
             GET {missing} -> 404 (handle 1)\n\
             GET /status/404 host={host} type=- length=- body=\n\
             close 0 -> 0\n\
             close 0 -> 1\n\
             POST {post} -> 200 (handle 0)\n\
             POST /v1/things?x=1 host={host} type=application/json length=7 body={{\"a\":1}}\n"
        )
    );
    assert_eq!(server.connections(), 3);
}

/// A body larger than any one chunk the network delivers streams out whole,
/// in order, through five-byte reads.
#[tokio::test]
async fn large_body_streams_out_whole() {
    let server = EchoServer::start().await;
    let url = server.url("/big");
    let ran = fetch(&[["GET", &url, "", ""]], allowing(&[&server.url("")])).await;
    let mut lines = ran.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("GET {url} -> 200 (handle 0)").as_str())
    );
    assert!(lines.next() == Some(big_body().as_str()), "body differs");
}

/// More open responses than `max_in_flight` get error 13 at once, with
/// nothing sent; closing one frees its place.
#[tokio::test]
async fn open_responses_are_capped() {
    let server = EchoServer::start().await;
    let url = server.url("/");
    let mut policy = allowing(&[&server.url("")]);
    policy.max_in_flight = 2;
    let ran = fetch(
        &[
            ["GET", &url, "", ""],
            ["GET", &url, "", ""],
            ["GET", &url, "", ""],
        ],
        policy,
    )
    .await;
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], format!("GET {url} -> 200 (handle 0)"));
    assert_eq!(lines[2], format!("GET {url} -> 200 (handle 1)"));
    assert_eq!(lines[4], format!("GET {url} -> error 13"));
    assert_eq!(lines[5], "close 0 -> 0");
    assert_eq!(lines[7], format!("GET {url} -> 200 (handle 0)"));
    // Two, then one more after the close: the refused request sent nothing.
    assert_eq!(server.connections(), 3);
}

/// Another port of an allowed host, another scheme, or no grant at all is
/// error 7, refused before any connection (the original host's name-only
/// check would have let the first through).
#[tokio::test]
async fn destination_not_allowed_sends_nothing() {
    let server = EchoServer::start().await;
    let url = server.url("/");
    let other_port = format!("http://127.0.0.1:{}", closed_port());
    let https = format!("https://{}", server.addr);
    for policy in [
        allowing(&[&other_port]),
        allowing(&[&https]),
        OutboundPolicy::default(),
    ] {
        let ran = fetch(&[["GET", &url, "", ""]], policy).await;
        assert!(
            ran.stdout.starts_with(&format!("GET {url} -> error 7\n")),
            "{}",
            ran.stdout
        );
    }
    assert_eq!(server.connections(), 0);
}

/// A bad method is 8, a malformed header line 9, a URL that is not an
/// absolute http(s) URL 10, and an allowed destination where nothing
/// listens 11 (a transport failure); none of the first three sends anything.
#[tokio::test]
async fn request_errors_have_their_codes() {
    let server = EchoServer::start().await;
    let url = server.url("/");
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let policy = allowing(&[&server.url(""), dead.trim_end_matches('/')]);
    let ran = fetch(
        &[
            ["GE T", &url, "", ""],
            ["", &url, "", ""],
            ["GET", &url, "no colon here\n", ""],
            ["GET", &url, "bad name:x\n", ""],
            ["GET", &url, "x-ok:a\x7fb\n", ""],
            ["GET", "not a url", "", ""],
            ["GET", "ftp://127.0.0.1/", "", ""],
            ["GET", "/relative/path", "", ""],
            ["GET", "http://user@127.0.0.1/", "", ""],
            ["GET", &dead, "", ""],
        ],
        policy,
    )
    .await;
    let codes: Vec<&str> = ran
        .stdout
        .lines()
        .filter_map(|l| l.split_once(" -> error ").map(|(_, code)| code))
        .collect();
    assert_eq!(
        codes,
        // The guest repeats the first request at the end.
        ["8", "8", "9", "9", "9", "10", "10", "10", "10", "11", "8"],
        "{}",
        ran.stdout
    );
    assert_eq!(server.connections(), 0);
}

/// Answers in-process as a sidecar would: echoes method, path, the
/// `dapr-api-token` it received, the content type and the body.
struct EchoSidecar {
    calls: AtomicUsize,
}

impl LocalHttp for EchoSidecar {
    fn handle(
        &self,
        request: http::Request<BoxBody>,
    ) -> BoxFuture<'static, http::Response<BoxBody>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_else(|| "-".into())
        };
        let line = format!(
            "in-process {} {} token={} type={}",
            request.method(),
            request.uri().path(),
            header("dapr-api-token"),
            header("content-type"),
        );
        Box::pin(async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{line} body={}", String::from_utf8_lossy(&body));
            http::Response::builder()
                .status(201)
                .body(box_body(
                    Full::new(Bytes::from(text)).map_err(|e| match e {}),
                ))
                .unwrap()
        })
    }
}

/// An in-process sidecar on a port where nothing listens, with a token.
fn sidecar(implicit_grant: bool) -> (Arc<EchoSidecar>, Arc<LocalDapr>) {
    let handler = Arc::new(EchoSidecar {
        calls: AtomicUsize::new(0),
    });
    (
        handler.clone(),
        Arc::new(local_dapr(handler, implicit_grant)),
    )
}

/// `handler` as the sidecar on a port where nothing listens, with a token.
fn local_dapr(handler: Arc<dyn LocalHttp>, implicit_grant: bool) -> LocalDapr {
    LocalDapr {
        addr: SocketAddr::from(([127, 0, 0, 1], closed_port())),
        api_token: Some("s3cret".into()),
        implicit_grant,
        handler,
    }
}

/// A sidecar that answers `204` only once its gate is open (and at once
/// from then on).
struct GatedSidecar {
    open: watch::Receiver<bool>,
}

impl LocalHttp for GatedSidecar {
    fn handle(&self, _: http::Request<BoxBody>) -> BoxFuture<'static, http::Response<BoxBody>> {
        let mut open = self.open.clone();
        Box::pin(async move {
            // An error means the gate was dropped shut: never answer.
            if open.wait_for(|open| *open).await.is_err() {
                std::future::pending::<()>().await;
            }
            let mut response =
                http::Response::new(box_body(Full::new(Bytes::new()).map_err(|e| match e {})));
            *response.status_mut() = http::StatusCode::NO_CONTENT;
            response
        })
    }
}

/// A request waiting for its response suspends its guest, not the thread:
/// on this test's single-threaded runtime, a second app runs to completion
/// while the first app's request is pending, and only then is the first
/// answered. (A blocking host call would never let the second app run.)
#[tokio::test(flavor = "current_thread")]
async fn a_pending_request_does_not_block_the_thread() {
    let (gate, open) = watch::channel(false);
    let slow_sidecar = local_dapr(Arc::new(GatedSidecar { open }), true);
    let slow_url = format!("http://127.0.0.1:{}/slow", slow_sidecar.addr.port());
    let slow_policy = OutboundPolicy {
        local: Some(Arc::new(slow_sidecar)),
        ..OutboundPolicy::default()
    };
    let (_, fast_sidecar) = sidecar(true);
    let fast_url = format!("http://127.0.0.1:{}/fast", fast_sidecar.addr.port());
    let fast_policy = OutboundPolicy {
        local: Some(fast_sidecar),
        ..OutboundPolicy::default()
    };
    let slow_request = [["GET", slow_url.as_str(), "", ""]];
    let slow = fetch(&slow_request, slow_policy);
    let fast = async {
        let ran = fetch(&[["GET", &fast_url, "", ""]], fast_policy).await;
        gate.send_replace(true);
        ran
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(
        fast.stdout.contains("in-process GET /fast"),
        "{}",
        fast.stdout
    );
    assert!(
        slow.stdout
            .starts_with(&format!("GET {slow_url} -> 204 (handle 0)\n")),
        "{}",
        slow.stdout
    );
}

/// A response that does not come within `--outbound-timeout` is error 11,
/// not a hung guest.
#[tokio::test]
async fn outbound_timeout_is_a_request_error() {
    let (_shut, open) = watch::channel(false);
    let hung = local_dapr(Arc::new(GatedSidecar { open }), true);
    let url = format!("http://127.0.0.1:{}/hang", hung.addr.port());
    let policy = OutboundPolicy {
        local: Some(Arc::new(hung)),
        timeout: Duration::from_millis(200),
        ..OutboundPolicy::default()
    };
    let ran = fetch(&[["GET", &url, "", ""]], policy).await;
    assert!(
        ran.stdout.starts_with(&format!("GET {url} -> error 11\n")),
        "{}",
        ran.stdout
    );
}

/// A body cut short by the server is error 11 from `body_read`, after the
/// bytes that did arrive.
#[tokio::test]
async fn truncated_body_is_a_request_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
                .await;
        }
    });
    let url = format!("http://{addr}/");
    let ran = fetch(
        &[["GET", &url, "", ""]],
        allowing(&[&format!("http://{addr}")]),
    )
    .await;
    assert!(
        ran.stdout.starts_with(&format!(
            "GET {url} -> 200 (handle 0)\nshortbody error 11\n"
        )),
        "{}",
        ran.stdout
    );
}

/// The sidecar's address is served in-process (nothing listens there),
/// with the host's `dapr-api-token` replacing the one the guest sent;
/// without the implicit grant it takes an `--allow-host`.
#[tokio::test]
async fn sidecar_is_served_in_process_with_the_token() {
    let (handler, local) = sidecar(false);
    let port = local.addr.port();
    let url = format!("http://127.0.0.1:{port}/v1.0/state/statestore");
    let headers = "content-type:application/json\ndapr-api-token:forged\n";
    let request = [["POST", url.as_str(), headers, "[]"]];
    let denied = OutboundPolicy {
        local: Some(local.clone()),
        ..OutboundPolicy::default()
    };
    let ran = fetch(&request, denied).await;
    assert!(ran.stdout.contains("-> error 7"), "{}", ran.stdout);
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0);

    let granted = OutboundPolicy {
        local: Some(local),
        ..allowing(&[&format!("http://127.0.0.1:{port}")])
    };
    let ran = fetch(&request, granted).await;
    assert!(
        ran.stdout.starts_with(&format!(
            "POST {url} -> 201 (handle 0)\n\
             in-process POST /v1.0/state/statestore token=s3cret type=application/json body=[]\n"
        )),
        "{}",
        ran.stdout
    );
}

/// Every bad pointer, length and encoding `req` can be given returns its
/// code (3 out of bounds, including a length that wraps; 6 not UTF-8)
/// before anything is sent: the server sees only the last, valid request.
#[tokio::test]
pub(crate) async fn xhttp_req_errors() {
    let server = EchoServer::start().await;
    let url = server.url("/");
    let ran = run_guest(XHTTP_REQ_ERRORS, &[&url], allowing(&[&server.url("")])).await;
    assert_eq!(
        ran.stdout,
        "url out of bounds -> 3\n\
         url length wraps -> 3\n\
         url not UTF-8 -> 6\n\
         method out of bounds -> 3\n\
         method not UTF-8 -> 6\n\
         headers out of bounds -> 3\n\
         headers not UTF-8 -> 6\n\
         body out of bounds -> 3\n\
         status_ptr out of bounds -> 3\n\
         handle_ptr out of bounds -> 3\n\
         valid -> 0\n"
    );
    assert_eq!(server.connections(), 1);
}

/// `header_get` (case-insensitive, first value; 5 absent, 4 too small with
/// the length needed, 6 name not UTF-8, 3 out of bounds), `headers_get_all`
/// (every value as `name:value` lines; 4, 3), `body_read` (3 for a bad
/// buffer or count pointer, taking nothing from the body) and handle
/// errors (1 after close and for handles that never were).
#[tokio::test]
pub(crate) async fn xhttp_headers() {
    let server = EchoServer::start().await;
    let url = server.url("/");
    let ran = run_guest(XHTTP_HEADERS, &[&url], allowing(&[&server.url("")])).await;
    let (before, rest) = ran
        .stdout
        .split_once("headers_get_all -> 0\n")
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert_eq!(
        before,
        "req -> 0\n\
         header_get X-TEST -> 0 Hello\n\
         header_get x-multi -> 0 a\n\
         header_get x-missing -> 5\n\
         header_get into 2 bytes -> 4 5\n\
         header_get non-UTF-8 name -> 6\n\
         header_get name out of bounds -> 3\n\
         header_get value out of bounds -> 3\n\
         header_get written_ptr out of bounds -> 3\n"
    );
    let (all, after) = rest
        .split_once("headers_get_all into 4 bytes -> 4 ")
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert!(
        all.contains("x-test:Hello\nx-multi:a\nx-multi:b\n"),
        "{all}"
    );
    assert!(all.contains("content-length:"), "{all}");
    let host = server.addr;
    assert_eq!(
        after,
        format!(
            "{}\n\
             headers_get_all out of bounds -> 3\n\
             body_read buffer out of bounds -> 3\n\
             body_read nread_ptr out of bounds -> 3\n\
             body_read -> 0 GET / host={host} type=- length=- body=\n\
             close -> 0\n\
             close again -> 1\n\
             body_read closed -> 1\n\
             header_get closed -> 1\n\
             headers_get_all closed -> 1\n\
             close 12345 -> 1\n\
             close -1 -> 1\n",
            all.len()
        )
    );
}

/// A module without an exported `memory` gets 2 from every call that takes
/// a pointer, and no trap.
#[tokio::test]
pub(crate) async fn xhttp_no_memory() {
    let host = host();
    let app = load(&host, XHTTP_NO_MEMORY);
    let ran = run_with(&app, Capabilities::default(), Limits::default()).await;
    assert_eq!(ran.result.unwrap(), 0, "exit code 10 * call + code");
}

/// A module whose whole program runs in the start section (no `_start`),
/// like the prototype's AssemblyScript apps, makes requests during
/// instantiation: here to the in-process sidecar under the implicit grant.
#[tokio::test]
pub(crate) async fn xhttp_start_section() {
    let (handler, local) = sidecar(true);
    let base = format!(
        "http://127.0.0.1:{}/v1.0/state/statestore",
        local.addr.port()
    );
    let policy = OutboundPolicy {
        local: Some(local),
        ..OutboundPolicy::default()
    };
    let get = format!("{base}/weapon");
    let ran = run_guest(XHTTP_START_SECTION, &[&base, &get], policy).await;
    assert_eq!(
        ran.stdout,
        "201\n\
         in-process POST /v1.0/state/statestore token=s3cret type=application/json \
         body=[{\"key\":\"weapon\",\"value\":\"Death Star\"}]\n\
         201\n\
         in-process GET /v1.0/state/statestore/weapon token=s3cret type=- body=\n"
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
}
