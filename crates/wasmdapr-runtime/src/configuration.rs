//! Dapr's Configuration resource (`--config FILE`), the part of it this
//! runtime reads: `spec.nameResolution`.
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

use crate::component::{ComponentError, ComponentSpec};

/// The parts of a Configuration resource the runtime uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configuration {
    /// `spec.nameResolution`, as a component spec of type
    /// `nameresolution.<component>`; `None` when the file has none.
    pub name_resolution: Option<ComponentSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfiguration {
    kind: Option<String>,
    metadata: Option<RawMeta>,
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
struct RawMeta {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    name_resolution: Option<RawNameResolution>,
}

#[derive(Deserialize)]
struct RawNameResolution {
    component: Option<String>,
    version: Option<String>,
    #[serde(default)]
    configuration: BTreeMap<String, serde_yaml::Value>,
}

impl Configuration {
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
        let file_error = |message: String| ComponentError::File {
            file: source.to_owned(),
            message,
        };
        let raw: RawConfiguration =
            serde_yaml::from_str(text).map_err(|e| file_error(e.to_string()))?;
        if raw.kind.as_deref() != Some("Configuration") {
            return Err(file_error(format!(
                "kind is `{}`, expected `Configuration`",
                raw.kind.unwrap_or_default()
            )));
        }
        let name = raw
            .metadata
            .and_then(|m| m.name)
            .unwrap_or_else(|| "configuration".into());
        let Some(nr) = raw.spec.and_then(|s| s.name_resolution) else {
            return Ok(Self::default());
        };
        let field = |field: &str, message: String| ComponentError::Field {
            file: source.to_owned(),
            component: name.clone(),
            field: field.to_owned(),
            message,
        };
        let component = nr
            .component
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| field("spec.nameResolution.component", "is required".into()))?;
        let mut metadata = BTreeMap::new();
        for (key, value) in nr.configuration {
            let text = match value {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Null => String::new(),
                _ => {
                    return Err(field(
                        &format!("spec.nameResolution.configuration.{key}"),
                        "must be a string, a number or a boolean".into(),
                    ));
                }
            };
            metadata.insert(key, text);
        }
        Ok(Self {
            name_resolution: Some(ComponentSpec {
                name,
                kind: format!("nameresolution.{}", component.trim()),
                version: nr.version.unwrap_or_else(|| "v1".into()),
                metadata,
                scopes: Vec::new(),
                source: PathBuf::from(source),
            }),
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
        let config = Configuration::parse(text, Path::new("config.yaml")).unwrap();
        let spec = config.name_resolution.unwrap();
        assert_eq!(spec.kind, "nameresolution.sqlite");
        assert_eq!(spec.name, "appconfig");
        assert_eq!(spec.metadata("connectionString"), Some("/tmp/nr.db"));
        assert_eq!(spec.metadata("timeout"), Some("1"));
    }

    /// No nameResolution is no resolver; a wrong kind or a missing component is an error naming it.
    #[test]
    fn errors_and_absence() {
        let none = Configuration::parse(
            "kind: Configuration\nspec:\n  tracing: {}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(none.name_resolution, None);
        let err = Configuration::parse("kind: Component\n", Path::new("c.yaml")).unwrap_err();
        assert!(
            err.to_string().contains("expected `Configuration`"),
            "{err}"
        );
        let err = Configuration::parse(
            "kind: Configuration\nspec:\n  nameResolution:\n    configuration: {}\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("spec.nameResolution.component"),
            "{err}"
        );
        let err = Configuration::parse(
            "kind: Configuration\nspec:\n  nameResolution:\n    component: sqlite\n    configuration:\n      x: [1]\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("configuration.x"), "{err}");
    }
}
