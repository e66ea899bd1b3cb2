//! Dapr's `Configuration` resource ([`ConfigurationSpec`]): the `--config
//! FILE` of a sidecar, or a document of a resources folder. Named so it is
//! not mistaken for the configuration building block (`configuration.*`
//! stores). This runtime applies `spec.nameResolution` (from `--config`);
//! `spec.tracing` and `spec.features` are read for the blocks to come, and
//! the names of the other sections are kept so they can be reported.
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Configuration
//! metadata:
//!   name: appconfig
//! spec:
//!   nameResolution:
//!     component: sqlite
//!     version: v1
//!     configuration:
//!       connectionString: /home/user/.dapr/nr.db
//! ```
//!
//! The name resolution section is handed to its backend as a
//! [`ComponentSpec`] of type `nameresolution.<component>` whose metadata is
//! `configuration`, so backends parse it with the same helpers and report
//! problems with the same file-and-field errors as components.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ResourceMeta, read_document};
use crate::component::{ComponentError, ComponentSpec, scalar_text};

/// A Configuration resource, as far as this runtime reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigurationSpec {
    /// `metadata.name` (`configuration` when absent).
    pub name: String,
    /// `spec.nameResolution`, as a component spec of type
    /// `nameresolution.<component>`; `None` when the file has none.
    pub name_resolution: Option<ComponentSpec>,
    /// `spec.tracing`.
    pub tracing: Option<TracingSpec>,
    /// `spec.features`: preview features switched on or off.
    pub features: Vec<FeatureSpec>,
    /// The other sections of `spec` (`metric`, `accessControl`,
    /// `httpPipeline`, …), by name: not applied by this build, so reported.
    pub other_sections: Vec<String>,
}

/// `spec.tracing` of a Configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// The fraction of requests traced, as text (`"1"`, `"0.5"`).
    #[serde(default)]
    pub sampling_rate: Option<String>,
    /// `otel`: where spans are exported.
    #[serde(default)]
    pub otel: Option<OtelSpec>,
}

/// `spec.tracing.otel` of a Configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtelSpec {
    /// `host:port` of the collector.
    #[serde(default)]
    pub endpoint_address: Option<String>,
    /// `grpc` or `http`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Whether the collector is reached without TLS.
    #[serde(default)]
    pub is_secure: Option<bool>,
}

