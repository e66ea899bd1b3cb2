//! [`HostError`]: everything that can go wrong loading or running an app.
//!
//! One enum, so the CLI maps each case to one documented exit code in one
//! place, and every message names what failed (the file, the import, the
//! limit) so a user can act on it without reading our source.

use std::path::PathBuf;
use std::time::Duration;

use crate::limits::ByteSize;

/// An error of the Wasm host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The Wasmtime engine could not be configured on this machine.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),

    /// The app file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// An output file (a `.cwasm`) could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The file is neither WebAssembly (binary or text) nor a precompiled artifact.
    #[error(
        "{path} is not a WebAssembly file: it starts with neither the `\\0asm` magic number \
         nor a wasmdapr precompiled header"
    )]
    NotWasm {
        /// The file.
        path: PathBuf,
    },

    /// The file is WebAssembly but does not validate or compile.
    #[error("{path} is not a valid WebAssembly {kind}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `module` or `component`.
        kind: &'static str,
        /// The validator's or compiler's message.
        reason: String,
    },

    /// A precompiled `.cwasm` built by another version or configuration.
    #[error(
        "{path} was precompiled for a different engine ({reason}); recompile it with `wasmdapr compile`"
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Wasmtime's explanation.
        reason: String,
    },

    /// The app imports something the host does not provide.
    #[error("app '{app}' cannot be linked: {reason}")]
    Link {
        /// The app id.
        app: String,
        /// Wasmtime's message, which names the missing import.
        reason: String,
    },

    /// The app has no entry point this host knows how to run.
    #[error("app '{app}' cannot be run: {reason}")]
    NotRunnable {
        /// The app id.
        app: String,
        /// What is missing.
        reason: String,
    },

    /// A capability could not be granted (e.g. a `--dir` that does not exist).
    #[error("cannot grant {what}: {reason}")]
    Capability {
        /// The grant, as the user wrote it.
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// The guest tried to hold more memory than `--max-memory` allows.
    #[error("app '{app}' stopped: memory limit of {limit} exceeded (--max-memory)")]
    MemoryLimit {
        /// The app id.
        app: String,
        /// The limit.
        limit: ByteSize,
    },

    /// The guest ran past `--timeout`.
    #[error("app '{app}' stopped: time limit of {} exceeded (--timeout)", humantime::format_duration(*.limit))]
    Timeout {
        /// The app id.
        app: String,
        /// The limit.
        limit: Duration,
    },

    /// The guest trapped (`unreachable`, out-of-bounds access, stack overflow, …).
    #[error("app '{app}' trapped: {message}")]
    Trap {
        /// The app id.
        app: String,
        /// What the trap was.
        message: String,
        /// The wasm backtrace, with function names where the module has a name section.
        backtrace: Option<String>,
    },
}
