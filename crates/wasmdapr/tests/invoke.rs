//! Service invocation between processes, each pair sharing an isolated
//! name-resolution SQLite file (through `--config`): two `wasmdapr sidecar`
//! processes, one with an ordinary HTTP app on `--app-port`, invoked by a
//! client through the other; and `examples/invoke-pair`, two `wasmdapr run`
//! processes, a Wasm caller invoking a Wasm HTTP handler through the typed
//! import.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{free_port, http};
use test_programs_artifacts::{EXAMPLE_INVOKE_PAIR_CALLER, EXAMPLE_INVOKE_PAIR_GREETER};

/// A `wasmdapr sidecar` process, terminated on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the app saw: method, path and query, its `dapr-api-token`, body.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, String)>>>;

/// An HTTP app on a free port: `/healthz` answers 200; any other path is
/// recorded and answered 200 `billed: <body>`, or 401 without the app
/// token, or `/status/<n>` with that status.
async fn start_app(token: &'static str) -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    async fn handle(State((seen, token)): State<(Seen, &'static str)>, r: Request) -> Response {
        let (parts, body) = r.into_parts();
        if parts.uri.path() == "/healthz" {
            return StatusCode::OK.into_response();
        }
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let given = parts
            .headers
            .get("dapr-api-token")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock().unwrap().push((
            parts.method.to_string(),
            parts.uri.to_string(),
            given.clone(),
            String::from_utf8_lossy(&body).into_owned(),
        ));
        if given.as_deref() != Some(token) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if let Some(code) = parts.uri.path().strip_prefix("/status/") {
            return StatusCode::from_u16(code.parse().unwrap())
                .unwrap()
                .into_response();
        }
        format!("billed: {}", String::from_utf8_lossy(&body)).into_response()
    }
    let router = axum::Router::new()
        .fallback(handle)
        .with_state((seen.clone(), token));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (port, seen)
}

/// A Configuration naming `nameresolution.sqlite` on `dir/nr.db`.
fn config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    let text = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\n\
         spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
         \x20     connectionString: {}\n      updateInterval: 2s\n      timeout: 1s\n",
        dir.join("nr.db").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `wasmdapr sidecar --app-id <id> <extra…>` in `dir` and waits for
