//! One test per guest program, named after it.

use std::net::TcpListener;
use std::time::Duration;

use test_programs_artifacts::*;
use wasmdapr_host::{ByteSize, Capabilities, DirGrant, EnvVar, HostError, Limits};

use crate::{host, load, max_memory, run_args, run_with, timeout};

// Every guest program must have a test here named after it: a guest added
// without one is a compile error.
macro_rules! assert_guest_has_test {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
test_programs_artifacts::foreach_guest!(assert_guest_has_test);
// The `xhttp_*` guests' tests live with the other ABI tests.
#[allow(unused_imports)]
use crate::experimental_http::*;
// The `serve_*` guests' tests live with the other serving tests.
#[allow(unused_imports)]
use crate::wasm_app::*;
// The `bench_*` guests' tests live with the other Dapr tests.
#[allow(unused_imports)]
use crate::dapr::p2_bench_state_get;
// The `dapr_pubsub` guest's test lives with the pub/sub tests.
#[allow(unused_imports)]
use crate::pubsub::p2_dapr_pubsub;

async fn hello(path: &str) {
    let host = host();
    let app = load(&host, path);
    let ran = run_args(&app, &[]).await;
    assert_eq!(ran.result.unwrap(), 0);
    assert_eq!(ran.stdout, "hello from wasm\n");
}

/// A preview 1 module with `_start` runs and prints.
#[tokio::test]
async fn p1_cli_hello() {
    hello(P1_CLI_HELLO).await;
}

/// A preview 2 component exporting `wasi:cli/run` runs and prints.
#[tokio::test]
async fn p2_cli_hello() {
    hello(P2_CLI_HELLO).await;
}

async fn trivial_many_times_and_concurrently(path: &str) {
    let host = host();
    let app = std::sync::Arc::new(load(&host, path));
    // More runs than the pool has slots: slots are returned and reused.
    for _ in 0..150 {
        assert_eq!(run_args(&app, &[]).await.result.unwrap(), 0);
    }
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { run_args(&app, &[]).await.result.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
}

/// The trivial module runs again and again, and from many tasks at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_cli_trivial() {
    trivial_many_times_and_concurrently(P1_CLI_TRIVIAL).await;
}

/// The trivial component runs again and again, and from many tasks at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_cli_trivial() {
    trivial_many_times_and_concurrently(P2_CLI_TRIVIAL).await;
}

async fn args_env(path: &str, expected_exit: i32) {
    // SAFETY: tests in this binary do not read this variable concurrently;
    // it exists to prove host variables do not leak into the guest.
    unsafe { std::env::set_var("WASMDAPR_TEST_SECRET", "must-not-leak") };
    let host = host();
    let app = load(&host, path);
    let caps = Capabilities {
        program_name: "prog.wasm".into(),
        args: vec![
            "one".into(),
            "two words".into(),
            "--exit".into(),
            "42".into(),
        ],
        env: vec![
            "GREETING=hi there".parse::<EnvVar>().unwrap(),
            "EMPTY=".parse::<EnvVar>().unwrap(),
        ],
        ..Capabilities::default()
    };
    let ran = run_with(&app, caps, Limits::default()).await;
    assert_eq!(ran.result.unwrap(), expected_exit);
    assert_eq!(
        ran.stdout,
        "arg[0]=prog.wasm\narg[1]=one\narg[2]=two words\narg[3]=--exit\narg[4]=42\n\
         env-count=2\nenv:EMPTY=\nenv:GREETING=hi there\n"
    );
}

/// Arguments and environment arrive exactly, nothing of the host's leaks in,
/// and the exit code passes through.
#[tokio::test]
async fn p1_cli_args_env() {
    args_env(P1_CLI_ARGS_ENV, 42).await;
}

/// Same for a component. Rust's wasip2 standard library exits through
/// `wasi:cli/exit.exit(err)`, which carries only failure: code 1.
#[tokio::test]
async fn p2_cli_args_env() {
    args_env(P2_CLI_ARGS_ENV, 1).await;
}

