//! Turning a file into compiled code: format detection, the on-disk cache of
//! compiled code, and precompiled `.cwasm` artifacts.
//!
//! Compiling is by far the slowest step of starting an app, so it happens at
//! most once per (wasm bytes, engine) pair: the compiled artifact is stored
//! under a key made of the SHA-256 of the wasm and Wasmtime's compatibility
//! hash of the engine (which covers the Wasmtime version, the target and every
//! setting that changes generated code). A later load maps the file instead
//! of compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

use crate::error::HostError;

/// Bumped when the layout of the cache changes.
const CACHE_FORMAT: &[u8] = b"wasmdapr-compiled-v1";

/// Compiled code for one app.
#[derive(Clone)]
pub enum Compiled {
    /// A core module (WASI preview 1).
    Module(Module),
    /// A component (WASI preview 2).
    Component(Component),
}

/// Where compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled now (and stored in the cache when there is one).
    Compiled,
    /// Mapped from the on-disk cache: no compilation happened.
    Cache,
    /// A `.cwasm` the user precompiled with `wasmdapr compile`.
    Precompiled,
}

/// What a file holds, judged from its first bytes.
enum Format {
    Wasm(WasmKind),
    Precompiled(Precompiled),
}

/// The two kinds of WebAssembly binary.
#[derive(Clone, Copy)]
enum WasmKind {
    Module,
    Component,
}

impl WasmKind {
    fn name(self) -> &'static str {
        match self {
            WasmKind::Module => "module",
            WasmKind::Component => "component",
        }
    }

    fn invalid(self, path: &Path, error: wasmtime::Error) -> HostError {
        HostError::Invalid {
            path: path.to_owned(),
            kind: self.name(),
            reason: format!("{error:#}"),
        }
    }
}

