//! Idle and slow connections cannot exhaust a server: `wasmdapr sidecar`
//! (the Dapr HTTP API) and `wasmdapr run --app-listen` (a served app), each
//! run under a 256-descriptor limit (`prlimit --nofile=256`), keep
//! answering while hundreds of silent connections, a few header tricklers
//! and a stalled body are open; the tricklers are closed after the
//! header-read timeout, the stalled body fails after the body-read timeout,
//! the silent connections close after the idle timeout, and the process is
//! healthy afterwards, without a flood of accept errors in its log.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::free_port;
use test_programs_artifacts::P2_SERVE_HELLO;

/// Connections that send nothing.
const SILENT: usize = 300;
/// Connections that send a request's headers a byte at a time.
const TRICKLERS: usize = 5;
/// The header-read, body-read and idle timeouts the servers are started with.
const HEADER_TIMEOUT: &str = "1s";
const BODY_TIMEOUT: &str = "1s";
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A process killed on drop, its stderr kept in a file.
struct Process {
    child: Child,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// `wasmdapr <args>` under a limit of 256 open files, with both timeouts
/// lowered; `extra` adds flags.
fn start(args: &[String], extra: &[&str]) -> Process {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr.log");
    let child = Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_wasmdapr"))
        .args(args)
        .args(["--http-header-read-timeout", HEADER_TIMEOUT])
        .args(["--http-body-read-timeout", BODY_TIMEOUT])
        .args([
            "--http-idle-timeout",
            &format!("{}s", IDLE_TIMEOUT.as_secs()),
        ])
        .args(extra)
        .current_dir(dir.path())
        .env_remove("DAPR_API_TOKEN")
        // Any free port for the sidecar-to-sidecar endpoint (where there is
        // one), so concurrent tests do not collide on 50002.
        .env("DAPR_INTERNAL_GRPC_PORT", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("starting wasmdapr under prlimit");
    Process {
        child,
        stderr,
        _dir: dir,
    }
}

/// A Configuration with name resolution in `dir`, so the test does not
/// share the user's name-resolution file.
fn config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    let text = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\n\
         spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
         \x20     connectionString: {}\n",
        dir.join("nr.db").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// One `GET path` on a fresh connection; the status, if it came within
/// `within`.
fn probe(port: u16, path: &str, within: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), within).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    stream.set_write_timeout(Some(within)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Waits until `path` answers `status` (the process is up).
fn wait_until(port: u16, path: &str, status: u16, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe(port, path, Duration::from_secs(2)) != Some(status) {
        if let Some(exit) = process.child.try_wait().unwrap() {
            panic!("wasmdapr exited with {exit}: {}", process.log());
        }
        assert!(Instant::now() < deadline, "not serving: {}", process.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server has closed `stream` (EOF or reset), waiting at most
/// `wait` for it.
fn closed(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 512];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            // A 503 or a 408 may come before the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// The attack and the checks, against the server on `port` whose health
/// is `path` answering `status`.
fn survive(mut process: Process, port: u16, path: &'static str, status: u16, post_path: &str) {
    wait_until(port, path, status, &mut process);
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..SILENT)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(
        silent.len() > 250,
        "only {} connections opened",
        silent.len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<_> = (0..TRICKLERS)
        .map(|_| {
            let stop = stop.clone();
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::thread::spawn(move || {
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
                    "a".repeat(100)
                );
                for byte in request.bytes() {
                    if stop.load(Ordering::Relaxed) || stream.write_all(&[byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (stream, started.elapsed())
            })
        })
        .collect();

    // A body that stops half way holds a request in flight (so the idle
    // timeout does not apply to it): the body-read timeout (1 s) fails it.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stalled,
        "POST {post_path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{{\"key\":"
    )
    .unwrap();
    let stalled_at = Instant::now();

    // While they are open, the server answers every probe within a second.
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let got = probe(port, path, Duration::from_secs(1));
        assert_eq!(
            got,
            Some(status),
            "probe {answered} after {:?} unanswered; log:\n{}",
            started.elapsed(),
            process.log()
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }

    // The tricklers were cut off by the header-read timeout (1 s), long
    // before the idle timeout (5 s) and before their headers were done
    // (a byte per 100 ms takes 13 s).
    for trickler in tricklers {
        let (mut stream, gave_up_at) = trickler.join().unwrap();
        assert!(
            gave_up_at < IDLE_TIMEOUT - Duration::from_secs(1),
            "a trickler could write for {gave_up_at:?}"
        );
        assert!(closed(&mut stream, Duration::from_secs(1)));
    }
    stop.store(true, Ordering::Relaxed);
    let mut answer = String::new();
    stalled
        .set_read_timeout(Some(IDLE_TIMEOUT.saturating_sub(stalled_at.elapsed())))
        .unwrap();
    let _ = stalled.read_to_string(&mut answer);
    assert!(
        stalled_at.elapsed() < IDLE_TIMEOUT - Duration::from_secs(1),
        "a stalled body was held for {:?}",
        stalled_at.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a stalled body was answered {answer}"
    );

    // Every silent connection is closed once the idle timeout has passed
    // (most much earlier, to make room for the probes).
    let deadline = started + IDLE_TIMEOUT + Duration::from_secs(5);
    for stream in &mut silent {
        let wait = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed(stream, wait.max(Duration::from_millis(10))),
            "a silent connection outlived the idle timeout"
        );
    }
    drop(silent);

    // Healthy afterwards, alive, and the log is neither a flood nor a panic.
    for _ in 0..5 {
        assert_eq!(probe(port, path, Duration::from_secs(1)), Some(status));
    }
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "wasmdapr exited"
    );
    let log = process.log();
    assert!(!log.contains("panicked"), "{log}");
    let accept_warnings = log.matches("cannot accept").count();
    assert!(
        accept_warnings <= 3,
        "{accept_warnings} accept warnings:\n{log}"
    );
}

fn sidecar_args(http: u16, dir: &Path) -> Vec<String> {
    vec![
        "sidecar".into(),
        "--app-id".into(),
        "connections".into(),
        "--dapr-http-port".into(),
        http.to_string(),
        "--dapr-grpc-port".into(),
        free_port().to_string(),
        "--config".into(),
        config(dir).display().to_string(),
    ]
}

/// The Dapr HTTP API with the default connection bound (half of 256).
#[test]
fn sidecar_survives_idle_and_slow_connections() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let process = start(&sidecar_args(http, dir.path()), &[]);
    survive(
        process,
        http,
        "/v1.0/healthz",
        204,
        "/v1.0/state/statestore",
    );
}

/// The Dapr HTTP API with a bound above the descriptor limit: the process
/// runs out of descriptors (`EMFILE`), closes idle connections to go on,
/// and warns rarely.
#[test]
fn sidecar_survives_running_out_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let process = start(
        &sidecar_args(http, dir.path()),
        &["--http-max-connections", "100000"],
    );
    survive(
        process,
        http,
        "/v1.0/healthz",
        204,
        "/v1.0/state/statestore",
    );
}

/// A served app's public server (`--app-listen`) is the same server.
#[test]
fn app_listen_survives_idle_and_slow_connections() {
    let dir = tempfile::tempdir().unwrap();
    let app = free_port();
    let args = vec![
        "run".into(),
        "--no-cache".into(),
        "--app-id".into(),
        "listen".into(),
        "--app-listen".into(),
        format!("127.0.0.1:{app}"),
        "--dapr-http-port".into(),
        free_port().to_string(),
        "--dapr-grpc-port".into(),
        free_port().to_string(),
        "--config".into(),
        config(dir.path()).display().to_string(),
    ];
    // Flags go before the guest: `start` appends the timeouts, so the
    // guest is named through `extra`.
    let process = start(&args, &[P2_SERVE_HELLO]);
    survive(process, app, "/", 200, "/");
}
