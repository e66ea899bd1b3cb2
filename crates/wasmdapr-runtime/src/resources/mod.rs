//! The resources loader: everything a Dapr resources folder
//! (`--resources-path`) may hold, read as daprd reads it.
//!
//! - every `.yaml` / `.yml` file of each folder, in name order, each with
//!   any number of documents separated by `---`;
//! - `kind: Component` ([`ComponentDeclaration`]), `Subscription`
//!   ([`Subscription`], `dapr.io/v1alpha1` and `v2alpha1`), `Resiliency`
//!   ([`Resiliency`]) and `Configuration` ([`ConfigurationSpec`]);
//! - a document of any other kind (`HTTPEndpoint`, a Kubernetes object) is
//!   reported by kind and name and skipped, as daprd skips it;
//! - components come out with the secret stores first, so that the others'
//!   `secretKeyRef`s and `auth.secretStore` can be resolved against them.
//!
//! Mistakes in a document of a known kind stop the load, naming the file
//! and the field: a sidecar never starts with half its resources. Loading
//! is a pure function of the folders, so loading them again (a hot reload)
//! is the same call.

pub mod configuration;
pub mod resiliency;
pub mod subscription;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::component::{ComponentDeclaration, ComponentError};
pub use configuration::ConfigurationSpec;
pub use resiliency::Resiliency;
pub use subscription::Subscription;

/// `metadata` of a resource document: the part every kind shares.
#[derive(Deserialize)]
pub(crate) struct ResourceMeta {
    pub(crate) name: Option<String>,
}

/// Reads document `number` (from 1) of `source` as `T`; a document that
/// does not fit is an error naming the file and the document.
pub(crate) fn read_document<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    source: &Path,
    number: usize,
) -> Result<T, ComponentError> {
    serde_yaml::from_value(value).map_err(|e| ComponentError::File {
        file: source.to_owned(),
        message: format!("document {number}: {e}"),
    })
}

/// The resources of one or more folders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `kind: Component`, secret stores first, otherwise in file order.
    pub components: Vec<ComponentDeclaration>,
    /// `kind: Subscription`, both versions, in file order.
    pub subscriptions: Vec<Subscription>,
    /// `kind: Resiliency`.
    pub resiliencies: Vec<Resiliency>,
    /// `kind: Configuration` found among the resources (a sidecar's own
    /// Configuration is the `--config` file).
    pub configurations: Vec<ConfigurationSpec>,
}

impl Resources {
    /// Reads every YAML file of each folder, in name order, then reports
    /// the resources this build reads but does not apply yet (see
    /// [`Resources::report_unapplied`]). Two components with one name are an
    /// error.
    pub fn load_dirs(dirs: &[PathBuf]) -> Result<Self, ComponentError> {
        let mut resources = Self::default();
        for dir in dirs {
            let read = std::fs::read_dir(dir).map_err(|e| ComponentError::File {
                file: dir.clone(),
                message: format!("cannot read the resources directory: {e}"),
            })?;
            let mut files: Vec<PathBuf> = read
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                if !file.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    tracing::warn!(file = %file.display(), "not a YAML file: not loaded as a resource");
                    continue;
                }
                let text = std::fs::read_to_string(&file).map_err(|e| ComponentError::File {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
                resources.add(Self::parse(&text, &file)?)?;
            }
        }
        resources.report_unapplied();
        Ok(resources)
    }

