//! Helpers shared by the binary's integration tests: a `wasmdapr sidecar`
//! process and a minimal HTTP/1.1 client (so tests see exactly the bytes on
//! the wire).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP request; returns `(status, body)`, or `None` if nothing answered.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A running `wasmdapr sidecar`, killed on drop.
pub struct Sidecar {
    /// The process.
    pub child: Child,
    /// Its HTTP API port.
    pub http: u16,
    /// Its gRPC API port.
    pub grpc: u16,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `wasmdapr sidecar` command for `app_id` on free ports, run in `cwd`
/// (where the embedded store keeps `.wasmdapr/`), with `resources` (a
/// directory of component YAML) when given.
pub fn sidecar_command(cwd: &Path, resources: Option<&Path>) -> (Command, u16, u16) {
    let (http, grpc) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
    cmd.current_dir(cwd)
        .args(["sidecar", "--app-id", "tests"])
        .args([
            "--dapr-http-port",
            &http.to_string(),
            "--dapr-grpc-port",
            &grpc.to_string(),
        ])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .env_remove("DAPR_API_TOKEN")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null());
    if let Some(dir) = resources {
        cmd.arg("--resources-path").arg(dir);
    }
    (cmd, http, grpc)
}

/// Starts a sidecar and waits until `/v1.0/healthz` answers 204.
pub fn start_sidecar(cwd: &Path, resources: Option<&Path>) -> Sidecar {
    let (mut cmd, http_port, grpc) = sidecar_command(cwd, resources);
    let mut child = cmd
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting wasmdapr sidecar");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(http_port, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sidecar exited with {status} before becoming healthy");
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sidecar {
        child,
        http: http_port,
        grpc,
    }
}

/// Writes `yaml` as the only component file of a new directory under `parent`.
pub fn components(parent: &Path, yaml: &str) -> std::path::PathBuf {
    let dir = parent.join("components");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("components.yaml"), yaml).unwrap();
    dir
}

/// A Redis state store named `statestore`.
pub const REDIS: &str = "apiVersion: dapr.io/v1alpha1
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
