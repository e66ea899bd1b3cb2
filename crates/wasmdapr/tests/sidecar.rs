//! Black-box tests of `wasmdapr sidecar` as a process: configuration errors,
//! ports, the embedded default's durability, and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{REDIS, components, http, sidecar_command, start_sidecar};

/// Without `--resources-path`, state lives in `.wasmdapr/state.db` under the
/// working directory and survives a restart of the sidecar.
#[test]
fn embedded_default_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let sidecar = start_sidecar(dir.path(), None);
        let saved = http(
            sidecar.http,
            "POST",
            "/v1.0/state/statestore",
            r#"[{"key":"weapon","value":"Death Star"}]"#,
        );
        assert_eq!(saved.unwrap().0, 204);
    }
    assert!(dir.path().join(".wasmdapr/state.db").exists());
    let sidecar = start_sidecar(dir.path(), None);
    let (status, body) = http(sidecar.http, "GET", "/v1.0/state/statestore/weapon", "").unwrap();
    assert_eq!((status, body.as_str()), (200, "\"Death Star\""));
}

/// A bad component file stops the sidecar before it listens, naming the
/// file and the field, with exit code 78.
#[test]
fn bad_component_yaml_is_reported_precisely() {
    for (yaml, expected) in [
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\nspec:\n  version: v1\n",
            "component `s`: spec.type: is required",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\nspec:\n  type: state.nosuch\n  version: v1\n",
            "unknown state store type `state.nosuch`",
        ),
        ("kind: Component\n  broken: [yaml", "document 1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let resources = components(dir.path(), yaml);
        let (mut cmd, http_port, _) = sidecar_command(dir.path(), Some(&resources));
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains("components.yaml"), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in {stderr}"
        );
        assert!(
            http(http_port, "GET", "/v1.0/healthz", "").is_none(),
            "it listened anyway"
        );
    }
}

/// A Redis component that cannot reach its server fails at start, naming the component.
#[test]
fn unreachable_backend_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = REDIS.replace("127.0.0.1:6379", "127.0.0.1:1");
    let resources = components(dir.path(), &yaml);
    let (mut cmd, _, _) = sidecar_command(dir.path(), Some(&resources));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("statestore") && stderr.contains("state.redis"),
        "{stderr}"
    );
}

/// A port already in use is a clear error with exit code 69.
#[test]
fn port_in_use_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(dir.path())
        .args([
            "sidecar",
            "--app-id",
            "x",
            "--dapr-grpc-port",
            "0",
            "--dapr-http-port",
            &port.to_string(),
        ])
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("HTTP"),
        "{stderr}"
    );
}

/// `POST /v1.0/shutdown` answers 204 and the process then exits 0.
#[test]
fn shutdown_api_stops_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut sidecar = start_sidecar(dir.path(), None);
    assert_eq!(
        http(sidecar.http, "POST", "/v1.0/shutdown", "").unwrap().0,
        204
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = sidecar.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the sidecar did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Apps sharing a Redis store do not see each other's keys (app-id prefix),
/// and a scoped component is invisible to other app ids.
#[test]
fn key_prefix_and_scopes_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{REDIS}---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: private\n\
         spec:\n  type: state.in-memory\n  version: v1\nscopes: [someone-else]\n"
    );
    let resources = components(dir.path(), &yaml);
    let sidecar = start_sidecar(dir.path(), Some(&resources));
    let key = format!("prefix-check-{}", std::process::id());
    let body = format!(r#"[{{"key":"{key}","value":1}}]"#);
    assert_eq!(
        http(sidecar.http, "POST", "/v1.0/state/statestore", &body)
            .unwrap()
            .0,
        204
    );
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut conn = client.get_connection().unwrap();
    let stored: Option<String> = redis::cmd("HGET")
        .arg(format!("tests||{key}"))
        .arg("data")
        .query(&mut conn)
        .unwrap();
    assert_eq!(stored.as_deref(), Some("1"));
    let (status, body) = http(sidecar.http, "GET", "/v1.0/state/private/k", "").unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("ERR_STATE_STORE_NOT_FOUND"), "{body}");
}

