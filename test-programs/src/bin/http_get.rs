//! GETs every URL in `argv[1..]` through `wasi:http/outgoing-handler`: all
//! requests are sent first, then each response is awaited in order, so
//! several are in flight at once. For each URL it prints
//! `GET URL -> STATUS` and the body on the next line, or
//! `GET URL -> error CODE` when the host refused or the request failed.
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
fn main() {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, IncomingBody, Method, OutgoingRequest, Scheme};
    use wasi::io::streams::StreamError;

    let urls: Vec<String> = std::env::args().skip(1).collect();
    let mut pending = Vec::new();
    for url in &urls {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_owned()),
        };
        let request = OutgoingRequest::new(Fields::new());
        request.set_method(&Method::Get).unwrap();
        request.set_scheme(Some(&scheme)).unwrap();
        request.set_authority(Some(authority)).unwrap();
        request.set_path_with_query(Some(path)).unwrap();
        pending.push(outgoing_handler::handle(request, None));
    }
    for (url, sent) in urls.iter().zip(pending) {
        let future = match sent {
            Ok(future) => future,
            Err(code) => {
                println!("GET {url} -> error {code:?}");
                continue;
            }
        };
        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                println!("GET {url} -> error {code:?}");
                continue;
            }
            Err(()) => {
                println!("GET {url} -> error response already taken");
                continue;
            }
        };
        println!("GET {url} -> {}", response.status());
        let body = response.consume().unwrap();
        let stream = body.stream().unwrap();
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    println!("body error: {}", e.to_debug_string());
                    break;
                }
            }
        }
        drop(stream);
        IncomingBody::finish(body);
        println!("{}", String::from_utf8_lossy(&bytes));
    }
}

#[cfg(not(target_env = "p2"))]
fn main() {
    eprintln!("http_get needs wasm32-wasip2");
    std::process::exit(2);
}
