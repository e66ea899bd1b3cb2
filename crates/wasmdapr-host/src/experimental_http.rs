//! The legacy `wasi_experimental_http` ABI, so that WASI preview 1 modules
//! built for the deislabs "wasi-experimental-http" host extension (like the
//! AssemblyScript apps of the original prototype) run unmodified.
//!
//! # The ABI
//!
//! Five functions in the import module `wasi_experimental_http`, all
//! parameters and results `i32`; pointers are offsets into the guest's
//! exported `memory`, integers little-endian:
//!
//! | function | parameters | |
//! |---|---|---|
//! | `req` | `url_ptr, url_len, method_ptr, method_len, headers_ptr, headers_len, body_ptr, body_len, status_ptr, handle_ptr` | writes the status (u16) and a response handle (u32) |
//! | `close` | `handle` | frees the response |
//! | `body_read` | `handle, buf_ptr, buf_len, nread_ptr` | copies up to `buf_len` bytes of the body, writes the count (u32); 0 means the end |
//! | `header_get` | `handle, name_ptr, name_len, val_ptr, val_len, written_ptr` | writes the first value of the header (name matched case-insensitively) and its length (u32) |
//! | `headers_get_all` | `handle, buf_ptr, buf_len, written_ptr` | writes `name:value\n` for every header and the length (u32) |
//!
//! Each returns 0 or an [`ErrorCode`]. Request headers are UTF-8
//! `Name:value` lines separated by `\n` (a `\r` before it and empty lines are
//! ignored; blanks around the value are not part of it). An HTTP 4xx or 5xx
//! is a successful call: the status tells it. Header values are copied out as
//! the bytes the server sent.
//!
//! # Differences from the original host, all on the side of safety
//!
//! - Requests pass the same [`OutboundPolicy`] as
//!   `wasi:http`, through the same `Outbound::send`: allowed hosts matched by
//!   scheme, host **and port** (the original compared host names only), the
//!   embedded sidecar served in-process with the host adding
//!   `dapr-api-token`, the in-flight cap and the timeouts.
//! - A response counts as in flight until the guest closes it, so the cap
//!   (`--max-outbound-requests`) bounds the open responses of an instance:
//!   one more request gets [`ErrorCode::TooManySessions`].
//! - No call panics or traps: an unknown handle (the original panicked in
//!   `body_read`), a pointer or length outside memory, bad UTF-8, a bad method,
//!   header or URL each return their code. Every range is checked before
//!   anything is sent or consumed, so a failed call has no effect: `req` with
//!   a bad `status_ptr` sends nothing, and `body_read` into a bad buffer loses
//!   no body bytes. `close` of an unknown handle is
//!   [`ErrorCode::InvalidHandle`] (the original returned success).
//! - The host sets `host` (from the URL) and `content-length` (from the body)
//!   itself and drops the hop-by-hop headers `wasi:http` forbids, so a guest
//!   cannot desynchronise the connection or address another virtual host.
//! - The calls are async host functions: a request suspends the guest, not a
//!   runtime thread (the original blocked one on every request). The body is
//!   streamed: `body_read` waits for the next chunk only when the previous one
//!   is used up.
//! - When `buffer too small` is returned, the length needed is written to
//!   `written_ptr`, so a guest may retry with a larger buffer.
//!
//! # Modules whose program runs in the start section
//!
//! AssemblyScript apps built like the prototype have no `_start`: their whole
//! program runs in the start function during instantiation. The calls find
//! the guest's memory with `Caller::get_export("memory")`, which in Wasmtime
//! resolves through the calling instance, fully initialised (memories
//! created, data segments copied) before its start function runs; so it
//! works there as it does later (the `xhttp_start_section` guest proves it).

use std::ops::Range;

use bytes::{Buf, Bytes};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use wasmtime::{Caller, Extern, Linker, Memory};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::{DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, WasiBody};

use crate::outbound::{Outbound, OutboundPolicy};

/// The import module name.
pub const MODULE: &str = "wasi_experimental_http";