/// `wasmdapr run --dapr-endpoint … --dapr-http-endpoint …` uses another
/// sidecar process (here a `wasmdapr sidecar` on Redis that demands an API
/// token) for both doors of the state demo: the typed imports are forwarded
/// over gRPC, and the guest's plain HTTP calls reach the remote's HTTP API,
/// which `run` names in `DAPR_HTTP_ENDPOINT`, grants implicitly, and adds
/// the token to (the guest never holds it). Both passes succeed unchanged
/// and the keys land in Redis under the remote sidecar's app id. With
/// `--no-dapr-grant` the HTTP pass is refused.
#[test]
fn run_forwards_to_a_remote_sidecar() {
    const TOKEN: &str = "remote-secret";
    let dir = tempfile::tempdir().unwrap();
    let resources = components(dir.path(), REDIS);
    let (mut cmd, http_port, grpc) = sidecar_command(dir.path(), Some(&resources));
    let mut child = cmd.env("DAPR_API_TOKEN", TOKEN).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(http_port, "GET", "/v1.0/healthz", "").map(|r| r.0) != Some(204) {
        assert!(child.try_wait().unwrap().is_none(), "the sidecar exited");
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _remote = common::Sidecar {
        child,
        http: http_port,
        grpc,
    };
    // The token is enforced: a request without it is refused.
    let (status, _) = http(http_port, "GET", "/v1.0/state/statestore/weapon", "").unwrap();
    assert_eq!(status, 401);

    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys = ["tests||weapon", "tests||planets"];
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut conn).unwrap();

    let cwd = tempfile::tempdir().unwrap();
    let http_endpoint = format!("http://127.0.0.1:{http_port}");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .current_dir(cwd.path())
            .args([
                "run",
                "--dapr-endpoint",
                &format!("http://127.0.0.1:{grpc}"),
            ])
            .args(["--dapr-http-endpoint", &http_endpoint])
            .args(extra)
            .arg(test_programs_artifacts::EXAMPLE_STATE_DEMO)
            .env("DAPR_API_TOKEN", TOKEN)
            .env_remove("DAPR_HTTP_ENDPOINT")
            .env_remove("DAPR_GRPC_ENDPOINT")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (_, http_pass) = stdout
        .split_once(&format!("pass 2: the Dapr HTTP API at {http_endpoint},"))
        .unwrap_or_else(|| panic!("the HTTP pass did not use DAPR_HTTP_ENDPOINT: {stdout}"));
    assert!(
        http_pass.contains("read weapon = \"Death Star\""),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("Test successfully!").count(),
        2,
        "{stdout}\n{stderr}"
    );
    let stored: Vec<Option<String>> = keys
        .iter()
        .map(|key| redis::cmd("HGET").arg(key).arg("data").query(&mut conn))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        [
            Some("\"Death Star\"".to_owned()),
            Some(r#"{"name":"Tatooine","test":123}"#.to_owned())
        ]
    );
    // No local sidecar ran: nothing was written to an embedded store.
    assert!(!cwd.path().join(".wasmdapr").exists());

    let out = run(&["--no-dapr-grant"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("Test successfully!").count(), 1, "{stdout}");
    assert!(stderr.contains("HttpRequestDenied"), "{stderr}");
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut conn).unwrap();
}

/// `--dapr-http-endpoint` without `--dapr-endpoint`, or not an HTTP URL, is
/// a usage error (exit code 2) naming the flag.
#[test]
fn dapr_http_endpoint_needs_a_remote_and_a_url() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .current_dir(cwd.path())
            .arg("run")
            .args(args)
            .arg(test_programs_artifacts::EXAMPLE_STATE_DEMO)
            .env_remove("DAPR_HTTP_ENDPOINT")
            .env_remove("DAPR_GRPC_ENDPOINT")
            .output()
            .unwrap()
    };
    for args in [
        &["--dapr-http-endpoint", "http://127.0.0.1:3500"][..],
        &[
            "--dapr-endpoint",
            "http://127.0.0.1:50001",
            "--dapr-http-endpoint",
            "ftp://127.0.0.1",
        ],
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--dapr-http-endpoint"),
            "{args:?}: {stderr}"
        );
    }
}

/// An unreachable `--dapr-endpoint` fails at start with exit code 69, naming it.
#[test]
fn unreachable_dapr_endpoint_is_reported() {
    let port = common::free_port();
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
        .current_dir(cwd.path())
        .args([
            "run",
            "--dapr-endpoint",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg(test_programs_artifacts::EXAMPLE_STATE_DEMO)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