async fn files(path: &str) {
    let host = host();
    let app = load(&host, path);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "granted data").unwrap();

    let granted = Capabilities {
        args: vec!["/data".into()],
        dirs: vec![DirGrant {
            host: dir.path().to_owned(),
            guest: "/data".into(),
        }],
        ..Capabilities::default()
    };
    let ran = run_with(&app, granted, Limits::default()).await;
    assert_eq!(ran.result.unwrap(), 0, "stderr: {}", ran.stderr);
    assert_eq!(
        ran.stdout,
        "copied 12 bytes\noutside /etc/passwd: denied\noutside /: denied\noutside ../: denied\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output.txt")).unwrap(),
        "GRANTED DATA"
    );

    // Without the grant, the same path is simply not there.
    let ran = run_args(&app, &["/data"]).await;
    assert_eq!(ran.result.unwrap(), 0);
    assert!(
        ran.stdout.starts_with("cannot read input"),
        "{}",
        ran.stdout
    );
}

/// A module sees its `--dir` and nothing outside it.
#[tokio::test]
async fn p1_cli_files() {
    files(P1_CLI_FILES).await;
}

/// A component sees its `--dir` and nothing outside it.
#[tokio::test]
async fn p2_cli_files() {
    files(P2_CLI_FILES).await;
}

async fn network(path: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let host = host();
    let app = load(&host, path);
    let ran = run_args(&app, &[&addr]).await;
    assert_eq!(ran.result.unwrap(), 0);
    assert!(ran.stdout.contains("connect: denied"), "{}", ran.stdout);
    assert!(ran.stdout.contains("lookup: denied"), "{}", ran.stdout);
    // Refused before any connection was made, not after.
    let pending = listener.accept();
    assert_eq!(
        pending.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the guest reached the listener"
    );
}

/// A module gets no sockets (preview 1 has none).
#[tokio::test]
async fn p1_cli_network() {
    network(P1_CLI_NETWORK).await;
}

/// A component's `wasi:sockets` refuses TCP and name lookups: no network
/// unless granted.
#[tokio::test]
async fn p2_cli_network() {
    network(P2_CLI_NETWORK).await;
}

