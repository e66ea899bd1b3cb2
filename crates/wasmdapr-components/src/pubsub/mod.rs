//! Pub/sub brokers, one module each, all implementing
//! [`PubSub`](wasmdapr_runtime::pubsub::PubSub) with its delivery contract
//! (ack after the handler returned `Ok`, redelivery otherwise):
//!
//! - [`memory`]: `pubsub.in-memory`, in the process (tests, one-process
//!   pipelines): nothing survives a restart.
//! - [`sqlite`]: `pubsub.sqlite`, a queue in a SQLite file: the embedded
//!   default, durable and at-least-once on one machine.
//! - [`redis`]: `pubsub.redis`, Redis Streams with Dapr's metadata and
//!   layout (`XADD <topic> * data <bytes>`, a consumer group per app).
//!
//! What they share lives here: the metadata they read the same way and
//! the conversion of backend faults.

pub mod memory;
pub mod redis;
pub mod sqlite;

use std::time::Duration;

use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::PubSubError;

use crate::state::duration_or;

/// A broker fault as the runtime reports it (`ERR_PUBSUB_PUBLISH_MESSAGE`
/// for a publish).
pub(crate) fn backend_error(context: &str, error: impl std::fmt::Display) -> PubSubError {
    tracing::warn!(%error, "pub/sub: {context} failed");
    PubSubError::Backend(format!("{context}: {error}"))
}

/// A duration metadata value (`15s`, `500ms`, or whole seconds), `default`
/// when absent.
pub(crate) fn duration(
    spec: &ComponentSpec,
    name: &str,
    default: Duration,
) -> Result<Duration, ComponentError> {
    duration_or(spec, name, default)
}

/// A positive count metadata value, `default` when absent.
pub(crate) fn count(
    spec: &ComponentSpec,
    name: &str,
    default: usize,
) -> Result<usize, ComponentError> {
    let value: usize = spec.parse_or(name, default)?;
    if value == 0 {
        return Err(spec.field_error(format!("spec.metadata.{name}"), "must be at least 1"));
    }
    Ok(value)
}
