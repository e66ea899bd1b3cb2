//! The ceiling of the serving benchmark (`bench/serve.sh`): a plain hyper
//! HTTP/1.1 server on a multi-threaded tokio runtime doing what the
//! `serve_hello` guest does (answer `METHOD PATH?QUERY`, a newline and the
//! request body, as `text/plain`), natively and with no Wasm, no instance
//! and no limits.
//!
//! ```text
//! cargo run --release -p wasmdapr-host --example hello_baseline -- 127.0.0.1:8081
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

async fn hello(
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut answer = format!("{} {path}\n", parts.method).into_bytes();
    answer.extend_from_slice(&body);
    Ok(hyper::Response::builder()
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(answer)))
        .expect("a valid response"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("hello_baseline on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