    /// Reads every document of one YAML text (`source` names it in
    /// messages). Documents of kinds this loader does not know are logged
    /// with their kind and name and skipped.
    pub fn parse(text: &str, source: &Path) -> Result<Self, ComponentError> {
        let mut resources = Self::default();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let number = index + 1;
            let value =
                serde_yaml::Value::deserialize(document).map_err(|e| ComponentError::File {
                    file: source.to_owned(),
                    message: format!("document {number}: {e}"),
                })?;
            if value.is_null() {
                continue;
            }
            let text_of =
                |field: &str| value.get(field).and_then(|v| v.as_str()).map(str::to_owned);
            let kind = text_of("kind").unwrap_or_default();
            let api_version = text_of("apiVersion").unwrap_or_default();
            match kind.as_str() {
                "Component" => resources
                    .components
                    .push(ComponentDeclaration::from_yaml(value, source, number)?),
                "Subscription" => resources.subscriptions.push(Subscription::from_yaml(
                    value,
                    &api_version,
                    source,
                    number,
                )?),
                "Resiliency" => resources
                    .resiliencies
                    .push(Resiliency::from_yaml(value, source, number)?),
                "Configuration" => resources
                    .configurations
                    .push(ConfigurationSpec::from_yaml(value, source, number)?),
                _ => {
                    let name = value
                        .get("metadata")
                        .and_then(|m| m.get("name"))
                        .and_then(|n| n.as_str())
                        .unwrap_or("?");
                    tracing::warn!(
                        file = %source.display(),
                        document = number,
                        "resource `{name}` of kind `{kind}` is not supported by this build: skipped"
                    );
                }
            }
        }
        resources.order_components();
        Ok(resources)
    }

    /// Adds the resources of another file; a component name declared twice
    /// is an error naming both files.
    fn add(&mut self, other: Resources) -> Result<(), ComponentError> {
        for declared in other.components {
            let spec = &declared.spec;
            if let Some(first) = self.components.iter().find(|c| c.spec.name == spec.name) {
                return Err(spec.field_error(
                    "metadata.name",
                    format!(
                        "a component of this name is already declared in {}",
                        first.spec.source.display()
                    ),
                ));
            }
            self.components.push(declared);
        }
        self.subscriptions.extend(other.subscriptions);
        self.resiliencies.extend(other.resiliencies);
        self.configurations.extend(other.configurations);
        self.order_components();
        Ok(())
    }

    /// Secret stores first (a stable sort: otherwise file order), so that
    /// when the secrets block lands every other component's secret
    /// references can be resolved while it is built.
    fn order_components(&mut self) {
        self.components
            .sort_by_key(|c| !c.spec.kind.starts_with("secretstores."));
    }

    /// Logs, by name, every resource this build reads but does not apply
    /// yet, so none is silently ignored. Each building block removes its
    /// line when it starts applying them.
    pub fn report_unapplied(&self) {
        for resiliency in &self.resiliencies {
            tracing::warn!(
                file = %resiliency.source.display(),
                "Resiliency `{}` loaded but not applied yet",
                resiliency.name
            );
        }
        for config in &self.configurations {
            tracing::warn!(
                "Configuration `{}` loaded but not applied yet: a sidecar applies the one given with --config",
                config.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: vault\n\
                           spec:\n  type: secretstores.local.file\n";

    /// Every kind of one multi-document file lands in its place; other
    /// kinds and empty documents are skipped; secret stores come first.
    #[test]
    fn multi_document_file() {
        let text = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n\
             spec:\n  type: state.redis\n---\n\
             apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\n\
             spec:\n  pubsubname: pubsub\n  topic: orders\n  routes:\n    default: /orders\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: old\n\
             spec:\n  pubsubname: pubsub\n  topic: t\n  route: /t\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: resilient\nspec: {{}}\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\nspec:\n  tracing:\n    samplingRate: \"1\"\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: ext\n---\n\
             ---\n{SECRETS}"
        );
        let r = Resources::parse(&text, Path::new("all.yaml")).unwrap();
        let names: Vec<&str> = r.components.iter().map(|c| c.spec.name.as_str()).collect();
        assert_eq!(names, ["vault", "statestore"]);
        let subs: Vec<&str> = r.subscriptions.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(subs, ["orders", "old"]);
        assert_eq!(r.resiliencies[0].name, "resilient");
        assert_eq!(r.configurations[0].name, "cfg");
        assert_eq!(
            r.configurations[0]
                .tracing
                .as_ref()
                .and_then(|t| t.sampling_rate.as_deref()),
            Some("1")
        );
    }

    /// A mistake in a document of a known kind names the file and document.
    #[test]
    fn errors_name_file_and_document() {
        let err = Resources::parse(
            "kind: Other\n---\nkind: Resiliency\nmetadata: [1]\n",
            Path::new("r.yaml"),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("r.yaml: document 2:"), "{err}");
    }
}
