//! How the sidecar finds other apps' sidecars, and is found by them.

use std::path::Path;
use std::sync::Arc;

use wasmdapr_components::nameresolution::sqlite::SqliteNameResolver;
use wasmdapr_runtime::resources::ConfigurationSpec;
use wasmdapr_runtime::{ComponentRegistry, NameResolver};

use crate::SidecarError;

/// The name resolver of `config`'s `spec.nameResolution`, else the SQLite
/// default in `data_dir`, shared by every wasmdapr process of the user. A
/// configured resolver that cannot be opened is a configuration error; the
/// default failing (no home directory, read-only disk) only disables
/// invoking other apps, with a warning.
pub(crate) async fn name_resolver(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    registry: &ComponentRegistry,
) -> Result<Option<Arc<dyn NameResolver>>, SidecarError> {
    let configured = match config {
        Some(path) => ConfigurationSpec::load(path)?.name_resolution,
        None => None,
    };
    if let Some(spec) = configured {
        return Ok(Some(registry.build::<dyn NameResolver>(spec).await?));
    }
    let Some(dir) = data_dir else {
        tracing::warn!("no home directory: other apps cannot be invoked (pass --config)");
        return Ok(None);
    };
    match SqliteNameResolver::open(&SqliteNameResolver::default_spec(dir)).await {
        Ok(resolver) => Ok(Some(Arc::new(resolver))),
        Err(error) => {
            tracing::warn!(%error, "default name resolution unavailable: other apps cannot be invoked");
            Ok(None)
        }
    }
}