/// its HTTP API; returns it with its HTTP and gRPC ports.
fn sidecar(dir: &Path, id: &str, extra: &[&str], envs: &[(&str, &str)]) -> (Process, u16, u16) {
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
    cmd.current_dir(dir)
        .args(["sidecar", "--app-id", id, "--config"])
        .arg(config(dir))
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &grpc_port.to_string()])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .args(extra)
        .env_remove("DAPR_API_TOKEN")
        .env_remove("APP_API_TOKEN")
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut child = Process(cmd.spawn().expect("starting wasmdapr sidecar"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(http_port, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the sidecar exited with {status}");
        }
        assert!(Instant::now() < deadline, "the sidecar did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, http_port, grpc_port)
}

/// `http` on a blocking thread, so the app's runtime keeps serving.
async fn call(port: u16, method: &'static str, path: String, body: &'static str) -> (u16, String) {
    tokio::task::spawn_blocking(move || http(port, method, &path, body))
        .await
        .unwrap()
        .expect("the sidecar answered")
}

/// A client asks the `checkout` sidecar to invoke `billing`; the call is
/// resolved through the shared SQLite file to the `billing` sidecar, which
/// delivers it to its app on `--app-port` with `APP_API_TOKEN`; the app's
/// answers (200 and its own 404) come back unchanged, by path and by
/// `dapr-app-id` header. An unknown id is ERR_DIRECT_INVOKE naming it, and
/// once `billing` stops cleanly it is unknown at once (deregistered, not
/// left to expire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_find_each_other_and_deliver_to_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let (app_port, seen) = start_app("app-secret").await;
    let (mut billing, _, _) = sidecar(
        dir.path(),
        "billing",
        &[
            "--app-port",
            &app_port.to_string(),
            "--enable-app-health-check",
        ],
        &[("APP_API_TOKEN", "app-secret")],
    );
    let (_checkout, port, _) = sidecar(dir.path(), "checkout", &[], &[]);

    // `billing` announces itself once its app is healthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let answer = call(
            port,
            "POST",
            "/v1.0/invoke/billing/method/charge?amount=5".into(),
            "card",
        )
        .await;
        if answer.0 != 500 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((status, body.as_str()), (200, "billed: card"));
    // The sidecar asks the app for its subscriptions first, as daprd does;
    // the first request that is not that probe is the invocation.
    let first = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(method, path, ..)| !(method == "GET" && path == "/dapr/subscribe"))
        .cloned()
        .expect("the invocation reached the app");
    assert_eq!(
        first,
        (
            "POST".to_owned(),
            "/charge?amount=5".to_owned(),
            Some("app-secret".to_owned()),
            "card".to_owned()
        )
    );

    let (status, _) = call(
        port,
        "GET",
        "/v1.0/invoke/billing/method/status/404".into(),
        "",
    )
    .await;
    assert_eq!(status, 404);

    let by_header = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "PUT /refund HTTP/1.1\r\nHost: x\r\nConnection: close\r\ndapr-app-id: billing\r\n\
             Content-Length: 4\r\n\r\nsome"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(by_header.starts_with("HTTP/1.1 200"), "{by_header}");
    assert!(by_header.ends_with("billed: some"), "{by_header}");

    let (status, body) = call(port, "POST", "/v1.0/invoke/nobody/method/x".into(), "").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("ERR_DIRECT_INVOKE") && body.contains("nobody"),
        "{body}"
    );

    // A clean stop withdraws `billing` from name resolution.
    let terminated = Command::new("kill")
        .args(["-TERM", &billing.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let exit = tokio::task::spawn_blocking(move || billing.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit}");
    let (status, body) = call(
        port,
        "POST",
        "/v1.0/invoke/billing/method/charge".into(),
        "",
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("no app with id 'billing'"), "{body}");
}

/// `wasmdapr run` of `app` as `id` in `dir`, on free ports, with the
/// Configuration of `dir` and the compiled-code cache under `dir`.
fn run_command(dir: &Path, id: &str, app: &str) -> (Command, u16) {
    let http_port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
    cmd.current_dir(dir)
        .env("WASMDAPR_CACHE_DIR", dir.join("cache"))
        .env_remove("DAPR_API_TOKEN")
        .env_remove("RUST_LOG")
        .args(["run", "--app-id", id, "--config"])
        .arg(config(dir))
        .args(["--dapr-http-port", &http_port.to_string()])
        .args(["--dapr-grpc-port", &free_port().to_string()])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .arg(app);
    (cmd, http_port)
}

/// The invoke pair: the greeter (a `wasi:http/incoming-handler` component)
/// served by one `wasmdapr run`, the caller (a command) run by another,
/// invoking `greeter` by app id through the typed import; the greeting and
/// the propagated trace id come back. A caller aimed at an unknown id gets
/// ERR_DIRECT_INVOKE naming it and exits 1.
#[test]
fn invoke_pair_of_wasm_apps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut greeter, greeter_port) =
        run_command(dir.path(), "greeter", EXAMPLE_INVOKE_PAIR_GREETER);
    let _greeter = Process(
        greeter
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // The greeter answers through its own sidecar once it is served.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(
        greeter_port,
        "POST",
        "/v1.0/invoke/greeter/method/hello",
        "me",
    )
    .map(|r| r.0)
        != Some(200)
    {
        assert!(Instant::now() < deadline, "the greeter did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let caller = |extra_env: Option<&str>| {
        let (mut cmd, _) = run_command(dir.path(), "caller", EXAMPLE_INVOKE_PAIR_CALLER);
        if let Some(env) = extra_env {
            cmd.args(["--env", env]);
        }
        cmd.args(["--", "Leia", "Luke"]).output().unwrap()
    };
    // Announcement follows serving by a moment; retry until it is visible.
    let mut output = caller(None);
    while !output.status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        output = caller(None);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, name) in lines.iter().zip(["Leia", "Luke"]) {
        let prefix = format!("Hello, {name}! (trace ");
        let trace = line
            .strip_prefix(&prefix)
            .expect(line)
            .trim_end_matches(')');
        assert_eq!(trace.len(), 32, "{line}");
        assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    }

    let output = caller(Some("GREETER_APP_ID=nobody"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ERR_DIRECT_INVOKE") && stderr.contains("nobody"),
        "{stderr}"
    );
}

