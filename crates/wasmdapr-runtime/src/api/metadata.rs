//! [`MetadataApi`]: what the sidecar says about itself (`GET
//! /v1.0/metadata`, gRPC `GetMetadata`), the attributes an app adds to it
//! (`PUT /v1.0/metadata/{key}`, gRPC `SetMetadata`), and the sidecar's
//! lifecycle as the doors see it (readiness, shutdown).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ApiError;

/// A component as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Its name.
    pub name: String,
    /// Its type, e.g. `state.redis`.
    pub kind: String,
    /// Its version, e.g. `v1`.
    pub version: String,
    /// Dapr's feature names (`ETAG`, `TRANSACTIONAL`, …).
    pub capabilities: Vec<String>,
}

/// How the sidecar reaches its app, as daprd reports it
/// (`appConnectionProperties`): from the app flags, whether or not the app
/// is connected yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConnectionProperties {
    /// `--app-port`; 0 when the app has no port (a Wasm app served in
    /// process, or no app).
    pub port: u16,
    /// `--app-protocol` (`http`, `grpc`, …).
    pub protocol: String,
    /// `--app-channel-address`; empty when the app has no address.
    pub channel_address: String,
    /// `--app-max-concurrency`; 0 when unlimited (daprd's `-1` is reported
    /// as absent).
    pub max_concurrency: u32,
    /// The app's health checks, when enabled.
    pub health: Option<AppHealthProperties>,
}

impl Default for AppConnectionProperties {
    /// What daprd reports for a sidecar without an app: the HTTP protocol
    /// and nothing else.
    fn default() -> Self {
        Self {
            port: 0,
            protocol: "http".to_owned(),
            channel_address: String::new(),
            max_concurrency: 0,
            health: None,
        }
    }
}

/// The app health checks (`--enable-app-health-check`), as daprd reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppHealthProperties {
    /// `--app-health-check-path` (HTTP apps only; empty for gRPC).
    pub health_check_path: String,
    /// `--app-health-probe-interval`, as a Go duration (`5s`).
    pub health_probe_interval: String,
    /// `--app-health-probe-timeout`, as a Go duration (`500ms`).
    pub health_probe_timeout: String,
    /// `--app-health-threshold`.
    pub health_threshold: i32,
}

impl AppHealthProperties {
    /// The health checks of an app probed at `path` every `interval`, each
    /// probe within `timeout`, with the durations written as daprd writes
    /// them (Go's `time.Duration` notation: `5s`, `500ms`, `1m30s`).
    pub fn new(path: &str, interval: Duration, timeout: Duration, threshold: i32) -> Self {
        Self {
            health_check_path: path.to_owned(),
            health_probe_interval: go_duration(interval),
            health_probe_timeout: go_duration(timeout),
            health_threshold: threshold,
        }
    }
}

/// `d` as Go's `time.Duration.String()` writes it, for the durations daprd
/// reports: whole units below a second (`500ms`, `250µs`), else hours,
/// minutes and seconds with the seconds' fraction (`1h2m3.5s`).
pub fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        let nanos = d.subsec_nanos();
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let fraction = format!("{:09}", d.subsec_nanos());
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        out.push_str(&format!("{seconds}s"));
    } else {
        out.push_str(&format!("{seconds}.{fraction}s"));
    }
    out
}

/// What `GET /v1.0/metadata` reports, with the fields of daprd's
/// `GetMetadataResponse` this runtime has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeMetadata {
    /// The app id.
    pub id: String,
    /// This runtime's version.
    pub runtime_version: String,
    /// The components visible to the app.
    pub components: Vec<ComponentInfo>,
    /// The attributes set with [`MetadataApi::set_metadata`], plus
    /// `daprRuntimeVersion` as daprd adds it.
    pub extended: BTreeMap<String, String>,
    /// How the sidecar reaches its app.
    pub app_connection: AppConnectionProperties,
}

/// The metadata building block and the sidecar's lifecycle.
#[async_trait]
pub trait MetadataApi: Send + Sync + 'static {
    /// Describes the runtime and its components.
    async fn metadata(&self) -> Result<RuntimeMetadata, ApiError>;

    /// Sets the extended attribute `key` to `value` (Dapr's
    /// `PUT /v1.0/metadata/{key}`): kept in memory, reported by
    /// [`MetadataApi::metadata`] under `extended`. An empty key is ignored,
    /// as daprd ignores it.
    async fn set_metadata(&self, key: &str, value: &str) -> Result<(), ApiError>;

    /// Whether the sidecar is ready (`/v1.0/healthz`): a runtime waiting for
    /// its app (`--app-port`) is not, until the app is connected, so
    /// orchestrators hold traffic back as they do with Dapr. Implementations
    /// with no app of their own are always ready.
    fn ready(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Asks the process to shut down gracefully.
    fn shutdown(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations read as daprd prints them.
    #[test]
    fn go_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(250), "250µs"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ];
        for (d, go) in cases {
            assert_eq!(go_duration(d), go, "{d:?}");
        }
    }
}