async fn panic(path: &str) {
    let host = host();
    let app = load(&host, path);
    let ran = run_args(&app, &[]).await;
    match ran.result {
        Err(HostError::Trap {
            message, backtrace, ..
        }) => {
            assert!(message.contains("unreachable"), "{message}");
            let backtrace = backtrace.expect("a backtrace");
            assert!(backtrace.contains("explode_here"), "{backtrace}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(ran.stderr.contains("guest panicked on purpose"));
}

/// A panicking module traps with a backtrace naming the function.
#[tokio::test]
async fn p1_cli_panic() {
    panic(P1_CLI_PANIC).await;
}

/// A panicking component traps with a backtrace naming the function.
#[tokio::test]
async fn p2_cli_panic() {
    panic(P2_CLI_PANIC).await;
}

/// `unreachable` is reported with the trap and both named frames.
#[tokio::test]
async fn wat_unreachable() {
    let host = host();
    let app = load(&host, WAT_UNREACHABLE);
    match run_args(&app, &[]).await.result {
        Err(HostError::Trap {
            app,
            message,
            backtrace: Some(backtrace),
        }) => {
            assert_eq!(app, "wat_unreachable");
            assert!(
                message.contains("wasm `unreachable` instruction executed"),
                "{message}"
            );
            assert!(backtrace.contains("!boom"), "{backtrace}");
            assert!(backtrace.contains("!call_boom"), "{backtrace}");
        }
        other => panic!("expected a trap with a backtrace, got {other:?}"),
    }
}

/// An infinite loop is stopped at the time limit, and the host keeps running apps.
#[tokio::test]
async fn wat_infinite_loop() {
    let host = host();
    let app = load(&host, WAT_INFINITE_LOOP);
    let limit = Duration::from_millis(200);
    match run_with(&app, Capabilities::default(), timeout(limit))
        .await
        .result
    {
        Err(HostError::Timeout { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let hello = load(&host, P1_CLI_HELLO);
    assert_eq!(run_args(&hello, &[]).await.result.unwrap(), 0);
}

/// A guest growing memory without end is stopped at the memory limit.
#[tokio::test]
async fn wat_memory_bomb() {
    let host = host();
    let app = load(&host, WAT_MEMORY_BOMB);
    let limit = ByteSize::mib(16);
    match run_with(&app, Capabilities::default(), max_memory(limit))
        .await
        .result
    {
        Err(HostError::MemoryLimit { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected the memory limit, got {other:?}"),
    }
    // A limit too small for a module's initial memory fails the same way.
    let hello = load(&host, P1_CLI_HELLO);
    let tiny = max_memory(ByteSize(64 * 1024));
    assert!(matches!(
        run_with(&hello, Capabilities::default(), tiny).await.result,
        Err(HostError::MemoryLimit { .. })
    ));
}

/// A guest blocked in a host call (a long `poll_oneoff` sleep) is stopped at the time limit too.
#[tokio::test]
async fn wat_sleep() {
    let host = host();
    let app = load(&host, WAT_SLEEP);
    let started = std::time::Instant::now();
    let result = run_with(
        &app,
        Capabilities::default(),
        timeout(Duration::from_millis(200)),
    )
    .await
    .result;
    assert!(
        matches!(result, Err(HostError::Timeout { .. })),
        "{result:?}"
    );
    // Not a timing assertion: the sleep is ~16 minutes, so returning at all
    // proves the run was cut short.
    assert!(started.elapsed() < Duration::from_secs(600));
}

/// A start-section-only module runs during instantiation, every buffer of a
/// multi-buffer `fd_write` is written, and `proc_exit` sets the code.
#[tokio::test]
async fn wat_start_section() {
    let host = host();
    let app = load(&host, WAT_START_SECTION);
    let ran = run_args(&app, &[]).await;
    assert_eq!(ran.result.unwrap(), 7);
    assert_eq!(ran.stdout, "first line\n");
    assert_eq!(ran.stderr, "second line\n");
}

/// A component importing an interface the host lacks fails to load, naming it.
#[tokio::test]
async fn wat_component_missing_import() {
    let host = host();
    let error = host
        .load(
            std::path::Path::new(WAT_COMPONENT_MISSING_IMPORT),
            &crate::app_id("missing"),
        )
        .err()
        .expect("linking must fail");
    match error {
        HostError::Link { app, reason } => {
            assert_eq!(app, "missing");
            assert!(reason.contains("wasmdapr:test/nowhere"), "{reason}");
        }
        other => panic!("expected a link error, got {other:?}"),
    }
}

/// A component without `wasi:cli/run` cannot be run, and says so.
#[tokio::test]
async fn wat_component_no_entry() {
    let host = host();
    let error = host
        .load(
            std::path::Path::new(WAT_COMPONENT_NO_ENTRY),
            &crate::app_id("empty"),
        )
        .err()
        .expect("loading must fail");
    match error {
        HostError::NotRunnable { reason, .. } => {
            assert!(reason.contains("wasi:cli/run"), "{reason}")
        }
        other => panic!("expected NotRunnable, got {other:?}"),
    }
}

/// An allowed destination is reached through `wasi:http`: the guest prints
/// the status and the body the local test server sent.
#[tokio::test]
async fn p2_http_get() {
    let server = crate::http::TestServer::start().await;
    let policy = crate::http::allowing(&[&format!("http://{}", server.addr)]);
    let ran = crate::http::get(&[server.url("/hello")], policy).await;
    assert_eq!(
        ran.stdout,
        format!(
            "GET {} -> 200\nhello from the test server\n",
            server.url("/hello")
        )
    );
    assert_eq!(server.connections(), 1);
}
