//! [`WasmApp`]: a component exporting `wasi:http/incoming-handler`, served
//! as a Dapr app, one fresh instance per request.
//!
//! Every request gets its own instance, allocated from the engine's pooling
//! allocator through the app's pre-linked `InstancePre` (a slot and a few
//! copy-on-write page mappings, no linking), with its own store, WASI context,
//! Dapr grant, outbound HTTP hooks and memory limiter built from the app's
//! [`Capabilities`] and [`Limits`], exactly as [`App::run`] builds them for a
//! command. When the request ends the instance is dropped: no global, no
//! linear memory and no resource of one request is visible to the next.
//!
//! # Limits, and what a caller sees when one is hit
//!
//! - **Concurrency**: at most [`WasmAppConfig::max_concurrency`] instances run
//!   at once; up to [`WasmAppConfig::max_queued`] more requests wait for a
//!   slot. A request beyond both is refused at once with
//!   [`ChannelError::Busy`] (HTTP 503 with `Retry-After`), so load beyond the
//!   limits costs a refusal, never unbounded memory. A queued request that
//!   gets no slot within `--timeout` is refused the same way.
//! - **Time** (`--timeout`, per request, from the moment it gets a slot): the
//!   epoch callback makes guest code yield to tokio every epoch tick, so a
//!   spinning guest never holds a worker thread for long, and traps it once
//!   the deadline has passed; a `tokio` timeout also stops a guest blocked in
//!   a host call. Either way the instance is discarded and the caller gets
//!   [`ChannelError::Timeout`] (HTTP 504).
//! - **Memory** (`--max-memory`, per instance): a growth past the limit traps
//!   that instance only: [`ChannelError::Failed`] (HTTP 500).
//! - **Response size**: the response body is collected up to
//!   [`WasmAppConfig::max_body_size`]; a larger one fails the request rather
//!   than the host.
//!
//! A trap, a handler that returns without answering, or one that answers
//! with a `wasi:http` error code is [`ChannelError::Failed`] too; the next
//! request runs in a new instance as if nothing happened.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use wasmdapr_runtime::{AppRequest, AppResponse, ChannelError, HttpAppChannel};

use crate::app::{App, ComponentState};
use crate::capabilities::Capabilities;
use crate::error::HostError;
use crate::limits::Limits;

/// How a [`WasmApp`] shares itself between concurrent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmAppConfig {
    /// Instances that may run at once (`--max-concurrency`). Each may hold up
    /// to `--max-memory`, so this times that bounds the app's memory.
    pub max_concurrency: usize,
    /// Requests that may wait for a slot beyond those running. A waiting
    /// request holds only its buffered body.
    pub max_queued: usize,
    /// The largest response body collected from the handler.
    pub max_body_size: usize,
    /// The `Retry-After` hint of a refusal.
    pub retry_after: Duration,
}

impl WasmAppConfig {
    /// The default of `--max-concurrency`: the default size of the engine's
    /// instance pool ([`crate::EngineConfig::default`]), so every slot can
    /// get an instance. Handlers mostly wait on I/O (the state store, other
    /// apps), which holds an instance but no thread, so a limit tied to the
    /// number of cores would leave the CPU idle; the bound that matters is
    /// memory, at most this many times `--max-memory`.
    pub const DEFAULT_MAX_CONCURRENCY: usize = 100;

    /// The defaults for `max_concurrency` slots: as many may queue as run
    /// (a burst of twice the limit is absorbed, not refused), responses up
    /// to 4 MiB (Dapr's default body limit), retry after a second.
    pub fn new(max_concurrency: usize) -> Self {
        Self {
            max_concurrency,
            max_queued: max_concurrency,
            max_body_size: 4 << 20,
            retry_after: Duration::from_secs(1),
        }
    }
}

impl Default for WasmAppConfig {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_CONCURRENCY)
    }
}

/// A loaded HTTP-handler component served as the app of a Dapr runtime (an
/// [`AppChannel`]) or, by the binary, on a public address.
pub struct WasmApp {
    app: App,
    pre: ProxyPre<ComponentState>,
    caps: Capabilities,
    limits: Limits,
    config: WasmAppConfig,
    /// Permits for running and queued requests together: the admission test.
    admitted: Semaphore,
    /// Permits for running requests: the instance slots.
    running: Semaphore,
}

/// A request that was admitted (it holds a place among the running or queued
/// ones) and may now be served; see [`WasmApp::admit`].
pub struct Admitted<'a> {
    app: &'a WasmApp,
    _place: SemaphorePermit<'a>,
}

