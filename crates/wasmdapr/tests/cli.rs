//! Black-box tests of the `wasmdapr` binary: what a user types, what they
//! see on stdout and stderr, and the exit codes the README documents.

use std::path::Path;
use std::process::{Command, Output};

use test_programs_artifacts::*;

/// The binary, with its compiled-code cache in `cache`, run from a fresh
/// working directory (where the embedded state store puts `.wasmdapr/`), and
/// its sidecar on free ports so tests can run side by side.
fn wasmdapr(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmdapr"));
    let cwd = cache.with_extension("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    cmd.current_dir(cwd)
        .env("WASMDAPR_CACHE_DIR", cache)
        .env("DAPR_HTTP_PORT", "0")
        .env("DAPR_GRPC_PORT", "0")
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .env_remove("RUST_LOG");
    cmd
}

fn run(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    wasmdapr(&cache.path().join("cache"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run` runs a module and a component, printing their output, exiting 0.
#[test]
fn runs_modules_and_components() {
    for app in [P1_CLI_HELLO, P2_CLI_HELLO] {
        let out = run(&["run", app]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "hello from wasm\n");
    }
}

/// Arguments after `--` and `--env` reach the guest; its exit code is ours.
/// Beside `--env`, the guest sees only what `dapr run` gives an app (its
/// id and its sidecar's ports, the live ones: the sidecar here is on free
/// ports), and with `--no-dapr-grant` not even those.
#[test]
fn args_env_and_exit_code_pass_through() {
    let out = run(&[
        "run",
        "--env",
        "K=v",
        "--app-id",
        "args",
        P1_CLI_ARGS_ENV,
        "--",
        "a",
        "--exit",
        "42",
    ]);
    assert_eq!(out.status.code(), Some(42));
    let text = stdout(&out);
    assert!(text.contains("arg[1]=a\n"), "{text}");
    assert!(text.contains("env-count=4\nenv:APP_ID=args\n"), "{text}");
    for key in ["DAPR_GRPC_PORT", "DAPR_HTTP_PORT"] {
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("env:{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{text}");
    }
    assert!(text.contains("env:K=v\n"), "{text}");

    let out = run(&["run", "--no-dapr-grant", "--env", "K=v", P1_CLI_ARGS_ENV]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("env-count=1\nenv:K=v\n"),
        "{}",
        stdout(&out)
    );
}

/// `--dir HOST::GUEST` grants exactly that directory.
#[test]
fn dir_grant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "abc").unwrap();
    let grant = format!("{}::/work", dir.path().display());
    let out = run(&["run", "--dir", &grant, P2_CLI_FILES, "--", "/work"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output.txt")).unwrap(),
        "ABC"
    );
}

/// The AssemblyScript-style module: start section only, two-buffer writes,
/// lines intact on stdout and stderr, exit code from `proc_exit`.
#[test]
fn start_section_module_with_multi_buffer_writes() {
    let out = run(&["run", WAT_START_SECTION]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "first line\n");
    assert_eq!(stderr(&out), "second line\n");
}

/// Each failure: one clear message on stderr and its documented exit code.
#[test]
fn failures_have_messages_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "just text").unwrap();
    let truncated = dir.path().join("truncated.wasm");
    let hello = std::fs::read(P1_CLI_HELLO).unwrap();
    std::fs::write(&truncated, &hello[..hello.len() / 2]).unwrap();
    let missing = dir.path().join("missing.wasm");
    let not_a_dir = format!("{}::/x", dir.path().join("nope").display());

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["run", missing.to_str().unwrap()], 66, "cannot read"),
        (
            vec!["run", not_wasm.to_str().unwrap()],
            65,
            "is not a WebAssembly file",
        ),
        (
            vec!["run", truncated.to_str().unwrap()],
            65,
            "is not a valid WebAssembly module",
        ),
        (
            vec!["run", WAT_COMPONENT_MISSING_IMPORT],
            67,
            "wasmdapr:test/nowhere",
        ),
        (
            vec!["run", WAT_COMPONENT_NO_ENTRY],
            65,
            "does not export `wasi:cli/run`",
        ),
        (
            vec!["run", "--dir", &not_a_dir, P1_CLI_HELLO],
            64,
            "cannot grant --dir",
        ),
        (
            vec!["run", WAT_UNREACHABLE],
            134,
            "trapped: wasm trap: wasm `unreachable`",
        ),
        (
            vec!["run", "--timeout", "200ms", WAT_INFINITE_LOOP],
            124,
            "time limit of 200ms exceeded (--timeout)",
        ),
        (
            vec!["run", "--max-memory", "32MiB", WAT_MEMORY_BOMB],
            137,
            "memory limit of 32 MiB exceeded (--max-memory)",
        ),
        (
            vec!["run", "--max-memory", "lots", P1_CLI_HELLO],
            2,
            "is not a size",
        ),
    ];
    for (args, code, message) in cases {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains(message),
            "{args:?}: expected `{message}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

/// A trap prints the wasm backtrace with function names.
#[test]
fn trap_prints_backtrace() {
    let out = run(&["run", WAT_UNREACHABLE]);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: app 'wat_unreachable' trapped"),
        "{err}"
    );
    assert!(err.contains("wasm backtrace:"), "{err}");
    assert!(err.contains("!boom") && err.contains("!call_boom"), "{err}");
}

/// `--app-id` names the app in messages; the default is the file stem.
#[test]
fn app_id_names_the_app() {
    let out = run(&["run", "--app-id", "checkout", WAT_UNREACHABLE]);
    assert!(stderr(&out).contains("app 'checkout' trapped"));
}

/// The second `run` of a file takes its compiled code from the cache.
#[test]
fn second_run_hits_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let out = wasmdapr(cache.path())
                .env("RUST_LOG", "wasmdapr_host=debug")
                .args(["run", P2_CLI_HELLO])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            stderr(&out)
        })
        .collect();
    assert!(runs[0].contains("source=Compiled"), "{}", runs[0]);
    assert!(runs[1].contains("source=Cache"), "{}", runs[1]);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(cache.path().with_extension("cwd"));
}

