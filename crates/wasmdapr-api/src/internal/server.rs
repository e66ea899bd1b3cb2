//! The internal endpoint's server: TLS handshakes that require a client
//! certificate of the trust bundle, then `CallLocal` delivered to this
//! sidecar's own app as from the app id of that certificate.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dapr::dapr::proto::common::v1 as common;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::codegen::{Body, BoxFuture, StdError};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};
use wasmdapr_runtime::Runtime;
use wasmdapr_runtime::invoke::CALLEE_APP_ID;

use super::identity::{SidecarIdentity, SpiffeId};
use super::{
    CALL_LOCAL_PATH, ENVELOPE_ALLOWANCE, InternalInvokeRequest, InternalInvokeResponse,
    InternalStatus, SERVICE_NAME, headers_to_map, map_to_headers,
};
use crate::ApiConfig;
use crate::invoke::{content_type, invoke_request};
use crate::server::CountedStream;

/// The longest a TLS handshake may take before the connection is dropped,
/// so silent connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the internal endpoint on `listener` for `runtime`'s app, as
/// `identity`, until `shutdown` resolves. A peer must present a
/// certificate chaining to `identity`'s trust anchors, valid now, whose
/// SPIFFE id is of the same trust domain; the call is delivered as from
/// that id's app.
pub async fn serve_internal(
    listener: TcpListener,
    runtime: Arc<Runtime>,
    identity: &SidecarIdentity,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, id = %identity.id, "Dapr internal gRPC endpoint listening (mTLS)");
    }
    let acceptor = TlsAcceptor::from(identity.server_config().map_err(io::Error::other)?);
    let (tx, rx) = tokio::sync::mpsc::channel::<TlsConn>(64);
    // TCP connections are accepted as on the public gRPC API (bounded in
    // number, backoff and rare warnings when out of descriptors).
    let connections = crate::server::incoming(listener, config.server.max_connections);
    let accepting = AbortOnDrop(tokio::spawn(accept(connections, acceptor, tx)));
    let incoming = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (Ok::<_, io::Error>(conn), rx))
    });
    let service = InternalService {
        runtime,
        trust_domain: identity.id.trust_domain.clone().into(),
        max_message: config.max_body_size.saturating_add(ENVELOPE_ALLOWANCE),
    };
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(io::Error::other);
    drop(accepting);
    served
}

/// Aborts the accept loop when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections and runs each handshake in a task of its own, so a
/// slow or silent peer does not hold up the others.
async fn accept(
    connections: impl Stream<Item = io::Result<CountedStream>> + Send,
    acceptor: TlsAcceptor,
    tx: tokio::sync::mpsc::Sender<TlsConn>,
) {
    let mut connections = std::pin::pin!(connections);
    // The stream pauses on accept errors itself and never ends.
    while let Some(accepted) = connections.next().await {
        let Ok(tcp) = accepted else { continue };
        let remote = tcp.connect_info().remote_addr();
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let peer = PeerId(peer_id(&stream));
                    let _ = tx.send(TlsConn { stream, peer }).await;
                }
                Ok(Err(error)) => {
                    tracing::info!(?remote, %error, "internal endpoint: TLS handshake refused");
                }
                Err(_) => tracing::info!(?remote, "internal endpoint: TLS handshake timed out"),
            }
        });
    }
}

/// The SPIFFE id of the verified client certificate of `stream`.
fn peer_id(stream: &TlsStream<CountedStream>) -> Result<SpiffeId, String> {
    let (_, session) = stream.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| "no client certificate".to_owned())?;
    SpiffeId::of_certificate(leaf).map_err(|e| e.to_string())
}

/// Who the peer of a connection proved to be, handed to every call on it.
#[derive(Clone, Debug)]
struct PeerId(Result<SpiffeId, String>);

/// A TLS connection and its peer's identity.
struct TlsConn {
    stream: TlsStream<CountedStream>,
    peer: PeerId,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerId;

    fn connect_info(&self) -> PeerId {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// `dapr.proto.internals.v1.ServiceInvocation`, `CallLocal` only.
#[derive(Clone)]
struct InternalService {
    runtime: Arc<Runtime>,
    trust_domain: Arc<str>,
    max_message: usize,
}

impl tonic::server::NamedService for InternalService {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for InternalService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CALL_LOCAL_PATH {
            let message = format!(
                "{} is not served by this sidecar's internal endpoint",
                request.uri().path()
            );
            return Box::pin(async move { Ok(Status::unimplemented(message).into_http()) });
        }
        let service = self.clone();
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<InternalInvokeResponse, InternalInvokeRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(service.max_message), Some(usize::MAX));
            Ok(grpc.unary(CallLocal(service), request).await)
        })
    }
}

struct CallLocal(InternalService);

impl tonic::server::UnaryService<InternalInvokeRequest> for CallLocal {
    type Response = InternalInvokeResponse;
    type Future = BoxFuture<Response<InternalInvokeResponse>, Status>;

    fn call(&mut self, request: Request<InternalInvokeRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.call_local(request).await })
    }
}

impl InternalService {
    /// Delivers one forwarded call to the own app, as from the peer's app.
    async fn call_local(
        &self,
        request: Request<InternalInvokeRequest>,
    ) -> Result<Response<InternalInvokeResponse>, Status> {
        let caller = match request.extensions().get::<PeerId>() {
            Some(PeerId(Ok(id))) => id.clone(),
            Some(PeerId(Err(reason))) => {
                return Err(Status::unauthenticated(format!(
                    "the peer is not an authenticated sidecar: {reason}"
                )));
            }
            None => {
                return Err(Status::unauthenticated(
                    "the peer is not an authenticated sidecar",
                ));
            }
        };
        if caller.trust_domain != *self.trust_domain {
            return Err(Status::permission_denied(format!(
                "{caller} is not of trust domain {}",
                self.trust_domain
            )));
        }
        let InternalInvokeRequest {
            metadata, message, ..
        } = request.into_inner();
        let message =
            message.ok_or_else(|| Status::invalid_argument("CallLocal needs a message"))?;
        let target = metadata
            .get(CALLEE_APP_ID)
            .and_then(|list| list.values.first().cloned())
            .unwrap_or_else(|| self.runtime.app_id().to_string());
        let request =
            invoke_request(message, map_to_headers(metadata)).map_err(crate::grpc::status)?;
        tracing::debug!(caller = %caller, method = %request.method, "forwarded invocation");
        let response = self
            .runtime
            .invoke_forwarded(&caller.app_id, &target, request)
            .await
            .map_err(crate::grpc::status)?;
        let (parts, body) = response.into_parts();
        let content_type = content_type(&parts.headers);
        Ok(Response::new(InternalInvokeResponse {
            status: Some(InternalStatus {
                code: i32::from(parts.status.as_u16()),
                message: String::new(),
            }),
            headers: headers_to_map(&parts.headers),
            trailers: HashMap::new(),
            message: Some(common::InvokeResponse {
                data: Some(prost_types::Any {
                    type_url: String::new(),
                    value: body.to_vec(),
                }),
                content_type,
            }),
        }))
    }
}