impl WasmApp {
    /// Serves `app`, which must export `wasi:http/incoming-handler`
    /// ([`App::is_handler`]); each instance is granted `caps` (but never the
    /// host's stdin, which concurrent requests cannot share) under `limits`.
    pub fn new(
        app: App,
        mut caps: Capabilities,
        limits: Limits,
        config: WasmAppConfig,
    ) -> Result<Self, HostError> {
        let pre = app
            .handler()
            .cloned()
            .ok_or_else(|| HostError::NotRunnable {
                app: app.id().to_string(),
                reason: "it does not export `wasi:http/incoming-handler`, so it cannot be served"
                    .into(),
            })?;
        if config.max_concurrency == 0 {
            return Err(HostError::Capability {
                what: "--max-concurrency 0".into(),
                reason: "at least one request must be able to run".into(),
            });
        }
        caps.stdin = false;
        let places = config.max_concurrency.saturating_add(config.max_queued);
        Ok(Self {
            app,
            pre,
            caps,
            limits,
            config,
            admitted: Semaphore::new(places.min(Semaphore::MAX_PERMITS)),
            running: Semaphore::new(config.max_concurrency.min(Semaphore::MAX_PERMITS)),
        })
    }

    /// The app served.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// How it is shared between requests.
    pub fn config(&self) -> WasmAppConfig {
        self.config
    }

    /// Takes a place for one request, or refuses it at once with
    /// [`ChannelError::Busy`] when every slot and every queue place is taken.
    ///
    /// Front doors call this *before* reading a request body, so a flood of
    /// requests is refused without buffering theirs.
    pub fn admit(&self) -> Result<Admitted<'_>, ChannelError> {
        let place = self.admitted.try_acquire().map_err(|_| self.busy())?;
        Ok(Admitted {
            app: self,
            _place: place,
        })
    }

    /// Admits and serves one request; see [`Admitted::serve`].
    pub async fn handle(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        self.admit()?.serve(request).await
    }

    fn busy(&self) -> ChannelError {
        // Debug, not warn: under overload this fires for every refusal.
        tracing::debug!(
            app = %self.app.id(),
            max_concurrency = self.config.max_concurrency,
            max_queued = self.config.max_queued,
            "request refused: the app is at its concurrency limit"
        );
        ChannelError::Busy {
            app: self.app.id().to_string(),
            retry_after: self.config.retry_after,
        }
    }

    fn failed(&self, reason: impl Into<String>) -> ChannelError {
        let reason = reason.into();
        tracing::warn!(app = %self.app.id(), %reason, "request failed");
        ChannelError::Failed {
            app: self.app.id().to_string(),
            reason,
        }
    }

    fn timed_out(&self, limit: Duration) -> ChannelError {
        tracing::warn!(app = %self.app.id(), ?limit, "request stopped: time limit exceeded");
        ChannelError::Timeout {
            app: self.app.id().to_string(),
            limit,
        }
    }

    /// Sorts a guest failure (trap, limit, exit) into a channel error.
    fn guest_failure(&self, error: wasmtime::Error) -> ChannelError {
        match self.app.classify(error, self.limits) {
            Ok(code) => self.failed(format!(
                "the handler exited with code {code} before answering"
            )),
            Err(HostError::Timeout { limit, .. }) => self.timed_out(limit),
            Err(error) => self.failed(error.to_string()),
        }
    }

    /// A fresh store for one request: its own WASI context, Dapr view,
    /// outbound hooks and memory limiter, and an epoch callback that yields
    /// every tick and traps once `deadline` has passed.
    fn store(&self, deadline: Option<Instant>) -> Result<Store<ComponentState>, ChannelError> {
        let state =
            ComponentState::new(&self.caps, self.limits).map_err(|e| self.failed(e.to_string()))?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    /// Runs the handler in a fresh instance and collects its answer. The
    /// caller holds a slot and applies the wall-clock limit.
    async fn serve_in_fresh_instance(
        &self,
        request: AppRequest,
        deadline: Option<Instant>,
    ) -> Result<AppResponse, ChannelError> {
        let mut store = self.store(deadline)?;
        let (sender, receiver) = oneshot::channel();
        let (incoming, outparam) = {
            let mut http = store.data_mut().http();
            let incoming = http
                .new_incoming_request(Scheme::Http, incoming(request))
                .map_err(|e| self.failed(format!("invalid request: {e:#}")))?;
            let outparam = http
                .new_response_outparam(sender)
                .map_err(|e| self.failed(format!("{e:#}")))?;
            (incoming, outparam)
        };
        let pre = &self.pre;
        // The store moves into the guest's future and is dropped when the
        // handler returns, which closes the response channel and body: the
        // answer future then always completes.
        let guest = async move {
            let mut store = store;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        let answer = collect_answer(receiver, self.config.max_body_size);
        tokio::pin!(guest, answer);
        let (ended, answer) = tokio::select! {
            ended = &mut guest => (Some(ended), answer.await),
            // A complete answer ends the request: whatever the handler would
            // still do is dropped with its instance.
            // An oversized body ends it too: the handler's further writes
            // would only fail.
            answer = &mut answer => match answer {
                Answer::Complete(_) | Answer::BodyTooLarge => (None, answer),
                other => (Some(guest.await), other),
            },
        };
        match (ended, answer) {
            (_, Answer::Complete(response)) => Ok(response),
            (_, Answer::BodyTooLarge) => Err(self.failed(format!(
                "the response body is larger than {} bytes",
                self.config.max_body_size
            ))),
            (Some(Err(error)), _) => Err(self.guest_failure(error)),
            (_, Answer::NotSet) => Err(self.failed("the handler returned without a response")),
            (_, Answer::Refused(code)) => {
                Err(self.failed(format!("the handler answered with error {code:?}")))
            }
            (_, Answer::BodyFailed(reason)) => {
                Err(self.failed(format!("the response body failed: {reason}")))
            }
        }
    }
}

impl Admitted<'_> {
    /// Waits for a slot (at most `--timeout`), then serves `request` in a
    /// fresh instance under the app's limits.
    pub async fn serve(self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        let app = self.app;
        let limit = app.limits.timeout;
        let slot = app.running.acquire();
        let slot = match limit {
            Some(limit) => tokio::time::timeout(limit, slot)
                .await
                .map_err(|_| app.busy())?,
            None => slot.await,
        }
        .map_err(|_| app.failed("the app is shutting down"))?;
        let started = Instant::now();
        let served = app.serve_in_fresh_instance(request, limit.map(|l| started + l));
        let result = match limit {
            Some(limit) => tokio::time::timeout(limit, served)
                .await
                .unwrap_or_else(|_| Err(app.timed_out(limit))),
            None => served.await,
        };
        drop(slot);
        tracing::debug!(app = %app.app.id(), elapsed = ?started.elapsed(), ok = result.is_ok(), "request served");
        result
    }
}

