//! What the two apps of the order pipeline share: the event they exchange
//! and the names they meet under.

use serde::{Deserialize, Serialize};

/// An order, published as JSON (in a CloudEvent) on the `orders` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Unique per order: a redelivered event carries the same id, which is
    /// how the processor counts each order once.
    pub id: u64,
    /// What was ordered.
    pub item: String,
    /// Its price, in cents.
    pub amount: u64,
}

/// The running total the processor keeps in the state store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Orders counted.
    pub orders: u64,
    /// Their amounts, summed.
    pub amount: u64,
}

/// The topic orders are published to: `TOPIC`, else `orders`.
pub fn topic() -> String {
    std::env::var("TOPIC").unwrap_or_else(|_| "orders".into())
}

/// Where the processor sends orders it can never process: the topic's
/// name with `-dead`.
pub fn dead_letter_topic() -> String {
    format!("{}-dead", topic())
}
/// The state key of the running total.
pub const TOTAL_KEY: &str = "total";

/// The pub/sub component: `PUBSUB`, else `pubsub` (the embedded default).
pub fn pubsub_name() -> String {
    std::env::var("PUBSUB").unwrap_or_else(|_| "pubsub".into())
}

/// The state store: `STATE_STORE`, else `statestore` (the embedded default).
pub fn state_store_name() -> String {
    std::env::var("STATE_STORE").unwrap_or_else(|_| "statestore".into())
}
