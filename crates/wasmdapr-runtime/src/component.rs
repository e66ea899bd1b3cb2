//! A Dapr `Component` resource: [`ComponentSpec`], what a backend is built
//! from, and [`ComponentDeclaration`], the spec with what the loader needs
//! besides (`spec.ignoreErrors`, `auth.secretStore`).
//!
//! ```yaml
//! apiVersion: dapr.io/v1alpha1
//! kind: Component
//! metadata:
//!   name: statestore
//! spec:
//!   type: state.redis
//!   version: v1          # optional: v1 when absent, as daprd reads it
//!   ignoreErrors: false  # true: a component that cannot be built is skipped
//!   metadata:
//!   - name: redisHost
//!     value: localhost:6379
//! scopes: [checkout]
//! ```
//!
//! Every problem is reported with the file and the field. The documents of
//! a resources folder are read by [`crate::resources`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::resources::{ResourceMeta, read_document};

/// A component declared in YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// `metadata.name`: what apps call it by.
    pub name: String,
    /// `spec.type`, e.g. `state.redis`.
    pub kind: String,
    /// `spec.version`, e.g. `v1`.
    pub version: String,
    /// `spec.metadata`, name → value.
    pub metadata: BTreeMap<String, String>,
    /// `scopes`: the app ids that may use it; empty means every app.
    pub scopes: Vec<String>,
    /// The file it came from (for messages).
    pub source: PathBuf,
}

/// A component configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// A file could not be read or parsed.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A component is declared wrongly.
    #[error("{file}: component `{component}`: {field}: {message}")]
    Field {
        /// The file.
        file: PathBuf,
        /// The component name (or `?` when it has none).
        component: String,
        /// The field, as a YAML path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A component could not be initialised (e.g. its server is unreachable).
    #[error("component `{component}` ({kind}): {message}")]
    Init {
        /// The component name.
        component: String,
        /// Its type.
        kind: String,
        /// What failed.
        message: String,
    },
}

impl ComponentSpec {
    /// The embedded default used when no resources path is given: a state
    /// store named `statestore` of type `state.sqlite`, in `dir/state.db`,
    /// so state survives a restart with nothing installed.
    pub fn embedded_state_store(dir: &Path) -> Self {
        ComponentSpec {
            name: "statestore".into(),
            kind: "state.sqlite".into(),
            version: "v1".into(),
            metadata: [(
                "connectionString".to_owned(),
                dir.join("state.db").to_string_lossy().into_owned(),
            )]
            .into(),
            scopes: Vec::new(),
            source: PathBuf::from("(embedded default)"),
        }
    }

    /// The embedded default pub/sub used when no resources path is given:
    /// a component named `pubsub` of type `pubsub.sqlite`, in
    /// `dir/pubsub.db`, next to [`ComponentSpec::embedded_state_store`], so
    /// events survive a crash with nothing installed.
    pub fn embedded_pubsub(dir: &Path) -> Self {
        ComponentSpec {
            name: "pubsub".into(),
            kind: "pubsub.sqlite".into(),
            version: "v1".into(),
            metadata: [(
                "connectionString".to_owned(),
                dir.join("pubsub.db").to_string_lossy().into_owned(),
            )]
            .into(),
            scopes: Vec::new(),
            source: PathBuf::from("(embedded default)"),
        }
    }

    /// The embedded defaults of every building block that has one, for a
    /// process started without a resources path: the SQLite state store
    /// and the SQLite pub/sub, both in `dir`.
    pub fn embedded_defaults(dir: &Path) -> Vec<Self> {
        vec![Self::embedded_state_store(dir), Self::embedded_pubsub(dir)]
    }

