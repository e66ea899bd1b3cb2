//! Serving `wasi:http/incoming-handler` components ([`WasmApp`]): a fresh
//! instance per request, concurrency and queue bounds, and hostile handlers
//! (a loop, a blocking host call, a memory bomb, a trap) that cost only
//! their own request; and the runtime delivering to the app through its
//! app channel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use test_programs_artifacts::{
    EXAMPLE_HTTP_COUNTER, P2_CLI_HELLO, P2_SERVE_HELLO, P2_SERVE_HOSTILE, P2_SERVE_ISOLATION,
};
use wasmdapr_host::capabilities::Output;
use wasmdapr_host::engine::MEMORY_KEEP_RESIDENT;
use wasmdapr_host::{ByteSize, Capabilities, HostError, Limits, WasmApp, WasmAppConfig};
use wasmdapr_runtime::api::{InvokeApi, StateApi};
use wasmdapr_runtime::state::{DeleteRequest, GetRequest};
use wasmdapr_runtime::{
    AppRequest, AppResponse, ChannelError, ComponentRegistry, ComponentSpec, Components, DaprApi,
    InvokeRequest, Runtime,
};

use crate::{app_id, host, load};

/// Serves the guest at `path` with no grants but quiet stdio.
fn serve(path: &str, limits: Limits, config: WasmAppConfig) -> Arc<WasmApp> {
    let host = host();
    let app = load(&host, path);
    let caps = Capabilities {
        stdout: Output::Null,
        stderr: Output::Null,
        ..Capabilities::default()
    };
    Arc::new(WasmApp::new(app, caps, limits, config).expect("a handler"))
}

