//! The guest side of the state benchmark (`crates/wasmdapr/benches/state.rs`):
//! reads one existing key of a state store N times and times every call
//! with the monotonic clock (`wasi:clocks`), so the figures hold only the
//! guest → host → store round trip, not process start or instantiation.
//!
//! - `typed STORE KEY N`: through the typed Dapr imports (`wasmdapr-sdk`).
//! - `http STORE KEY N`: through `wasi:http` to the Dapr HTTP API,
//!   `GET /v1.0/state/STORE/KEY` at `http://127.0.0.1:$DAPR_HTTP_PORT`
//!   (3500 when unset), as a Dapr app calls its sidecar.
//! - `hold STORE KEY MS`: one typed GET, then stays alive MS milliseconds
//!   (for measuring the memory of concurrently live instances).
//!
//! `typed` and `http` print one line `MODE n=N p50_us=… p99_us=… mean_us=…`.
//! A missing key or a failed call is an error (exit 1): a benchmark of
//! misses would measure nothing. So is a bad command line (a preview 2
//! component's exit code is 0 or 1 only).
//!
//! Preview 2 only: the build script skips its preview 1 build.

#[cfg(target_env = "p2")]
fn main() {
    use std::time::{Duration, Instant};

    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, store, key, count] = args.as_slice() else {
        eprintln!("usage: bench_state_get typed|http|hold STORE KEY N|MS");
        std::process::exit(1);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("not a number: {count}");
        std::process::exit(1);
    };
    let result = match mode.as_str() {
        "typed" | "hold" => {
            let state = wasmdapr_sdk::Dapr::new().state(store);
            let get = move || match state.get_bytes(key) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(format!("{key} does not exist in {store}")),
                Err(e) => Err(e.to_string()),
            };
            if mode == "hold" {
                get().map(|()| {
                    std::thread::sleep(Duration::from_millis(count));
                    Vec::new()
                })
            } else {
                time(count, get)
            }
        }
        "http" => {
            let port = std::env::var("DAPR_HTTP_PORT").unwrap_or_else(|_| "3500".into());
            let authority = format!("127.0.0.1:{port}");
            let path = format!("/v1.0/state/{store}/{key}");
            time(count, || http_get(&authority, &path))
        }
        other => {
            eprintln!("unknown mode {other}: typed, http or hold");
            std::process::exit(1);
        }
    };
    match result {
        Ok(mut latencies) if !latencies.is_empty() => {
            latencies.sort();
            let percentile = |p: f64| {
                let i = ((latencies.len() - 1) as f64 * p).round() as usize;
                latencies[i].as_secs_f64() * 1e6
            };
            let total: Duration = latencies.iter().sum();
            println!(
                "{mode} n={} p50_us={:.1} p99_us={:.1} mean_us={:.1}",
                latencies.len(),
                percentile(0.5),
                percentile(0.99),
                total.as_secs_f64() * 1e6 / latencies.len() as f64
            );
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    /// Runs `call` `count` times, timing each; the first failure stops it.
    fn time(
        count: u64,
        mut call: impl FnMut() -> Result<(), String>,
    ) -> Result<Vec<Duration>, String> {
        (0..count)
            .map(|_| {
                let start = Instant::now();
                call().map(|()| start.elapsed())
            })
            .collect()
    }
}

/// One `GET http://AUTHORITY/PATH`, its body read to the end; anything but
/// 200 is an error.
#[cfg(target_env = "p2")]
fn http_get(authority: &str, path: &str) -> Result<(), String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, IncomingBody, Method, OutgoingRequest, Scheme};
    use wasi::io::streams::StreamError;

    let request = OutgoingRequest::new(Fields::new());
    let url_ok = request.set_method(&Method::Get).is_ok()
        && request.set_scheme(Some(&Scheme::Http)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !url_ok {
        return Err(format!("bad URL http://{authority}{path}"));
    }
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "response already taken".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "no response body".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "no response body stream".to_owned())?;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(_) => {}
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    match status {
        200 => Ok(()),
        other => Err(format!("GET http://{authority}{path} answered {other}")),
    }
}

#[cfg(not(target_env = "p2"))]
fn main() {
    eprintln!("bench_state_get needs wasm32-wasip2");
    std::process::exit(2);
}