/// Why a call failed, as the guest sees it: [`ErrorCode::code`] is the
/// number returned (0 is success). The payloads are for the host's logs.
#[derive(Debug, thiserror::Error)]
pub enum ErrorCode {
    /// 1: no open response has this handle.
    #[error("invalid handle {0}")]
    InvalidHandle(u32),
    /// 2: the module exports no memory named `memory`.
    #[error("the module exports no memory named `memory`")]
    MemoryNotFound,
    /// 3: a pointer and length reach outside the guest's memory.
    #[error("{len} bytes at {ptr} are outside the guest's memory")]
    MemoryAccess {
        /// The offset given.
        ptr: u32,
        /// The length given (or the size of the value written).
        len: u32,
    },
    /// 4: the guest's buffer is smaller than what is to be written.
    #[error("buffer of {available} bytes is too small for {needed}")]
    BufferTooSmall {
        /// Bytes to write.
        needed: usize,
        /// Bytes the guest offered.
        available: u32,
    },
    /// 5: the response has no such header.
    #[error("no header {0:?}")]
    HeaderNotFound(String),
    /// 6: a string argument is not UTF-8.
    #[error("the {0} is not UTF-8")]
    Utf8(&'static str),
    /// 7: the destination is not granted (`--allow-host`); nothing was sent.
    #[error("destination not allowed: {0}")]
    DestinationNotAllowed(String),
    /// 8: the method is not an HTTP method token.
    #[error("invalid method {0:?}")]
    InvalidMethod(String),
    /// 9: a request header line is not `Name:value` with a valid name and value.
    #[error("invalid header line {0:?}")]
    InvalidEncoding(String),
    /// 10: the URL is not an absolute `http` or `https` URL.
    #[error("invalid URL {0:?}: {1}")]
    InvalidUrl(String, &'static str),
    /// 11: the request failed in transport (connect, TLS, timeout, a broken
    /// response or body).
    #[error("request failed: {0}")]
    Request(HttpError),
    /// 12: the host failed (not the guest's doing).
    #[error("host error: {0}")]
    Runtime(String),
    /// 13: the instance has as many responses open (or requests in flight)
    /// as its cap allows (`--max-outbound-requests`).
    #[error("too many open responses")]
    TooManySessions,
}

impl ErrorCode {
    /// The number the guest receives.
    pub fn code(&self) -> i32 {
        match self {
            Self::InvalidHandle(_) => 1,
            Self::MemoryNotFound => 2,
            Self::MemoryAccess { .. } => 3,
            Self::BufferTooSmall { .. } => 4,
            Self::HeaderNotFound(_) => 5,
            Self::Utf8(_) => 6,
            Self::DestinationNotAllowed(_) => 7,
            Self::InvalidMethod(_) => 8,
            Self::InvalidEncoding(_) => 9,
            Self::InvalidUrl(..) => 10,
            Self::Request(_) => 11,
            Self::Runtime(_) => 12,
            Self::TooManySessions => 13,
        }
    }

    /// The code of a refusal or failure of `Outbound::send`; `url` names the
    /// request in the message.
    fn from_outbound(error: HttpError, url: &str) -> Self {
        match error {
            HttpError::HttpRequestDenied => Self::DestinationNotAllowed(url.to_owned()),
            HttpError::HttpRequestUriInvalid => Self::InvalidUrl(url.to_owned(), "no host"),
            HttpError::ConnectionLimitReached => Self::TooManySessions,
            HttpError::ConfigurationError => {
                Self::Runtime("the host's outbound configuration is invalid".into())
            }
            other => Self::Request(other),
        }
    }
}

/// One response the guest holds a handle to.
struct OpenResponse {
    headers: HeaderMap,
    /// The rest of the body; it holds the instance's in-flight permit, so
    /// the response counts against the cap until it is closed.
    body: WasiBody,
    /// Bytes of the current chunk the guest has not read yet.
    pending: Bytes,
    /// The body has ended.
    done: bool,
    /// Drives the connection the body arrives on; dropping it (on `close`)
    /// ends the connection.
    _io: AbortOnDropJoinHandle<()>,
}

/// The per-instance state of the ABI: the instance's outbound door and its
/// open responses.
pub(crate) struct ExperimentalHttp {
    outbound: Outbound,
    /// Indexed by handle; a closed handle's slot is `None` and is reused by
    /// the next request, so handles stay small and start at 0.
    responses: Vec<Option<OpenResponse>>,
}

impl ExperimentalHttp {
    /// The state of a new instance under `policy`.
    pub(crate) fn new(policy: OutboundPolicy) -> Self {
        Self {
            outbound: Outbound::new(policy),
            responses: Vec::new(),
        }
    }

    fn response(&mut self, handle: u32) -> Result<&mut OpenResponse, ErrorCode> {
        self.responses
            .get_mut(handle as usize)
            .and_then(Option::as_mut)
            .ok_or(ErrorCode::InvalidHandle(handle))
    }

    /// Stores `response` under the lowest free handle.
    fn open(&mut self, response: OpenResponse) -> Result<u32, ErrorCode> {
        let slot = match self.responses.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.responses.push(None);
                self.responses.len() - 1
            }
        };
        let handle = u32::try_from(slot).map_err(|_| ErrorCode::TooManySessions)?;
        self.responses[slot] = Some(response);
        Ok(handle)
    }

