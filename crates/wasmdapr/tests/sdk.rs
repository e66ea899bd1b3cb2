//! Compatibility, judged by real clients: the official Dapr SDKs (Python
//! `dapr` over gRPC, `@dapr/dapr` over HTTP) run their suites against a
//! `wasmdapr sidecar` process, once on the embedded SQLite default and once
//! on Redis through a component file. `scripts/setup.sh` installs the SDKs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sidecar process, killed on drop.
struct Sidecar {
    child: Child,
    http: u16,
    grpc: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `wasmdapr sidecar` with `components` (YAML text; `None` for the
/// embedded default) and waits until its health endpoint answers.
fn start_sidecar(components: Option<&str>) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
    cmd.current_dir(dir.path())
        .args(["sidecar", "--app-id", "sdk-tests"])
        .args([
            "--dapr-http-port",
            &http.to_string(),
            "--dapr-grpc-port",
            &grpc.to_string(),
        ])
        .env_remove("DAPR_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(yaml) = components {
        let resources = dir.path().join("components");
        std::fs::create_dir(&resources).unwrap();
        std::fs::write(resources.join("statestore.yaml"), yaml).unwrap();
        cmd.arg("--resources-path").arg(&resources);
    }
    let mut child = cmd.spawn().expect("starting wasmdapr sidecar");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(http, "/v1.0/healthz") != Some(204) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sidecar exited with {status} before becoming healthy");
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Sidecar {
        child,
        http,
        grpc,
        _dir: dir,
    }
}

fn run_suite(mut cmd: Command, sidecar: &Sidecar, what: &str) {
    let out = cmd
        .env("DAPR_HTTP_PORT", sidecar.http.to_string())
        .env("DAPR_GRPC_PORT", sidecar.grpc.to_string())
        .env("DAPR_RUNTIME_HOST", "127.0.0.1")
        .env("STORE", "statestore")
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e}); run scripts/setup.sh"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    eprintln!("{what}:\n{text}");
}

fn python_suite(sidecar: &Sidecar) {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
        .args(["-m", "unittest", "-v", "test_state"]);
    run_suite(cmd, sidecar, "Dapr Python SDK");
}

fn js_suite(sidecar: &Sidecar) {
    let dir = repo().join("crates/wasmdapr/tests/sdk/js");
    assert!(
        dir.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(dir).args(["--test", "state.test.mjs"]);
    run_suite(cmd, sidecar, "Dapr JavaScript SDK");
}

const REDIS: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:6379
";

/// The Python SDK's state suite passes against the embedded SQLite default.
#[test]
fn python_sdk_on_embedded_sqlite() {
    python_suite(&start_sidecar(None));
}

/// The Python SDK's state suite passes against Redis.
#[test]
fn python_sdk_on_redis() {
    python_suite(&start_sidecar(Some(REDIS)));
}

/// The JavaScript SDK's state suite passes against the embedded SQLite default.
#[test]
fn js_sdk_on_embedded_sqlite() {
    js_suite(&start_sidecar(None));
}

/// The JavaScript SDK's state suite passes against Redis.
#[test]
fn js_sdk_on_redis() {
    js_suite(&start_sidecar(Some(REDIS)));
}
