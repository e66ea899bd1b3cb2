//! Service invocation: one app calling a method of another by app id, as
//! Dapr's `/v1.0/invoke/{app-id}/method/{method}`.
//!
//! The runtime decides where a call goes and knows no transport:
//!
//! - the target is this runtime's own app → its [`AppChannel`];
//! - otherwise the [`NameResolver`] gives the address of the target's
//!   sidecar's internal endpoint, and a [`RemoteInvoker`] (gRPC over mutual
//!   TLS, in `wasmdapr-api`) sends the call there. That sidecar delivers to
//!   its own app ([`deliver_forwarded`]), so the callee's app token, scopes
//!   and limits apply on the callee's side, as with Dapr.
//!
//! **Who called.** The app learns its caller from `dapr-caller-app-id`, and
//! apps authorise callers by it, so nobody but a sidecar sets it: a call on
//! the public APIs ([`route`]) always carries this sidecar's own app id,
//! whatever the client sent, and is never taken for a forwarded one; a
//! forwarded call ([`deliver_forwarded`]) carries the app id its sidecar
//! proved in the TLS handshake (its certificate), never a header.
//!
//! On every hop hop-by-hop headers are removed (RFC 9110 §7.6.1) and the
//! caller's `dapr-api-token` is dropped (it is the caller's credential for
//! its own sidecar, never the callee's business); a W3C `traceparent` is
//! continued as a child span, or started when absent or malformed. The app's
//! answer, whatever its status, comes back unchanged.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::app_channel::{AppChannel, AppRequest, AppResponse};
use crate::app_id::AppId;
use crate::error::{ApiError, ErrorKind};
use crate::nameresolution::NameResolver;

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C trace state header, passed through as is with its `traceparent`.
pub const TRACESTATE: &str = "tracestate";

/// The header with which Dapr's API token travels; never forwarded to an app.
pub const DAPR_API_TOKEN: &str = "dapr-api-token";

/// The app id of the caller, as Dapr tells the invoked app.
pub const CALLER_APP_ID: &str = "dapr-caller-app-id";

/// The app id a call is meant for, as Dapr tells the invoked app. A client
/// cannot set it (nor [`CALLER_APP_ID`]): both are removed from what it sends
/// and set by the sidecars.
pub const CALLEE_APP_ID: &str = "dapr-callee-app-id";

/// One invocation: an HTTP-shaped call of `method` on the target app.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeRequest {
    /// The method path after `/method/`, without a leading `/`
    /// (`orders/17`); it becomes the app-side path `/orders/17`.
    pub method: String,
    /// The HTTP verb the app receives.
    pub verb: http::Method,
    /// The query string without `?`, passed to the app as is.
    pub query: Option<String>,
    /// Headers for the app (hop-by-hop ones are removed on every hop).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl InvokeRequest {
    /// A call of `method` with `verb`, no query, no headers, no body.
    pub fn new(verb: http::Method, method: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            verb,
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// The path and query the app sees: `/{method}[?{query}]`.
    pub fn path_and_query(&self) -> String {
        let method = self.method.trim_start_matches('/');
        match self.query.as_deref().filter(|q| !q.is_empty()) {
            Some(query) => format!("/{method}?{query}"),
            None => format!("/{method}"),
        }
    }

    /// This call as the request an [`AppChannel`] delivers.
    pub fn into_app_request(self) -> Result<AppRequest, ApiError> {
        let uri: http::Uri = self.path_and_query().parse().map_err(|e| {
            ApiError::malformed(format!(
                "method `{}` is not a valid request path: {e}",
                self.method
            ))
        })?;
        let mut request = http::Request::new(self.body);
        *request.method_mut() = self.verb;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// The answer of the invoked app: its status, headers and body.
pub type InvokeResponse = http::Response<Bytes>;

/// Why a call to another sidecar failed in transport (the other sidecar
/// answered nothing usable); its own error answers are responses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot reach the sidecar of app '{app}' at {address}: {reason}")]
pub struct HopError {
    /// The target app.
    pub app: String,
    /// Where its sidecar was resolved to.
    pub address: String,
    /// What happened, for humans.
    pub reason: String,
}

/// Sends an invocation to the sidecar of another app: implemented over
/// gRPC and mutual TLS in `wasmdapr-api`, so the runtime stays free of
/// transports.
#[async_trait]
pub trait RemoteInvoker: Send + Sync + 'static {
    /// Calls `request` on `app` through its sidecar at `address`
    /// (`host:port` of its internal endpoint) and returns that sidecar's answer.
    async fn invoke(
        &self,
        address: &str,
        app: &AppId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, HopError>;
}

/// How a runtime reaches apps other than its own.
#[derive(Clone)]
pub struct RemoteInvocation {
    /// Finds the sidecar of an app id.
    pub resolver: Arc<dyn NameResolver>,
    /// Calls it.
    pub invoker: Arc<dyn RemoteInvoker>,
}

impl fmt::Debug for RemoteInvocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteInvocation")
            .field("resolver", &self.resolver.kind())
            .finish_non_exhaustive()
    }
}