    fn close(&mut self, handle: u32) -> Result<(), ErrorCode> {
        let slot = self
            .responses
            .get_mut(handle as usize)
            .ok_or(ErrorCode::InvalidHandle(handle))?;
        slot.take().ok_or(ErrorCode::InvalidHandle(handle))?;
        while matches!(self.responses.last(), Some(None)) {
            self.responses.pop();
        }
        Ok(())
    }
}

/// Adds the five functions to `linker`; `get` finds the state in the store.
///
/// `req` and `body_read` wait on the network, so they are async: the guest
/// is suspended, not the thread. The other three only touch host memory.
/// Parameters are the guest's `i32`s read as `u32`, as the ABI means them.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ExperimentalHttp,
) -> wasmtime::Result<()> {
    type ReqArgs = (u32, u32, u32, u32, u32, u32, u32, u32, u32, u32);
    linker.func_wrap_async(
        MODULE,
        "req",
        move |mut caller: Caller<'_, T>, args: ReqArgs| {
            // In the ABI's order.
            let call = RequestCall {
                url: (args.0, args.1),
                method: (args.2, args.3),
                headers: (args.4, args.5),
                body: (args.6, args.7),
                status_ptr: args.8,
                handle_ptr: args.9,
            };
            Box::new(async move { outcome("req", req(&mut caller, get, call).await) })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "body_read",
        move |mut caller: Caller<'_, T>,
              (handle, buf_ptr, buf_len, nread_ptr): (u32, u32, u32, u32)| {
            Box::new(async move {
                let read = body_read(&mut caller, get, handle, (buf_ptr, buf_len), nread_ptr);
                outcome("body_read", read.await)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "close",
        move |mut caller: Caller<'_, T>, handle: u32| {
            outcome("close", get(caller.data_mut()).close(handle))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "header_get",
        move |mut caller: Caller<'_, T>,
              handle: u32,
              name_ptr: u32,
              name_len: u32,
              value_ptr: u32,
              value_len: u32,
              written_ptr: u32| {
            let name = (name_ptr, name_len);
            let value = (value_ptr, value_len);
            let result = header_get(&mut caller, get, handle, name, value, written_ptr);
            outcome("header_get", result)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "headers_get_all",
        move |mut caller: Caller<'_, T>,
              handle: u32,
              buf_ptr: u32,
              buf_len: u32,
              written_ptr: u32| {
            let result = headers_get_all(&mut caller, get, handle, (buf_ptr, buf_len), written_ptr);
            outcome("headers_get_all", result)
        },
    )?;
    Ok(())
}

/// The guest's return value for `result`; failures are logged at debug
/// level (they are the guest's business, not the operator's).
fn outcome(function: &'static str, result: Result<(), ErrorCode>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(error) => {
            tracing::debug!(function, code = error.code(), %error, "wasi_experimental_http call failed");
            error.code()
        }
    }
}

/// A `(pointer, length)` pair into guest memory.
type Slice = (u32, u32);

/// The arguments of one `req` call.
struct RequestCall {
    url: Slice,
    method: Slice,
    headers: Slice,
    body: Slice,
    status_ptr: u32,
    handle_ptr: u32,
}

/// The guest's exported memory.
fn memory<T>(caller: &mut Caller<'_, T>) -> Result<Memory, ErrorCode> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(ErrorCode::MemoryNotFound),
    }
}

/// The byte range `ptr..ptr + len` if it lies within a memory of `size`
/// bytes. Both numbers are guest-controlled, so the sum is checked.
fn range(size: usize, (ptr, len): Slice) -> Result<Range<usize>, ErrorCode> {
    let start = ptr as usize;
    start
        .checked_add(len as usize)
        .filter(|&end| end <= size)
        .map(|end| start..end)
        .ok_or(ErrorCode::MemoryAccess { ptr, len })
}

/// The bytes of `slice` in `data`.
fn read(data: &[u8], slice: Slice) -> Result<&[u8], ErrorCode> {
    Ok(&data[range(data.len(), slice)?])
}

/// The UTF-8 string at `slice` in `data`; `what` names it in errors.
fn read_str<'a>(data: &'a [u8], slice: Slice, what: &'static str) -> Result<&'a str, ErrorCode> {
    std::str::from_utf8(read(data, slice)?).map_err(|_| ErrorCode::Utf8(what))
}

/// Writes `bytes` at `ptr` in `data`.
fn write(data: &mut [u8], ptr: u32, bytes: &[u8]) -> Result<(), ErrorCode> {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let range = range(data.len(), (ptr, len))?;
    data[range].copy_from_slice(bytes);
    Ok(())
}

/// The length of a host value as the u32 the guest receives.
fn len_u32(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes()
}

async fn req<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut ExperimentalHttp,
    call: RequestCall,
) -> Result<(), ErrorCode> {
    let memory = memory(caller)?;
    // Everything is read out of guest memory, and every range to be written
    // is checked, before anything is sent: a bad pointer sends nothing.
    let request = {
        let data = memory.data(&*caller);
        let url = read_str(data, call.url, "URL")?;
        let method = read_str(data, call.method, "method")?;
        let headers = read_str(data, call.headers, "header list")?;
        let body = Bytes::copy_from_slice(read(data, call.body)?);
        range(data.len(), (call.status_ptr, 2))?;
        range(data.len(), (call.handle_ptr, 4))?;
        build_request(url, method, headers, body)?
    };
    let url = request.uri().to_string();
    let sent = get(caller.data_mut())
        .outbound
        .send(request, None)
        .map_err(|e| ErrorCode::from_outbound(e, &url))?;
    let (response, io) = Box::into_pin(sent)
        .await
        .map_err(|e| ErrorCode::from_outbound(e, &url))?;
    let io = wasmtime_wasi::runtime::spawn(async move {
        if let Err(error) = Box::into_pin(io).await {
            tracing::debug!(%error, "outbound connection ended with an error");
        }
    });
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let handle = get(caller.data_mut()).open(OpenResponse {
        headers: parts.headers,
        body,
        pending: Bytes::new(),
        done: false,
        _io: io,
    })?;
    // Both ranges were checked above and a memory never shrinks, but a
    // failed write must not leave a response the guest cannot name.
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let written = write(data, call.status_ptr, &status.to_le_bytes())
        .and_then(|()| write(data, call.handle_ptr, &handle.to_le_bytes()));
    if written.is_err() {
        let _ = get(state).close(handle);
    }
    written
}

