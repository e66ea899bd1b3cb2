//! Outbound HTTP of guests, limited by an [`OutboundPolicy`].
//!
//! Both ways a guest sends a request go through one door,
//! `Outbound::send`: `wasi:http/outgoing-handler` for preview 2 components
//! (through the `WasiHttpHooks` impl of `OutboundHooks`) and the legacy
//! [`wasi_experimental_http`](crate::experimental_http) ABI of preview 1
//! modules. There, *before* any connection is opened:
//!
//! 1. The destination (scheme, host, port) must be granted by
//!    [`AllowedHosts`]; otherwise the guest gets `HTTP-request-denied`
//!    (`wasi:http`) or error 7 (the legacy ABI) and the host logs a warning
//!    naming the destination.
//! 2. At most [`OutboundPolicy::max_in_flight`] requests of one instance are
//!    in flight (from the call until the response body is dropped); one more
//!    fails at once with `connection-limit-reached` (error 13 of the legacy
//!    ABI) rather than queueing, so a guest cannot pile up unbounded host
//!    work.
//! 3. Connect, first-byte and between-bytes timeouts are capped at
//!    [`OutboundPolicy::timeout`] (a guest may ask for less, never more).
//! 4. A request to the embedded Dapr sidecar's HTTP address ([`LocalDapr`])
//!    is served in-process by the sidecar's own router: no TCP, and the host
//!    adds `dapr-api-token` itself, so the guest never holds the token. The
//!    sidecar is reachable only when granted, by `--allow-host` or by the
//!    implicit Dapr grant ([`LocalDapr::implicit_grant`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::{AllowedHosts, default_port, normalize_host};

/// The error type of a [`BoxBody`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request or response exchanged with a [`LocalHttp`] handler.
pub type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`BoxBody`] (e.g. an axum response body).
pub fn box_body<B>(body: B) -> BoxBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An HTTP handler served in-process, without a socket: the embedding binary
/// implements it over the Dapr sidecar's router. The host knows nothing of
/// the router's framework.
pub trait LocalHttp: Send + Sync {
    /// Answers one request. Failures are HTTP responses (e.g. 500), not errors.
    fn handle(
        &self,
        request: http::Request<BoxBody>,
    ) -> BoxFuture<'static, http::Response<BoxBody>>;
}

/// The embedded sidecar's HTTP API, served in-process to guests that call
/// its address.
#[derive(Clone)]
pub struct LocalDapr {
    /// The address the sidecar's HTTP API listens on (e.g. `127.0.0.1:3500`).
    /// Requests to it (or, when it is a loopback or unspecified address, to
    /// `localhost` or any loopback address on its port) are served in-process.
    pub addr: SocketAddr,
    /// Added to every in-process request as `dapr-api-token`, replacing any
    /// the guest set.
    pub api_token: Option<String>,
    /// Whether the app may call the sidecar without an `--allow-host` for its
    /// address (the implicit Dapr grant; `wasmdapr run` grants it by default).
    pub implicit_grant: bool,
    /// The handler.
    pub handler: Arc<dyn LocalHttp>,
}

impl fmt::Debug for LocalDapr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDapr")
            .field("addr", &self.addr)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("implicit_grant", &self.implicit_grant)
            .finish_non_exhaustive()
    }
}

impl LocalDapr {
    /// Whether `http://host:port` (host normalized) is this sidecar.
    fn serves(&self, scheme: &str, host: &str, port: u16) -> bool {
        if scheme != "http" || port != self.addr.port() {
            return false;
        }
        let ip = self.addr.ip();
        let any_loopback = ip.is_loopback() || ip.is_unspecified();
        match host.parse::<IpAddr>() {
            Ok(h) => h == ip || (any_loopback && h.is_loopback()),
            Err(_) => any_loopback && host == "localhost",
        }
    }
}

/// The HTTP API of a Dapr sidecar elsewhere (`wasmdapr run --dapr-endpoint
/// … --dapr-http-endpoint URL`), reached over the network. Like
/// [`LocalDapr`], it is granted implicitly unless withdrawn, and the host
/// adds `dapr-api-token` to requests to it, so the guest never holds the
/// token.
#[derive(Clone)]
pub struct RemoteDaprHttp {
    scheme: String,
    host: String,
    port: u16,
    /// Added to every request to it as `dapr-api-token`, replacing any the
    /// guest set.
    pub api_token: Option<String>,
    /// Whether the app may call it without an `--allow-host` for its address.
    pub implicit_grant: bool,
}

impl RemoteDaprHttp {
    /// The sidecar at `endpoint` (`http[s]://HOST[:PORT]`); `None` when it
    /// has no host or its scheme is not HTTP.
    pub fn new(
        endpoint: &http::Uri,
        api_token: Option<String>,
        implicit_grant: bool,
    ) -> Option<Self> {
        let scheme = endpoint.scheme_str()?.to_ascii_lowercase();
        let port = endpoint.port_u16().or_else(|| default_port(&scheme))?;
        Some(Self {
            host: normalize_host(endpoint.host()?),
            scheme,
            port,
            api_token,
            implicit_grant,
        })
    }