/// An `ERR_DIRECT_INVOKE` naming the target, as Dapr words it.
pub fn invoke_error(target: &str, reason: impl fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::DirectInvoke,
        format!("failed to invoke, id: {target}, err: {reason}"),
    )
}

/// Routes one invocation of `target` from the app `own`, as received on
/// the public APIs (HTTP, gRPC, a guest's imports): to `channel` when the
/// target is this app, else through `remote`. The caller is always `own`:
/// whatever `dapr-caller-app-id` or `dapr-callee-app-id` the client sent is
/// replaced, so no client can name a caller other than the app this sidecar
/// serves.
pub async fn route(
    own: &AppId,
    channel: Option<&Arc<dyn AppChannel>>,
    remote: Option<&RemoteInvocation>,
    target: &str,
    mut request: InvokeRequest,
) -> Result<InvokeResponse, ApiError> {
    let target_id = AppId::new(target).map_err(|e| invoke_error(target, e))?;
    check_method(&request.method)?;
    prepare_headers(&mut request.headers);
    set_ids(&mut request.headers, own, &target_id);
    if &target_id == own {
        return deliver(channel, target, request).await;
    }
    let Some(remote) = remote else {
        return Err(invoke_error(
            target,
            format!("no app with id '{target}' is known (no name resolution is configured)"),
        ));
    };
    let address = remote
        .resolver
        .resolve(&target_id)
        .await
        .map_err(|e| invoke_error(target, e))?
        .ok_or_else(|| {
            invoke_error(
                target,
                format!(
                    "no app with id '{target}' is registered in name resolution ({})",
                    remote.resolver.kind()
                ),
            )
        })?;
    tracing::debug!(app = %target, %address, method = %request.method, "invoking a remote app");
    let response = remote
        .invoker
        .invoke(&address, &target_id, request)
        .await
        .map_err(|e| invoke_error(target, e))?;
    Ok(without_hop_by_hop(response))
}

/// Delivers a call another sidecar forwarded (through the internal
/// endpoint) to this sidecar's own app `own`, naming `caller`: the app id
/// that sidecar proved (its certificate), never a header of the call. A call
/// for another app is refused, never forwarded again, so a stale name
/// resolution entry cannot make sidecars call each other (or themselves)
/// in a loop.
pub async fn deliver_forwarded(
    own: &AppId,
    channel: Option<&Arc<dyn AppChannel>>,
    caller: &AppId,
    target: &str,
    mut request: InvokeRequest,
) -> Result<InvokeResponse, ApiError> {
    check_method(&request.method)?;
    if target != own.as_str() {
        return Err(invoke_error(
            target,
            format!(
                "this sidecar serves '{own}', not '{target}': the address name resolution gave for '{target}' is stale"
            ),
        ));
    }
    prepare_headers(&mut request.headers);
    set_ids(&mut request.headers, caller, own);
    deliver(channel, target, request).await
}

/// Sets the caller and callee ids the app sees.
fn set_ids(headers: &mut HeaderMap, caller: &AppId, callee: &AppId) {
    headers.insert(CALLER_APP_ID, header_value(caller.as_str()));
    headers.insert(CALLEE_APP_ID, header_value(callee.as_str()));
}