/// The request a guest asked for, before the policy has seen it.
fn build_request(
    url: &str,
    method: &str,
    headers: &str,
    body: Bytes,
) -> Result<Request<WasiBody>, ErrorCode> {
    let uri = parse_url(url)?;
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| ErrorCode::InvalidMethod(method.to_owned()))?;
    let mut header_map = parse_headers(headers)?;
    // `host` and `content-length` are the host's to set, from the URL and
    // the body the request really has.
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let host = HeaderValue::from_str(authority)
        .map_err(|_| ErrorCode::InvalidUrl(url.to_owned(), "bad authority"))?;
    header_map.insert(HOST, host);
    if body.is_empty() {
        header_map.remove(CONTENT_LENGTH);
    } else {
        header_map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut request = Request::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = header_map;
    Ok(request)
}

/// An absolute `http` or `https` URL with a host and no user info.
fn parse_url(url: &str) -> Result<Uri, ErrorCode> {
    let invalid = |why| ErrorCode::InvalidUrl(url.to_owned(), why);
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(_) => return Err(invalid("not an http or https URL")),
        None => return Err(invalid("not an absolute URL")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not supported"));
    }
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

/// Parses the guest's `Name:value\n` lines. A `\r` before the `\n` and empty
/// lines are ignored; blanks around the value are not part of it.
/// Hop-by-hop and other headers `wasi:http` forbids are dropped.
fn parse_headers(text: &str) -> Result<HeaderMap, ErrorCode> {
    let mut headers = HeaderMap::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let invalid = || ErrorCode::InvalidEncoding(line.to_owned());
        let (name, value) = line.split_once(':').ok_or_else(invalid)?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value =
            HeaderValue::from_str(value.trim_matches([' ', '\t'])).map_err(|_| invalid())?;
        if DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            tracing::debug!(header = %name, "wasi_experimental_http: dropped a forbidden request header");
            continue;
        }
        headers.append(name, value);
    }
    Ok(headers)
}

