//! Compatibility, judged by real clients: the official Dapr SDKs (Python
//! `dapr` over gRPC, `@dapr/dapr` over HTTP) run their suites against a
//! `wasmdapr sidecar` process, once on the embedded SQLite default and once
//! on Redis through a component file; the Rust `dapr` crate runs here.
//! `scripts/setup.sh` installs the Python and JavaScript SDKs.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{REDIS, Sidecar, components, start_sidecar};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one SDK suite against a fresh sidecar (embedded default, or the
/// given component YAML).
fn against(yaml: Option<&str>, suite: fn(&Sidecar)) {
    let dir = tempfile::tempdir().unwrap();
    let resources = yaml.map(|y| components(dir.path(), y));
    suite(&start_sidecar(dir.path(), resources.as_deref()));
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
    python_module(sidecar, "test_state");
}

/// The Python SDK reading Dapr's rich error details (`test_errors.py`).
fn python_errors_suite(sidecar: &Sidecar) {
    python_module(sidecar, "test_errors");
}

fn python_module(sidecar: &Sidecar, module: &str) {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.current_dir(repo().join("crates/wasmdapr/tests/sdk/python"))
        .args(["-m", "unittest", "-v", module]);
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

/// The Python SDK's state suite passes against the embedded SQLite default.
#[test]
fn python_sdk_on_embedded_sqlite() {
    against(None, python_suite);
}

/// The Python SDK's state suite passes against Redis.
#[test]
fn python_sdk_on_redis() {
    against(Some(REDIS), python_suite);
}

/// The Python SDK reads Dapr's rich errors (`DaprGrpcError` details,
/// `DaprHttpError` code, message and body) from both doors.
#[test]
fn python_sdk_reads_rich_errors() {
    against(None, python_errors_suite);
}

/// The JavaScript SDK's state suite passes against the embedded SQLite default.
#[test]
fn js_sdk_on_embedded_sqlite() {
    against(None, js_suite);
}

/// The JavaScript SDK's state suite passes against Redis.
#[test]
fn js_sdk_on_redis() {
    against(Some(REDIS), js_suite);
}

/// The Rust `dapr` crate's client (gRPC): save, read with an ETag, a stale
/// ETag refused, bulk save, query and delete, against Redis.
#[tokio::test]
async fn rust_sdk_on_redis() {
    use dapr::dapr::proto::common::v1::{Etag, StateItem};
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), REDIS);
    let sidecar = start_sidecar(dir.path(), Some(&resources));
    let mut client = dapr::Client::<dapr::client::TonicClientWithAuth>::connect_with_address(
        format!("http://127.0.0.1:{}", sidecar.grpc),
    )
    .await
    .expect("connecting the Rust SDK");
    let key = format!("rust-{}", std::process::id());

    client
        .save_state(
            "statestore",
            key.as_str(),
            b"Death Star".to_vec(),
            None,
            None,
            None,
        )
        .await
        .unwrap();
    let got = client
        .get_state("statestore", key.as_str(), None)
        .await
        .unwrap();
    assert_eq!(got.data, b"Death Star");
    let stale = Etag {
        value: got.etag.clone(),
    };
    client
        .save_state(
            "statestore",
            key.as_str(),
            b"v2".to_vec(),
            Some(stale.clone()),
            None,
            None,
        )
        .await
        .unwrap();
    let refused = client
        .save_state(
            "statestore",
            key.as_str(),
            b"v3".to_vec(),
            Some(stale),
            None,
            None,
        )
        .await;
    assert!(refused.is_err(), "a stale etag must be refused");
    assert_eq!(
        client
            .get_state("statestore", key.as_str(), None)
            .await
            .unwrap()
            .data,
        b"v2"
    );

    let team = format!("rust-team-{}", std::process::id());
    let items: Vec<StateItem> = (0..3)
        .map(|n| StateItem {
            key: format!("{team}-{n}"),
            value: format!(r#"{{"team":"{team}","n":{n}}}"#).into_bytes(),
            ..Default::default()
        })
        .collect();
    client.save_bulk_states("statestore", items).await.unwrap();
    let query = serde_json::json!({"filter": {"EQ": {"team": team}}, "sort": [{"key": "n", "order": "DESC"}]});
    let found = client
        .query_state_alpha1("statestore", query, None)
        .await
        .unwrap();
    let keys: Vec<_> = found.results.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        [
            format!("{team}-2"),
            format!("{team}-1"),
            format!("{team}-0")
        ]
    );

    client
        .delete_state("statestore", key.as_str(), None)
        .await
        .unwrap();
    assert!(
        client
            .get_state("statestore", key.as_str(), None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
}
