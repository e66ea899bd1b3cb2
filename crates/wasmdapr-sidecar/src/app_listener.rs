//! A served Wasm app: a component exporting `wasi:http/incoming-handler`
//! (what `wasmdapr run` does with one), served, not run to completion.
//!
//! The [`WasmApp`] becomes the runtime's app channel, so Dapr invocations
//! reach it; `--app-listen` also serves it to the outside as a public HTTP
//! server (as `spin up` does), where the app's own limits read as HTTP:
//! refused over `--max-concurrency` → 503 with `Retry-After`, past
//! `--timeout` → 504, a trap or `--max-memory` → 500, each with a short
//! plain-text reason.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::error::Error as _;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::LengthLimitError;
use tokio::net::TcpListener;
use wasmdapr_api::ServerLimits;
use wasmdapr_host::{App, Capabilities, HostError, Limits, WasmApp, WasmAppConfig};
use wasmdapr_runtime::ChannelError;

use crate::{Sidecar, SidecarError, termination};

/// How long a stopping server waits for the requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// How a Wasm app is served.
#[derive(Clone, Copy, Debug)]
pub struct ServeConfig {
    /// Also serve the app to the outside on this address (`--app-listen`;
    /// port 0 picks a free one).
    pub listen: Option<SocketAddr>,
    /// Requests the app serves at once, each in its own instance
    /// (`--max-concurrency`); as many more may wait.
    pub max_concurrency: usize,
    /// The largest request body accepted, and the largest answer.
    pub max_body_size: usize,
    /// Timeouts and the connection bound of the public server.
    pub server: ServerLimits,
}

/// A Wasm app being served until Ctrl-C, SIGTERM or the shutdown API: as the
/// app channel of its sidecar's runtime when there is one (so invocations
/// reach it), and on [`ServeConfig::listen`] when given.
pub struct ServedApp {
    listen_addr: Option<SocketAddr>,
    server: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    stop: tokio::sync::watch::Sender<bool>,
    sidecar: Option<Sidecar>,
}

impl ServedApp {
    /// Makes `app` (an HTTP handler) the app channel of `sidecar`'s runtime
    /// and opens its public listener. Without either, nothing could reach
    /// the app: [`ServeError::Unreachable`].
    pub async fn start(
        app: App,
        caps: Capabilities,
        limits: Limits,
        config: ServeConfig,
        sidecar: Option<Sidecar>,
    ) -> Result<Self, ServeError> {
        if sidecar.is_none() && config.listen.is_none() {
            return Err(ServeError::Unreachable {
                app: app.id().to_string(),
            });
        }
        let app_config = WasmAppConfig {
            max_body_size: config.max_body_size,
            ..WasmAppConfig::new(config.max_concurrency)
        };
        let app = Arc::new(WasmApp::new(app, caps, limits, app_config)?);
        if let Some(sidecar) = &sidecar {
            // A fresh runtime has no channel yet; the app is its one app.
            // Events reach the Wasm app on the same channel as invocations;
            // subscribed before connected, so ready means subscribed.
            sidecar.start_subscriptions(app.clone()).await;
            let _ = sidecar.runtime.set_app_channel(app.clone());
        }
        let stop = tokio::sync::watch::channel(false);
        let (listen_addr, server) = match config.listen {
            Some(addr) => {
                let listener = AppListener::bind(addr).await?;
                let addr = listener.addr;
                let mut stopped = stop.1.clone();
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let server = tokio::spawn(listener.serve(
                    app,
                    config.max_body_size,
                    config.server,
                    shutdown,
                ));
                (Some(addr), Some(server))
            }
            None => (None, None),
        };
        Ok(Self {
            listen_addr,
            server,
            stop: stop.0,
            sidecar,
        })
    }

