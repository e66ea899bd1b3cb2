//! The state benchmark's lean clients and its floor server.
//!
//! Timing a sidecar with a heavyweight client measures the client: on this
//! 2-core machine reqwest spends about 27 µs of CPU per request and tonic's
//! `Channel` (a `Buffer` task in front of a pooled connection) about 36 µs,
//! against about 4 µs for redis-rs. So the sidecar rows use hyper's
//! connection-level clients (HTTP/1.1 keep-alive connections; HTTP/2 with
//! the Dapr SDK's generated gRPC client on top), which cost about as little
//! as the baseline's own client.
//!
//! The floor is a plain hyper server doing the same Redis read per request
//! (one `HGET`) and answering HTTP/1.1 or gRPC: what any process between a
//! client and Redis costs on this machine (two more loopback hops), with no
//! Dapr logic at all. A sidecar's added latency is read against it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use dapr::dapr::proto::runtime::v1::GetStateResponse;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use redis::AsyncCommands;
use tokio::net::{TcpListener, TcpStream};

async fn connect(addr: SocketAddr) -> TokioIo<TcpStream> {
    let stream = TcpStream::connect(addr).await.expect("connecting");
    stream.set_nodelay(true).unwrap();
    TokioIo::new(stream)
}

/// HTTP/1.1 over kept-alive connections: one per request in flight, reused
/// (sequential requests share one connection).
#[derive(Clone)]
pub struct Http1Client {
    addr: SocketAddr,
    idle: Arc<Mutex<Vec<http1::SendRequest<Full<Bytes>>>>>,
}

impl Http1Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Arc::default(),
        }
    }

    /// Sends `request` (path-only URI) and returns the status and body.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> (http::StatusCode, Bytes) {
        let idle = self.idle.lock().unwrap().pop();
        // A kept connection finishes its previous exchange before it takes
        // the next request; one the server closed is replaced.
        let ready = match idle {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match ready {
            Some(sender) => sender,
            None => {
                let (sender, connection) = http1::handshake(connect(self.addr).await)
                    .await
                    .expect("HTTP/1 handshake");
                tokio::spawn(connection);
                sender
            }
        };
        let response = sender.send_request(request).await.expect("HTTP request");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        self.idle.lock().unwrap().push(sender);
        (status, body)
    }
}

/// One HTTP/2 connection as a tower service, for tonic's generated clients
/// (`DaprClient::with_origin`), without `Channel`'s buffer task and pool.
#[derive(Clone)]
pub struct H2(http2::SendRequest<tonic::body::Body>);

impl H2 {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), connect(addr).await)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        H2(sender)
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// Starts the floor server on its own thread and runtime (a multi-thread
/// runtime, as the sidecar's) and returns its address. Every request reads
/// `key`'s `data` with one `HGET`; an `application/grpc` request is answered
/// as `GetState` (a `GetStateResponse`, `grpc-status: 0`), any other with
/// the bytes.
pub fn start_floor(key: &'static str) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let redis = redis::Client::open("redis://127.0.0.1:6379/")
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                let redis = redis.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        floor_answer(request, redis.clone(), key)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// gRPC needs trailers (a stream of frames); HTTP/1.1 gets a sized body.
type FloorBody = Either<
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
    Full<Bytes>,
>;

async fn floor_answer(
    request: http::Request<Incoming>,
    mut redis: redis::aio::MultiplexedConnection,
    key: &'static str,
) -> Result<http::Response<FloorBody>, Infallible> {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // Read the request to its end, as a server must.
    let _ = request.into_body().collect().await;
    let data: Option<Vec<u8>> = redis.hget(key, "data").await.unwrap();
    let data = data.unwrap_or_default();
    let body = if grpc {
        let message = GetStateResponse {
            data,
            etag: "1".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + message.len());
        framed.put_u8(0);
        framed.put_u32(message.len() as u32);
        framed.put_slice(&message);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        Either::Left(StreamBody::new(futures::stream::iter(vec![
            Ok(Frame::data(framed.freeze())),
            Ok(Frame::trailers(trailers)),
        ])))
    } else {
        Either::Right(Full::new(Bytes::from(data)))
    };
    let mut response = http::Response::new(body);
    let content_type = if grpc {
        "application/grpc"
    } else {
        "application/json"
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
