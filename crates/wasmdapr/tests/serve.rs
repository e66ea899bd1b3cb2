//! `wasmdapr run` on an HTTP handler: the app is served (not run to
//! completion) to Dapr service invocation through the embedded sidecar and,
//! with `--app-listen`, to the outside; its limits read as 503 with
//! `Retry-After`, 504 and 500; it stops on SIGTERM and on the shutdown API.
//! Every request here is sent by a real HTTP client (reqwest).

mod common;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use test_programs_artifacts::{
    EXAMPLE_HTTP_COUNTER, EXAMPLE_ORDER_PIPELINE_PROCESSOR, EXAMPLE_ORDER_PIPELINE_PUBLISHER,
    P2_SERVE_HELLO, P2_SERVE_HOSTILE, P2_SERVE_ISOLATION,
};

/// A served app: the process (killed on drop), its public port and its
/// sidecar's HTTP API port.
struct Served {
    child: Child,
    app: u16,
    dapr: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.app)
    }

    fn dapr_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.dapr)
    }

    /// Waits up to 30 s for the process to exit.
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "wasmdapr did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A Configuration naming `nameresolution.sqlite` on a file in `dir`, so
/// tests do not share the user's name-resolution file.
fn config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    let text = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\n\
         spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
         \x20     connectionString: {}\n",
        dir.join("nr.db").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// `wasmdapr run --app-listen 127.0.0.1:<free> <flags…> <guest>`, waiting
