//! Pass 2: the scenario through plain HTTP to the Dapr HTTP API, with
//! `wasi:http/outgoing-handler`, as any Dapr app calls its sidecar. Under
//! `wasmdapr run` the request never leaves the process when the sidecar is
//! the embedded one, and the host adds `dapr-api-token` itself when one is
//! configured, so this code never sees the token.

use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

use crate::typed::shown;
use crate::{PLANETS_KEY, ReadBack, WEAPON, WEAPON_KEY, planets};

/// Where the sidecar's HTTP API is when nothing says otherwise (Dapr's default port).
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:3500";

/// `wasi:io` streams move at most 4096 bytes per blocking write.
const WRITE_CHUNK: usize = 4096;

/// A client of one sidecar's Dapr HTTP API.
pub struct DaprHttp {
    scheme: Scheme,
    authority: String,
    /// Any path the endpoint has, without a trailing `/` (usually empty).
    prefix: String,
    endpoint: String,
}

/// One answer: status and whole body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl DaprHttp {
    /// The sidecar as Dapr SDKs find it: `DAPR_HTTP_ENDPOINT`, else
    /// `http://127.0.0.1:$DAPR_HTTP_PORT`, else [`DEFAULT_ENDPOINT`].
    pub fn from_env() -> Result<Self, String> {
        let endpoint = match (
            std::env::var("DAPR_HTTP_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty()),
            std::env::var("DAPR_HTTP_PORT")
                .ok()
                .filter(|p| !p.is_empty()),
        ) {
            (Some(endpoint), _) => endpoint,
            (None, Some(port)) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("DAPR_HTTP_PORT={port} is not a port"))?;
                format!("http://127.0.0.1:{port}")
            }
            (None, None) => DEFAULT_ENDPOINT.to_owned(),
        };
        Self::new(&endpoint)
    }

    /// A client of the sidecar at `endpoint` (`http[s]://HOST[:PORT][/PATH]`).
    pub fn new(endpoint: &str) -> Result<Self, String> {
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| format!("the Dapr endpoint {endpoint} has no http:// or https://"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("the Dapr endpoint's scheme {other} is not HTTP")),
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("the Dapr endpoint {endpoint} has no host"));
        }
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: endpoint.to_owned(),
        })
    }

    /// The endpoint as configured.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Clears both keys, saves `weapon`, bulk-saves `planets`, reads both
    /// back, all with Dapr's documented paths and status codes.
    pub fn scenario(&self, store: &str) -> Result<ReadBack, String> {
        let item = |key: &str| format!("/v1.0/state/{store}/{key}");
        for key in [WEAPON_KEY, PLANETS_KEY] {
            self.expect(Method::Delete, &item(key), None, 204)?;
            // A missing key is 204 No Content.
            self.expect(Method::Get, &item(key), None, 204)
                .map_err(|e| format!("{key} is still there after deleting it ({e})"))?;
        }

        let save = format!("/v1.0/state/{store}");
        println!("saving {WEAPON_KEY} = {WEAPON:?}");
        let weapon = json!([{"key": WEAPON_KEY, "value": WEAPON}]);
        self.expect(Method::Post, &save, Some(&weapon), 204)?;

        let planets = planets();
        println!("bulk-saving {PLANETS_KEY} = {planets}");
        let bulk = json!([{"key": PLANETS_KEY, "value": planets}]);
        self.expect(Method::Post, &save, Some(&bulk), 204)?;

        let read = |key: &str| -> Result<Option<Value>, String> {
            let answer = self.send(Method::Get, &item(key), None)?;
            match answer.status {
                200 => serde_json::from_slice(&answer.body).map(Some).map_err(|e| {
                    format!("GET {} answered a body that is not JSON: {e}", item(key))
                }),
                204 => Ok(None),
                _ => Err(dapr_error(&Method::Get, &item(key), &answer)),
            }
        };
        let weapon = read(WEAPON_KEY)?;
        println!("read {WEAPON_KEY} = {}", shown(&weapon));
        let planets = read(PLANETS_KEY)?;
        println!("read {PLANETS_KEY} = {}", shown(&planets));
        Ok(ReadBack { weapon, planets })
    }

    /// Sends a request and requires `status` in answer.
    fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Result<(), String> {
        let answer = self.send(method.clone(), path, body)?;
        if answer.status == status {
            Ok(())
        } else {
            Err(dapr_error(&method, path, &answer))
        }
    }

    /// Sends one request with an optional JSON body and reads the whole answer.
    fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        let what = || format!("{} {}{path}", method_name(&method), self.endpoint);
        let failed = |e: ErrorCode| format!("{} failed: {e:?}", what());
        let body = body.map(|b| b.to_string().into_bytes());
        let headers = match &body {
            Some(bytes) => Fields::from_list(&[
                ("content-type".into(), b"application/json".to_vec()),
                (
                    "content-length".into(),
                    bytes.len().to_string().into_bytes(),
                ),
            ])
            .map_err(|e| format!("{}: bad header: {e:?}", what()))?,
            None => Fields::new(),
        };
        let request = OutgoingRequest::new(headers);
        let path = format!("{}{path}", self.prefix);
        let fields_ok = request.set_method(&method).is_ok()
            && request.set_scheme(Some(&self.scheme)).is_ok()
            && request.set_authority(Some(&self.authority)).is_ok()
            && request.set_path_with_query(Some(&path)).is_ok();
        if !fields_ok {
            return Err(format!("{}: the host refused the request's URL", what()));
        }
        // A request without a body never opens one: an opened body of no
        // declared length is sent chunked, and a server that answers without
        // reading it (as Dapr's DELETE does) may close the connection while
        // its end is still in flight.
        let future = match body {
            None => outgoing_handler::handle(request, None).map_err(failed)?,
            Some(bytes) => {
                let outgoing = request
                    .body()
                    .map_err(|()| format!("{}: no request body", what()))?;
                let future = outgoing_handler::handle(request, None).map_err(failed)?;
                let stream = outgoing
                    .write()
                    .map_err(|()| format!("{}: no request body stream", what()))?;
                for chunk in bytes.chunks(WRITE_CHUNK) {
                    stream.blocking_write_and_flush(chunk).map_err(|e| {
                        format!("{}: writing the body: {}", what(), stream_error(e))
                    })?;
                }
                drop(stream);
                OutgoingBody::finish(outgoing, None).map_err(failed)?;
                future
            }
        };

        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = response
            .map_err(|()| format!("{}: the response was already taken", what()))?
            .map_err(failed)?;
        let status = response.status();
        let incoming = response
            .consume()
            .map_err(|()| format!("{}: no response body", what()))?;
        let stream = incoming
            .stream()
            .map_err(|()| format!("{}: no response body stream", what()))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("{}: reading the body: {}", what(), stream_error(e))),
            }
        }
        drop(stream);
        IncomingBody::finish(incoming);
        Ok(Answer { status, body })
    }
}

/// The failure of a request answered with an unexpected status: Dapr's
/// `errorCode` and `message` when the body carries them.
fn dapr_error(method: &Method, path: &str, answer: &Answer) -> String {
    let error: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let field = |name: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (field("errorCode"), field("message")) {
        (Some(code), message) => format!(
            "{code}: {} ({} {path} answered {})",
            message.unwrap_or_default(),
            method_name(method),
            answer.status
        ),
        _ => format!(
            "{} {path} answered {}: {}",
            method_name(method),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ),
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Put => "PUT",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        Method::Patch => "PATCH",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other(other) => other,
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed".to_owned(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
