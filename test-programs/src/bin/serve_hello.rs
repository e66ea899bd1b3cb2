//! An HTTP handler (`wasi:http/incoming-handler`): answers every request
//! with 200, `content-type: text/plain` and `METHOD PATH?QUERY` on the first
//! line, followed by the request body, so tests can check what reached it.
//! The hello handler of the serving benchmark, too.
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
mod handler {
    use std::io::{Read as _, Write as _};

    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    struct Hello;

    wasi::http::proxy::export!(Hello);

    impl Guest for Hello {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let method = match request.method() {
                Method::Get => "GET".to_owned(),
                Method::Post => "POST".to_owned(),
                Method::Put => "PUT".to_owned(),
                Method::Delete => "DELETE".to_owned(),
                Method::Patch => "PATCH".to_owned(),
                Method::Head => "HEAD".to_owned(),
                Method::Options => "OPTIONS".to_owned(),
                Method::Connect => "CONNECT".to_owned(),
                Method::Trace => "TRACE".to_owned(),
                Method::Other(other) => other,
            };
            let path = request.path_with_query().unwrap_or_default();
            let mut body = Vec::new();
            if let Ok(incoming) = request.consume() {
                if let Ok(mut stream) = incoming.stream() {
                    stream
                        .read_to_end(&mut body)
                        .expect("reading the request body");
                }
            }
            let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
                .expect("valid headers");
            let response = OutgoingResponse::new(headers);
            let outgoing = response.body().expect("the response body");
            ResponseOutparam::set(out, Ok(response));
            let mut stream = outgoing.write().expect("the body stream");
            stream
                .write_all(format!("{method} {path}\n").as_bytes())
                .expect("writing the body");
            stream.write_all(&body).expect("writing the body");
            stream.flush().expect("flushing the body");
            drop(stream);
            OutgoingBody::finish(outgoing, None).expect("finishing the body");
        }
    }
}

fn main() {
    eprintln!("serve_hello is an HTTP handler: serve it with `wasmdapr run --app-listen`");
    std::process::exit(2);
}
