//! State GET and SET through the sidecar's HTTP and gRPC APIs against Redis,
//! side by side with raw Redis (redis-rs) in the same run: latency p50/p99
//! of sequential requests, requests/s with concurrent clients, and the
//! sidecar's resident memory idle and after load.
//!
//! Run by `bench/run.sh` (release build); writes `target/bench/state.json`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use dapr::dapr::proto::runtime::v1::{GetStateRequest, SaveStateRequest};
use redis::AsyncCommands;

const SEQUENTIAL: usize = 5_000;
const CONCURRENCY: usize = 32;
const LOAD_TIME: Duration = Duration::from_secs(3);
const VALUE: &str = r#"{"name":"Tatooine","test":123}"#;

struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthy(port: u16) -> bool {
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

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Runs `op` sequentially, then from `CONCURRENCY` tasks for `LOAD_TIME`.
async fn measure<F, Fut>(name: &str, op: F) -> serde_json::Value
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    for i in 0..200 {
        op(i).await;
    }
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let t = Instant::now();
        op(i).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let deadline = Instant::now() + LOAD_TIME;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    op(t * 1_000_000 + n).await;
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
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    eprintln!("{name:<16} p50 {p50:8.1} µs  p99 {p99:8.1} µs  {rps:10.0} req/s");
    serde_json::json!({"name": name, "p50_us": p50, "p99_us": p99, "rps": rps})
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("statestore.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n",
    )
    .unwrap();
    let (http, grpc) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .args(["sidecar", "--app-id", "bench", "--resources-path"])
        .arg(dir.path())
        .args([
            "--dapr-http-port",
            &http.to_string(),
            "--dapr-grpc-port",
            &grpc.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the sidecar");
    let pid = child.id();
    let _sidecar = Sidecar(child);
    let start = Instant::now();
    while !healthy(http) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sidecar not healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(pid);

    let redis = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let conn = redis.get_multiplexed_async_connection().await.unwrap();
    let http_client = reqwest::Client::new();
    let grpc_client = DaprClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{http}/v1.0/state/statestore");
    // Seed the key every GET reads.
    http_client
        .post(&base)
        .body(format!(r#"[{{"key":"bench","value":{VALUE}}}]"#))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();

    let mut results = Vec::new();
    let c = conn.clone();
    results.push(
        measure("redis GET", move |_| {
            let mut c = c.clone();
            async move {
                let _: Option<String> = c.hget("bench||bench", "data").await.unwrap();
            }
        })
        .await,
    );
    let c = conn.clone();
    results.push(
        measure("redis SET", move |i| {
            let mut c = c.clone();
            async move {
                let _: () = c
                    .hset(format!("bench||raw{}", i % 1000), "data", VALUE)
                    .await
                    .unwrap();
            }
        })
        .await,
    );
    let (h, url) = (http_client.clone(), format!("{base}/bench"));
    results.push(
        measure("HTTP GET", move |_| {
            let (h, url) = (h.clone(), url.clone());
            async move {
                let r = h.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .await,
    );
    let (h, url) = (http_client.clone(), base.clone());
    results.push(
        measure("HTTP SET", move |i| {
            let (h, url) = (h.clone(), url.clone());
            async move {
                let body = format!(r#"[{{"key":"k{}","value":{VALUE}}}]"#, i % 1000);
                let r = h
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
            }
        })
        .await,
    );
    let g = grpc_client.clone();
    results.push(
        measure("gRPC GET", move |_| {
            let mut g = g.clone();
            async move {
                g.get_state(GetStateRequest {
                    store_name: "statestore".into(),
                    key: "bench".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        })
        .await,
    );
    let g = grpc_client.clone();
    results.push(
        measure("gRPC SET", move |i| {
            let mut g = g.clone();
            async move {
                g.save_state(SaveStateRequest {
                    store_name: "statestore".into(),
                    states: vec![dapr::dapr::proto::common::v1::StateItem {
                        key: format!("k{}", i % 1000),
                        value: VALUE.as_bytes().to_vec(),
                        ..Default::default()
                    }],
                })
                .await
                .unwrap();
            }
        })
        .await,
    );
    let loaded_rss = rss_kib(pid);
    let report = serde_json::json!({
        "results": results,
        "idle_rss_kib": idle_rss,
        "loaded_rss_kib": loaded_rss,
        "sequential": SEQUENTIAL,
        "concurrency": CONCURRENCY,
        "load_seconds": LOAD_TIME.as_secs(),
    });
    eprintln!("sidecar RSS: idle {idle_rss} KiB, after load {loaded_rss} KiB");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("state.json"),
        serde_json::to_vec_pretty(&report).unwrap(),
    )
    .unwrap();
}
