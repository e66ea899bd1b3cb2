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
//! - [`jetstream`]: `pubsub.jetstream`, NATS JetStream, a durable pull
//!   consumer per consumer group.
//! - [`mqtt3`]: `pubsub.mqtt3`, MQTT 3.1.1, a shared subscription
//!   (`$share/<group>/<topic>`) per consumer group; no redelivery, not
//!   durable.
//! - [`rabbitmq`]: `pubsub.rabbitmq`, AMQP 0-9-1 with Dapr's layout (an
//!   exchange per topic, a queue `<group>-<topic>` per consumer group).
//!
//! What they share lives here: the metadata they read the same way, the
//! conversion of backend faults, and the `Dispatcher` that runs a
//! subscription's handlers and settles (acks or refuses) each message.

pub mod jetstream;
pub mod memory;
pub mod mqtt3;
pub mod rabbitmq;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{HandlerError, MessageHandler, PubSubError, ReceivedMessage};

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

/// A boolean metadata value as Go's `strconv.ParseBool` reads it (what
/// Dapr's metadata decoder uses), `default` when absent.
pub(crate) fn flag(
    spec: &ComponentSpec,
    name: &str,
    default: bool,
) -> Result<bool, ComponentError> {
    match spec.metadata(name).map(str::trim) {
        None => Ok(default),
        Some(raw) => parse_bool(raw).ok_or_else(|| {
            spec.field_error(
                format!("spec.metadata.{name}"),
                format!("`{raw}` is not a boolean (true or false)"),
            )
        }),
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Dapr's `concurrencyMode`: whether a subscription hands messages to its
/// handler one at a time (in the broker's order) or many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyMode {
    /// One message at a time: the broker's order is kept.
    Single,
    /// Up to 100 handlers (or the broker's prefetch) at once.
    Parallel,
}

/// The most handlers a `parallel` subscription runs at once when the
/// broker sets no smaller bound (Dapr starts one goroutine per message,
/// unbounded; a bound keeps a burst from exhausting memory).
pub(crate) const PARALLEL_LIMIT: usize = 100;

/// `concurrencyMode` (`single` or `parallel`), `default` when absent.
pub(crate) fn concurrency_mode(
    spec: &ComponentSpec,
    default: ConcurrencyMode,
) -> Result<ConcurrencyMode, ComponentError> {
    concurrency_mode_of(spec, &["concurrencyMode"], default)
}

/// The concurrency mode of the first of `names` that is set (some brokers
/// also read an older name), `default` when none is.
pub(crate) fn concurrency_mode_of(
    spec: &ComponentSpec,
    names: &[&str],
    default: ConcurrencyMode,
) -> Result<ConcurrencyMode, ComponentError> {
    let Some((name, value)) = names
        .iter()
        .find_map(|name| spec.metadata(name).map(|v| (*name, v.trim())))
    else {
        return Ok(default);
    };
    match value {
        "single" => Ok(ConcurrencyMode::Single),
        "parallel" => Ok(ConcurrencyMode::Parallel),
        other => Err(spec.field_error(
            format!("spec.metadata.{name}"),
            format!("`{other}` is not one of: single, parallel"),
        )),
    }
}

/// How long a stopping subscription waits for its running handlers (and
/// their acks) before it lets go of the broker, which then hands their
/// unacked messages to another subscriber. A handler that finishes later
/// still acks where the broker allows it (JetStream); elsewhere its message
/// is delivered again (at-least-once).
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// Runs one subscription's handler on the messages its broker hands over,
/// at most `limit` at once, and passes each outcome to the broker's
/// settle step (ack on `Ok`, nak or nothing on `Err`) once the handler
/// has returned: the delivery contract in one place for every broker.
pub(crate) struct Dispatcher {
    handler: Arc<dyn MessageHandler>,
    slots: Arc<Semaphore>,
    limit: u32,
    /// The subscription's stop signal: a message waiting for a slot is
    /// given up when it turns `true` (it stays unsettled with the broker).
    stopped: watch::Receiver<bool>,
}

impl Dispatcher {
    /// A dispatcher running at most `limit` (at least 1) handlers at once,
    /// for the subscription stopped by `stopped`.
    pub(crate) fn new(
        handler: Arc<dyn MessageHandler>,
        limit: usize,
        stopped: watch::Receiver<bool>,
    ) -> Self {
        let limit = u32::try_from(limit.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Dispatcher {
            handler,
            slots: Arc::new(Semaphore::new(limit as usize)),
            limit,
            stopped,
        }
    }

    /// Waits for a free slot, then runs the handler on `message` in a task
    /// of its own and, once it returned, `settle` with its outcome. With a
    /// limit of 1 the next message is not started before this one is
    /// settled, so the broker's order is kept. `false` when the
    /// subscription was stopped before a slot was free (a handler that
    /// never returns cannot keep a subscription from closing): the message
    /// is neither handled nor settled.
    pub(crate) async fn dispatch<S, F>(&self, message: ReceivedMessage, settle: S) -> bool
    where
        S: FnOnce(Result<(), HandlerError>) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stopped = self.stopped.clone();
        let slot = tokio::select! {
            biased;
            slot = self.slots.clone().acquire_owned() => slot,
            _ = stopped.wait_for(|s| *s) => return false,
        };
        let Ok(slot) = slot else {
            return false;
        };
        let handling = self.handler.handle(message);
        tokio::spawn(async move {
            let outcome = handling.await;
            settle(outcome).await;
            drop(slot);
        });
        true
    }

    /// Waits until no handler runs (all settled), at most `within`; `false`
    /// when some still run.
    pub(crate) async fn drain(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.slots.acquire_many(self.limit))
            .await
            .is_ok_and(|permits| permits.is_ok())
    }
}

/// Sleeps `pause` unless the subscription is stopped first; `true` when
/// it was stopped.
pub(crate) async fn stopped_within(stopped: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    let stop = tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stopped.wait_for(|s| *s) => true,
    };
    stop || *stopped.borrow()
}
