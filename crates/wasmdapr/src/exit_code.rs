//! The process exit codes of `wasmdapr`, in one place (the README's table is
//! this list).
//!
//! A guest that exits normally gives its own code. The host's own codes sit
//! where a guest rarely puts one: the BSD `sysexits.h` range for bad input,
//! and the shell conventions for "timed out" (124, as `timeout(1)`), "aborted"
//! (134 = 128 + SIGABRT, as `wasmtime run` for a trap) and "killed for
//! memory" (137 = 128 + SIGKILL, as the OOM killer).

use wasmdapr_host::HostError;
use wasmdapr_sidecar::SidecarError;

/// A command-line flag's value could not be used (e.g. a `--dir` that does not exist).
pub const USAGE: u8 = 64;
/// The file is not valid WebAssembly, a `.cwasm` for another engine, or has no entry point.
pub const INVALID_APP: u8 = 65;
/// The file does not exist or cannot be read.
pub const NO_APP: u8 = 66;
/// The app imports something wasmdapr does not provide.
pub const UNSATISFIED_IMPORT: u8 = 67;
/// A Dapr API port could not be opened (in use, not permitted), or the
/// `--dapr-endpoint` sidecar cannot be reached.
pub const UNAVAILABLE: u8 = 69;
/// The host itself failed (the engine could not start).
pub const HOST_FAILURE: u8 = 70;
/// An output file could not be written.
pub const CANNOT_WRITE: u8 = 73;
/// Component YAML is invalid, or a component could not be initialised.
pub const CONFIG: u8 = 78;
/// The guest ran past `--timeout`.
pub const TIMEOUT: u8 = 124;
/// The guest trapped.
pub const TRAP: u8 = 134;
/// The guest exceeded `--max-memory`.
pub const MEMORY_LIMIT: u8 = 137;

/// The exit code for a host error.
pub fn for_error(error: &HostError) -> u8 {
    match error {
        HostError::Engine(_) => HOST_FAILURE,
        HostError::Read { .. } => NO_APP,
        HostError::Write { .. } => CANNOT_WRITE,
        HostError::NotWasm { .. }
        | HostError::Invalid { .. }
        | HostError::Incompatible { .. }
        | HostError::NotRunnable { .. } => INVALID_APP,
        HostError::Link { .. } => UNSATISFIED_IMPORT,
        HostError::Capability { .. } => USAGE,
        HostError::MemoryLimit { .. } => MEMORY_LIMIT,
        HostError::Timeout { .. } => TIMEOUT,
        HostError::Trap { .. } => TRAP,
    }
}

/// The exit code for a sidecar that could not start or stopped: bad
/// configuration, or a port or peer that is unavailable.
pub fn for_sidecar(error: &SidecarError) -> u8 {
    match error {
        SidecarError::Components(_) | SidecarError::Mtls(_) => CONFIG,
        SidecarError::Listen { .. }
        | SidecarError::Serve { .. }
        | SidecarError::App(_)
        | SidecarError::NameResolution(_) => UNAVAILABLE,
    }
}

/// The process exit code for a guest's exit status. Unix keeps the low 8
/// bits of a status, so a guest's 256 would read as success: clamp instead.
pub fn for_guest(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(if code == 0 { 0 } else { u8::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guest codes outside 0..=255 never turn into success.
    #[test]
    fn guest_codes_are_clamped_not_wrapped() {
        assert_eq!(for_guest(0), 0);
        assert_eq!(for_guest(3), 3);
        assert_eq!(for_guest(256), 255);
        assert_eq!(for_guest(-1), 255);
    }
}