async fn body_read<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut ExperimentalHttp,
    handle: u32,
    buf: Slice,
    nread_ptr: u32,
) -> Result<(), ErrorCode> {
    let memory = memory(caller)?;
    let size = memory.data_size(&*caller);
    get(caller.data_mut()).response(handle)?;
    // Checked before any byte is taken from the body, so none is lost.
    range(size, buf)?;
    range(size, (nread_ptr, 4))?;
    let response = get(caller.data_mut()).response(handle)?;
    while response.pending.is_empty() && !response.done && buf.1 > 0 {
        match response.body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    response.pending = data;
                }
            }
            Some(Err(error)) => {
                response.done = true;
                return Err(ErrorCode::Request(error));
            }
            None => response.done = true,
        }
    }
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let response = get(state).response(handle)?;
    let n = response.pending.len().min(buf.1 as usize);
    write(data, buf.0, &response.pending[..n])?;
    write(data, nread_ptr, &len_u32(n))?;
    response.pending.advance(n);
    Ok(())
}

fn header_get<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut ExperimentalHttp,
    handle: u32,
    name: Slice,
    value_buf: Slice,
    written_ptr: u32,
) -> Result<(), ErrorCode> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let response = get(state).response(handle)?;
    let name = read_str(data, name, "header name")?;
    let value_range = range(data.len(), value_buf)?;
    range(data.len(), (written_ptr, 4))?;
    // `HeaderMap` lookups by `&str` are case-insensitive; a name that is
    // not a valid header name is simply absent.
    let value = response
        .headers
        .get(name)
        .ok_or_else(|| ErrorCode::HeaderNotFound(name.to_owned()))?;
    copy_out(data, value.as_bytes(), value_range, written_ptr)
}

fn headers_get_all<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut ExperimentalHttp,
    handle: u32,
    buf: Slice,
    written_ptr: u32,
) -> Result<(), ErrorCode> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let response = get(state).response(handle)?;
    let buf_range = range(data.len(), buf)?;
    range(data.len(), (written_ptr, 4))?;
    let mut all = Vec::new();
    for (name, value) in &response.headers {
        all.extend_from_slice(name.as_str().as_bytes());
        all.push(b':');
        all.extend_from_slice(value.as_bytes());
        all.push(b'\n');
    }
    copy_out(data, &all, buf_range, written_ptr)
}