/// until both the app and the sidecar answer.
async fn serve(guest: &str, app_id: &str, flags: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (app, dapr, grpc) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(dir.path())
        .args(["run", "--no-cache", "--app-id", app_id])
        .args(["--app-listen", &format!("127.0.0.1:{app}")])
        .args(["--dapr-http-port", &dapr.to_string()])
        .args(["--dapr-grpc-port", &grpc.to_string()])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .arg("--config")
        .arg(config(dir.path()))
        .args(flags)
        .arg(guest)
        .env_remove("DAPR_API_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting wasmdapr run");
    let mut served = Served {
        child,
        app,
        dapr,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let app_up = client.get(served.url("/")).send().await.is_ok();
        let dapr_up = client
            .get(served.dapr_url("/v1.0/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 204);
        if app_up && dapr_up {
            return served;
        }
        if let Some(status) = served.child.try_wait().unwrap() {
            panic!("wasmdapr exited with {status} before serving");
        }
        assert!(Instant::now() < deadline, "the app was not served in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The public server passes method, path, query, headers and body to the
/// handler and its answer back; concurrent requests each run in a fresh
/// instance (the isolation guest never sees a count above 1); SIGTERM
/// stops the process cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_listen_serves_the_handler() {
    let mut served = serve(P2_SERVE_HELLO, "hello", &[]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(served.url("/orders/7?express=true"))
        .body("two boxes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(
        response.text().await.unwrap(),
        "POST /orders/7?express=true\ntwo boxes"
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(served.exit().success());

    let served = serve(P2_SERVE_ISOLATION, "isolation", &[]).await;
    let requests: Vec<_> = (0..24)
        .map(|i| {
            let client = client.clone();
            let url = served.url("/");
            tokio::spawn(async move {
                let response = client
                    .get(url)
                    .header("x-secret", format!("s{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    assert!(
        answers.iter().all(|a| a == "count=1 previous=-"),
        "{answers:?}"
    );
}

/// A Dapr service invocation of the app's own id, through the embedded
/// sidecar's HTTP API, reaches the Wasm handler; the shutdown API then ends
/// the process with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapr_invocations_reach_the_served_app() {
    let mut served = serve(P2_SERVE_HELLO, "greeter", &[]).await;
    let client = reqwest::Client::new();
    let response = client
        .put(served.dapr_url("/v1.0/invoke/greeter/method/greet/world?lang=en"))
        .body("{\"n\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "PUT /greet/world?lang=en\n{\"n\":1}"
    );
    let response = client
        .post(served.dapr_url("/v1.0/shutdown"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert!(served.exit().success());
}

/// A spinning handler gets 504 while concurrent good requests succeed; a
/// memory bomb and a trap get 500 with a plain-text reason; the app keeps
/// serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_fail_alone() {
    let served = serve(
        P2_SERVE_HOSTILE,
        "hostile",
        &["--timeout", "1s", "--max-memory", "32MiB"],
    )
    .await;
    let client = reqwest::Client::new();
    let looping = tokio::spawn(client.get(served.url("/loop")).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let response = client.get(served.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    let looped = looping.await.unwrap().unwrap();
    assert_eq!(looped.status(), 504);
    assert!(
        looped
            .text()
            .await
            .unwrap()
            .contains("did not answer within")
    );

    let bomb = client.get(served.url("/bomb")).send().await.unwrap();
    assert_eq!(bomb.status(), 500);
    assert_eq!(bomb.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(
        bomb.text()
            .await
            .unwrap()
            .contains("memory limit of 32 MiB")
    );
    let trap = client.get(served.url("/trap")).send().await.unwrap();
    assert_eq!(trap.status(), 500);
    assert!(trap.text().await.unwrap().contains("trapped"));

    let response = client.get(served.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
}

/// Over `--max-concurrency` (one running, one queued) a request is refused
/// at once with 503 and `Retry-After`; the running and queued ones finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_concurrency_is_503_with_retry_after() {
    let served = serve(P2_SERVE_HOSTILE, "busy", &["--max-concurrency", "1"]).await;
    let client = reqwest::Client::new();
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client.get(served.url("/sleep?ms=1500")).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = client.get(served.url("/")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.text().await.unwrap().contains("concurrency limit"));
    for slow in slow {
        let response = slow.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "slept");
    }
}

/// The README's counter example: served on the embedded SQLite store, 20
/// concurrent POSTs after a first one (answered `k`; the readiness probes
/// counted too) are answered k+1..=k+20 (no increment lost or doubled),
/// and the next one k+21.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_example_counts_every_request() {
    let served = serve(EXAMPLE_HTTP_COUNTER, "counter", &[]).await;
    let client = reqwest::Client::new();
    let count = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.text().await.unwrap().parse::<u64>().unwrap()
    };
    let first = count(client.post(served.url("/")).send().await.unwrap()).await;
    assert!(first >= 1);
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(client.post(served.url("/")).send()))
        .collect();
    let mut counts = Vec::new();
    for request in requests {
        counts.push(count(request.await.unwrap().unwrap()).await);
    }
    counts.sort_unstable();
    assert_eq!(counts, (first + 1..=first + 20).collect::<Vec<_>>());
    let last = count(client.post(served.url("/")).send().await.unwrap()).await;
    assert_eq!(last, first + 21);
}

/// An `--app-listen` address already in use is exit code 69 with a
/// message naming the flag.
#[test]
fn app_listen_in_use_is_unavailable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(dir.path())
        .args(["run", "--no-cache", "--app-listen", &addr.to_string()])
        .args(["--dapr-http-port", "0", "--dapr-grpc-port", "0", "--config"])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .arg(config(dir.path()))
        .arg(P2_SERVE_HELLO)
        .env_remove("DAPR_API_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--app-listen"), "{stderr}");
    drop(taken);
}

/// With `--dapr-endpoint` (no sidecar of its own) a handler is served on
/// `--app-listen` alone, and without it the command is refused (exit 64)
/// saying what to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_with_a_remote_sidecar_needs_app_listen() {
    let dir = tempfile::tempdir().unwrap();
    let remote = common::start_sidecar(dir.path(), None);
    let endpoint = format!("http://127.0.0.1:{}", remote.grpc);
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
        cmd.current_dir(dir.path())
            .args(["run", "--no-cache", "--dapr-endpoint", &endpoint])
            .args(extra)
            .arg(P2_SERVE_HELLO)
            .env_remove("DAPR_API_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    };
    let output = run(&[]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pass --app-listen"), "{stderr}");

    let port = free_port();
    let mut served = Served {
        child: run(&["--app-listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
        app: port,
        dapr: remote.http,
        _dir: tempfile::tempdir().unwrap(),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        if let Ok(response) = client.get(served.url("/remote")).send().await {
            break response;
        }
        assert!(
            served.child.try_wait().unwrap().is_none(),
            "wasmdapr exited"
        );
        assert!(Instant::now() < deadline, "the app was not served in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.text().await.unwrap(), "GET /remote\n");
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(served.exit().success());
}

/// A body over `--max-body-size` on `--app-listen` is 413 whether its
/// length is declared or it comes chunked (the chunked one was 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_declared_or_chunked() {
    let served = serve(P2_SERVE_HELLO, "limits", &["--max-body-size", "1KiB"]).await;
    let client = reqwest::Client::new();
    let declared = client
        .post(served.url("/"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    let port = served.app;
    let chunked = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let chunk = "y".repeat(1000);
        let mut request = String::from(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for _ in 0..4 {
            request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        request.push_str("0\r\n\r\n");
        // The server may answer and close before the whole body is sent.
        let _ = stream.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let small = client
        .post(served.url("/"))
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
}

/// Pub/sub events trigger a Wasm HTTP handler through the same app channel
/// as invocations (a fresh instance each): the http-counter example,
/// subscribed by a declarative `Subscription`, counts every event in its
/// state store once (each acked, none redelivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_events_trigger_a_wasm_handler() {
    let resources = tempfile::tempdir().unwrap();
    let at = |file: &str| resources.path().join(file).display().to_string();
    std::fs::write(
        resources.path().join("resources.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n\
             spec:\n  type: state.sqlite\n  version: v1\n  metadata:\n\
             \x20 - name: connectionString\n    value: {}\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n\
             spec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n\
             \x20 - name: connectionString\n    value: {}\n\
             \x20 - name: pollInterval\n    value: 20ms\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: orders\n\
             spec:\n  pubsubname: pubsub\n  topic: orders\n  route: /orders\n",
            at("state.db"),
            at("pubsub.db")
        ),
    )
    .unwrap();
    let dir = resources.path().display().to_string();
    let served = serve(
        EXAMPLE_HTTP_COUNTER,
        "counter-events",
        &["--resources-path", &dir],
    )
    .await;
    let client = reqwest::Client::new();
    let count = || async {
        let answer = client
            .get(served.dapr_url("/v1.0/state/statestore/counter"))
            .send()
            .await
            .unwrap();
        answer
            .text()
            .await
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    // The readiness probes and GET /dapr/subscribe are GETs: not counted.
    let before = count().await;
    assert_eq!(before, 0);
    for n in 0..5 {
        let published = client
            .post(served.dapr_url("/v1.0/publish/pubsub/orders"))
            .json(&serde_json::json!({ "n": n }))
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), 204);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while count().await < before + 5 {
        assert!(
            Instant::now() < deadline,
            "events not counted: {}",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count().await, before + 5, "each event counted once");
}

/// The order pipeline's processor on the embedded default (SQLite state
/// and pub/sub, nothing configured): its SDK-declared subscription is
/// picked up from `GET /dapr/subscribe`, and each order published (40 at
/// once, 10 of them published twice, plus an event that is no order) is
/// saved and counted exactly once in the running total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_processor_counts_each_order_once() {
    let served = serve(EXAMPLE_ORDER_PIPELINE_PROCESSOR, "order-processor", &[]).await;
    let client = reqwest::Client::new();
    let publish = |body: serde_json::Value| {
        let request = client
            .post(served.dapr_url("/v1.0/publish/pubsub/orders"))
            .json(&body)
            .send();
        async move {
            let answer = request.await.unwrap();
            assert_eq!(answer.status(), 204);
        }
    };
    let order = |id: u64| serde_json::json!({"id": id, "item": "book", "amount": id * 10});
    let mut published = Vec::new();
    for id in (1..=40).chain(1..=10) {
        published.push(publish(order(id)));
    }
    published.push(publish(serde_json::json!("not an order")));
    futures::future::join_all(published).await;

    let expected = serde_json::json!({"orders": 40, "amount": (1..=40u64).sum::<u64>() * 10});
    let total = || async {
        let answer = client.get(served.url("/total")).send().await.unwrap();
        answer.json::<serde_json::Value>().await.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while total().await != expected {
        assert!(Instant::now() < deadline, "total: {}", total().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(total().await, expected, "no order counted twice");
    let stored = client
        .get(served.dapr_url("/v1.0/state/statestore/order-17"))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.json::<serde_json::Value>().await.unwrap(), order(17));
}

/// The order pipeline as the README runs it: the processor served, the
/// publisher (a command publishing through the typed pub/sub import) run
/// beside it in the same working directory, and the running total read
/// from the processor. On the embedded default, then, changing only the
/// resources folder, on Redis Streams and on NATS JetStream (a fresh app
/// id and topic per run, so earlier runs' streams and keys do not count).
async fn order_pipeline_runs(resources: Option<&str>) {
    let run = format!("{}-{}", std::process::id(), fastrand::u32(..));
    let app_id = format!("order-processor-{run}");
    let topic = format!("orders-{run}");
    let folder = resources.map(|r| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/components")
            .join(r)
            .display()
            .to_string()
    });
    let mut flags = vec!["--env".to_owned(), format!("TOPIC={topic}")];
    if let Some(folder) = &folder {
        flags.extend(["--resources-path".to_owned(), folder.clone()]);
    }
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let served = serve(EXAMPLE_ORDER_PIPELINE_PROCESSOR, &app_id, &flag_refs).await;
    let publisher = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(served._dir.path())
        .args([
            "run",
            "--no-cache",
            "--app-id",
            &format!("order-publisher-{run}"),
        ])
        .args(["--dapr-http-port", "0", "--dapr-grpc-port", "0"])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .arg("--config")
        .arg(config(served._dir.path()))
        .args(&flag_refs)
        .args(["--env", "COUNT=30"])
        .arg(EXAMPLE_ORDER_PIPELINE_PUBLISHER)
        .env_remove("DAPR_API_TOKEN")
        .output()
        .expect("running the publisher");
    let stdout = String::from_utf8_lossy(&publisher.stdout);
    assert!(
        publisher.status.success() && stdout.contains("published 30 orders"),
        "{resources:?}: {stdout}{}",
        String::from_utf8_lossy(&publisher.stderr)
    );
    // Ids 1..=30, amounts 100 + id % 50.
    let expected = serde_json::json!({"orders": 30, "amount": (1..=30u64).map(|id| 100 + id % 50).sum::<u64>()});
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let total: serde_json::Value = client
            .get(served.url("/total"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if total == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{resources:?}: total {total}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_on_the_embedded_default() {
    order_pipeline_runs(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_on_redis_streams() {
    order_pipeline_runs(Some("redis")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_on_nats_jetstream() {
    order_pipeline_runs(Some("jetstream")).await;
}
