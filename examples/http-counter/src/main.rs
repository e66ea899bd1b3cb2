//! An HTTP app that counts POST requests (and the pub/sub events delivered
//! to it, which are POSTs) in a Dapr state store and answers each with the
//! new count. `GET /` answers the count without changing it; any other GET
//! (a readiness probe, the sidecar's `GET /dapr/subscribe`) is 404, so only
//! what was meant to count is counted.
//!
//! Every request is served by a fresh instance, possibly many at once, so
//! the count lives in the state store, and each increment is an optimistic
//! read-modify-write: read the value with its ETag, write the successor
//! only if the ETag still matches (first-write concurrency, which also
//! makes the very first write fail if another request created the key in
//! between), and on a conflict read again and retry. No increment is lost,
//! whatever the concurrency, on any store with ETags (SQLite, Redis,
//! PostgreSQL).
//!
//! ```text
//! cargo build -p http-counter --target wasm32-wasip2 --release
//! wasmdapr run --app-listen 127.0.0.1:8080 target/wasm32-wasip2/release/http-counter.wasm
//! curl -X POST localhost:8080/    # 1
//! curl -X POST localhost:8080/    # 2
//! ```
//!
//! The store is `statestore` (the embedded SQLite default of `wasmdapr run`)
//! unless the app is given `--env STATE_STORE=NAME`; the key is `counter`
//! (Dapr prefixes it with the app id).

#[cfg(target_env = "p2")]
mod handler {
    use std::io::Write as _;

    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };
    use wasmdapr_sdk::{Concurrency, Dapr, Error, SaveRequest, StateStore};

    /// The key the count is kept under.
    const KEY: &str = "counter";

    /// Conflicts tolerated before giving up. Each round of racing requests
    /// lets at least one of them win, so a request behind `n` concurrent
    /// ones needs at most `n + 1` attempts; this covers the host's default
    /// concurrency limit (100) with room to spare.
    const MAX_ATTEMPTS: u32 = 1000;

    struct Counter;

    wasi::http::proxy::export!(Counter);

    impl Guest for Counter {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let name = std::env::var("STATE_STORE").unwrap_or_else(|_| "statestore".into());
            let store = Dapr::new().state(&name);
            let path = request.path_with_query().unwrap_or_default();
            let result = match request.method() {
                Method::Post => increment(&store),
                Method::Get if path == "/" => store.get::<u64>(KEY).map(Option::unwrap_or_default),
                Method::Get => return answer(out, 404, "not found".into()),
                _ => return answer(out, 405, "GET / reads the count, POST adds one".into()),
            };
            let (status, body) = match result {
                Ok(count) => (200, count.to_string()),
                Err(error) => (500, error.to_string()),
            };
            answer(out, status, body);
        }
    }

    /// Adds one to the count and returns the new value.
    fn increment(store: &StateStore) -> Result<u64, Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = store.get_with_etag::<u64>(KEY)?;
            let (next, etag) = match current {
                Some(current) => (current.value + 1, current.etag),
                None => (1, None),
            };
            let mut write = SaveRequest::json(KEY, &next)?.concurrency(Concurrency::FirstWrite);
            if let Some(etag) = etag {
                write = write.etag(etag);
            }
            match store.save_many([write]) {
                Ok(()) => return Ok(next),
                Err(error) if error.is_etag_mismatch() && attempts < MAX_ATTEMPTS => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn answer(out: ResponseOutparam, status: u16, body: String) {
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("a valid status");
        let outgoing = response.body().expect("the response body");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = outgoing.write().expect("the body stream");
        stream.write_all(body.as_bytes()).expect("writing the body");
        stream.flush().expect("flushing the body");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("finishing the body");
    }
}

fn main() {
    eprintln!(
        "http-counter is an HTTP app: serve it with \
         `wasmdapr run --app-listen 127.0.0.1:8080 http-counter.wasm`"
    );
    std::process::exit(2);
}