    /// Whether `scheme://host:port` (normalized) is this sidecar.
    fn is(&self, scheme: &str, host: &str, port: u16) -> bool {
        scheme == self.scheme && host == self.host && port == self.port
    }
}

impl fmt::Debug for RemoteDaprHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDaprHttp")
            .field(
                "endpoint",
                &format!("{}://{}:{}", self.scheme, self.host, self.port),
            )
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("implicit_grant", &self.implicit_grant)
            .finish()
    }
}

/// What a guest may do over outbound HTTP.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// The destinations it may reach (`--allow-host`).
    pub allowed: AllowedHosts,
    /// Requests one instance may have in flight at once
    /// (`--max-outbound-requests`).
    pub max_in_flight: usize,
    /// The longest connect, first-byte and between-bytes wait
    /// (`--outbound-timeout`).
    pub timeout: Duration,
    /// The embedded sidecar served in-process, if any.
    pub local: Option<Arc<LocalDapr>>,
    /// A sidecar elsewhere whose HTTP API the app may call, if any.
    pub remote: Option<Arc<RemoteDaprHttp>>,
}

impl OutboundPolicy {
    /// Default of [`OutboundPolicy::max_in_flight`].
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
    /// Default of [`OutboundPolicy::timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for OutboundPolicy {
    /// Nothing allowed, no local sidecar, default limits.
    fn default() -> Self {
        Self {
            allowed: AllowedHosts::default(),
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            timeout: Self::DEFAULT_TIMEOUT,
            local: None,
            remote: None,
        }
    }
}

/// One instance's outbound HTTP: its [`OutboundPolicy`] and the count of
/// its requests in flight. Every request of the instance, whichever ABI it
/// came through, is sent by [`Outbound::send`].
pub(crate) struct Outbound {
    policy: OutboundPolicy,
    in_flight: Arc<Semaphore>,
}

/// What [`Outbound::send`] resolves to: the response (its body holding the
/// in-flight permit) and the connection's I/O driver, which the caller must
/// keep polling (spawn it) for the body to arrive.
pub(crate) type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// Where a request goes, once the policy has let it through.
enum Route {
    Local(Arc<LocalDapr>),
    /// Over the network, with the host's `dapr-api-token` when the
    /// destination is a [`RemoteDaprHttp`] that has one.
    Network {
        api_token: Option<String>,
    },
}

impl Outbound {
    pub(crate) fn new(policy: OutboundPolicy) -> Self {
        let in_flight = Arc::new(Semaphore::new(
            policy.max_in_flight.min(Semaphore::MAX_PERMITS),
        ));
        Self { policy, in_flight }
    }

    /// Decides where `uri` may go, or why it may not.
    fn route(&self, uri: &http::Uri) -> Result<Route, HttpError> {
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let Some(host) = uri.host() else {
            tracing::warn!(%uri, "outbound request refused: no host");
            return Err(HttpError::HttpRequestUriInvalid);
        };
        let host = normalize_host(host);
        // A port that is not a u16 (`:65616`) must not fall back to the
        // scheme's default port and be checked as that: it is no port at
        // all. (`Uri::port` is `None` for it too, so the text is looked at.)
        let written_port = uri
            .authority()
            .and_then(|a| a.as_str().rsplit_once(':'))
            .filter(|(host, _)| !host.contains('[') || host.ends_with(']'))
            .map(|(_, port)| port)
            .filter(|port| !port.is_empty());
        if written_port.is_some() && uri.port_u16().is_none() {
            tracing::warn!(%uri, "outbound request refused: the port is not 0-65535");
            return Err(HttpError::HttpRequestUriInvalid);
        }
        let Some(port) = uri.port_u16().or_else(|| default_port(&scheme)) else {
            tracing::warn!(%uri, "outbound request refused: unknown scheme");
            return Err(HttpError::HttpRequestDenied);
        };
        let allowed = self.policy.allowed.check(&scheme, &host, port);
        if let Some(local) = &self.policy.local
            && local.serves(&scheme, &host, port)
        {
            // The sidecar may be granted under the address the guest used
            // or under its canonical address.
            let canonical =
                self.policy
                    .allowed
                    .check("http", &local.addr.ip().to_string(), local.addr.port());
            if local.implicit_grant || allowed.is_ok() || canonical.is_ok() {
                return Ok(Route::Local(local.clone()));
            }
        }
        if let Some(remote) = &self.policy.remote
            && remote.is(&scheme, &host, port)
            && (remote.implicit_grant || allowed.is_ok())
        {
            return Ok(Route::Network {
                api_token: remote.api_token.clone(),
            });
        }
        match allowed {
            Ok(()) => Ok(Route::Network { api_token: None }),
            Err(denied) => {
                tracing::warn!(destination = %format!("{scheme}://{host}:{port}"), "{denied}");
                Err(HttpError::HttpRequestDenied)
            }
        }
    }

