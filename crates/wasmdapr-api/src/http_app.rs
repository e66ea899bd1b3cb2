//! [`HttpApp`]: the app channel to an ordinary process listening on
//! `--app-port`, as `daprd --app-port --app-protocol http` talks to its app.
//!
//! Deliveries are plain HTTP/1.1 requests to `http://{address}{path}` over
//! pooled keep-alive connections. When `APP_API_TOKEN` is set, every delivery
//! carries it as `dapr-api-token`, so the app can refuse callers that are not
//! its sidecar. Before the sidecar reports ready (and announces the app in
//! name resolution) it waits, as Dapr does, for the app's port to accept
//! connections and, with `--enable-app-health-check`, for the app's health
//! path (`/healthz` by default) to answer 2xx.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::HeaderValue;
use wasmdapr_runtime::{AppId, AppRequest, AppResponse, ChannelError, HttpAppChannel};

use crate::config::API_TOKEN_HEADER;
use crate::invoke::{describe, read_body};

/// Dapr's default `--app-health-check-path`.
pub const DEFAULT_HEALTH_PATH: &str = "/healthz";

/// Dapr's app health probe settings (`--app-health-check-path`,
/// `--app-health-probe-interval`, `--app-health-probe-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path probed with `GET`; 2xx is healthy.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// The longest one probe may take.
    pub timeout: Duration,
}

impl Default for HealthCheck {
    /// Dapr's defaults: `/healthz` every 5 s with a 500 ms timeout.
    fn default() -> Self {
        Self {
            path: DEFAULT_HEALTH_PATH.to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(500),
        }
    }
}

/// What an [`HttpApp`] (or a [`crate::GrpcApp`]) needs.
#[derive(Debug, Clone)]
pub struct HttpAppConfig {
    /// The app's id (for messages).
    pub app_id: AppId,
    /// Where it listens (`--app-channel-address`:`--app-port`).
    pub address: SocketAddr,
    /// `APP_API_TOKEN`: sent as `dapr-api-token` on every delivery.
    pub app_token: Option<String>,
    /// The health probe, when enabled.
    pub health: Option<HealthCheck>,
    /// The largest answer accepted (`--max-body-size`); larger ones fail
    /// the delivery instead of being buffered.
    pub max_body_size: usize,
    /// `--app-max-concurrency`: requests in flight to the app at once
    /// (none: no bound). As daprd's channels: to an HTTP app every request
    /// waits for a slot (invocations, events, batches, `GET
    /// /dapr/subscribe`); to a gRPC app only invocations do.
    pub max_concurrency: Option<usize>,
}

/// An app reached over HTTP.
#[derive(Debug, Clone)]
pub struct HttpApp {
    app: String,
    base: String,
    address: SocketAddr,
    token: Option<HeaderValue>,
    health: Option<HealthCheck>,
    max_body_size: usize,
    slots: AppSlots,
    client: reqwest::Client,
}

impl HttpApp {
    /// The channel described by `config`. Nothing is contacted yet.
    pub fn new(config: HttpAppConfig) -> Result<Self, ChannelError> {
        let app = config.app_id.to_string();
        let failed = |reason: String| ChannelError::Failed {
            app: app.clone(),
            reason,
        };
        let token = config
            .app_token
            .filter(|t| !t.is_empty())
            .map(|t| {
                HeaderValue::from_str(&t)
                    .map_err(|_| failed("APP_API_TOKEN is not a valid header value".into()))
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base: format!("http://{}", config.address),
            address: config.address,
            app,
            token,
            health: config.health,
            max_body_size: config.max_body_size,
            slots: AppSlots::new(config.max_concurrency),
            client,
        })
    }

    /// Where the app listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits until the app's port accepts connections and, when a health
    /// check is configured, its health path answers 2xx; gives up after
    /// `limit` (`None`: waits as long as it takes, logging every 5 s).
    pub async fn wait_ready(&self, limit: Option<Duration>) -> Result<(), ChannelError> {
        wait_ready(&self.app, self.address, self.health.as_ref(), limit, || {
            self.probe()
        })
        .await
    }

    /// The health check, if configured: the health path answers 2xx.
    async fn probe(&self) -> Result<(), String> {
        let Some(health) = &self.health else {
            return Ok(());
        };
        let url = format!("{}{}", self.base, health.path);
        let mut request = self.client.get(&url).timeout(health.timeout);
        if let Some(token) = &self.token {
            request = request.header(API_TOKEN_HEADER, token.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {} failed ({e})", health.path))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "GET {} answered {}",
                health.path,
                response.status()
            ))
        }
    }
}

/// Waits until the app's port accepts connections and `probe` (its health
/// check) passes, as daprd waits for its app:
/// every 50 ms (or the health interval, at most 250 ms), giving up after
/// `limit` (`None`: as long as it takes, logging every 5 s). Shared by
/// [`HttpApp`] and [`crate::GrpcApp`], whose probes differ.
pub(crate) async fn wait_ready<F, Fut>(
    app: &str,
    address: SocketAddr,
    health: Option<&HealthCheck>,
    limit: Option<Duration>,
    probe: F,
) -> Result<(), ChannelError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut last_log = started;
    let pause = health.map_or(Duration::from_millis(50), |h| {
        h.interval.min(Duration::from_millis(250))
    });
    loop {
        let ready = match tokio::net::TcpStream::connect(address).await {
            Ok(_) => probe().await,
            Err(e) => Err(format!("port {} is not open ({e})", address.port())),
        };
        let why = match ready {
            Ok(()) => {
                tracing::info!(%app, %address, "app is ready");
                return Ok(());
            }
            Err(reason) => reason,
        };
        if let Some(limit) = limit
            && started.elapsed() >= limit
        {
            return Err(ChannelError::Failed {
                app: app.to_owned(),
                reason: format!("not ready at {address} after {limit:?}: {why}"),
            });
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::warn!(%app, %address, reason = %why, "waiting for the app");
            last_log = Instant::now();
        }
        tokio::time::sleep(pause).await;
    }
}

/// `--app-max-concurrency`: slots for requests in flight to the app.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppSlots(Option<std::sync::Arc<tokio::sync::Semaphore>>);

impl AppSlots {
    /// `bound` slots (none or 0: no bound).
    pub(crate) fn new(bound: Option<usize>) -> Self {
        Self(
            bound
                .filter(|n| *n > 0)
                .map(|n| std::sync::Arc::new(tokio::sync::Semaphore::new(n))),
        )
    }

    /// Waits for a slot, held until the permit is dropped (a caller that
    /// gives up, e.g. on a delivery timeout, frees it).
    pub(crate) async fn acquire(
        &self,
        app: &str,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ChannelError> {
        match &self.0 {
            Some(slots) => {
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map(Some)
                    .map_err(|_| ChannelError::Failed {
                        app: app.to_owned(),
                        reason: "the channel is closed".into(),
                    })
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl HttpAppChannel for HttpApp {
    async fn call(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        // Held until the answer is read.
        let _slot = self.slots.acquire(&self.app).await?;
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut headers = parts.headers;
        if let Some(token) = &self.token {
            headers.insert(API_TOKEN_HEADER, token.clone());
        }
        let failed = |reason: String| ChannelError::Failed {
            app: self.app.clone(),
            reason,
        };
        let response = self
            .client
            .request(parts.method, format!("{}{path}", self.base))
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "cannot reach the app at {}: {}",
                    self.address,
                    describe(&e)
                ))
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, self.max_body_size)
            .await
            .map_err(|e| failed(format!("reading the app's answer: {e}")))?;
        let mut answer = http::Response::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}
