//! An HTTP handler whose routes misbehave on purpose, to prove that each
//! costs only its own request:
//!
//! - `/loop`: spins forever without calling the host (only an epoch
//!   deadline can stop it);
//! - `/sleep?ms=N`: blocks in a host call (`wasi:clocks` poll) for N ms;
//! - `/bomb`: allocates 1 MiB at a time until memory runs out;
//! - `/trap`: panics (a Wasm `unreachable` trap);
//! - `/silent`: returns without setting a response;
//! - `/big?bytes=N`: answers N bytes;
//! - anything else: `ok`.
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
mod handler {
    use std::io::Write as _;

    use wasi::exports::http::incoming_handler::Guest;
    use wasi::http::types::{
        Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    struct Hostile;

    wasi::http::proxy::export!(Hostile);

    fn query_number(path: &str, name: &str) -> u64 {
        path.split_once('?')
            .into_iter()
            .flat_map(|(_, query)| query.split('&'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0)
    }

    fn answer(out: ResponseOutparam, bytes: &[u8]) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("the response body");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().expect("the body stream");
        // `blocking_write_and_flush` takes at most 4096 bytes at a time.
        for chunk in bytes.chunks(4096) {
            stream.write_all(chunk).expect("writing the body");
        }
        stream.flush().expect("flushing the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finishing the body");
    }

    impl Guest for Hostile {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let path = request.path_with_query().unwrap_or_default();
            let route = path.split('?').next().unwrap_or_default();
            match route {
                "/loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "/sleep" => {
                    let ms = query_number(&path, "ms");
                    wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                    answer(out, b"slept");
                }
                "/bomb" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "/trap" => panic!("this handler traps on purpose"),
                // Keeps the outparam unset (neither set nor dropped) and returns.
                "/silent" => std::mem::forget(out),
                "/big" => answer(out, &vec![b'x'; query_number(&path, "bytes") as usize]),
                _ => answer(out, b"ok"),
            }
        }
    }
}

fn main() {
    eprintln!("serve_hostile is an HTTP handler: serve it with `wasmdapr run --app-listen`");
    std::process::exit(2);
}
