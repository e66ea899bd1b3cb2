//! A [`Sidecar`] started from a [`SidecarConfig`] on free ports, driven over
//! its HTTP API, and stopped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;
use wasmdapr_runtime::AppId;
use wasmdapr_sidecar::{Sidecar, SidecarConfig};

/// A sidecar of `app` on port 0 everywhere, with its state store and its
/// machine-local state (trust bundle, name resolution) in `dir`, so the
/// test touches nothing of the user's.
fn config(app: &str, dir: &std::path::Path) -> SidecarConfig {
    SidecarConfig {
        http_port: 0,
        grpc_port: 0,
        internal_grpc_port: 0,
        embedded_dir: dir.join("embedded"),
        data_dir: Some(dir.join("data")),
        ..SidecarConfig::new(AppId::new(app).unwrap())
    }
}

/// Whether anything accepts connections on `addr`.
fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// `Sidecar::start` binds every API on a free port and reports it; a state
/// saved over its HTTP API reads back from the embedded SQLite store (a
/// file in the configured directory), and an event published to the
/// embedded `pubsub` lands in the SQLite queue beside it; `shutdown` stops
/// every server, so
/// the ports no longer accept connections.
#[tokio::test(flavor = "multi_thread")]
async fn a_library_sidecar_saves_and_reads_state_then_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(config("library-app", dir.path()))
        .await
        .unwrap();
    let (http, grpc) = (sidecar.http_addr, sidecar.grpc_addr);
    assert_ne!(http.port(), 0);
    assert_ne!(grpc.port(), 0);
    let internal = sidecar
        .internal_addr
        .expect("an identity from the local trust bundle");
    assert_ne!(internal.port(), 0);
    assert_eq!(http.ip(), Ipv4Addr::LOCALHOST);

    let client = reqwest::Client::new();
    let base = format!("http://{http}/v1.0/state/statestore");
    let saved = client
        .post(&base)
        .json(&json!([{"key": "planet", "value": {"name": "Tatooine"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 204, "{:?}", saved.text().await);
    let read = client.get(format!("{base}/planet")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let value: serde_json::Value = read.json().await.unwrap();
    assert_eq!(value, json!({"name": "Tatooine"}));
    assert!(
        dir.path()
            .join("embedded")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "the embedded store keeps its file in the configured directory"
    );
    // The embedded default pub/sub, `pubsub`, is a SQLite queue beside it.
    let published = client
        .post(format!("http://{http}/v1.0/publish/pubsub/orders"))
        .json(&json!({"id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 204, "{:?}", published.text().await);
    assert!(dir.path().join("embedded").join("pubsub.db").exists());

    drop(client);
    tokio::time::timeout(Duration::from_secs(20), sidecar.shutdown())
        .await
        .expect("shutdown finishes")
        .unwrap();
    for addr in [http, grpc, internal] {
        assert!(!listening(addr), "{addr} still accepts connections");
    }
}

/// The shutdown API ends `run_until` of a library sidecar, as it ends
/// `wasmdapr sidecar`, with its servers stopped.
#[tokio::test(flavor = "multi_thread")]
async fn the_shutdown_api_ends_run_until() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(config("library-shutdown", dir.path()))
        .await
        .unwrap();
    let http = sidecar.http_addr;
    let running = tokio::spawn(sidecar.run_until(std::future::pending()));
    let asked = reqwest::Client::new()
        .post(format!("http://{http}/v1.0/shutdown"))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 204);
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the sidecar stops")
        .unwrap()
        .unwrap();
    assert!(!listening(http));
}