/// `--no-cache` neither reads nor writes the cache.
#[test]
fn no_cache_writes_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let out = wasmdapr(cache.path())
        .args(["run", "--no-cache", P1_CLI_HELLO])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(cache.path().with_extension("cwd"));
}

/// `compile` writes a `.cwasm` that `run` accepts; a `.cwasm` of another engine is refused.
#[test]
fn compile_then_run_cwasm() {
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("hello.cwasm");
    let out = run(&["compile", P2_CLI_HELLO, "-o", cwasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["run", cwasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");

    let unwritable = dir.path().join("no/such/dir/x.cwasm");
    let out = run(&["compile", P1_CLI_HELLO, "-o", unwritable.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
}

/// `wasmdapr run state-demo.wasm` with no components runs the prototype's
/// scenario twice on the embedded SQLite store, which it creates in
/// `.wasmdapr/` of the working directory: through the typed Dapr imports,
/// then over HTTP to the sidecar's port that `run` hands it in
/// `DAPR_HTTP_PORT` (a free port here, not 3500), with the implicit grant
/// and the host's API token. With `--no-dapr-grant` the HTTP pass is
/// refused before it is sent and the run fails.
#[test]
fn state_demo_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = wasmdapr(&cache)
        .env("DAPR_API_TOKEN", "cli-secret")
        .args(["run", EXAMPLE_STATE_DEMO])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let (typed, http) = printed
        .split_once("pass 2: the Dapr HTTP API at http://127.0.0.1:")
        .unwrap_or_else(|| panic!("no HTTP pass in {printed}"));
    assert!(
        !http.starts_with("3500,") && !http.starts_with("0,"),
        "{printed}"
    );
    for pass in [typed, http] {
        assert!(pass.contains("read weapon = \"Death Star\""), "{printed}");
        assert!(
            pass.contains(r#"read planets = {"name":"Tatooine","test":123}"#),
            "{printed}"
        );
        assert!(pass.ends_with("Test successfully!\n"), "{printed}");
    }
    assert!(
        cache
            .with_extension("cwd")
            .join(".wasmdapr/state.db")
            .exists()
    );

    let out = wasmdapr(&cache)
        .args(["run", "--no-dapr-grant", EXAMPLE_STATE_DEMO])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out).matches("Test successfully!").count(), 1);
    assert!(
        stderr(&out).contains("failed: ErrorCode::HttpRequestDenied"),
        "{}",
        stderr(&out)
    );
}

/// A free TCP port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `--allow-host` grants the sidecar's live address to `http_get`: its
/// request reaches the Dapr HTTP API with the host-added `dapr-api-token`
/// (a missing key is 204, not 401), while another port of the same host is
/// refused and named in a warning. Without a grant (`--no-dapr-grant`) the
/// sidecar is refused too.
#[test]
fn outbound_http_to_the_sidecar_needs_a_grant() {
    let port = free_port();
    let other = free_port();
    let sidecar_url = format!("http://127.0.0.1:{port}/v1.0/state/statestore/missing");
    let other_url = format!("http://127.0.0.1:{other}/");
    let cache = tempfile::tempdir().unwrap();
    let port_arg = port.to_string();
    let allow = format!("http://127.0.0.1:{port}");
    let out = wasmdapr(&cache.path().join("cache"))
        .env("DAPR_API_TOKEN", "cli-secret")
        .args([
            "run",
            "--dapr-http-port",
            &port_arg,
            "--no-dapr-grant",
            "--allow-host",
            &allow,
            P2_HTTP_GET,
            "--",
            &sidecar_url,
            &other_url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("GET {sidecar_url} -> 204")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "GET {other_url} -> error ErrorCode::HttpRequestDenied"
        )),
        "{printed}"
    );
    assert!(
        stderr(&out).contains(&format!("http://127.0.0.1:{other}")),
        "{}",
        stderr(&out)
    );

    let out = wasmdapr(&cache.path().join("cache"))
        .args([
            "run",
            "--dapr-http-port",
            &port_arg,
            "--no-dapr-grant",
            P2_HTTP_GET,
            "--",
            &sidecar_url,
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("HttpRequestDenied"),
        "{}",
        stdout(&out)
    );
}

/// By default (the implicit Dapr grant) an app reaches its own sidecar
/// without any `--allow-host`; a bad `--allow-host` is a usage error naming it.
#[test]
fn implicit_dapr_grant_and_bad_allow_host() {
    let port = free_port();
    let url = format!("http://localhost:{port}/v1.0/healthz");
    let port_arg = port.to_string();
    let out = run(&[
        "run",
        "--dapr-http-port",
        &port_arg,
        P2_HTTP_GET,
        "--",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("GET {url} -> 204")),
        "{}",
        stdout(&out)
    );

    let out = run(&["run", "--allow-host", "http://ex*ample.com", P2_HTTP_GET]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`http://ex*ample.com` is not an allowed host"),
        "{}",
        stderr(&out)
    );
}

/// A preview 1 module written for `wasi_experimental_http`, its whole
/// program in the start section like the prototype's AssemblyScript apps,
/// POSTs state to the embedded sidecar and GETs it back under
/// `--allow-host http://127.0.0.1:PORT` (the implicit grant withdrawn, the
/// API token added by the host: the guest sends none). The same module
/// aimed at another port of that host gets error 7 and exits 1.
#[test]
fn experimental_http_module_saves_and_reads_state() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}/v1.0/state/statestore");
    let get = format!("{base}/weapon");
    let port_arg = port.to_string();
    let allow = format!("http://127.0.0.1:{port}");
    let cache = tempfile::tempdir().unwrap();
    let run_with = |urls: [&str; 2]| {
        wasmdapr(&cache.path().join("cache"))
            .env("DAPR_API_TOKEN", "cli-secret")
            .args([
                "run",
                "--dapr-http-port",
                &port_arg,
                "--no-dapr-grant",
                "--allow-host",
                &allow,
                XHTTP_START_SECTION,
                "--",
                urls[0],
                urls[1],
            ])
            .output()
            .unwrap()
    };
    let out = run_with([&base, &get]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "204\n\n200\n\"Death Star\"\n");

    let other = format!("http://127.0.0.1:{}/v1.0/state/statestore", free_port());
    let out = run_with([&other, &get]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "error 7\n");
}