/// A directory of compiled artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default location: `$WASMDAPR_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/wasmdapr`, else `$HOME/.cache/wasmdapr`.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("WASMDAPR_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("wasmdapr"));
        }
        var("HOME").map(|home| PathBuf::from(home).join(".cache").join("wasmdapr"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the compiled form of `wasm` is stored in, for this engine.
    pub fn path_for(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut compat = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let mut key = Sha256::new();
        key.update(CACHE_FORMAT);
        key.update(compat.finish().to_le_bytes());
        key.update(wasm);
        self.dir
            .join(format!("{}.cwasm", hex::encode(key.finalize())))
    }

    fn load(&self, engine: &Engine, path: &Path, kind: WasmKind) -> Option<Compiled> {
        if !path.exists() {
            return None;
        }
        // SAFETY: files in the cache directory are written only by
        // `store` below, from code this engine compiled; the directory is the
        // user's own, as trusted as the binary. Wasmtime still checks the
        // header and the engine compatibility before using it.
        let loaded = match kind {
            WasmKind::Module => {
                unsafe { Module::deserialize_file(engine, path) }.map(Compiled::Module)
            }
            WasmKind::Component => {
                unsafe { Component::deserialize_file(engine, path) }.map(Compiled::Component)
            }
        };
        match loaded {
            Ok(compiled) => Some(compiled),
            Err(error) => {
                // A truncated or stale entry is not the user's problem:
                // compile again and overwrite it.
                tracing::warn!(path = %path.display(), %error, "ignoring unusable cache entry");
                None
            }
        }
    }

    fn store(&self, path: &Path, compiled: &Compiled) {
        let bytes = match compiled {
            Compiled::Module(m) => m.serialize(),
            Compiled::Component(c) => c.serialize(),
        };
        // Write to a temporary file and rename it into place, so a concurrent
        // reader sees either no entry or a whole one.
        let result = bytes.map_err(std::io::Error::other).and_then(|bytes| {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            std::io::Write::write_all(&mut tmp, &bytes)?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
        match result {
            Ok(()) => tracing::debug!(path = %path.display(), "stored compiled artifact"),
            // The cache is an optimisation: a read-only home directory must
            // not stop an app from running.
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot store compiled artifact")
            }
        }
    }
}

/// Reads the WebAssembly text format when the file is `.wat`, else returns the bytes.
fn wasm_bytes(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, HostError> {
    let is_text = path.extension().is_some_and(|e| e == "wat") && !bytes.starts_with(b"\0asm");
    if !is_text {
        return Ok(bytes);
    }
    wat::parse_bytes(&bytes)
        .map(|wasm| wasm.into_owned())
        .map_err(|e| HostError::Invalid {
            path: path.to_owned(),
            kind: "text module",
            reason: e.to_string(),
        })
}

fn detect(path: &Path, bytes: &[u8]) -> Result<Format, HostError> {
    if let Some(precompiled) = Engine::detect_precompiled(bytes) {
        return Ok(Format::Precompiled(precompiled));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(HostError::NotWasm {
            path: path.to_owned(),
        });
    }
    if wasmparser::Parser::is_component(bytes) {
        Ok(Format::Wasm(WasmKind::Component))
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Ok(Format::Wasm(WasmKind::Module))
    } else {
        Err(HostError::Invalid {
            path: path.to_owned(),
            kind: "module",
            reason: "truncated header or unknown binary version".into(),
        })
    }
}

fn compile(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    kind: WasmKind,
) -> Result<Compiled, HostError> {
    match kind {
        WasmKind::Module => Module::new(engine, bytes).map(Compiled::Module),
        WasmKind::Component => Component::new(engine, bytes).map(Compiled::Component),
    }
    .map_err(|e| kind.invalid(path, e))
}

fn read(path: &Path) -> Result<Vec<u8>, HostError> {
    let bytes = std::fs::read(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })?;
    wasm_bytes(path, bytes)
}

/// Loads the app at `path`: a `.wasm` (module or component), a `.wat`, or a
/// `.cwasm` from `wasmdapr compile`. Compiled code comes from `cache` when it
/// holds it, and is stored there when it did not.
pub fn load(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    path: &Path,
) -> Result<(Compiled, ArtifactSource), HostError> {
    let bytes = read(path)?;
    let kind = match detect(path, &bytes)? {
        Format::Wasm(kind) => kind,
        Format::Precompiled(precompiled) => {
            return Ok((
                deserialize(engine, path, &bytes, precompiled)?,
                ArtifactSource::Precompiled,
            ));
        }
    };
    let Some(cache) = cache else {
        return Ok((
            compile(engine, path, &bytes, kind)?,
            ArtifactSource::Compiled,
        ));
    };
    let entry = cache.path_for(engine, &bytes);
    if let Some(compiled) = cache.load(engine, &entry, kind) {
        return Ok((compiled, ArtifactSource::Cache));
    }
    let compiled = compile(engine, path, &bytes, kind)?;
    cache.store(&entry, &compiled);
    Ok((compiled, ArtifactSource::Compiled))
}

fn deserialize(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    kind: Precompiled,
) -> Result<Compiled, HostError> {
    let incompatible = |e: wasmtime::Error| HostError::Incompatible {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    // SAFETY: a `.cwasm` is native code; running one is trusting it as
    // much as running a native binary, which the docs of `wasmdapr
    // compile` say. Wasmtime checks the header and engine compatibility.
    match kind {
        Precompiled::Module => unsafe { Module::deserialize(engine, bytes) }.map(Compiled::Module),
        Precompiled::Component => {
            unsafe { Component::deserialize(engine, bytes) }.map(Compiled::Component)
        }
    }
    .map_err(incompatible)
}

/// Compiles the app at `path` ahead of time into the bytes of a `.cwasm`.
pub fn precompile(engine: &Engine, path: &Path) -> Result<Vec<u8>, HostError> {
    let bytes = read(path)?;
    match detect(path, &bytes)? {
        Format::Wasm(kind @ WasmKind::Module) => engine
            .precompile_module(&bytes)
            .map_err(|e| kind.invalid(path, e)),
        Format::Wasm(kind @ WasmKind::Component) => engine
            .precompile_component(&bytes)
            .map_err(|e| kind.invalid(path, e)),
        Format::Precompiled(_) => Err(HostError::Invalid {
            path: path.to_owned(),
            kind: "module",
            reason: "it is already precompiled".into(),
        }),
    }
}
