//! The processor of the order pipeline: an HTTP handler that `wasmdapr run`
//! serves as a Dapr app and that pub/sub triggers, one fresh instance per
//! event.
//!
//! Its subscription to `orders` is declared with the SDK's
//! [`Subscriptions`](wasmdapr_sdk::events::Subscriptions), which answers the
//! sidecar's `GET /dapr/subscribe` and routes each delivery to [`process`].
//! Each order is saved under `order-<id>` and added to a running total in
//! ONE state transaction, conditional on both: the order key must not exist
//! yet (first-write) and the total must still be at the ETag read. So a
//! redelivered event (at-least-once) is counted once, and instances running
//! at the same time never lose an update: the loser of a race reads again
//! and retries.
//!
//! `GET /total` answers the running total as JSON.

#[cfg(target_env = "p2")]
mod handler {
    use std::io::{Read as _, Write as _};

    use order_pipeline::{Order, TOTAL_KEY, Total};
    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };
    use wasmdapr_sdk::events::{Event, EventStatus, Subscriptions, Topic};
    use wasmdapr_sdk::{Concurrency, Dapr, Error, SaveRequest, StateStore};

    /// The largest event body read; the sidecar bounds bodies too.
    const MAX_BODY: u64 = 1 << 20;

    /// Conflicts tolerated before the event is handed back for redelivery.
    const MAX_ATTEMPTS: u32 = 1000;

    struct Processor;

    wasi::http::proxy::export!(Processor);

    fn subscriptions() -> Subscriptions {
        let topic = Topic::new(&order_pipeline::pubsub_name(), &order_pipeline::topic())
            .route("/orders")
            .dead_letter(&order_pipeline::dead_letter_topic());
        Subscriptions::new().topic(topic, process)
    }

    /// Handles one event: an order that cannot be read is dropped (to the
    /// dead-letter topic); a failing store hands it back (RETRY).
    fn process(event: &Event) -> EventStatus {
        let order: Order = match event.data() {
            Ok(order) => order,
            Err(error) => {
                eprintln!("event {} is no order ({error}): dropped", event.id());
                return EventStatus::Drop;
            }
        };
        let store = Dapr::new().state(&order_pipeline::state_store_name());
        match record(&store, &order) {
            Ok(()) => EventStatus::Success,
            Err(error) => {
                eprintln!("order {} not recorded ({error}): retry", order.id);
                EventStatus::Retry
            }
        }
    }

    /// Saves `order` and adds it to the total, once.
    fn record(store: &StateStore, order: &Order) -> Result<(), Error> {
        let key = format!("order-{}", order.id);
        let mut attempts = 0;
        loop {
            attempts += 1;
            if store.get_bytes(&key)?.is_some() {
                return Ok(()); // a redelivery of a counted order
            }
            let (total, etag) = match store.get_with_etag::<Total>(TOTAL_KEY)? {
                Some(current) => (current.value, current.etag),
                None => (Total::default(), None),
            };
            let next = Total {
                orders: total.orders + 1,
                amount: total.amount + order.amount,
            };
            let mut total_write =
                SaveRequest::json(TOTAL_KEY, &next)?.concurrency(Concurrency::FirstWrite);
            if let Some(etag) = etag {
                total_write = total_write.etag(etag);
            }
            let order_write = SaveRequest::json(&key, order)?.concurrency(Concurrency::FirstWrite);
            match store
                .transaction()
                .upsert_request(order_write)
                .upsert_request(total_write)
                .commit()
            {
                Ok(()) => return Ok(()),
                Err(error) if error.is_etag_mismatch() && attempts < MAX_ATTEMPTS => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn answer(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
        let headers =
            Fields::from_list(&[("content-type".into(), content_type.as_bytes().to_vec())])
                .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("a valid status");
        let outgoing = response.body().expect("the response body");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = outgoing.write().expect("the body stream");
        stream.write_all(body).expect("writing the body");
        stream.flush().expect("flushing the body");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("finishing the body");
    }

    impl Guest for Processor {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let path = request.path_with_query().unwrap_or_default();
            let method = match request.method() {
                Method::Get => "GET",
                Method::Post => "POST",
                _ => "OTHER",
            };
            let mut body = Vec::new();
            if let Ok(incoming) = request.consume()
                && let Ok(stream) = incoming.stream()
            {
                // A body cut short is an unreadable event: dropped below.
                let _ = stream.take(MAX_BODY).read_to_end(&mut body);
            }
            if let Some(reply) = subscriptions().dispatch(method, &path, &body) {
                return answer(out, reply.status, reply.content_type, &reply.body);
            }
            if method == "GET" && path == "/total" {
                let store = Dapr::new().state(&order_pipeline::state_store_name());
                return match store.get::<Total>(TOTAL_KEY) {
                    Ok(total) => {
                        let json =
                            serde_json::to_vec(&total.unwrap_or_default()).unwrap_or_default();
                        answer(out, 200, "application/json", &json)
                    }
                    Err(error) => answer(out, 500, "text/plain", error.to_string().as_bytes()),
                };
            }
            answer(out, 404, "text/plain", b"not found")
        }
    }
}

fn main() {
    eprintln!(
        "the processor is an HTTP handler: serve it with \
         `wasmdapr run --app-listen 127.0.0.1:8080 order-pipeline-processor.wasm`"
    );
    std::process::exit(2);
}
