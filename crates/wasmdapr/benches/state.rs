//! State GET and SET through the sidecar's HTTP and gRPC APIs against Redis,
//! side by side with raw Redis (redis-rs) in the same run: latency p50/p99
//! of sequential requests, requests/s with concurrent clients, and the
//! sidecar's resident memory idle and after load.
//!
//! Then the same GET from inside a Wasm guest (`bench_state_get` under
//! `wasmdapr run` on the same Redis), timed in the guest with the monotonic
//! clock: through the typed Dapr imports and through `wasi:http` to the
//! Dapr HTTP API (served in-process); and the resident memory each
//! concurrently live guest instance adds, measured in this process.
//!
//! Run by `bench/run.sh` (release build); writes `bench/state.json` in the
//! target directory (`$CARGO_TARGET_DIR`, else `target/`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use dapr::dapr::proto::runtime::v1::{GetStateRequest, SaveStateRequest};
use redis::AsyncCommands;
use test_programs_artifacts::P2_BENCH_STATE_GET;

mod common;
use common::{
    CONCURRENCY, LOAD_TIME, Op, Sidecar, healthy, http_post, lean, measure, out_dir, rss_kib,
};
use wasmdapr_host::{Capabilities, Host, HostConfig, Limits, Output};
use wasmdapr_runtime::{AppId, ComponentRegistry, Components, DaprApi, Resources, Runtime};

const SEQUENTIAL: usize = 5_000;
/// Guest instances alive at once when measuring memory per instance (the
/// default pool holds 100).
const LIVE_INSTANCES: usize = 64;
const VALUE: &str = r#"{"name":"Tatooine","test":123}"#;

/// `GET path` with the lean HTTP/1.1 client, expecting 200.
fn http_get(name: &'static str, client: lean::Http1Client, path: &'static str) -> Op {
    Op::new(name, move |_| {
        let client = client.clone();
        async move {
            let request = http::Request::get(path)
                .header("host", "bench")
                .body(Default::default())
                .unwrap();
            let (status, _) = client.send(request).await;
            assert_eq!(status, 200);
        }
    })
}