/// Copies `bytes` into the guest buffer `buf` and writes their length at
/// `written_ptr`; when they do not fit, writes the length needed and fails
/// with [`ErrorCode::BufferTooSmall`].
fn copy_out(
    data: &mut [u8],
    bytes: &[u8],
    buf: Range<usize>,
    written_ptr: u32,
) -> Result<(), ErrorCode> {
    write(data, written_ptr, &len_u32(bytes.len()))?;
    let available = buf.len();
    if bytes.len() > available {
        return Err(ErrorCode::BufferTooSmall {
            needed: bytes.len(),
            available: available as u32,
        });
    }
    data[buf.start..buf.start + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_split_on_newline_then_the_first_colon() {
        let headers =
            parse_headers("Content-Type: application/json\r\n\nx-a:b:c\nX-Empty:\nx-a: \td \n")
                .unwrap();
        assert_eq!(headers["content-type"], "application/json");
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["b:c", "d"]);
        assert_eq!(headers["x-empty"], "");
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn malformed_header_lines_are_invalid_encoding() {
        for bad in ["no colon", ":value", "bad name:x", "x:a\u{7f}b", "x:a\rb"] {
            let error = parse_headers(bad).unwrap_err();
            assert_eq!(error.code(), 9, "{bad:?}");
        }
    }

    #[test]
    fn host_owned_and_hop_by_hop_headers_are_dropped() {
        let headers =
            parse_headers("Host:evil.example\nTransfer-Encoding:chunked\nConnection:close\nx:1\n")
                .unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x"], "1");
    }

    #[test]
    fn urls_must_be_absolute_http_with_a_host() {
        assert!(parse_url("http://127.0.0.1:3500/v1.0/state/s?x=1").is_ok());
        assert!(parse_url("HTTPS://Example.com").is_ok());
        for bad in [
            "",
            "not a url",
            "/relative",
            "127.0.0.1:3500/x",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "http:///path",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().code(), 10, "{bad:?}");
        }
    }

    #[test]
    fn the_host_sets_host_and_content_length() {
        let request = build_request(
            "http://127.0.0.1:3500/x",
            "PUT",
            "content-length:999\nhost:other\n",
            Bytes::from_static(b"abc"),
        )
        .unwrap();
        assert_eq!(request.method(), Method::PUT);
        assert_eq!(request.headers()["host"], "127.0.0.1:3500");
        assert_eq!(request.headers()["content-length"], "3");
        let empty = build_request("http://h/", "GET", "content-length:5\n", Bytes::new()).unwrap();
        assert!(empty.headers().get("content-length").is_none());
    }

    #[test]
    fn methods_are_tokens() {
        assert!(build_request("http://h/", "DELET", "", Bytes::new()).is_ok());
        for bad in ["", "GE T", "G\u{e9}T"] {
            let error = build_request("http://h/", bad, "", Bytes::new()).unwrap_err();
            assert_eq!(error.code(), 8, "{bad:?}");
        }
    }

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(range(16, (8, 8)).unwrap(), 8..16);
        assert_eq!(range(16, (16, 0)).unwrap(), 16..16);
        assert_eq!(range(16, (9, 8)).unwrap_err().code(), 3);
        assert_eq!(range(16, (u32::MAX, 2)).unwrap_err().code(), 3);
        assert_eq!(range(16, (u32::MAX, u32::MAX)).unwrap_err().code(), 3);
    }

    #[test]
    fn a_short_buffer_gets_the_length_needed() {
        let mut data = [0u8; 16];
        let error = copy_out(&mut data, b"hello", 8..10, 0).unwrap_err();
        assert_eq!(error.code(), 4);
        assert_eq!(&data[..4], &5u32.to_le_bytes());
        assert_eq!(&data[8..10], &[0, 0]);
        copy_out(&mut data, b"hello", 8..16, 4).unwrap();
        assert_eq!(&data[4..8], &5u32.to_le_bytes());
        assert_eq!(&data[8..13], b"hello");
    }

    #[test]
    fn handles_start_at_zero_and_are_reused() {
        let mut state = ExperimentalHttp::new(OutboundPolicy::default());
        assert_eq!(state.close(0).unwrap_err().code(), 1);
        let response = || OpenResponse {
            headers: HeaderMap::new(),
            body: Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
            pending: Bytes::new(),
            done: false,
            _io: wasmtime_wasi::runtime::spawn(async {}),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _enter = rt.enter();
        assert_eq!(state.open(response()).unwrap(), 0);
        assert_eq!(state.open(response()).unwrap(), 1);
        assert_eq!(state.open(response()).unwrap(), 2);
        state.close(1).unwrap();
        assert_eq!(state.close(1).unwrap_err().code(), 1);
        assert_eq!(state.open(response()).unwrap(), 1);
        state.close(2).unwrap();
        state.close(1).unwrap();
        state.close(0).unwrap();
        assert!(state.responses.is_empty());
        assert_eq!(state.open(response()).unwrap(), 0);
    }
}