/// Hands `request` to the own app's channel.
async fn deliver(
    channel: Option<&Arc<dyn AppChannel>>,
    target: &str,
    request: InvokeRequest,
) -> Result<InvokeResponse, ApiError> {
    let channel =
        channel.ok_or_else(|| invoke_error(target, format!("app '{target}' is not running")))?;
    let request = request.into_app_request()?;
    tracing::debug!(app = %target, uri = %request.uri(), "invoking the local app");
    let response = channel.invoke(request).await.map_err(ApiError::from)?;
    Ok(without_hop_by_hop(response))
}

fn without_hop_by_hop(response: InvokeResponse) -> InvokeResponse {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    AppResponse::from_parts(parts, body)
}

/// An app id as a header value (ids have no whitespace or control
/// characters, so this cannot fail; an empty value would be harmless).
fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static(""))
}

/// Refuses a method that is not a plain path: one with `?`, `#`, spaces or
/// control characters, or with `.`/`..` segments, which URL normalisation on
/// the next hop would resolve to a path outside `/method/` (another API of
/// the callee's sidecar).
fn check_method(method: &str) -> Result<(), ApiError> {
    if method.trim_matches('/').is_empty() {
        return Err(ApiError::malformed("method name not given"));
    }
    if method
        .chars()
        .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::malformed(format!(
            "method `{method}` contains `?`, `#`, whitespace or control characters"
        )));
    }
    // `.`, `..` and every percent-encoded spelling of them, matched without
    // allocating: this runs on every invocation.
    const DOT_SEGMENTS: [&str; 6] = [".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"];
    let dot_segment = method
        .split('/')
        .any(|segment| DOT_SEGMENTS.iter().any(|d| segment.eq_ignore_ascii_case(d)));
    if dot_segment {
        return Err(ApiError::malformed(format!(
            "method `{method}` contains `.` or `..` path segments"
        )));
    }
    Ok(())
}

/// Removes the headers that belong to one connection (RFC 9110 §7.6.1): the
/// fixed list and every header the `Connection` header names. `Host` and
/// `Content-Length` go too: the next hop sets its own.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::HOST,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// The headers of a request leaving this sidecar: hop-by-hop, the caller's
/// `dapr-api-token` and any caller or callee id removed (the sidecar sets
/// those itself), `traceparent` continued or started.
pub fn prepare_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(DAPR_API_TOKEN);
    headers.remove(CALLER_APP_ID);
    headers.remove(CALLEE_APP_ID);
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let next = match parent {
        Some(parent) => parent.child(),
        None => {
            // A malformed parent starts a new trace; its state belongs to it.
            headers.remove(TRACESTATE);
            TraceParent::root()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&next.to_string()) {
        headers.insert(TRACEPARENT, value);
    }
}

/// A W3C trace context `traceparent` (version `00`):
/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, never all zeros.
    pub trace_id: u128,
    /// The id of the calling span, never zero.
    pub parent_id: u64,
    /// Trace flags (`01`: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value; `None` when it is not a valid version-00
    /// `traceparent` (wrong lengths, upper-case or non-hex digits, all-zero ids).
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.trim().split('-');
        let (version, trace, parent, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if fields.next().is_some()
            || version != "00"
            || !lower_hex(trace, 32)
            || !lower_hex(parent, 16)
            || !lower_hex(flags, 2)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new sampled trace with a random id.
    pub fn root() -> Self {
        Self {
            trace_id: nonzero(|| uuid::Uuid::new_v4().as_u128()),
            parent_id: span_id(),
            flags: 0x01,
        }
    }

    /// The context of the next hop: the same trace, a new span id, the same flags.
    pub fn child(&self) -> Self {
        Self {
            parent_id: span_id(),
            ..*self
        }
    }
}

fn span_id() -> u64 {
    nonzero(|| uuid::Uuid::new_v4().as_u64_pair().0)
}