fn request(method: &str, uri: &str, body: &'static str) -> AppRequest {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

fn get(uri: &str) -> AppRequest {
    request("GET", uri, "")
}

fn text(response: &AppResponse) -> &str {
    std::str::from_utf8(response.body()).expect("a text body")
}

/// A request reaches the handler with its method, path, query and body, and
/// the handler's status, headers and body come back. The component also
/// exports `wasi:cli/run` (every Rust `bin` does) and is still served, and
/// `App::run` refuses it with a clear error.
#[tokio::test]
pub(crate) async fn p2_serve_hello() {
    let app = serve(P2_SERVE_HELLO, Limits::default(), WasmAppConfig::default());
    assert!(app.app().is_handler());
    let response = app
        .handle(request("POST", "/method/echo?x=1", "the body"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(text(&response), "POST /method/echo?x=1\nthe body");

    let host = host();
    let handler = load(&host, P2_SERVE_HELLO);
    let error = handler
        .run(&Capabilities::default(), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, HostError::NotRunnable { reason, .. } if reason.contains("served")),
        "{error}"
    );
}

/// A command (`wasi:cli/run` only) is not a handler: `WasmApp::new` refuses it.
#[tokio::test]
async fn a_command_cannot_be_served() {
    let host = host();
    let app = load(&host, P2_CLI_HELLO);
    assert!(!app.is_handler());
    let error = WasmApp::new(
        app,
        Capabilities::default(),
        Limits::default(),
        WasmAppConfig::default(),
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("incoming-handler"), "{error}");
}

/// No request sees another's globals or memory: concurrent and sequential
/// requests each find a counter of 1 and no previous secret. A reused
/// instance would answer `count=2` and another request's secret.
#[tokio::test]
pub(crate) async fn p2_serve_isolation() {
    let app = serve(P2_SERVE_ISOLATION, Limits::default(), WasmAppConfig::new(8));
    let call = |i: usize| {
        let app = app.clone();
        async move {
            let request = http::Request::get("/")
                .header("x-secret", format!("secret-{i}"))
                .body(Bytes::new())
                .unwrap();
            let response = app.handle(request).await.unwrap();
            text(&response).to_owned()
        }
    };
    let concurrent = join_all((0..16).map(|i| tokio::spawn(call(i)))).await;
    for answer in concurrent {
        assert_eq!(answer.unwrap(), "count=1 previous=-");
    }
    for i in 16..24 {
        assert_eq!(call(i).await, "count=1 previous=-");
    }
}

/// Hostile handlers cost only their own request: a spinning loop and a
/// handler blocked in a host call get `Timeout` while concurrent good
/// requests succeed; a memory bomb, a trap, a handler that never answers and
/// an oversized response each fail alone; and the app serves normally
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn p2_serve_hostile() {
    let limit = Duration::from_millis(1500);
    let limits = Limits {
        max_memory: ByteSize::mib(32),
        timeout: Some(limit),
    };
    let config = WasmAppConfig {
        max_body_size: 64 * 1024,
        ..WasmAppConfig::new(8)
    };
    let app = serve(P2_SERVE_HOSTILE, limits, config);

    // The loop and the sleeper run while good requests come and go.
    let looping = tokio::spawn({
        let app = app.clone();
        async move { app.handle(get("/loop")).await }
    });
    let sleeping = tokio::spawn({
        let app = app.clone();
        async move { app.handle(get("/sleep?ms=60000")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..10 {
        let response = app.handle(get("/")).await.unwrap();
        assert_eq!(text(&response), "ok");
    }
    for stopped in [looping.await.unwrap(), sleeping.await.unwrap()] {
        assert_eq!(
            stopped.unwrap_err(),
            ChannelError::Timeout {
                app: "serve_hostile".into(),
                limit
            }
        );
    }

    let failure = |result: Result<AppResponse, ChannelError>| match result {
        Err(ChannelError::Failed { reason, .. }) => reason,
        other => panic!("expected a failure, got {other:?}"),
    };
    let bomb = failure(app.handle(get("/bomb")).await);
    assert!(bomb.contains("memory limit of 32 MiB"), "{bomb}");
    let trap = failure(app.handle(get("/trap")).await);
    assert!(trap.contains("trapped"), "{trap}");
    let silent = failure(app.handle(get("/silent")).await);
    assert!(silent.contains("without a response"), "{silent}");
    let big = failure(app.handle(get("/big?bytes=100000")).await);
    assert!(big.contains("larger than 65536 bytes"), "{big}");

    // Within the limit the same route answers; the app is unharmed.
    let response = app.handle(get("/big?bytes=65536")).await.unwrap();
    assert_eq!(response.body().len(), 65536);
    let response = app.handle(get("/sleep?ms=1")).await.unwrap();
    assert_eq!(text(&response), "slept");
}

/// Beyond the running slots and the queue a request is refused at once with
/// `Busy` and the `Retry-After` hint; the queued one is served when a slot
/// frees up, and later requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_is_busy() {
    let config = WasmAppConfig {
        max_queued: 1,
        retry_after: Duration::from_secs(2),
        ..WasmAppConfig::new(1)
    };
    let limits = Limits {
        timeout: Some(Duration::from_secs(30)),
        ..Limits::default()
    };
    let app = serve(P2_SERVE_HOSTILE, limits, config);
    let slow =
        |app: Arc<WasmApp>| tokio::spawn(async move { app.handle(get("/sleep?ms=500")).await });
    let running = slow(app.clone());
    let queued = slow(app.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.handle(get("/")).await.unwrap_err(),
        ChannelError::Busy {
            app: "serve_hostile".into(),
            retry_after: Duration::from_secs(2)
        }
    );
    for slept in [running.await.unwrap(), queued.await.unwrap()] {
        assert_eq!(text(&slept.unwrap()), "slept");
    }
    assert_eq!(text(&app.handle(get("/")).await.unwrap()), "ok");
}

/// A queued request that gets no slot within `--timeout` is refused as
/// `Busy`, not left waiting: behind two looping requests on one slot, the
/// third waits longer than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_request_gives_up_after_the_timeout() {
    let limits = Limits {
        timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    let config = WasmAppConfig {
        max_queued: 2,
        ..WasmAppConfig::new(1)
    };
    let app = serve(P2_SERVE_HOSTILE, limits, config);
    let spin = |app: Arc<WasmApp>| tokio::spawn(async move { app.handle(get("/loop")).await });
    let first = spin(app.clone());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = spin(app.clone());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let third = app.handle(get("/")).await;
    assert!(matches!(third, Err(ChannelError::Busy { .. })), "{third:?}");
    for spun in [first.await.unwrap(), second.await.unwrap()] {
        assert!(
            matches!(spun, Err(ChannelError::Timeout { .. })),
            "{spun:?}"
        );
    }
}

/// `--max-concurrency 0` is refused when the app is set up.
#[tokio::test]
async fn zero_concurrency_is_refused() {
    let host = host();
    let app = load(&host, P2_SERVE_HELLO);
    let error = WasmApp::new(
        app,
        Capabilities::default(),
        Limits::default(),
        WasmAppConfig::new(0),
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("--max-concurrency"), "{error}");
}

/// The runtime reaches the Wasm app through its app channel, and a service
/// invocation of the runtime's own app id is delivered there with its verb,
/// method path, query and body.
#[tokio::test]
async fn the_runtime_delivers_to_the_wasm_app() {
    let components = Arc::new(
        Components::load(Vec::new(), &wasmdapr_runtime::ComponentRegistry::default())
            .await
            .unwrap(),
    );
    let runtime = Arc::new(Runtime::new(app_id("hello"), components));
    let app = serve(P2_SERVE_HELLO, Limits::default(), WasmAppConfig::default());
    assert!(runtime.set_app_channel(app).is_ok());

    let channel = runtime.app_channel().expect("an app channel");
    let response = channel
        .invoke(request("PUT", "/orders/1", "{}"))
        .await
        .unwrap();
    assert_eq!(text(&response), "PUT /orders/1\n{}");

    let mut invocation = InvokeRequest::new(http::Method::POST, "orders/2");
    invocation.query = Some("fast=yes".into());
    invocation.body = Bytes::from_static(b"{\"qty\":2}");
    let response = runtime.invoke("hello", invocation).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(text(&response), "POST /orders/2?fast=yes\n{\"qty\":2}");
}

/// Serves `examples/http-counter` as app `id` on a runtime over `spec`,
/// fires `n` requests at once, and checks that the answers are exactly
/// 1..=n and the store holds n: every read-modify-write that lost a race
/// retried at the new ETag, so no increment was lost or doubled.
async fn count_concurrently(spec: ComponentSpec, id: &str, n: u64) {
    let mut registry = ComponentRegistry::default();
    wasmdapr_components::register(&mut registry);
    let components = Arc::new(Components::load(vec![spec], &registry).await.unwrap());
    let runtime = Arc::new(Runtime::new(app_id(id), components));
    let forget = DeleteRequest {
        key: "counter".into(),
        ..DeleteRequest::default()
    };
    runtime
        .delete_state("statestore", forget.clone())
        .await
        .unwrap();

    let host = host();
    let caps = Capabilities {
        dapr: Some(runtime.clone() as Arc<dyn DaprApi>),
        stdout: Output::Null,
        stderr: Output::Null,
        ..Capabilities::default()
    };
    let limits = Limits {
        timeout: Some(Duration::from_secs(60)),
        ..Limits::default()
    };
    let app = load(&host, EXAMPLE_HTTP_COUNTER);
    let app = Arc::new(WasmApp::new(app, caps, limits, WasmAppConfig::default()).unwrap());
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.handle(request("POST", "/", "")).await })
        })
        .collect();
    let mut counts = Vec::new();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 200, "{}", text(&response));
        counts.push(text(&response).parse::<u64>().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=n).collect::<Vec<_>>());

    let stored = runtime
        .get_state(
            "statestore",
            GetRequest {
                key: "counter".into(),
                ..GetRequest::default()
            },
        )
        .await
        .unwrap()
        .expect("the counter is stored");
    assert_eq!(stored.data, n.to_string().into_bytes());
    runtime.delete_state("statestore", forget).await.unwrap();
}