    /// The guest's timeouts, each capped by the policy's.
    fn options(&self, requested: Option<RequestOptions>) -> RequestOptions {
        let cap = |t: Option<Duration>| {
            Some(t.map_or(self.policy.timeout, |t| t.min(self.policy.timeout)))
        };
        let requested = requested.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(requested.connect_timeout),
            first_byte_timeout: cap(requested.first_byte_timeout),
            between_bytes_timeout: cap(requested.between_bytes_timeout),
        }
    }

    /// Sends `request` (an absolute URI, its `host` header already set)
    /// under the policy. It is refused at once, with nothing sent, when its
    /// destination is not granted (`HttpRequestDenied`,
    /// `HttpRequestUriInvalid`) or the instance has too many requests in
    /// flight (`ConnectionLimitReached`); otherwise it is served in-process
    /// by the local sidecar or sent over the network.
    pub(crate) fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<ResponseFuture, HttpError> {
        let route = self.route(request.uri())?;
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!(
                uri = %request.uri(),
                limit = self.policy.max_in_flight,
                "outbound request refused: too many requests in flight"
            );
            HttpError::ConnectionLimitReached
        })?;
        let options = self.options(options);
        Ok(match route {
            Route::Network { api_token } => {
                set_api_token(&mut request, api_token.as_deref())?;
                Box::new(async move {
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(io);
                    Ok((hold(response.map(BodyExt::boxed_unsync), permit), io))
                })
            }
            Route::Local(local) => {
                set_api_token(&mut request, local.api_token.as_deref())?;
                let request = request.map(|body| body.map_err(BoxError::from).boxed_unsync());
                let first_byte = options.first_byte_timeout.unwrap_or(self.policy.timeout);
                let served = local.handler.handle(request);
                Box::new(async move {
                    let response = tokio::time::timeout(first_byte, served)
                        .await
                        .map_err(|_| HttpError::HttpResponseTimeout)?;
                    let response = response.map(|body| {
                        body.map_err(|e| HttpError::InternalError(Some(e.to_string())))
                            .boxed_unsync()
                    });
                    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                        Box::new(async { Ok(()) });
                    Ok((hold(response, permit), io))
                })
            }
        })
    }
}

/// The per-instance [`WasiHttpHooks`] of a component: its [`Outbound`].
pub(crate) struct OutboundHooks(Outbound);

impl OutboundHooks {
    pub(crate) fn new(policy: OutboundPolicy) -> Self {
        Self(Outbound::new(policy))
    }
}

/// Puts the host's Dapr API token on a request to a sidecar, replacing any
/// the guest set.
fn set_api_token(
    request: &mut http::Request<WasiBody>,
    token: Option<&str>,
) -> Result<(), HttpError> {
    if let Some(token) = token {
        let value =
            http::HeaderValue::from_str(token).map_err(|_| HttpError::ConfigurationError)?;
        request.headers_mut().insert("dapr-api-token", value);
    }
    Ok(())
}

/// Ties `permit` to the response body: the request stays in flight until
/// the guest has dropped the body.
fn hold(
    response: http::Response<WasiBody>,
    permit: OwnedSemaphorePermit,
) -> http::Response<WasiBody> {
    response.map(|body| {
        body.map_frame(move |frame| {
            let _ = &permit;
            frame
        })
        .boxed_unsync()
    })
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        match self.0.send(request, options) {
            Ok(future) => future,
            Err(error) => Box::new(async move { Err(error) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port above 65535 is an invalid URL, not the scheme's default port:
    /// `http://127.0.0.1:65616` (65616 = 65536 + 80) is refused though
    /// `http://127.0.0.1` (port 80) is granted.
    #[test]
    fn out_of_range_port_is_invalid() {
        let outbound = Outbound::new(OutboundPolicy {
            allowed: AllowedHosts::parse(&["http://127.0.0.1", "http://*:*"]).unwrap(),
            ..OutboundPolicy::default()
        });
        let route = |url: &str| outbound.route(&url.parse::<http::Uri>().unwrap());
        assert!(matches!(
            route("http://127.0.0.1/"),
            Ok(Route::Network { .. })
        ));
        assert!(matches!(
            route("http://127.0.0.1:80/"),
            Ok(Route::Network { .. })
        ));
        for url in ["http://[::1]/", "http://[::1]:8080/", "http://h:/"] {
            assert!(
                matches!(route(url), Ok(Route::Network { .. })),
                "{url} was refused"
            );
        }
        for url in [
            "http://[::1]:65616/",
            "http://127.0.0.1:65616/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:99999999999/",
        ] {
            assert!(
                matches!(route(url), Err(HttpError::HttpRequestUriInvalid)),
                "{url} was not refused as invalid"
            );
        }
    }
}