/// Draws until the value is not zero (W3C forbids all-zero ids).
fn nonzero<T: PartialEq + Default>(mut draw: impl FnMut() -> T) -> T {
    loop {
        let value = draw();
        if value != T::default() {
            return value;
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    //! Routing over a test [`AppChannel`] that records what it is given and
    //! answers with a fixed status, and a resolver and invoker defined here;
    //! the HTTP transport is tested in `wasmdapr-api`.

    use std::sync::Mutex;

    use super::*;
    use crate::app_channel::{ChannelError, HttpAppChannel};
    use crate::nameresolution::NameResolutionError;

    /// Records every request and answers 418 with `brewed` and a header.
    #[derive(Default)]
    struct Teapot {
        seen: Mutex<Vec<AppRequest>>,
    }

    #[async_trait]
    impl HttpAppChannel for Teapot {
        async fn call(&self, request: AppRequest) -> Result<AppResponse, ChannelError> {
            self.seen.lock().unwrap().push(request);
            Ok(http::Response::builder()
                .status(418)
                .header("x-app", "teapot")
                .header("connection", "close")
                .body(Bytes::from_static(b"brewed"))
                .unwrap())
        }
    }

    /// Knows one app, `billing`, at a fixed address.
    struct OneApp;

    #[async_trait]
    impl NameResolver for OneApp {
        fn kind(&self) -> &'static str {
            "test"
        }
        async fn register(&self, _: &AppId, _: &str) -> Result<(), NameResolutionError> {
            Ok(())
        }
        async fn resolve(&self, app: &AppId) -> Result<Option<String>, NameResolutionError> {
            Ok((app.as_str() == "billing").then(|| "127.0.0.1:3501".to_owned()))
        }
        async fn deregister(&self) -> Result<(), NameResolutionError> {
            Ok(())
        }
    }

    /// Records the hops it is asked to make and answers 200 `remote`.
    #[derive(Default)]
    struct Hops(Mutex<Vec<(String, String, InvokeRequest)>>);

    #[async_trait]
    impl RemoteInvoker for Hops {
        async fn invoke(
            &self,
            address: &str,
            app: &AppId,
            request: InvokeRequest,
        ) -> Result<InvokeResponse, HopError> {
            self.0
                .lock()
                .unwrap()
                .push((address.to_owned(), app.to_string(), request));
            Ok(http::Response::new(Bytes::from_static(b"remote")))
        }
    }

    fn own() -> AppId {
        AppId::new("orders").unwrap()
    }

    fn request() -> InvokeRequest {
        let mut request = InvokeRequest::new(http::Method::PUT, "items/7");
        request.query = Some("a=1&b=two".into());
        request.body = Bytes::from_static(b"{\"qty\":2}");
        for (name, value) in [
            ("content-type", "application/json"),
            ("x-custom", "kept"),
            ("connection", "x-private"),
            ("x-private", "dropped"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("dapr-api-token", "caller-secret"),
        ] {
            request.headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        request
    }

    /// A call of the own app id reaches the app channel with the verb, path,
    /// query, end-to-end headers and body; hop-by-hop headers and the
    /// caller's token do not; the app's own status, headers and body come
    /// back unchanged (minus its hop-by-hop headers).
    #[tokio::test]
    async fn own_app_gets_the_call_and_its_answer_comes_back() {
        let app = Arc::new(Teapot::default());
        let channel: Arc<dyn AppChannel> = app.clone();
        let response = route(&own(), Some(&channel), None, "orders", request())
            .await
            .unwrap();
        assert_eq!(response.status(), 418);
        assert_eq!(response.body().as_ref(), b"brewed");
        assert_eq!(response.headers()["x-app"], "teapot");
        assert!(response.headers().get("connection").is_none());
        let seen = app.seen.lock().unwrap();
        let delivered = &seen[0];
        assert_eq!(delivered.method(), http::Method::PUT);
        assert_eq!(delivered.uri(), "/items/7?a=1&b=two");
        assert_eq!(delivered.body().as_ref(), b"{\"qty\":2}");
        let headers = delivered.headers();
        assert_eq!(headers["x-custom"], "kept");
        assert_eq!(headers["content-type"], "application/json");
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "transfer-encoding",
            "dapr-api-token",
        ] {
            assert!(headers.get(gone).is_none(), "{gone} was forwarded");
        }
        let trace = headers[TRACEPARENT].to_str().unwrap();
        assert!(TraceParent::parse(trace).is_some(), "{trace}");
    }

    /// A valid `traceparent` is continued: same trace id and flags, a new
    /// span id; a malformed one (and its tracestate) is replaced by a new trace.
    #[tokio::test]
    async fn traceparent_is_continued_or_started() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(incoming));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        prepare_headers(&mut headers);
        let next = TraceParent::parse(headers[TRACEPARENT].to_str().unwrap()).unwrap();
        let parent = TraceParent::parse(incoming).unwrap();
        assert_eq!(next.trace_id, parent.trace_id);
        assert_eq!(next.flags, parent.flags);
        assert_ne!(next.parent_id, parent.parent_id);
        assert_eq!(headers[TRACESTATE], "vendor=1");

        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, HeaderValue::from_static(bad));
            headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
            prepare_headers(&mut headers);
            let value = headers[TRACEPARENT].to_str().unwrap();
            assert_ne!(value, bad);
            assert!(TraceParent::parse(value).is_some(), "{value}");
            assert!(headers.get(TRACESTATE).is_none());
        }
        let a = TraceParent::root();
        let b = TraceParent::root();
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(TraceParent::parse(&a.to_string()), Some(a));
    }

    /// Calling the own id with no app connected, an unknown id, an invalid
    /// id, or any other id without name resolution is ERR_DIRECT_INVOKE 500
    /// naming the id.
    #[tokio::test]
    async fn undeliverable_calls_are_direct_invoke_errors_naming_the_id() {
        let remote = RemoteInvocation {
            resolver: Arc::new(OneApp),
            invoker: Arc::new(Hops::default()),
        };
        for (target, remote) in [
            ("orders", Some(&remote)),
            ("nobody", Some(&remote)),
            ("bad.id", Some(&remote)),
            ("billing", None),
        ] {
            let err = route(&own(), None, remote, target, request())
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.http_status()),
                ("ERR_DIRECT_INVOKE", 500),
                "{target}"
            );
            assert!(err.message.contains(target), "{target}: {}", err.message);
        }
    }

    /// Another app's call goes to the address its name resolves to, with the
    /// headers prepared for the hop, and that sidecar's answer comes back.
    #[tokio::test]
    async fn other_apps_go_through_their_sidecar() {
        let hops = Arc::new(Hops::default());
        let remote = RemoteInvocation {
            resolver: Arc::new(OneApp),
            invoker: hops.clone(),
        };
        let channel: Arc<dyn AppChannel> = Arc::new(Teapot::default());
        let response = route(&own(), Some(&channel), Some(&remote), "billing", request())
            .await
            .unwrap();
        assert_eq!(response.body().as_ref(), b"remote");
        let hops = hops.0.lock().unwrap();
        let (address, app, sent) = &hops[0];
        assert_eq!(
            (address.as_str(), app.as_str()),
            ("127.0.0.1:3501", "billing")
        );
        assert_eq!(sent.method, "items/7");
        assert_eq!(sent.query.as_deref(), Some("a=1&b=two"));
        assert!(sent.headers.get("dapr-api-token").is_none());
        assert!(sent.headers.get("x-private").is_none());
        assert!(sent.headers.get(TRACEPARENT).is_some());
    }

    /// The app learns who called it. On the public path the caller is
    /// always the own app: a client's `dapr-caller-app-id` and
    /// `dapr-callee-app-id` are replaced, never believed, and never make the
    /// call look forwarded (it is still routed to the other app).
    #[tokio::test]
    async fn public_calls_cannot_forge_the_caller() {
        let app = Arc::new(Teapot::default());
        let channel: Arc<dyn AppChannel> = app.clone();
        let mut forged = request();
        forged
            .headers
            .insert(CALLER_APP_ID, HeaderValue::from_static("checkout"));
        forged
            .headers
            .insert(CALLEE_APP_ID, HeaderValue::from_static("orders"));
        route(&own(), Some(&channel), None, "orders", forged.clone())
            .await
            .unwrap();
        {
            let seen = app.seen.lock().unwrap();
            assert_eq!(seen[0].headers()[CALLER_APP_ID], "orders");
            assert_eq!(seen[0].headers()[CALLEE_APP_ID], "orders");
            assert_eq!(seen[0].headers().get_all(CALLER_APP_ID).iter().count(), 1);
        }

        let hops = Arc::new(Hops::default());
        let remote = RemoteInvocation {
            resolver: Arc::new(OneApp),
            invoker: hops.clone(),
        };
        forged
            .headers
            .insert(CALLEE_APP_ID, HeaderValue::from_static("someone"));
        route(&own(), Some(&channel), Some(&remote), "billing", forged)
            .await
            .unwrap();
        let hops = hops.0.lock().unwrap();
        assert_eq!(hops[0].2.headers[CALLEE_APP_ID], "billing");
        assert_eq!(hops[0].2.headers[CALLER_APP_ID], "orders");
    }

    /// A forwarded call names the caller its sidecar proved, whatever its
    /// headers say, and is delivered only to the own app: one for another
    /// app is refused and never forwarded again.
    #[tokio::test]
    async fn forwarded_calls_name_the_proven_caller_and_are_never_forwarded() {
        let app = Arc::new(Teapot::default());
        let channel: Arc<dyn AppChannel> = app.clone();
        let checkout = AppId::new("checkout").unwrap();
        let mut forged = request();
        forged
            .headers
            .insert(CALLER_APP_ID, HeaderValue::from_static("admin"));
        deliver_forwarded(&own(), Some(&channel), &checkout, "orders", forged.clone())
            .await
            .unwrap();
        {
            let seen = app.seen.lock().unwrap();
            assert_eq!(seen[0].headers()[CALLER_APP_ID], "checkout");
            assert_eq!(seen[0].headers()[CALLEE_APP_ID], "orders");
            assert!(seen[0].headers().get(DAPR_API_TOKEN).is_none());
        }
        let err = deliver_forwarded(&own(), Some(&channel), &checkout, "billing", forged)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_DIRECT_INVOKE");
        assert!(err.message.contains("stale"), "{}", err.message);
        assert_eq!(app.seen.lock().unwrap().len(), 1);
    }

    /// Methods that would escape `/method/` on the next hop, or smuggle a
    /// query, are malformed requests that reach nobody.
    #[tokio::test]
    async fn methods_cannot_escape_their_path() {
        let app = Arc::new(Teapot::default());
        let channel: Arc<dyn AppChannel> = app.clone();
        for method in [
            "../v1.0/state/s",
            "a/%2E%2e/b",
            "a/.%2E/b",
            "%2e./c",
            "x/%2E",
            "./x",
            "a?b",
            "a b",
            "",
            "/",
        ] {
            let request = InvokeRequest::new(http::Method::GET, method);
            let err = route(&own(), Some(&channel), None, "orders", request)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "ERR_MALFORMED_REQUEST", "{method}");
        }
        assert!(app.seen.lock().unwrap().is_empty());
        let ok = InvokeRequest::new(http::Method::GET, "v1/files/a.b..c");
        route(&own(), Some(&channel), None, "orders", ok)
            .await
            .unwrap();
    }

    /// An app that cannot answer is ERR_DIRECT_INVOKE with the channel's reason.
    #[tokio::test]
    async fn channel_failures_are_direct_invoke_errors() {
        struct Down;
        #[async_trait]
        impl HttpAppChannel for Down {
            async fn call(&self, _: AppRequest) -> Result<AppResponse, ChannelError> {
                Err(ChannelError::Failed {
                    app: "orders".into(),
                    reason: "connection refused".into(),
                })
            }
        }
        let channel: Arc<dyn AppChannel> = Arc::new(Down);
        let err = route(&own(), Some(&channel), None, "orders", request())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_DIRECT_INVOKE");
        assert!(
            err.message.contains("connection refused"),
            "{}",
            err.message
        );
    }
}