/// The counter example loses no increment under 40 concurrent requests on
/// the embedded SQLite store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_counter_counts_every_request_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ComponentSpec::embedded_state_store(dir.path());
    count_concurrently(spec, "counter-sqlite", 40).await;
}

/// The counter example loses no increment under 40 concurrent requests on
/// Redis (the server at 127.0.0.1:6379).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_counter_counts_every_request_on_redis() {
    let spec = ComponentSpec {
        name: "statestore".into(),
        kind: "state.redis".into(),
        version: "v1".into(),
        metadata: [("redisHost".to_owned(), "127.0.0.1:6379".to_owned())]
            .into_iter()
            .collect(),
        scopes: Vec::new(),
        source: "(test)".into(),
    };
    let id = format!("counter-redis-{}", std::process::id());
    count_concurrently(spec, &id, 40).await;
}

/// A pooled memory slot keeps resident what a plain request touched, so the
/// next request on it is reset in place rather than faulted back in; a
/// memory bomb (it fills its memory to `--max-memory` and traps) leaves at
/// most `MEMORY_KEEP_RESIDENT` of its slot resident (it left 2 MiB before),
/// so a storm of them on every slot of the pool leaves little behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_slots_keep_little_resident() {
    let host = host();
    let app = load(&host, P2_SERVE_HOSTILE);
    let caps = Capabilities {
        stdout: Output::Null,
        stderr: Output::Null,
        ..Capabilities::default()
    };
    let limits = Limits {
        max_memory: ByteSize::mib(16),
        timeout: Some(Duration::from_secs(30)),
    };
    let app = WasmApp::new(app, caps, limits, WasmAppConfig::new(4)).expect("a handler");
    let metrics = host
        .engine()
        .pooling_allocator_metrics()
        .expect("the pooling allocator");
    for _ in 0..3 {
        let response = app.handle(get("/")).await.unwrap();
        assert_eq!(text(&response), "ok");
    }
    let warm = metrics.unused_warm_memories() as usize;
    let plain = metrics.unused_memory_bytes_resident();
    assert!(warm >= 1, "no warm memory slot after three requests");
    assert!(
        plain > 0 && plain <= warm * MEMORY_KEEP_RESIDENT,
        "{plain} bytes kept resident in {warm} warm slots after plain requests"
    );
    for _ in 0..3 {
        let failed = app.handle(get("/bomb")).await.unwrap_err();
        assert!(matches!(failed, ChannelError::Failed { .. }), "{failed:?}");
    }
    let warm = metrics.unused_warm_memories() as usize;
    let bombed = metrics.unused_memory_bytes_resident();
    assert!(
        bombed <= warm * MEMORY_KEEP_RESIDENT,
        "{bombed} bytes kept resident in {warm} warm slots after memory bombs"
    );
}
