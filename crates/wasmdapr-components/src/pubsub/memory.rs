//! `pubsub.in-memory`: Dapr's in-process broker, with consumer groups and
//! redelivery added so it keeps the delivery contract of every backend.
//!
//! Each topic has a queue per consumer group, created by the group's first
//! subscription and removed with its last: a publish copies the message
//! into every group's queue (fan-out), and the subscriptions of a group
//! take messages from their one queue, one at a time each (so a group
//! shares the topic's messages and one subscription sees them in publish
//! order). A message whose handler fails is set aside and handed to the
//! same handler again after `redeliverInterval` (default 500 ms), until it
//! succeeds or the subscription closes; the later messages go on meanwhile
//! (a message that always fails must not hold up its topic; Dapr's own
//! in-memory broker gives up on it after ten tries, this one keeps it). A
//! subscription closed with failed messages puts them back at the head of
//! its group's queue.
//!
//! Nothing is kept without a subscriber, and nothing survives the process:
//! a message published before its group subscribed is not delivered to it
//! (Dapr's in-memory broker drops it too).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use tokio::sync::Notify;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::pubsub::{
    MessageHandler, PubSub, PubSubError, PubSubFeatures, PublishRequest, ReceivedMessage,
    SubscribeRequest, Subscription,
};

use super::duration;

/// The queue of one consumer group on one topic.
#[derive(Default)]
struct Group {
    queue: Mutex<VecDeque<ReceivedMessage>>,
    /// Woken by every publish and every message put back.
    ready: Notify,
    subscribers: Mutex<usize>,
}

#[derive(Default)]
struct Broker {
    /// topic → group name → queue.
    topics: Mutex<HashMap<String, HashMap<String, Arc<Group>>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

/// The in-memory broker.
pub struct MemoryPubSub {
    broker: Arc<Broker>,
    redeliver_interval: Duration,
}

impl std::fmt::Debug for MemoryPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPubSub").finish_non_exhaustive()
    }
}

impl MemoryPubSub {
    /// A broker configured by `spec` (`redeliverInterval`).
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        Ok(MemoryPubSub {
            broker: Arc::default(),
            redeliver_interval: duration(spec, "redeliverInterval", Duration::from_millis(500))?,
        })
    }

    /// The group's queue, made (and its subscriber counted) if needed.
    fn join(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = self.broker.topics.lock().expect("lock");
        let group = topics
            .entry(topic.to_owned())
            .or_default()
            .entry(group.to_owned())
            .or_default()
            .clone();
        *group.subscribers.lock().expect("lock") += 1;
        group
    }
}

/// Uncounts a subscriber; the last one removes its group.
fn leave(broker: &Broker, topic: &str, name: &str, group: &Arc<Group>) {
    let mut topics = broker.topics.lock().expect("lock");
    let mut subscribers = group.subscribers.lock().expect("lock");
    *subscribers -= 1;
    if *subscribers == 0
        && let Some(groups) = topics.get_mut(topic)
    {
        groups.remove(name);
        if groups.is_empty() {
            topics.remove(topic);
        }
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    fn features(&self) -> PubSubFeatures {
        PubSubFeatures {
            carries_metadata: true,
            redelivery: true,
            ordered: true,
            ..PubSubFeatures::default()
        }
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.broker.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let id = self.broker.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let message = ReceivedMessage {
            id: id.to_string(),
            topic: request.topic.clone(),
            data: request.data,
            metadata: request.metadata,
            attempt: 1,
        };
        let topics = self.broker.topics.lock().expect("lock");
        for group in topics
            .get(&request.topic)
            .into_iter()
            .flat_map(|g| g.values())
        {
            group.queue.lock().expect("lock").push_back(message.clone());
            group.ready.notify_waiters();
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.broker.closed.load(Ordering::Acquire) {
            return Err(PubSubError::Closed);
        }
        let group = self.join(&request.topic, &request.consumer_group);
        let broker = self.broker.clone();
        let retry_after = self.redeliver_interval;
        let (stop, mut stopped) = Subscription::signal();
        let task = tokio::spawn(async move {
            // Failed messages waiting for their redelivery, oldest first
            // (all wait the same interval, so also soonest due first).
            let mut failed: VecDeque<(Instant, ReceivedMessage)> = VecDeque::new();
            loop {
                if *stopped.borrow() {
                    break;
                }
                let ready = group.ready.notified();
                tokio::pin!(ready);
                ready.as_mut().enable();
                let due = failed.front().is_some_and(|(at, _)| *at <= Instant::now());
                let next = if due {
                    failed.pop_front().map(|(_, message)| message)
                } else {
                    group.queue.lock().expect("lock").pop_front()
                };
                let Some(mut message) = next else {
                    let wake = failed.front().map(|(at, _)| *at);
                    tokio::select! {
                        _ = ready => {}
                        _ = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
                        _ = stopped.wait_for(|s| *s) => break,
                    }
                    continue;
                };
                if let Err(error) = handler.handle(message.clone()).await {
                    tracing::debug!(%error, id = %message.id, "in-memory pub/sub: delivery failed, redelivering");
                    message.attempt = message.attempt.saturating_add(1);
                    failed.push_back((Instant::now() + retry_after, message));
                }
            }
            // What failed goes back to the group, ahead of what is queued.
            if !failed.is_empty() {
                let mut queue = group.queue.lock().expect("lock");
                for (_, message) in failed.into_iter().rev() {
                    queue.push_front(message);
                }
                group.ready.notify_waiters();
            }
            leave(&broker, &request.topic, &request.consumer_group, &group);
        });
        Ok(Subscription::new(stop, task))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.broker.closed.store(true, Ordering::Release);
        Ok(())
    }
}
