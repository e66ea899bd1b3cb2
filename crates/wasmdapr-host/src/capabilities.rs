//! What a guest is granted. Deny by default: a guest sees no file, no
//! environment variable, no argument and no socket it was not given.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use wasmdapr_runtime::DaprApi;

use crate::error::HostError;
use crate::outbound::OutboundPolicy;

/// A host directory made visible to the guest: `HOST[::GUEST]`.
///
/// Without `::GUEST` the guest sees the directory under the host's path, as
/// `wasmtime run --dir` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the guest opens it by.
    pub guest: String,
}

impl FromStr for DirGrant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, guest) = match s.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (s, s),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "`{s}` is not a directory grant: expected HOST[::GUEST]"
            ));
        }
        Ok(Self {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
        })
    }
}

/// One environment variable given to the guest: `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The name.
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

impl FromStr for EnvVar {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok(Self {
                key: key.to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(format!(
                "`{s}` is not an environment variable: expected KEY=VALUE"
            )),
        }
    }
}

/// Where a guest's stdout or stderr goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// The host process's own stream (what `wasmdapr run` uses).
    #[default]
    Inherit,
    /// Discarded.
    Null,
    /// Kept in memory, for embedders and tests to read back.
    Capture(MemoryOutputPipe),
}

/// Everything a guest instance is granted.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// `argv[0]`, what the guest sees as its program name.
    pub program_name: String,
    /// The arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The environment, exactly (nothing is inherited from the host).
    pub env: Vec<EnvVar>,
    /// Preopened directories.
    pub dirs: Vec<DirGrant>,
    /// Whether the guest may read the host's stdin.
    pub stdin: bool,
    /// The guest's stdout.
    pub stdout: Output,
    /// The guest's stderr.
    pub stderr: Output,
    /// The Dapr API behind the guest's `wasmdapr:dapr` imports: the app's
    /// own runtime, so its app id and component scopes apply. `None` (the
    /// default, deny by default) makes every import return the error value
    /// `ERR_DAPR_NOT_GRANTED`
    /// ([`ErrorKind::DaprNotGranted`](wasmdapr_runtime::ErrorKind::DaprNotGranted)).
    pub dapr: Option<Arc<dyn DaprApi>>,
    /// Outbound HTTP (`wasi:http` for components, the legacy
    /// [`wasi_experimental_http`](crate::experimental_http) ABI for preview
    /// 1 modules): allowed destinations, in-flight and time limits, the
    /// in-process sidecar. The default allows no destination.
    pub outbound: OutboundPolicy,
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand because a `DaprApi` is not `Debug`; only the grant shows.
        f.debug_struct("Capabilities")
            .field("program_name", &self.program_name)
            .field("args", &self.args)
            .field("env", &self.env)
            .field("dirs", &self.dirs)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("dapr", &self.dapr.is_some())
            .field("outbound", &self.outbound)
            .finish_non_exhaustive()
    }
}

impl Capabilities {
    /// A WASI context builder holding exactly these grants.
    pub(crate) fn wasi_builder(&self) -> Result<WasiCtxBuilder, HostError> {
        let mut builder = WasiCtxBuilder::new();
        builder.arg(&self.program_name).args(&self.args);
        for EnvVar { key, value } in &self.env {
            builder.env(key, value);
        }
        for dir in &self.dirs {
            builder
                .preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
                .map_err(|e| HostError::Capability {
                    what: format!("--dir {}::{}", dir.host.display(), dir.guest),
                    reason: e.to_string(),
                })?;
        }
        if self.stdin {
            builder.inherit_stdin();
        }
        match &self.stdout {
            Output::Inherit => {
                builder.inherit_stdout();
            }
            Output::Null => {}
            Output::Capture(pipe) => {
                builder.stdout(pipe.clone());
            }
        }
        match &self.stderr {
            Output::Inherit => {
                builder.inherit_stderr();
            }
            Output::Null => {}
            Output::Capture(pipe) => {
                builder.stderr(pipe.clone());
            }
        }
        // No network: outbound HTTP is granted per destination by a later
        // layer; raw sockets and name lookups are never ambient.
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--dir` accepts HOST and HOST::GUEST and refuses empty halves.
    #[test]
    fn dir_grants_parse() {
        let same: DirGrant = "/data".parse().unwrap();
        assert_eq!(same.host, PathBuf::from("/data"));
        assert_eq!(same.guest, "/data");
        let mapped: DirGrant = "./out::/output".parse().unwrap();
        assert_eq!(mapped.host, PathBuf::from("./out"));
        assert_eq!(mapped.guest, "/output");
        assert!("::/x".parse::<DirGrant>().is_err());
        assert!("/x::".parse::<DirGrant>().is_err());
    }

    /// `--env` needs a name and keeps `=` inside the value.
    #[test]
    fn env_vars_parse() {
        let v: EnvVar = "A=b=c".parse().unwrap();
        assert_eq!((v.key.as_str(), v.value.as_str()), ("A", "b=c"));
        let empty: EnvVar = "EMPTY=".parse().unwrap();
        assert_eq!(empty.value, "");
        assert!("=x".parse::<EnvVar>().is_err());
        assert!("NOVALUE".parse::<EnvVar>().is_err());
    }
}
