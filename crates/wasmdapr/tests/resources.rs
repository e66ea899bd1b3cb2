//! Black-box tests of `wasmdapr sidecar --resources-path` with a resources
//! folder as real Dapr apps ship them: several documents per file, kinds
//! this build does not apply, components without `spec.version`, and
//! `spec.ignoreErrors`.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{components, http, sidecar_command};

/// One file holding what a Dapr app's resources folder holds.
const RESOURCES: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: private
spec:
  type: state.in-memory
  version: v1
scopes: [billing]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: optional
spec:
  type: state.redis
  version: v1
  ignoreErrors: true
  metadata:
  - name: redisHost
    value: 127.0.0.1:1
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: external-api
spec:
  baseUrl: https://example.com
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: orders-v1
spec:
  pubsubname: pubsub
  topic: orders
  route: /orders
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders-v2
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    default: /orders
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
spec:
  policies:
    timeouts:
      general: 5s
";

/// The sidecar starts on that folder (a component without a version is
/// v1; an unreachable one with `ignoreErrors` is skipped), serves state on
/// the one it could build, refuses a store out of the app's scopes, and
/// says on stderr, by name, what it skipped and what it does not apply yet.
#[test]
fn a_dapr_resources_folder_starts_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), RESOURCES);
    let (mut cmd, http_port, _) = sidecar_command(dir.path(), Some(&resources));
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(http_port, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("the sidecar exited with {status}: {stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved = http(
        http_port,
        "POST",
        "/v1.0/state/statestore",
        r#"[{"key":"k","value":"v"}]"#,
    );
    assert_eq!(saved.map(|r| r.0), Some(204));
    let (status, body) = http(http_port, "GET", "/v1.0/state/private/k", "").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ERR_STATE_STORE_NOT_FOUND"), "{body}");
    let (status, body) = http(http_port, "GET", "/v1.0/state/optional/k", "").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ERR_STATE_STORE_NOT_FOUND"), "{body}");

    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    for expected in [
        "resource `external-api` of kind `HTTPEndpoint` is not supported by this build: skipped",
        "Subscription `orders-v1`",
        "Subscription `orders-v2`",
        "Resiliency `myresiliency` loaded but not applied yet",
        "component skipped (spec.ignoreErrors)",
    ] {
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
    }
    assert!(
        stderr.contains("optional") && stderr.contains("state.redis"),
        "{stderr}"
    );
}