/// One of `spec.features`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FeatureSpec {
    /// The feature's name.
    pub name: String,
    /// Whether it is on.
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfiguration {
    kind: Option<String>,
    metadata: Option<ResourceMeta>,
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    name_resolution: Option<RawNameResolution>,
    tracing: Option<TracingSpec>,
    #[serde(default)]
    features: Vec<FeatureSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawNameResolution {
    component: Option<String>,
    version: Option<String>,
    #[serde(default)]
    configuration: BTreeMap<String, serde_yaml::Value>,
}

impl ConfigurationSpec {
    /// Reads and parses the Configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ComponentError> {
        let text = std::fs::read_to_string(path).map_err(|e| ComponentError::File {
            file: path.to_owned(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses a Configuration document (`source` names it in errors).
    pub fn parse(text: &str, source: &Path) -> Result<Self, ComponentError> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ComponentError::File {
                file: source.to_owned(),
                message: e.to_string(),
            })?;
        Self::from_yaml(value, source, 1)
    }

    /// Reads one Configuration document of `source` (its number
    /// `document`, from 1, for messages).
    pub fn from_yaml(
        value: serde_yaml::Value,
        source: &Path,
        document: usize,
    ) -> Result<Self, ComponentError> {
        let raw: RawConfiguration = read_document(value, source, document)?;
        if raw.kind.as_deref() != Some("Configuration") {
            return Err(ComponentError::File {
                file: source.to_owned(),
                message: format!(
                    "kind is `{}`, expected `Configuration`",
                    raw.kind.unwrap_or_default()
                ),
            });
        }
        let name = raw
            .metadata
            .and_then(|m| m.name)
            .unwrap_or_else(|| "configuration".into());
        let spec = raw.spec.unwrap_or(RawSpec {
            name_resolution: None,
            tracing: None,
            features: Vec::new(),
            other: BTreeMap::new(),
        });
        let mut config = Self {
            name_resolution: None,
            tracing: spec.tracing,
            features: spec.features,
            other_sections: spec.other.into_keys().collect(),
            name,
        };
        if let Some(nr) = spec.name_resolution {
            config.name_resolution = Some(Self::name_resolution(nr, &config.name, source)?);
        }
        Ok(config)
    }

    /// `spec.nameResolution` as the spec of its backend.
    fn name_resolution(
        nr: RawNameResolution,
        name: &str,
        source: &Path,
    ) -> Result<ComponentSpec, ComponentError> {
        let field = |field: &str, message: String| ComponentError::Field {
            file: source.to_owned(),
            component: name.to_owned(),
            field: field.to_owned(),
            message,
        };
        let component = nr
            .component
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| field("spec.nameResolution.component", "is required".into()))?;
        let mut metadata = BTreeMap::new();
        for (key, value) in nr.configuration {
            let text = scalar_text(value).ok_or_else(|| {
                field(
                    &format!("spec.nameResolution.configuration.{key}"),
                    "must be a string, a number or a boolean".into(),
                )
            })?;
            metadata.insert(key, text);
        }
        Ok(ComponentSpec {
            name: name.to_owned(),
            kind: format!("nameresolution.{}", component.trim()),
            version: nr.version.unwrap_or_else(|| "v1".into()),
            metadata,
            scopes: Vec::new(),
            source: PathBuf::from(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dapr's documented example becomes a `nameresolution.sqlite` spec with
    /// the configuration as metadata; scalars of any YAML type are text.
    #[test]
    fn parses_name_resolution() {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\n\
                    spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
                    \x20     connectionString: /tmp/nr.db\n      updateInterval: 2s\n      timeout: 1\n";
        let config = ConfigurationSpec::parse(text, Path::new("config.yaml")).unwrap();
        let spec = config.name_resolution.unwrap();
        assert_eq!(spec.kind, "nameresolution.sqlite");
        assert_eq!(spec.name, "appconfig");
        assert_eq!(spec.metadata("connectionString"), Some("/tmp/nr.db"));
        assert_eq!(spec.metadata("timeout"), Some("1"));
    }

    /// No nameResolution is no resolver; a wrong kind or a missing component is an error naming it.
    #[test]
    fn errors_and_absence() {
        let none = ConfigurationSpec::parse(
            "kind: Configuration\nspec:\n  tracing: {}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(none.name_resolution, None);
        let err = ConfigurationSpec::parse("kind: Component\n", Path::new("c.yaml")).unwrap_err();
        assert!(
            err.to_string().contains("expected `Configuration`"),
            "{err}"
        );
        let err = ConfigurationSpec::parse(
            "kind: Configuration\nspec:\n  nameResolution:\n    configuration: {}\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("spec.nameResolution.component"),
            "{err}"
        );
        let err = ConfigurationSpec::parse(
            "kind: Configuration\nspec:\n  nameResolution:\n    component: sqlite\n    configuration:\n      x: [1]\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("configuration.x"), "{err}");
    }

    /// Tracing and features are read; the other sections are named so the
    /// loader can say they are not applied.
    #[test]
    fn tracing_features_and_other_sections() {
        let text = "kind: Configuration\nmetadata:\n  name: full\nspec:\n  tracing:\n    samplingRate: \"1\"\n\
                    \x20   otel:\n      endpointAddress: localhost:4317\n      protocol: grpc\n      isSecure: false\n\
                    \x20 features:\n  - name: SchedulerReminders\n    enabled: true\n\
                    \x20 metric:\n    enabled: true\n  accessControl:\n    defaultAction: deny\n";
        let config = ConfigurationSpec::parse(text, Path::new("c.yaml")).unwrap();
        assert_eq!(config.name, "full");
        let tracing = config.tracing.unwrap();
        assert_eq!(tracing.sampling_rate.as_deref(), Some("1"));
        let otel = tracing.otel.unwrap();
        assert_eq!(otel.endpoint_address.as_deref(), Some("localhost:4317"));
        assert_eq!(otel.is_secure, Some(false));
        assert_eq!(
            config.features,
            [FeatureSpec {
                name: "SchedulerReminders".into(),
                enabled: true
            }]
        );
        assert_eq!(config.other_sections, ["accessControl", "metric"]);
    }
}
