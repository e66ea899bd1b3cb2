//! What the benchmarks share: the sidecar process guard, ports, readiness
//! and memory probes, and the interleaved latency/throughput measurement.
//! Each bench uses part of it.
#![allow(dead_code)]

pub mod lean;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rounds the sequential requests are interleaved in (see [`measure`]).
pub const ROUNDS: usize = 10;
/// Tasks issuing requests at once in the load phase of [`measure`].
pub const CONCURRENCY: usize = 32;
/// How long the load phase of [`measure`] runs per op.
pub const LOAD_TIME: Duration = Duration::from_secs(3);

/// `POST path` with the body `body(i)` (JSON) for request `i`, by the lean
/// HTTP/1.1 client, expecting `status`.
pub fn http_post<F>(
    name: &'static str,
    client: lean::Http1Client,
    path: &'static str,
    status: u16,
    body: F,
) -> Op
where
    F: Fn(usize) -> String + Send + Sync + 'static,
{
    let body = Arc::new(body);
    Op::new(name, move |i| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let request = http::Request::post(path)
                .header("host", "sidecar")
                .header("content-type", "application/json")
                .body(body(i).into())
                .unwrap();
            let (answered, _) = client.send(request).await;
            assert_eq!(answered, status, "{name}");
        }
    })
}

/// The Rust SDK's generated gRPC client over one lean HTTP/2 connection to
/// `127.0.0.1:port`.
pub async fn grpc_client(
    port: u16,
) -> dapr::dapr::proto::runtime::v1::dapr_client::DaprClient<lean::H2> {
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    dapr::dapr::proto::runtime::v1::dapr_client::DaprClient::with_origin(
        lean::H2::connect(addr).await,
        format!("http://{addr}").parse().unwrap(),
    )
}

/// Where benches write their JSON: `bench/` in the target directory.
pub fn out_dir() -> PathBuf {
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// A child process, killed when dropped.
pub struct Sidecar(pub Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(
        s,
        "GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 204")
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// One request of an [`Op`], boxed so ops of different clients share a type.
pub type Request = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One request kind the bench times: a name and the request (`i` numbers
/// the request, so writes can spread over keys).
pub struct Op {
    pub name: &'static str,
    pub run: Arc<dyn Fn(usize) -> Request + Send + Sync>,
}

impl Op {
    pub fn new<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Op {
            name,
            run: Arc::new(move |i| Box::pin(run(i))),
        }
    }
}

/// Latency of sequential requests, interleaved: [`ROUNDS`] rounds, each
/// running [`SEQUENTIAL`] / [`ROUNDS`] requests of every op in turn, so a
/// slow spell of the machine (another VM, a timer, a page-cache flush)
/// falls on every op alike instead of on whichever ran then. Then each op's
/// requests/s from [`CONCURRENCY`] tasks for [`LOAD_TIME`].
pub async fn measure(ops: &[Op], sequential: usize, load: bool) -> Vec<serde_json::Value> {
    for op in ops {
        for i in 0..200 {
            (op.run)(i).await;
        }
    }
    let per_round = sequential / ROUNDS;
    let mut latencies = vec![Vec::with_capacity(sequential); ops.len()];
    for round in 0..ROUNDS {
        for (op, lat) in ops.iter().zip(&mut latencies) {
            for n in 0..per_round {
                let t = Instant::now();
                (op.run)(round * per_round + n).await;
                lat.push(t.elapsed());
            }
        }
    }
    let mut rows = Vec::new();
    for (op, mut lat) in ops.iter().zip(latencies) {
        lat.sort();
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let name = op.name;
        if !load {
            eprintln!("{name:<18} p50 {p50:8.1} µs  p99 {p99:8.1} µs");
            continue;
        }
        let deadline = Instant::now() + LOAD_TIME;
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|t| {
                let run = op.run.clone();
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        run(t * 1_000_000 + n).await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let rps = total as f64 / LOAD_TIME.as_secs_f64();
        eprintln!("{name:<18} p50 {p50:8.1} µs  p99 {p99:8.1} µs  {rps:10.0} req/s");
        rows.push(serde_json::json!({"name": name, "p50_us": p50, "p99_us": p99, "rps": rps}));
    }
    rows
}
