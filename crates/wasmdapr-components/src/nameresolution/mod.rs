//! Name resolution backends: how a sidecar finds the sidecar of another app
//! id. Each implements the runtime's [`NameResolver`]; [`open`] builds the
//! one a Configuration's `spec.nameResolution` names.
//!
//! - [`sqlite`]: `nameresolution.sqlite`, a shared SQLite file with
//!   heartbeats, for processes on one machine (the default).

pub mod sqlite;

use std::sync::Arc;

use wasmdapr_runtime::NameResolver;
use wasmdapr_runtime::component::{ComponentError, ComponentSpec};

/// The resolver `spec` describes (type `nameresolution.<component>`, as
/// [`wasmdapr_runtime::configuration::Configuration`] builds it): the one
/// place that lists the name resolution backends.
pub async fn open(spec: &ComponentSpec) -> Result<Arc<dyn NameResolver>, ComponentError> {
    match spec.kind.as_str() {
        "nameresolution.sqlite" => Ok(Arc::new(sqlite::SqliteNameResolver::open(spec).await?)),
        other => Err(spec.field_error(
            "spec.nameResolution.component",
            format!(
                "`{}` is not a name resolution component this runtime has (sqlite)",
                other.strip_prefix("nameresolution.").unwrap_or(other)
            ),
        )),
    }
}
