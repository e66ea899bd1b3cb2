//! The AssemblyScript example (`examples/assemblyscript-state`), built from
//! source with its pinned npm toolchain and run by `wasmdapr run` as an app
//! of the original prototype ran: a WASI preview 1 module calling the Dapr
//! HTTP API over the `wasi_experimental_http` ABI. Each test checks what
//! the app printed and what the state store holds afterwards, on the
//! embedded SQLite default and on Redis. `scripts/setup.sh` installs the
//! example's `node_modules`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::free_port;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/assemblyscript-state")
}

/// Builds the example with `npm run build` into `out` (a directory of the
/// calling test), so tests running at once in separate processes never
/// write the same file. Panics with the way out when the toolchain is
/// missing: this test must not pass without running the app.
fn build_example(out: &Path) -> PathBuf {
    let dir = example_dir();
    assert!(
        dir.join("node_modules/assemblyscript").exists()
            && dir.join("node_modules/@assemblyscript/wasi-shim").exists(),
        "{}/node_modules is missing: run scripts/setup.sh",
        dir.display()
    );
    let wasm = out.join("assemblyscript-state.wasm");
    let built = Command::new("npm")
        .current_dir(&dir)
        .args(["run", "--silent", "build", "--", "--outFile"])
        .arg(&wasm)
        .output()
        .unwrap_or_else(|e| panic!("cannot start npm ({e}): run scripts/setup.sh"));
    assert!(
        built.status.success(),
        "npm run build failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    wasm
}

/// A test's own world: the built app, a working directory (where the
/// embedded store creates `.wasmdapr/`) and a compiled-code cache.
struct Setup {
    dir: tempfile::TempDir,
    wasm: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wasm = build_example(dir.path());
        std::fs::create_dir(dir.path().join("cwd")).unwrap();
        Setup { dir, wasm }
    }

    fn cwd(&self) -> PathBuf {
        self.dir.path().join("cwd")
    }

    /// `wasmdapr run` of the app with `flags` (before the app's path).
    fn run(&self, flags: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .current_dir(self.cwd())
            .env("WASMDAPR_CACHE_DIR", self.dir.path().join("cache"))
            .env("DAPR_GRPC_PORT", "0")
            .env("DAPR_INTERNAL_GRPC_PORT", "0")
            .env_remove("DAPR_HTTP_PORT")
            .env_remove("DAPR_API_TOKEN")
            .env_remove("RUST_LOG")
            .arg("run")
            .args(flags)
            .arg(&self.wasm)
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the app prints when the whole scenario succeeds.
const SUCCESS: &str = "saved weapon = \"Death Star\"
bulk-saved planets = {\"name\":\"Tatooine\",\"test\":123}
got weapon = \"Death Star\"
got planets = {\"name\":\"Tatooine\",\"test\":123}
got scratch = \"to be deleted\"
deleted scratch, and it is gone
Test successfully!
";

fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), SUCCESS, "stderr:\n{}", text(&out.stderr));
}

/// A unique app id, so tests sharing one Redis never see each other's keys.
fn app_id(test: &str) -> String {
    format!("as-{test}-{}", std::process::id())
}

/// On the embedded SQLite default, reaching its sidecar through the
/// implicit Dapr grant on the port `wasmdapr run` hands it in
/// `DAPR_HTTP_PORT` (any free port here), the app completes the scenario,
/// and `.wasmdapr/state.db` then holds `weapon` and `planets` under the
/// app id, exactly as sent, and not the deleted scratch key.
#[test]
fn scenario_on_embedded_sqlite() {
    let setup = Setup::new();
    let id = app_id("sqlite");
    let out = setup.run(&["--app-id", &id, "--dapr-http-port", "0"]);
    assert_success(&out);

    let db = rusqlite::Connection::open(setup.cwd().join(".wasmdapr/state.db")).unwrap();
    let mut query = db
        .prepare("SELECT key, CAST(value AS TEXT) FROM state ORDER BY key")
        .unwrap();
    let rows: Vec<(String, String)> = query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                format!("{id}||planets"),
                r#"{"name":"Tatooine","test":123}"#.to_owned()
            ),
            (format!("{id}||weapon"), r#""Death Star""#.to_owned()),
        ]
    );
}

/// On Redis (the component file of `examples/components/redis`), granted
/// its sidecar only by an explicit `--allow-host` (the implicit grant, and
/// with it the `DAPR_HTTP_PORT` that `run` passes, withdrawn: the port is
/// given with `--env`), the app completes the scenario, and Redis then holds
/// `<app-id>||weapon` and `<app-id>||planets` in Dapr's hash layout, and no
/// scratch key.
#[test]
fn scenario_on_redis() {
    let setup = Setup::new();
    let id = app_id("redis");
    let port = free_port().to_string();
    let allow = format!("http://127.0.0.1:{port}");
    let env = format!("DAPR_HTTP_PORT={port}");
    let resources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/components/redis");
    let keys = ["weapon", "planets", "scratch"].map(|k| format!("{id}||{k}"));
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/")
        .unwrap()
        .get_connection()
        .expect("Redis at 127.0.0.1:6379 (scripts/services.sh starts it)");
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut redis).unwrap();

    let out = setup.run(&[
        "--app-id",
        &id,
        "--resources-path",
        resources.to_str().unwrap(),
        "--dapr-http-port",
        &port,
        "--no-dapr-grant",
        "--allow-host",
        &allow,
        "--env",
        &env,
    ]);

    let stored: Vec<Option<String>> = keys
        .iter()
        .map(|key| redis::cmd("HGET").arg(key).arg("data").query(&mut redis))
        .collect::<Result<_, _>>()
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut redis).unwrap();
    assert_success(&out);
    assert_eq!(
        stored,
        vec![
            Some(r#""Death Star""#.to_owned()),
            Some(r#"{"name":"Tatooine","test":123}"#.to_owned()),
            None
        ]
    );
}

/// With the implicit Dapr grant withdrawn and no `--allow-host`, the very
/// first request is refused before it is sent: the app reports error 7
/// naming its operation and exits 1, and nothing is stored.
#[test]
fn without_a_grant_the_app_fails_with_error_7() {
    let setup = Setup::new();
    let port = free_port().to_string();
    let env = format!("DAPR_HTTP_PORT={port}");
    let out = setup.run(&["--dapr-http-port", &port, "--no-dapr-grant", "--env", &env]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(text(&out.stdout), "");
    assert!(
        stderr.contains(&format!(
            "error: saveState(statestore, weapon): POST http://127.0.0.1:{port}/v1.0/state/statestore: \
             wasi_experimental_http.req returned error 7 (destination not allowed)"
        )),
        "{stderr}"
    );
    let db = rusqlite::Connection::open(setup.cwd().join(".wasmdapr/state.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM state", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}