    /// Where the public listener listens, if there is one.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// Serves until the sidecar stops (the shutdown API, Ctrl-C or SIGTERM)
    /// or, without one, until Ctrl-C or SIGTERM; then lets the requests in
    /// flight finish, for at most [`DRAIN`].
    pub async fn wait(self) -> Result<(), ServeError> {
        let waited = match self.sidecar {
            Some(sidecar) => sidecar.wait().await.map_err(ServeError::from),
            None => {
                termination().await;
                Ok(())
            }
        };
        let _ = self.stop.send(true);
        if let Some(server) = self.server {
            match tokio::time::timeout(DRAIN, server).await {
                Ok(Ok(served)) => served?,
                Ok(Err(join)) => tracing::error!(%join, "the app's HTTP server panicked"),
                Err(_) => {
                    tracing::warn!(?DRAIN, "requests still in flight at shutdown were dropped")
                }
            }
        }
        waited
    }
}

/// Why the public server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be opened.
    #[error("cannot listen on {addr} for the app (--app-listen): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Nothing could reach the app: no sidecar of its own (it forwards to
    /// `--dapr-endpoint`) and no `--app-listen`.
    #[error(
        "app '{app}' is an HTTP handler, but with --dapr-endpoint nothing delivers to it; \
         pass --app-listen ADDR to serve it"
    )]
    Unreachable {
        /// The app id.
        app: String,
    },
    /// The server failed while running.
    #[error("the app's HTTP server (--app-listen) stopped: {0}")]
    Serve(#[source] std::io::Error),
    /// The app could not be prepared for serving.
    #[error(transparent)]
    App(#[from] HostError),
    /// The app's sidecar failed.
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
}

/// The public HTTP server of a Wasm app, bound and ready to serve.
pub struct AppListener {
    listener: TcpListener,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl AppListener {
    /// Opens `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let listen = |source| ServeError::Listen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        Ok(Self { listener, addr })
    }

    /// Serves `app` until `shutdown` completes, then finishes the requests
    /// in flight. Request bodies are read only once a request is admitted,
    /// at most `max_body_size` bytes (else 413). Connections are timed and
    /// bounded by `server`, as on the Dapr HTTP API.
    pub async fn serve(
        self,
        app: Arc<WasmApp>,
        max_body_size: usize,
        server: ServerLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Handler { app, max_body_size });
        wasmdapr_api::server::serve(self.listener, router, server, shutdown)
            .await
            .map_err(ServeError::Serve)
    }
}

#[derive(Clone)]
struct Handler {
    app: Arc<WasmApp>,
    max_body_size: usize,
}

/// One public request: admitted (or refused) before its body is read, then
/// served in a fresh instance.
async fn handle(State(handler): State<Handler>, request: Request) -> Response {
    let admitted = match handler.app.admit() {
        Ok(admitted) => admitted,
        Err(error) => return channel_error(&error),
    };
    let (parts, body) = request.into_parts();
    let limit = handler.max_body_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        // A body without a declared length (chunked) is cut off while it
        // is read: still the 413 the declared one gets.
        Err(error) if error.source().is_some_and(|e| e.is::<LengthLimitError>()) => {
            return too_large(limit);
        }
        Err(error) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body (at most {limit} bytes): {error}"),
            );
        }
    };
    let request = axum::http::Request::from_parts(parts, body);
    match admitted.serve(request).await {
        Ok(response) => response.map(Body::from),
        Err(error) => channel_error(&error),
    }
}

fn too_large(limit: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// The HTTP answer for an app that could not answer.
fn channel_error(error: &ChannelError) -> Response {
    match error {
        ChannelError::Busy { retry_after, .. } => {
            let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_seconds(*retry_after));
            response
        }
        ChannelError::Timeout { .. } => plain(StatusCode::GATEWAY_TIMEOUT, error.to_string()),
        ChannelError::Failed { .. } => plain(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
fn retry_after_seconds(after: std::time::Duration) -> HeaderValue {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each channel error has its status; Busy carries `Retry-After`.
    #[test]
    fn channel_errors_map_to_statuses() {
        let app = "a".to_owned();
        let busy = channel_error(&ChannelError::Busy {
            app: app.clone(),
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "2");
        let timeout = channel_error(&ChannelError::Timeout {
            app: app.clone(),
            limit: Duration::from_secs(1),
        });
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        let failed = channel_error(&ChannelError::Failed {
            app,
            reason: "trapped".into(),
        });
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            failed.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    /// `Retry-After` never says 0 and rounds fractions up.
    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::ZERO), "1");
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), "3");
        assert_eq!(retry_after_seconds(Duration::from_millis(3001)), "4");
    }
}