#[async_trait]
impl HttpAppChannel for WasmApp {
    async fn call(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
        self.handle(request).await
    }
}

/// The request as `wasi:http` receives it. Deliveries carry only a path;
/// `wasi:http` needs an authority, so one without a `Host` gets `localhost`
/// (the app is reached on the local machine, as Dapr's app channel is).
fn incoming(
    request: AppRequest,
) -> http::Request<impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error>> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let body = Full::new(body).map_err(|never: Infallible| match never {});
    http::Request::from_parts(parts, body)
}

/// What the handler answered.
enum Answer {
    /// A response with its whole body.
    Complete(AppResponse),
    /// The handler dropped its `response-outparam` without setting it.
    NotSet,
    /// The handler set a `wasi:http` error instead of a response.
    Refused(ErrorCode),
    /// The body grew past the limit.
    BodyTooLarge,
    /// The body stream failed (e.g. the handler trapped while writing it).
    BodyFailed(String),
}

/// Waits for the handler's response and reads its body, at most `limit` bytes.
async fn collect_answer(
    receiver: oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
    limit: usize,
) -> Answer {
    let response = match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Answer::Refused(code),
        Err(_) => return Answer::NotSet,
    };
    let (parts, body) = response.into_parts();
    match collect_body(body, limit).await {
        Ok(body) => Answer::Complete(http::Response::from_parts(parts, body)),
        Err(answer) => answer,
    }
}

/// Reads a body into memory, refusing more than `limit` bytes (trailers are
/// dropped: the app channel carries none).
async fn collect_body<B>(mut body: B, limit: usize) -> Result<Bytes, Answer>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Answer::BodyFailed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len().saturating_add(data.len()) > limit {
                return Err(Answer::BodyTooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(
        parts: &[&'static str],
    ) -> impl http_body::Body<Data = Bytes, Error = String> + Unpin {
        let frames: Vec<Result<http_body::Frame<Bytes>, String>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    /// A body within the limit is read whole, across frames.
    #[tokio::test]
    async fn body_within_the_limit_is_collected() {
        let body = collect_body(chunks(&["hello, ", "world"]), 12).await;
        assert_eq!(body.ok(), Some(Bytes::from_static(b"hello, world")));
    }

    /// One byte over the limit is refused, not buffered.
    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        let body = collect_body(chunks(&["hello, ", "world"]), 11).await;
        assert!(matches!(body, Err(Answer::BodyTooLarge)));
    }

    /// A failing body stream is a failure naming the cause.
    #[tokio::test]
    async fn failing_body_is_reported() {
        let frames: Vec<Result<http_body::Frame<Bytes>, String>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"x"))),
            Err("trapped".into()),
        ];
        let body = collect_body(StreamBody::new(futures::stream::iter(frames)), 100).await;
        assert!(matches!(body, Err(Answer::BodyFailed(reason)) if reason == "trapped"));
    }

    /// A delivery without an authority gets `Host: localhost`; a given host is kept.
    #[test]
    fn deliveries_get_a_host() {
        let request = http::Request::get("/method/x").body(Bytes::new()).unwrap();
        let request = incoming(request);
        assert_eq!(request.headers()[http::header::HOST], "localhost");
        let request = http::Request::get("/x")
            .header("host", "example.com")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            incoming(request).headers()[http::header::HOST],
            "example.com"
        );
    }

    /// The defaults queue as many requests as run.
    #[test]
    fn defaults() {
        let config = WasmAppConfig::default();
        assert_eq!(
            config.max_concurrency,
            WasmAppConfig::DEFAULT_MAX_CONCURRENCY
        );
        assert_eq!(config.max_queued, config.max_concurrency);
    }
}
