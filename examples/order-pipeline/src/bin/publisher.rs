//! The publisher of the order pipeline: a command (it runs to completion)
//! that publishes `COUNT` orders (default 10, ids from `FIRST_ID`, default
//! one) to the `orders` topic (or `TOPIC`) through the typed pub/sub
//! import, served in-process by the host: no HTTP, no network grant.
//!
//! ```text
//! wasmdapr run --env COUNT=100 order-pipeline-publisher.wasm
//! ```

fn main() {
    let count: u64 = std::env::var("COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10);
    let first: u64 = std::env::var("FIRST_ID")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let pubsub = wasmdapr_sdk::Dapr::new().pubsub(&order_pipeline::pubsub_name());
    let topic = order_pipeline::topic();
    for id in first..first + count {
        let order = order_pipeline::Order {
            id,
            item: format!("item-{}", id % 7),
            amount: 100 + id % 50,
        };
        if let Err(error) = pubsub.publish(&topic, &order) {
            eprintln!("order {id} not published: {error}");
            std::process::exit(1);
        }
    }
    println!("published {count} orders");
}
