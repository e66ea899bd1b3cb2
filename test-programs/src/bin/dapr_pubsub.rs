//! The pub/sub import (`wasmdapr:dapr/pubsub`) through the guest SDK, one
//! mode per command line; the host test (`p2_dapr_pubsub`) checks what the
//! broker holds and what this prints.
//!
//! - `publish PUBSUB TOPIC`: `publish` of `{"n":1}`, `publish_raw` of three
//!   bytes, `bulk_publish` of `{"n":2}`, `{"n":3}`, `{"n":4}` (entries
//!   `a`, `b`, `c`); prints `published failed=N`.
//! - `subscribe PUBSUB TOPIC DLQ COUNT`: subscribes (dead-letter topic
//!   `DLQ`, none when `-`) and answers events whose data is
//!   `{"n":…,"answer":"success"|"retry"|"drop"}` as they say, a `retry`
//!   one only the first time it comes (then `success`); prints
//!   `event N ANSWER` per answer, and stops after COUNT final answers.
//! - `abandon PUBSUB TOPIC`: takes one event, drops the subscription
//!   without answering, subscribes again and prints `redelivered N` once
//!   the same event comes again (then acks it).
//! - `wait PUBSUB TOPIC`: subscribes and waits for an event (the host's
//!   time limit ends it).
//! - `many PUBSUB TOPIC`: opens subscriptions until one fails; prints
//!   `opened N then CODE`.
//!
//! A failed call prints `error CODE STATUS` and exits 1.
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
fn main() {
    use wasmdapr_sdk::pubsub::{BulkEntry, EventStatus, SubscribeOptions};
    use wasmdapr_sdk::{Dapr, Error};

    fn fail(e: Error) -> ! {
        println!("error {} {}", e.code, e.status);
        std::process::exit(1);
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let dapr = Dapr::new();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["publish", pubsub, topic] => {
            let pubsub = dapr.pubsub(pubsub);
            pubsub
                .publish(topic, &serde_json::json!({"n": 1}))
                .unwrap_or_else(|e| fail(e));
            pubsub
                .publish_raw(topic, vec![0u8, 1, 2], "application/octet-stream")
                .unwrap_or_else(|e| fail(e));
            let entries = [("a", 2), ("b", 3), ("c", 4)]
                .into_iter()
                .map(|(id, n)| BulkEntry::json(id, &serde_json::json!({ "n": n })))
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| fail(e));
            let failed = pubsub
                .bulk_publish(topic, entries)
                .unwrap_or_else(|e| fail(e));
            println!("published failed={}", failed.len());
        }
        ["subscribe", pubsub, topic, dlq, count] => {
            let count: usize = count.parse().expect("a count");
            let mut options = SubscribeOptions::default();
            if *dlq != "-" {
                options = options.dead_letter_topic(dlq);
            }
            let subscription = dapr
                .pubsub(pubsub)
                .subscribe_with(topic, options)
                .unwrap_or_else(|e| fail(e));
            let mut retried = std::collections::HashSet::new();
            let mut done = 0;
            for event in &subscription {
                let event = event.unwrap_or_else(|e| fail(e));
                #[derive(serde::Deserialize)]
                struct Work {
                    n: u64,
                    answer: String,
                }
                let work: Work = event.data().unwrap_or_else(|e| fail(e));
                let status = match work.answer.as_str() {
                    "retry" if retried.insert(event.id.clone()) => EventStatus::Retry,
                    "drop" => EventStatus::Drop,
                    _ => EventStatus::Success,
                };
                subscription.ack(&event, status).unwrap_or_else(|e| fail(e));
                println!("event {} {status:?}", work.n);
                if status != EventStatus::Retry {
                    done += 1;
                    if done == count {
                        break;
                    }
                }
            }
            println!("done");
        }
        ["abandon", pubsub, topic] => {
            let pubsub = dapr.pubsub(pubsub);
            let first = {
                let subscription = pubsub.subscribe(topic).unwrap_or_else(|e| fail(e));
                let event = subscription.next_event().unwrap_or_else(|e| fail(e));
                event.expect("an event")
                // Dropped here, unanswered.
            };
            let subscription = pubsub.subscribe(topic).unwrap_or_else(|e| fail(e));
            loop {
                let event = subscription
                    .next_event()
                    .unwrap_or_else(|e| fail(e))
                    .expect("an event");
                subscription
                    .ack(&event, EventStatus::Success)
                    .unwrap_or_else(|e| fail(e));
                if event.id == first.id {
                    let n: serde_json::Value = event.data().unwrap_or_else(|e| fail(e));
                    println!("redelivered {}", n["n"]);
                    break;
                }
            }
        }
        ["wait", pubsub, topic] => {
            let subscription = dapr.pubsub(pubsub).subscribe(topic).unwrap_or_else(|e| fail(e));
            let event = subscription.next_event().unwrap_or_else(|e| fail(e));
            println!("unexpected: {event:?}");
        }
        ["many", pubsub, topic] => {
            let pubsub = dapr.pubsub(pubsub);
            let mut open = Vec::new();
            loop {
                match pubsub.subscribe(topic) {
                    Ok(subscription) => open.push(subscription),
                    Err(e) => {
                        println!("opened {} then {}", open.len(), e.code);
                        break;
                    }
                }
                if open.len() > 1000 {
                    println!("no limit");
                    break;
                }
            }
            // Dropping one makes room for another.
            open.pop();
            pubsub.subscribe(topic).unwrap_or_else(|e| fail(e));
            println!("reopened");
        }
        _ => {
            eprintln!("usage: dapr_pubsub publish|subscribe|abandon|wait|many PUBSUB TOPIC …");
            std::process::exit(1);
        }
    }
}

#[cfg(not(target_env = "p2"))]
fn main() {
    eprintln!("dapr_pubsub needs wasm32-wasip2");
    std::process::exit(2);
}
