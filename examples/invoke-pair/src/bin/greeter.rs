//! The callee of the invoke pair: an HTTP handler (`wasi:http/incoming-handler`)
//! that `wasmdapr run` serves as a Dapr app, one fresh instance per request.
//!
//! - `POST /hello` with a name in the body answers `Hello, <name>!` and the
//!   caller's trace id (the `traceparent` the sidecars propagate);
//! - `GET /healthz` answers 204;
//! - anything else is 404, which reaches the caller unchanged.

#[cfg(target_env = "p2")]
mod handler {
    use std::io::{Read as _, Write as _};

    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    struct Greeter;

    wasi::http::proxy::export!(Greeter);

    /// Sends `status` with a plain-text `body`.
    fn answer(out: ResponseOutparam, status: u16, body: &str) {
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .expect("a valid header");
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

    impl Guest for Greeter {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let path = request.path_with_query().unwrap_or_default();
            let trace = request
                .headers()
                .get("traceparent")
                .into_iter()
                .next()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            match (request.method(), path.as_str()) {
                (Method::Get, "/healthz") => answer(out, 204, ""),
                (Method::Post, "/hello") => {
                    let mut name = Vec::new();
                    if let Ok(body) = request.consume()
                        && let Ok(mut stream) = body.stream()
                    {
                        // A body cut short is greeted as far as it came.
                        let _ = stream.read_to_end(&mut name);
                    }
                    let name = String::from_utf8_lossy(&name);
                    let name = if name.trim().is_empty() {
                        "stranger".into()
                    } else {
                        name
                    };
                    // The trace id is the second field of the traceparent.
                    let trace_id = trace.split('-').nth(1).unwrap_or("none");
                    answer(
                        out,
                        200,
                        &format!("Hello, {}! (trace {trace_id})", name.trim()),
                    );
                }
                _ => answer(out, 404, &format!("no method {path}")),
            }
        }
    }
}

fn main() {
    eprintln!("the greeter is an HTTP handler: serve it with `wasmdapr run`");
    std::process::exit(2);
}