/// `GetState` of the seeded key through `client`, over any transport.
fn grpc_get<T>(name: &'static str, client: DaprClient<T>) -> Op
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    Op::new(name, move |_| {
        let mut client = client.clone();
        async move {
            client
                .get_state(GetStateRequest {
                    store_name: "statestore".into(),
                    key: "bench".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    })
}

/// Runs `bench_state_get MODE` under `wasmdapr run` on the Redis store in
/// `resources`, as app `bench` (so it reads the seeded `bench||bench`), and
/// returns its latencies as a result row named `name`.
fn guest_gets(resources: &Path, mode: &str, name: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .args(["run", "--app-id", "bench", "--resources-path"])
        .arg(resources)
        .args(["--dapr-http-port", "0", "--dapr-grpc-port", "0"])
        .args(["--dapr-internal-grpc-port", "0"])
        .arg(P2_BENCH_STATE_GET)
        .args(["--", mode, "statestore", "bench", &SEQUENTIAL.to_string()])
        .output()
        .expect("running the bench guest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench guest ({mode}) failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |key: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
    };
    let (p50, p99) = (field("p50_us"), field("p99_us"));
    eprintln!("{name:<16} p50 {p50:8.1} µs  p99 {p99:8.1} µs  (timed in the guest)");
    serde_json::json!({"name": name, "p50_us": p50, "p99_us": p99, "n": field("n")})
}

/// The resident memory one more live guest instance costs: this process's
/// RSS with [`LIVE_INSTANCES`] instances of `bench_state_get hold` alive at
/// once (each has done one typed GET on Redis and sleeps), minus its RSS
/// after one such instance ran and ended, divided by their number.
async fn memory_per_instance(resources: &Path) -> serde_json::Value {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let specs = Resources::load_dirs(&[resources.to_path_buf()])
        .unwrap()
        .components;
    let components = Arc::new(Components::load_declared(specs, &registry).await.unwrap());
    let id = AppId::new("bench").unwrap();
    let runtime: Arc<dyn DaprApi> = Arc::new(Runtime::new(id.clone(), components));
    let host = Host::new(HostConfig::default()).unwrap();
    let app = Arc::new(host.load(Path::new(P2_BENCH_STATE_GET), &id).unwrap());
    let caps = |hold_ms: u64| Capabilities {
        args: ["hold", "statestore", "bench", &hold_ms.to_string()]
            .map(String::from)
            .to_vec(),
        dapr: Some(runtime.clone()),
        stdout: Output::Null,
        stderr: Output::Inherit,
        ..Capabilities::default()
    };
    assert_eq!(app.run(&caps(0), Limits::default()).await.unwrap(), 0);
    let before = rss_kib(std::process::id());
    let hold = Duration::from_secs(3);
    let mut live = tokio::task::JoinSet::new();
    for _ in 0..LIVE_INSTANCES {
        let (app, caps) = (app.clone(), caps(hold.as_millis() as u64));
        live.spawn(async move { app.run(&caps, Limits::default()).await });
    }
    tokio::time::sleep(hold / 2).await;
    let during = rss_kib(std::process::id());
    while let Some(done) = live.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 0, "a held instance failed");
    }
    let per_instance = during.saturating_sub(before) as f64 / LIVE_INSTANCES as f64;
    eprintln!(
        "guest instances: RSS {before} KiB -> {during} KiB with {LIVE_INSTANCES} live, \
         {per_instance:.0} KiB each"
    );
    serde_json::json!({
        "live": LIVE_INSTANCES,
        "rss_before_kib": before,
        "rss_live_kib": during,
        "per_instance_kib": per_instance,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("statestore.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n",
    )
    .unwrap();
    let (http, grpc) = (common::free_port(), common::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .args(["sidecar", "--app-id", "bench", "--resources-path"])
        .arg(dir.path())
        .args([
            "--dapr-http-port",
            &http.to_string(),
            "--dapr-grpc-port",
            &grpc.to_string(),
            "--dapr-internal-grpc-port",
            "0",
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

    let c = conn.clone();
    let mut ops = vec![Op::new("redis GET", move |_| {
        let mut c = c.clone();
        async move {
            let _: Option<String> = c.hget("bench||bench", "data").await.unwrap();
        }
    })];
    // The exact read `state.redis` makes (value, version and expiry in one
    // script), so the sidecar and guest rows can also be read against the
    // backend's own cost.
    let c = conn.clone();
    ops.push(Op::new("redis GET script", move |_| {
        let mut c = c.clone();
        async move {
            let _: (Option<String>, Option<String>, i64) =
                wasmdapr_components::state::redis::read_script()
                    .key("bench||bench")
                    .invoke_async(&mut c)
                    .await
                    .unwrap();
        }
    }));
    let c = conn.clone();
    ops.push(Op::new("redis SET", move |i| {
        let mut c = c.clone();
        async move {
            let _: () = c
                .hset(format!("bench||raw{}", i % 1000), "data", VALUE)
                .await
                .unwrap();
        }
    }));
    // The floor: a plain hyper server doing one HGET per request.
    let floor = lean::start_floor("bench||bench");
    let floor_http = lean::Http1Client::new(floor);
    ops.push(http_get("floor HTTP GET", floor_http, "/bench"));
    let floor_grpc = DaprClient::with_origin(
        lean::H2::connect(floor).await,
        format!("http://{floor}").parse().unwrap(),
    );
    ops.push(grpc_get("floor gRPC GET", floor_grpc));
    let http_addr: std::net::SocketAddr = ([127, 0, 0, 1], http).into();
    let sidecar_http = lean::Http1Client::new(http_addr);
    ops.push(http_get(
        "HTTP GET",
        sidecar_http.clone(),
        "/v1.0/state/statestore/bench",
    ));
    ops.push(http_post(
        "HTTP SET",
        sidecar_http.clone(),
        "/v1.0/state/statestore",
        204,
        |i| format!(r#"[{{"key":"k{}","value":{VALUE}}}]"#, i % 1000),
    ));
    let sidecar_grpc = common::grpc_client(grpc).await;
    ops.push(grpc_get("gRPC GET", sidecar_grpc.clone()));
    let g = sidecar_grpc.clone();
    ops.push(Op::new("gRPC SET", move |i| {
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
    }));
    // What an application sees through the usual clients: reqwest, and the
    // Rust SDK's tonic `Channel`.
    let (h, url) = (http_client.clone(), format!("{base}/bench"));
    ops.push(Op::new("HTTP GET reqwest", move |_| {
        let (h, url) = (h.clone(), url.clone());
        async move {
            let r = h.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    }));
    ops.push(grpc_get("gRPC GET Channel", grpc_client.clone()));
    // Profiling: `BENCH_ONLY="gRPC GET,redis GET"` times only those ops,
    // sequentially (`BENCH_SEQUENTIAL` requests, no load phase), and prints
    // the sidecar's pid to attach `perf` or `strace` to.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        ops.retain(|op| names.contains(&op.name));
        let sequential = std::env::var("BENCH_SEQUENTIAL")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(SEQUENTIAL);
        eprintln!("sidecar pid {pid}; {sequential} sequential requests of {names:?}");
        measure(&ops, sequential, false).await;
        return;
    }
    let results = measure(&ops, SEQUENTIAL, true).await;
    let loaded_rss = rss_kib(pid);
    // From inside a guest, against the same store and key.
    let guest = vec![
        guest_gets(dir.path(), "typed", "guest typed GET"),
        guest_gets(dir.path(), "http", "guest HTTP GET"),
    ];
    let instances = memory_per_instance(dir.path()).await;
    let report = serde_json::json!({
        "results": results,
        "guest": guest,
        "instances": instances,
        "idle_rss_kib": idle_rss,
        "loaded_rss_kib": loaded_rss,
        "sequential": SEQUENTIAL,
        "concurrency": CONCURRENCY,
        "load_seconds": LOAD_TIME.as_secs(),
    });
    eprintln!("sidecar RSS: idle {idle_rss} KiB, after load {loaded_rss} KiB");
    let out = out_dir();
    // `bench/run.sh` runs this twice: as deployed, then pinned to one core.
    let file = std::env::var("BENCH_STATE_OUT").unwrap_or_else(|_| "state.json".into());
    std::fs::write(out.join(file), serde_json::to_vec_pretty(&report).unwrap()).unwrap();
}