/// Runs an SDK suite until it passes or 30 s have gone by (the callee is
/// announced a moment after its app is up), then asserts it passed.
async fn run_sdk_suite(what: &str, suite: impl Fn() -> Command + Send + Sync + Clone + 'static) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let suite = suite.clone();
        let out = tokio::task::spawn_blocking(move || suite().output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: cannot start ({e}); run scripts/setup.sh"));
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The official SDKs, called on one sidecar, reach the app on `--app-port`
/// behind another with verb, query and body, and read ERR_DIRECT_INVOKE for
/// an unknown id: Python's `invoke_method` over both of its invocation
/// clients (HTTP, and gRPC `InvokeService`), JavaScript's `invoker.invoke`
/// (HTTP). `scripts/setup.sh` installs both SDKs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_invoke() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let js = repo.join("crates/wasmdapr/tests/sdk/js");
    assert!(
        js.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let (app_port, seen) = start_app("sdk-token").await;
    let (_billing, _, _) = sidecar(
        dir.path(),
        "billing",
        &["--app-port", &app_port.to_string()],
        &[("APP_API_TOKEN", "sdk-token")],
    );
    let (_caller, http_port, grpc_port) = sidecar(dir.path(), "sdkcaller", &[], &[]);
    let python_suites = repo.join("crates/wasmdapr/tests/sdk/python");
    for protocol in ["http", "grpc"] {
        let (python, suites) = (python.clone(), python_suites.clone());
        run_sdk_suite(&format!("Dapr Python SDK over {protocol}"), move || {
            let mut cmd = Command::new(&python);
            cmd.current_dir(&suites)
                .args(["-m", "unittest", "-v", "test_invoke"])
                .env("DAPR_HTTP_PORT", http_port.to_string())
                .env("DAPR_GRPC_PORT", grpc_port.to_string())
                .env("DAPR_RUNTIME_HOST", "127.0.0.1")
                .env("DAPR_API_METHOD_INVOCATION_PROTOCOL", protocol)
                .env("TARGET", "billing");
            cmd
        })
        .await;
    }
    run_sdk_suite("Dapr JavaScript SDK", move || {
        let mut cmd = Command::new("node");
        cmd.current_dir(&js)
            .args(["--test", "invoke.test.mjs"])
            .env("DAPR_HTTP_PORT", http_port.to_string())
            .env("DAPR_GRPC_PORT", grpc_port.to_string())
            .env("TARGET", "billing");
        cmd
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let delivered = seen
        .iter()
        .filter(|(verb, uri, token, body)| {
            verb == "PUT"
                && uri == "/charge?amount=5"
                && token.as_deref() == Some("sdk-token")
                && body == "card"
        })
        .count();
    // Once per suite: Python over HTTP and gRPC, JavaScript.
    assert_eq!(delivered, 3, "{seen:?}");
}

/// A Configuration that cannot be used stops the sidecar before it
/// listens, naming the file and the field, with the configuration exit
/// code (78): a missing file, a name resolution component this runtime
/// lacks, an invalid sqlite setting.
#[test]
fn bad_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let file = dir.path().join(name);
        std::fs::write(
            &file,
            format!("kind: Configuration\nmetadata:\n  name: c\nspec:\n  nameResolution:\n{body}"),
        )
        .unwrap();
        file
    };
    let cases = [
        (dir.path().join("missing.yaml"), "missing.yaml"),
        (write("mdns.yaml", "    component: mdns\n"), "mdns"),
        (
            write(
                "sqlite.yaml",
                "    component: sqlite\n    configuration:\n      connectionString: nr.db\n      updateInterval: 1s\n",
            ),
            "updateInterval",
        ),
    ];
    for (file, named) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .current_dir(dir.path())
            .args([
                "sidecar",
                "--app-id",
                "x",
                "--dapr-http-port",
                "0",
                "--dapr-grpc-port",
                "0",
                "--dapr-internal-grpc-port",
                "0",
                "--config",
            ])
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{named}: {stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

/// `wasmdapr certs init` makes a trust bundle and `certs issue` a
/// certificate per app (keys readable by the owner only); two sidecars
/// started with `--enable-mtls` and those files invoke each other, and the
/// callee's app sees the true caller, not the one the client wrote. A
/// sidecar given another app's certificate refuses to start (exit 78).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_command_and_mtls_sidecars() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let certs = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .arg("certs")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "certs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    certs(&[
        "init",
        "--out",
        &path("ca"),
        "--trust-domain",
        "example.org",
    ]);
    for app in ["billing", "checkout"] {
        certs(&[
            "issue",
            "--ca",
            &path("ca"),
            "--app-id",
            app,
            "--out",
            &path(app),
        ]);
    }
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca/ca.key"), 0o600);
    assert_eq!(mode("billing/sidecar.key"), 0o600);
    assert_eq!(
        std::fs::read(dir.path().join("billing/ca.crt")).unwrap(),
        std::fs::read(dir.path().join("ca/ca.crt")).unwrap()
    );
    let mtls = |app: &str| -> Vec<String> {
        vec![
            "--enable-mtls".into(),
            "--trust-anchors-file".into(),
            path(&format!("{app}/ca.crt")),
            "--cert-chain-file".into(),
            path(&format!("{app}/sidecar.crt")),
            "--cert-key-file".into(),
            path(&format!("{app}/sidecar.key")),
        ]
    };

    // The app answers with the caller id it was told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().fallback(|r: Request| async move {
        r.headers()
            .get("dapr-caller-app-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut billing_flags = mtls("billing");
    billing_flags.extend(["--app-port".into(), app_port.to_string()]);
    let billing_flags: Vec<&str> = billing_flags.iter().map(String::as_str).collect();
    let (_billing, _, _) = sidecar(dir.path(), "billing", &billing_flags, &[]);
    let checkout_flags = mtls("checkout");
    let checkout_flags: Vec<&str> = checkout_flags.iter().map(String::as_str).collect();
    let (_checkout, port, _) = sidecar(dir.path(), "checkout", &checkout_flags, &[]);

    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                stream,
                "POST /v1.0/invoke/billing/method/whoami HTTP/1.1\r\nHost: x\r\n\
                 Connection: close\r\ndapr-caller-app-id: admin\r\n\
                 dapr-callee-app-id: billing\r\nContent-Length: 0\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap();
        if answer.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\ncheckout"), "{answer}");

    // Another app's certificate.
    let mut flags = mtls("checkout");
    flags.extend(
        [
            "sidecar",
            "--app-id",
            "billing",
            "--dapr-http-port",
            "0",
            "--dapr-grpc-port",
            "0",
        ]
        .map(str::to_owned),
    );
    flags.rotate_right(7);
    let output = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(dir.path())
        .args(&flags)
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("spiffe://example.org/ns/default/checkout"),
        "{stderr}"
    );
}
