//! Host tests: every guest program under `test-programs/` runs here, in
//! process, through the same `Host` the CLI uses. One test per guest, named
//! after it; `foreach_guest!` makes a guest without a test a compile error.

mod cache;
mod dapr;
mod experimental_http;
mod guests;
mod http;
mod pubsub;
mod wasm_app;

use std::path::Path;
use std::time::Duration;

use wasmdapr_host::capabilities::Output;
use wasmdapr_host::{
    App, ByteSize, Capabilities, EngineConfig, Host, HostConfig, HostError, Limits,
};
use wasmdapr_runtime::AppId;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A host without a compiled-code cache.
pub fn host() -> Host {
    Host::new(HostConfig {
        engine: EngineConfig::default(),
        cache: None,
    })
    .expect("host")
}

/// Loads a guest artifact under an app id derived from its file name.
pub fn load(host: &Host, path: &str) -> App {
    let id = Path::new(path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    host.load(Path::new(path), &app_id(&id))
        .expect("load guest")
}

/// A valid app id.
pub fn app_id(id: &str) -> AppId {
    AppId::new(id).unwrap()
}

/// What one run produced.
pub struct Ran {
    /// The exit code, or how the run failed.
    pub result: Result<i32, HostError>,
    /// Everything the guest wrote to stdout.
    pub stdout: String,
    /// Everything the guest wrote to stderr.
    pub stderr: String,
}

/// Runs `app` with `caps` (stdout and stderr captured) under `limits`.
pub async fn run_with(app: &App, mut caps: Capabilities, limits: Limits) -> Ran {
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    caps.stdout = Output::Capture(stdout.clone());
    caps.stderr = Output::Capture(stderr.clone());
    if caps.program_name.is_empty() {
        caps.program_name = app.id().to_string();
    }
    let result = app.run(&caps, limits).await;
    Ran {
        result,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}

/// Runs `app` with only the given arguments.
pub async fn run_args(app: &App, args: &[&str]) -> Ran {
    let caps = Capabilities {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Capabilities::default()
    };
    run_with(app, caps, Limits::default()).await
}

/// Limits with a time limit.
pub fn timeout(limit: Duration) -> Limits {
    Limits {
        timeout: Some(limit),
        ..Limits::default()
    }
}

/// Limits with a memory limit.
pub fn max_memory(limit: ByteSize) -> Limits {
    Limits {
        max_memory: limit,
        ..Limits::default()
    }
}
