//! The compiled-code cache and precompiled artifacts.

use std::path::Path;

use test_programs_artifacts::*;
use wasmdapr_host::{ArtifactCache, ArtifactSource, EngineConfig, Host, HostConfig, HostError};

use crate::run_args;

fn cached_host(dir: &Path) -> Host {
    Host::new(HostConfig {
        engine: EngineConfig::default(),
        cache: Some(ArtifactCache::new(dir)),
    })
    .unwrap()
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// The first load compiles and stores; a second host (a second `run`) maps
/// the stored code instead of compiling, for modules and components alike.
#[tokio::test]
async fn second_load_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    for path in [P1_CLI_HELLO, P2_CLI_HELLO] {
        let first = cached_host(dir.path())
            .load(Path::new(path), &crate::app_id("a"))
            .unwrap();
        assert_eq!(first.source(), ArtifactSource::Compiled);
        let second = cached_host(dir.path())
            .load(Path::new(path), &crate::app_id("a"))
            .unwrap();
        assert_eq!(second.source(), ArtifactSource::Cache);
        assert_eq!(run_args(&second, &[]).await.stdout, "hello from wasm\n");
    }
    assert_eq!(entries(dir.path()).len(), 2);
}

/// A damaged cache entry is recompiled and replaced, never fatal.
#[tokio::test]
async fn corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    cached_host(dir.path())
        .load(Path::new(P2_CLI_HELLO), &crate::app_id("a"))
        .unwrap();
    let [entry] = entries(dir.path()).try_into().unwrap();
    std::fs::write(&entry, b"not an artifact").unwrap();
    let app = cached_host(dir.path())
        .load(Path::new(P2_CLI_HELLO), &crate::app_id("a"))
        .unwrap();
    assert_eq!(app.source(), ArtifactSource::Compiled);
    assert_eq!(run_args(&app, &[]).await.result.unwrap(), 0);
    let app = cached_host(dir.path())
        .load(Path::new(P2_CLI_HELLO), &crate::app_id("a"))
        .unwrap();
    assert_eq!(app.source(), ArtifactSource::Cache);
}

/// The cache key covers the engine's settings: an engine configured
/// differently does not pick up the other's code.
#[test]
fn cache_key_depends_on_wasm_and_engine() {
    let cache = ArtifactCache::new("/unused");
    let engine = EngineConfig::default().build().unwrap();
    let a = cache.path_for(&engine, b"\0asm\x01\0\0\0");
    assert_eq!(a, cache.path_for(&engine, b"\0asm\x01\0\0\0"));
    assert_ne!(a, cache.path_for(&engine, b"\0asm\x01\0\0\0\0"));
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(false);
    let other = wasmtime::Engine::new(&config).unwrap();
    assert_ne!(a, cache.path_for(&other, b"\0asm\x01\0\0\0"));
}

/// `precompile` produces a `.cwasm` that loads without compiling and runs.
#[tokio::test]
async fn precompiled_artifacts_run() {
    let host = crate::host();
    let dir = tempfile::tempdir().unwrap();
    for path in [P1_CLI_HELLO, P2_CLI_HELLO] {
        let cwasm = dir.path().join("app.cwasm");
        std::fs::write(&cwasm, host.precompile(Path::new(path)).unwrap()).unwrap();
        let app = host.load(&cwasm, &crate::app_id("app")).unwrap();
        assert_eq!(app.source(), ArtifactSource::Precompiled);
        assert_eq!(run_args(&app, &[]).await.stdout, "hello from wasm\n");
    }
}

/// A `.cwasm` made by an engine with other settings is refused with a clear error.
#[test]
fn precompiled_for_another_engine_is_refused() {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(false);
    let other = wasmtime::Engine::new(&config).unwrap();
    let wasm = std::fs::read(P1_CLI_HELLO).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("other.cwasm");
    std::fs::write(&cwasm, other.precompile_module(&wasm).unwrap()).unwrap();
    match crate::host().load(&cwasm, &crate::app_id("other")) {
        Err(HostError::Incompatible { reason, .. }) => assert!(!reason.is_empty()),
        Err(other) => panic!("expected Incompatible, got {other:?}"),
        Ok(_) => panic!("an incompatible artifact loaded"),
    }
}
