//! The typed Dapr imports (`wit/`) end to end: the built `examples/state-demo`
//! component, through the SDK and the host's `bindgen!` site, against a real
//! `wasmdapr_runtime::Runtime` over the real backends of
//! `wasmdapr-components` (Redis is the server at 127.0.0.1:6379; when it is
//! down the test fails, it never skips).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use test_programs_artifacts::EXAMPLE_STATE_DEMO;
use wasmdapr_host::{Capabilities, Limits};
use wasmdapr_runtime::state::GetRequest;
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec, Components, DaprApi, Runtime};

use crate::{Ran, app_id, host, load, run_with};

/// A state store component named `statestore` of `kind`.
fn spec(kind: &str, metadata: &[(&str, &str)], scopes: &[&str]) -> ComponentSpec {
    ComponentSpec {
        name: "statestore".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        source: PathBuf::from("(test)"),
    }
}

/// Loads `specs` through the same registry the binary uses.
async fn components(specs: Vec<ComponentSpec>) -> Arc<Components> {
    let mut registry = ComponentRegistry::default();
    wasmdapr_components::register(&mut registry);
    Arc::new(
        Components::load(specs, &registry)
            .await
            .expect("load components"),
    )
}

/// Runs the state demo as `app` with `args`, granted `dapr`.
async fn run_demo(dapr: Option<Arc<dyn DaprApi>>, args: &[&str]) -> Ran {
    let host = host();
    let app = load(&host, EXAMPLE_STATE_DEMO);
    let caps = Capabilities {
        args: args.iter().map(|s| s.to_string()).collect(),
        dapr,
        ..Capabilities::default()
    };
    run_with(&app, caps, Limits::default()).await
}

/// Runs the whole scenario as `app` on `components` and checks what the
/// backend holds under the app-id prefix.
async fn scenario(components: Arc<Components>, app: &str) {
    let runtime = Arc::new(Runtime::new(app_id(app), components.clone()));
    let ran = run_demo(Some(runtime), &[]).await;
    assert_eq!(
        ran.result.as_ref().ok(),
        Some(&0),
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        ran.result,
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains("Test successfully!"), "{}", ran.stdout);
    assert!(ran.stdout.contains("saving weapon"), "{}", ran.stdout);

    let store = &components.state_stores().next().expect("a store").store;
    let get = |key: String| GetRequest {
        key,
        ..GetRequest::default()
    };
    let weapon = store
        .get(get(format!("{app}||weapon")))
        .await
        .unwrap()
        .expect("weapon is stored under `<app-id>||weapon`");
    assert_eq!(weapon.data, br#""Death Star""#);
    let planets = store
        .get(get(format!("{app}||planets")))
        .await
        .unwrap()
        .expect("planets is stored under `<app-id>||planets`");
    let planets: serde_json::Value = serde_json::from_slice(&planets.data).unwrap();
    assert_eq!(
        planets,
        serde_json::json!({"name": "Tatooine", "test": 123})
    );
    assert!(store.get(get("weapon".into())).await.unwrap().is_none());
}

/// The demo passes through the typed imports on the in-memory store.
#[tokio::test]
async fn state_demo_in_memory() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    scenario(components, "state-demo").await;
}

/// The demo passes on the SQLite store (the embedded default's type).
#[tokio::test]
async fn state_demo_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let components = components(vec![ComponentSpec::embedded_state_store(dir.path())]).await;
    scenario(components, "state-demo").await;
}

/// The demo passes on the real Redis server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_demo_redis() {
    let components = components(vec![spec(
        "state.redis",
        &[("redisHost", "127.0.0.1:6379")],
        &[],
    )])
    .await;
    scenario(components, "state-demo-host-test").await;
}

/// A store that does not exist is the `ERR_STATE_STORE_NOT_FOUND` error
/// value, which the guest reports and exits 1 on: not a trap.
#[tokio::test]
async fn unknown_store_is_an_error_value() {
    let components = components(vec![spec("state.in-memory", &[], &[])]).await;
    let runtime = Arc::new(Runtime::new(app_id("state-demo"), components));
    let ran = run_demo(Some(runtime), &["no-such-store"]).await;
    assert_eq!(ran.result.unwrap(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("error: ERR_STATE_STORE_NOT_FOUND"),
        "{}",
        ran.stderr
    );
}

/// A store scoped to another app id is invisible: the same error as a store
/// that does not exist.
#[tokio::test]
async fn store_scoped_to_another_app_is_invisible() {
    let components = components(vec![spec("state.in-memory", &[], &["other-app"])]).await;
    let runtime = Arc::new(Runtime::new(app_id("state-demo"), components));
    let ran = run_demo(Some(runtime), &[]).await;
    assert_eq!(ran.result.unwrap(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("error: ERR_STATE_STORE_NOT_FOUND"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stdout.contains("Test successfully!"));
}

/// Without the Dapr grant the component still links and every call is the
/// `ERR_DAPR_NOT_GRANTED` error value.
#[tokio::test]
async fn no_dapr_grant_is_an_error_value() {
    let ran = run_demo(None, &[]).await;
    assert_eq!(ran.result.unwrap(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "error: {}",
            wasmdapr_host::dapr::ERR_DAPR_NOT_GRANTED
        )),
        "{}",
        ran.stderr
    );
}
