//! The metadata building block of [`Runtime`]: [`MetadataApi`], what the
//! sidecar reports about itself (daprd's `GetMetadata`), the extended
//! attributes apps set (`SetMetadata`), readiness and shutdown.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::Runtime;
use crate::api::{AppConnectionProperties, ComponentInfo, MetadataApi, RuntimeMetadata};
use crate::error::{ApiError, ErrorKind};

/// The extended attribute daprd always reports, with its own version
/// (deprecated in Dapr, kept for the clients that read it).
pub const RUNTIME_VERSION_ATTRIBUTE: &str = "daprRuntimeVersion";

/// This runtime's version, as the metadata API reports it.
const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The most extended attributes one runtime keeps. daprd sets no bound, but
/// every attribute is held for the life of the process and returned by every
/// metadata call, so a client (or a looping app) must not grow it without
/// end: a new key past this is refused; overwriting a kept key is not.
pub const MAX_EXTENDED_ATTRIBUTES: usize = 512;

/// The longest key plus value of one extended attribute, in bytes (the body
/// limit alone would let each be megabytes).
pub const MAX_EXTENDED_ATTRIBUTE_BYTES: usize = 16 << 10;

/// What the metadata block keeps for one [`Runtime`].
#[derive(Debug, Default)]
pub(super) struct MetadataState {
    /// The attributes set by the app: in memory only, gone on restart, as
    /// in daprd.
    extended: RwLock<BTreeMap<String, String>>,
    /// How the sidecar reaches its app, from the app flags.
    app_connection: RwLock<AppConnectionProperties>,
}

impl Runtime {
    /// Records how this sidecar reaches its app (`--app-port`,
    /// `--app-protocol`, …), for the metadata API's
    /// `appConnectionProperties`. Without it, the runtime reports daprd's
    /// values for a sidecar without an app.
    pub fn set_app_connection(&self, properties: AppConnectionProperties) {
        *self
            .metadata
            .app_connection
            .write()
            .unwrap_or_else(|e| e.into_inner()) = properties;
    }
}

#[async_trait]
impl MetadataApi for Runtime {
    async fn metadata(&self) -> Result<RuntimeMetadata, ApiError> {
        let info = |spec: &crate::ComponentSpec, capabilities: Vec<&'static str>| ComponentInfo {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            version: spec.version.clone(),
            capabilities: capabilities.into_iter().map(str::to_owned).collect(),
        };
        let app = self.app_id.as_str();
        let state = self
            .components
            .state_stores()
            .filter(|s| s.spec.in_scope(app))
            .map(|s| info(&s.spec, s.component.features().names()));
        let pubsub = self
            .components
            .pubsubs()
            .filter(|p| p.spec.in_scope(app))
            .map(|p| info(&p.spec, p.component.features().names()));
        let components = state.chain(pubsub).collect();
        // A poisoned lock only means a writer panicked between two whole
        // inserts: the map is intact.
        let mut extended = self
            .metadata
            .extended
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        extended.insert(
            RUNTIME_VERSION_ATTRIBUTE.to_owned(),
            RUNTIME_VERSION.to_owned(),
        );
        let app_connection = self
            .metadata
            .app_connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(RuntimeMetadata {
            id: self.app_id.to_string(),
            runtime_version: RUNTIME_VERSION.to_owned(),
            components,
            extended,
            app_connection,
        })
    }

    async fn set_metadata(&self, key: &str, value: &str) -> Result<(), ApiError> {
        if key.is_empty() {
            return Ok(());
        }
        if key.len() + value.len() > MAX_EXTENDED_ATTRIBUTE_BYTES {
            return Err(ApiError::malformed(format!(
                "a metadata attribute (key and value) is at most {MAX_EXTENDED_ATTRIBUTE_BYTES} bytes"
            )));
        }
        let mut extended = self
            .metadata
            .extended
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if extended.len() >= MAX_EXTENDED_ATTRIBUTES && !extended.contains_key(key) {
            return Err(ApiError::malformed(format!(
                "at most {MAX_EXTENDED_ATTRIBUTES} metadata attributes are kept; overwrite one instead"
            )));
        }
        extended.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    fn ready(&self) -> Result<(), ApiError> {
        let waiting = self.expects_app.load(std::sync::atomic::Ordering::Acquire)
            && self.app_channel.get().is_none();
        if waiting {
            return Err(ApiError::new(
                ErrorKind::HealthNotReady,
                format!(
                    "dapr is not ready: app '{}' is not connected yet",
                    self.app_id
                ),
            ));
        }
        Ok(())
    }

    fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::tests::{components, runtime};
    use super::*;
    use crate::api::AppHealthProperties;

    /// The metadata lists the app's components with their capabilities,
    /// the attributes set (the last value of a key wins, an empty key is
    /// ignored) plus `daprRuntimeVersion`, and the app connection recorded;
    /// attributes are per runtime.
    #[tokio::test]
    async fn metadata_reports_attributes_and_app_connection() {
        let (c, _) = components(&[("a", None, &[]), ("private", None, &["billing"])]).await;
        let rt = runtime("orders", &c);
        let m = rt.metadata().await.unwrap();
        assert_eq!(m.id, "orders");
        let names: Vec<&str> = m.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(
            m.components[0].capabilities,
            ["ETAG", "TRANSACTIONAL", "QUERY_API"]
        );
        assert_eq!(
            m.extended,
            BTreeMap::from([(
                RUNTIME_VERSION_ATTRIBUTE.to_owned(),
                RUNTIME_VERSION.to_owned()
            )])
        );
        assert_eq!(m.app_connection, AppConnectionProperties::default());

        rt.set_metadata("team", "payments").await.unwrap();
        rt.set_metadata("team", "billing").await.unwrap();
        rt.set_metadata("", "ignored").await.unwrap();
        let connection = AppConnectionProperties {
            port: 8080,
            protocol: "grpc".into(),
            channel_address: "127.0.0.1".into(),
            max_concurrency: 4,
            health: Some(AppHealthProperties {
                health_check_path: String::new(),
                health_probe_interval: "5s".into(),
                health_probe_timeout: "500ms".into(),
                health_threshold: 3,
            }),
        };
        rt.set_app_connection(connection.clone());
        let m = rt.metadata().await.unwrap();
        assert_eq!(m.extended.get("team").map(String::as_str), Some("billing"));
        assert!(!m.extended.contains_key(""));
        assert_eq!(m.extended.len(), 2);
        assert_eq!(m.app_connection, connection);

        let other = runtime("billing", &c).metadata().await.unwrap();
        assert!(!other.extended.contains_key("team"));
    }

    /// Attributes are bounded in size and count; overwriting a kept key
    /// still works at the bound.
    #[tokio::test]
    async fn attributes_are_bounded() {
        let (c, _) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        let big = "x".repeat(MAX_EXTENDED_ATTRIBUTE_BYTES);
        let err = rt.set_metadata("k", &big).await.unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("ERR_MALFORMED_REQUEST", 400)
        );
        for i in 0..MAX_EXTENDED_ATTRIBUTES {
            rt.set_metadata(&format!("k{i}"), "v").await.unwrap();
        }
        let err = rt.set_metadata("one-more", "v").await.unwrap_err();
        assert_eq!(err.code(), "ERR_MALFORMED_REQUEST");
        rt.set_metadata("k1", "again").await.unwrap();
        let m = rt.metadata().await.unwrap();
        // Plus `daprRuntimeVersion`, which is reported, not kept.
        assert_eq!(m.extended.len(), MAX_EXTENDED_ATTRIBUTES + 1);
        assert_eq!(m.extended["k1"], "again");
    }
}
