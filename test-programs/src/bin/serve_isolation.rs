//! An HTTP handler that would notice if it shared an instance with an
//! earlier request. Each request bumps a global counter and keeps its
//! `x-secret` header in a global (its bytes on the heap); it answers
//! `count=N previous=SECRET` with what it found *before* writing its own.
//! In a fresh instance per request that is always `count=1 previous=-`;
//! a reused instance would answer a count above 1 and another request's
//! secret.
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
mod handler {
    use std::io::Write as _;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    /// Requests this instance has served, this one included.
    static COUNT: AtomicU64 = AtomicU64::new(0);
    /// The secret of the previous request this instance served.
    static PREVIOUS: Mutex<Option<String>> = Mutex::new(None);

    struct Isolation;

    wasi::http::proxy::export!(Isolation);

    impl Guest for Isolation {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
            let secret = request
                .headers()
                .get("x-secret")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let previous = PREVIOUS
                .lock()
                .unwrap()
                .replace(secret)
                .unwrap_or_else(|| "-".to_owned());
            let response = OutgoingResponse::new(Fields::new());
            let body = response.body().expect("the response body");
            ResponseOutparam::set(out, Ok(response));
            let mut stream = body.write().expect("the body stream");
            stream
                .write_all(format!("count={count} previous={previous}").as_bytes())
                .expect("writing the body");
            stream.flush().expect("flushing the body");
            drop(stream);
            OutgoingBody::finish(body, None).expect("finishing the body");
        }
    }
}

fn main() {
    eprintln!("serve_isolation is an HTTP handler: serve it with `wasmdapr run --app-listen`");
    std::process::exit(2);
}