    /// Whether `app_id` may use this component.
    pub fn in_scope(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == app_id)
    }

    /// A metadata value, if set and non-empty.
    pub fn metadata(&self, name: &str) -> Option<&str> {
        self.metadata
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required metadata value.
    pub fn require(&self, name: &str) -> Result<&str, ComponentError> {
        self.metadata(name)
            .ok_or_else(|| self.field_error(format!("spec.metadata.{name}"), "is required"))
    }

    /// A metadata value parsed as `T`, or `default` when absent.
    pub fn parse_or<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
    ) -> Result<T, ComponentError> {
        match self.metadata(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                self.field_error(
                    format!("spec.metadata.{name}"),
                    format!("`{raw}` is not valid"),
                )
            }),
        }
    }

    /// An error about `field` of this component.
    pub fn field_error(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ComponentError {
        ComponentError::Field {
            file: self.source.clone(),
            component: self.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An initialisation error of this component.
    pub fn init_error(&self, message: impl std::fmt::Display) -> ComponentError {
        ComponentError::Init {
            component: self.name.clone(),
            kind: self.kind.clone(),
            message: message.to_string(),
        }
    }
}

/// A `Component` as declared in a resources folder: its [`ComponentSpec`]
/// and how the loader treats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDeclaration {
    /// What the backend is built from.
    pub spec: ComponentSpec,
    /// `spec.ignoreErrors`: a component that cannot be built (unknown type,
    /// bad metadata, unreachable server) is skipped with a warning instead
    /// of stopping the process, as daprd does.
    pub ignore_errors: bool,
    /// `auth.secretStore`: the secret store its `secretKeyRef`s are read
    /// from (Dapr's default: `kubernetes`, or the only one). Kept for the
    /// secrets building block; secret stores load first so it can resolve.
    pub auth_secret_store: Option<String>,
}

impl From<ComponentSpec> for ComponentDeclaration {
    /// A spec built in code: errors are not ignored.
    fn from(spec: ComponentSpec) -> Self {
        Self {
            spec,
            ignore_errors: false,
            auth_secret_store: None,
        }
    }
}

impl ComponentDeclaration {
    /// Reads one `kind: Component` document (`document` is its number in
    /// `source`, from 1, for messages).
    pub fn from_yaml(
        value: serde_yaml::Value,
        source: &Path,
        document: usize,
    ) -> Result<Self, ComponentError> {
        read_document::<RawComponent>(value, source, document)?.into_declaration(source)
    }
}

/// The text of a scalar YAML value (metadata values may be written as
/// strings, numbers or booleans); `None` for a list or a map.
pub(crate) fn scalar_text(value: serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::Null => Some(String::new()),
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComponent {
    api_version: Option<String>,
    metadata: Option<ResourceMeta>,
    spec: Option<RawSpec>,
    auth: Option<RawAuth>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuth {
    secret_store: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<String>,
    #[serde(default)]
    ignore_errors: bool,
    #[serde(default)]
    metadata: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem {
    name: Option<String>,
    value: Option<serde_yaml::Value>,
    secret_key_ref: Option<serde_yaml::Value>,
}

impl RawComponent {
    fn into_declaration(self, source: &Path) -> Result<ComponentDeclaration, ComponentError> {
        let name = self.metadata.and_then(|m| m.name).unwrap_or_default();
        let err = |field: &str, message: &str| ComponentError::Field {
            file: source.to_owned(),
            component: if name.is_empty() {
                "?".into()
            } else {
                name.clone()
            },
            field: field.into(),
            message: message.into(),
        };
        match self.api_version.as_deref() {
            Some("dapr.io/v1alpha1") => {}
            Some(other) => {
                return Err(err(
                    "apiVersion",
                    &format!("`{other}` is not dapr.io/v1alpha1"),
                ));
            }
            None => return Err(err("apiVersion", "is required (dapr.io/v1alpha1)")),
        }
        if name.is_empty() {
            return Err(err("metadata.name", "is required"));
        }
        let spec = self.spec.ok_or_else(|| err("spec", "is required"))?;
        let kind = spec
            .kind
            .filter(|k| !k.is_empty())
            .ok_or_else(|| err("spec.type", "is required"))?;
        // daprd reads a missing version as `v1`; the SDKs' own examples omit it.
        let version = spec
            .version
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "v1".into());
        let mut metadata = BTreeMap::new();
        for (i, item) in spec.metadata.into_iter().enumerate() {
            let field = format!("spec.metadata[{i}]");
            let item_name = item
                .name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(&format!("{field}.name"), "is required"))?;
            if item.secret_key_ref.is_some() {
                return Err(err(
                    &format!("{field}.secretKeyRef"),
                    &format!(
                        "`{item_name}` refers to a secret, but secret stores are not supported yet: give a `value`"
                    ),
                ));
            }
            let value = scalar_text(item.value.unwrap_or_default()).ok_or_else(|| {
                err(
                    &format!("{field}.value"),
                    "must be a string, number or boolean",
                )
            })?;
            if metadata.insert(item_name.clone(), value).is_some() {
                return Err(err(
                    &format!("{field}.name"),
                    &format!("`{item_name}` is given twice"),
                ));
            }
        }
        Ok(ComponentDeclaration {
            spec: ComponentSpec {
                name,
                kind,
                version,
                metadata,
                scopes: self.scopes,
                source: source.to_owned(),
            },
            ignore_errors: spec.ignore_errors,
            auth_secret_store: self.auth.and_then(|a| a.secret_store),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ComponentSpec>, ComponentError> {
        crate::resources::Resources::parse(text, Path::new("components/x.yaml"))
            .map(|r| r.components.into_iter().map(|c| c.spec).collect())
    }

    /// Several documents per file; other kinds skipped; values of any scalar type.
    #[test]
    fn parses_components() {
        let specs = parse(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n\
             spec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: localhost:6379\n\
             \x20 - name: redisDB\n    value: 2\n  - name: enableTLS\n    value: false\nscopes: [checkout]\n\
             ---\napiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\n\
             ---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\n\
             spec:\n  type: state.in-memory\n  version: v1\n",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].kind, "state.redis");
        assert_eq!(specs[0].metadata("redisDB"), Some("2"));
        assert_eq!(specs[0].metadata("enableTLS"), Some("false"));
        assert!(specs[0].in_scope("checkout") && !specs[0].in_scope("other"));
        assert!(specs[1].in_scope("anyone"));
    }

    /// Each mistake names the file, the component and the field.
    #[test]
    fn reports_file_and_field() {
        let head = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\n";
        for (text, expected) in [
            (
                format!("{head}spec:\n  version: v1\n"),
                "components/x.yaml: component `s`: spec.type: is required",
            ),
            (
                "apiVersion: v2\nkind: Component\nmetadata:\n  name: s\n".into(),
                "apiVersion: `v2`",
            ),
            (
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec:\n  type: a\n  version: v1\n"
                    .into(),
                "component `?`: metadata.name: is required",
            ),
            (
                format!(
                    "{head}spec:\n  type: state.redis\n  version: v1\n  metadata:\n  - name: redisPassword\n    secretKeyRef:\n      name: s\n"
                ),
                "spec.metadata[0].secretKeyRef: `redisPassword` refers to a secret",
            ),
            (
                "kind: Component\n  bad: [indent".into(),
                "components/x.yaml: document 1:",
            ),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected `{expected}` in `{err}`");
        }
    }

    /// As daprd: a missing `spec.version` is `v1`; `spec.ignoreErrors` and
    /// `auth.secretStore` are read.
    #[test]
    fn version_defaults_to_v1_and_loader_fields_are_read() {
        let text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\n\
                    spec:\n  type: state.redis\n  ignoreErrors: true\nauth:\n  secretStore: vault\n";
        let resources =
            crate::resources::Resources::parse(text, Path::new("components/x.yaml")).unwrap();
        let declared = &resources.components[0];
        assert_eq!(declared.spec.version, "v1");
        assert!(declared.ignore_errors);
        assert_eq!(declared.auth_secret_store.as_deref(), Some("vault"));
        let plain = parse("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\nspec:\n  type: state.redis\n  version: v2\n").unwrap();
        assert_eq!(plain[0].version, "v2");
    }
}
