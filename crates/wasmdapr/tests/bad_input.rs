//! The bad-input suite: a real `wasmdapr sidecar` (the embedded SQLite
//! store) is sent malformed and hostile HTTP and gRPC requests — a corpus
//! kept in `tests/bad_input/http.corpus` and requests generated from a
//! seeded random source — and must, for every one of them:
//!
//! - answer within a second (or, for bytes that are not HTTP, close the
//!   connection within a second),
//! - not answer 5xx for what is the client's fault (the only 5xx allowed is
//!   Dapr's own `ERR_DIRECT_INVOKE` for an app id that resolves nowhere;
//!   on gRPC, `INTERNAL`/`UNKNOWN`/`DATA_LOSS`/`UNAVAILABLE` likewise),
//! - not panic (the process stays alive and "panicked" never appears in its
//!   stderr),
//!
//! and be healthy afterwards (healthz 204, a write and read back).
//!
//! The generated cases are the same on every run; set `BAD_INPUT_SEED` to
//! explore others, and `BAD_INPUT_CASES` to run more. A failure names the
//! seed and the case.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use common::free_port;
use dapr::dapr::proto::common::v1 as common_pb;
use dapr::dapr::proto::runtime::v1 as runtime_pb;
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// How long any answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The seed of the generated cases unless `BAD_INPUT_SEED` is set.
const DEFAULT_SEED: u64 = 0x5eed_0010;
/// Generated HTTP cases unless `BAD_INPUT_CASES` is set; gRPC gets half.
const DEFAULT_CASES: usize = 1500;

/// The sidecar under test, killed on drop, its stderr in a file.
struct Sidecar {
    child: Child,
    http: u16,
    grpc: u16,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sidecar {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http, grpc) = (free_port(), free_port());
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_wasmdapr"))
            .current_dir(dir.path())
            .args(["sidecar", "--app-id", "badinput"])
            .args(["--dapr-http-port", &http.to_string()])
            .args(["--dapr-grpc-port", &grpc.to_string()])
            .arg("--config")
            .arg(config(dir.path()))
            // Truncated requests are cut off quickly, so that "answered
            // or closed within a second" holds for them too.
            .args(["--http-header-read-timeout", "500ms"])
            .args(["--http-body-read-timeout", "500ms"])
            .env_remove("DAPR_API_TOKEN")
            // Any free port for the sidecar-to-sidecar endpoint (where
            // there is one), so concurrent tests do not collide on 50002.
            .env("DAPR_INTERNAL_GRPC_PORT", "0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting wasmdapr sidecar");
        let sidecar = Sidecar {
            child,
            http,
            grpc,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while sidecar.healthz() != Some(204) {
            assert!(Instant::now() < deadline, "no healthz: {}", sidecar.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        sidecar
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn healthz(&self) -> Option<u16> {
        let request = b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        send(self.http, request).answer.map(|a| a.status)
    }

    /// Alive, healthy and without a panic in its log; `context` names what
    /// was just sent.
    fn assert_healthy(&mut self, context: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the sidecar exited ({status}) after {context}:\n{}",
                self.log()
            );
        }
        let log = self.log();
        assert!(!log.contains("panicked"), "a panic after {context}:\n{log}");
        assert_eq!(self.healthz(), Some(204), "unhealthy after {context}");
    }
}

/// A Configuration with name resolution in `dir`.
fn config(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("config.yaml");
    let text = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: test\n\
         spec:\n  nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n\
         \x20     connectionString: {}\n",
        dir.join("nr.db").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

// ---------------------------------------------------------------- HTTP

/// One request as bytes, and whether a close without an answer is fine
/// (the bytes are not a complete HTTP request).
struct Case {
    name: String,
    bytes: Vec<u8>,
    may_close: bool,
    /// A `HEAD` service invocation: its 500 has no body to read the Dapr
    /// code from.
    head_invocation: bool,
}

/// What came back.
struct Answer {
    status: u16,
    body: String,
}

struct Outcome {
    answer: Option<Answer>,
    took: Duration,
    /// The server closed (or reset) the connection.
    closed: bool,
}

/// Sends `request` on a fresh connection and reads one response (or the
/// close), for at most [`ANSWER_WITHIN`] plus a little.
fn send(port: u16, request: &[u8]) -> Outcome {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Outcome {
            answer: None,
            took: started.elapsed(),
            closed: true,
        };
    };
    stream.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
    // The server may answer (413, 400) and close before reading it all.
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 16 << 10];
    loop {
        if response_complete(&received) {
            break;
        }
        let left = (ANSWER_WITHIN + Duration::from_millis(200)).saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let answer = parse_response(&received);
    Outcome {
        answer,
        took: started.elapsed(),
        closed,
    }
}

/// The bytes after any interim (1xx) responses, such as `100 Continue`.
fn final_response(mut bytes: &[u8]) -> &[u8] {
    while bytes.starts_with(b"HTTP/1.1 1")
        && let Some(end) = find(bytes, b"\r\n\r\n")
    {
        bytes = &bytes[end + 4..];
    }
    bytes
}

/// Whether `bytes` hold a whole response (headers and, by its framing, its body).
fn response_complete(bytes: &[u8]) -> bool {
    let bytes = final_response(bytes);
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 204 || status == 304 {
        return true;
    }
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(bytes: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(final_response(bytes));
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some(Answer { status, body })
}

/// The 5xx answers that are not a server fault: Dapr's own answer to an
/// invocation of an app id nothing resolves, and daprd's 500 for a body
/// sent as `application/cloudevents+json` that is no JSON object
/// (`ERR_PUBSUB_CLOUD_EVENTS_SER`).
fn allowed_server_error(answer: &Answer) -> bool {
    answer.body.contains("\"ERR_DIRECT_INVOKE\"")
        || answer.body.contains("\"ERR_PUBSUB_CLOUD_EVENTS_SER\"")
}

/// Checks one outcome; a description of what went wrong, if anything did.
fn judge(case: &Case, outcome: &Outcome) -> Option<String> {
    if outcome.took > ANSWER_WITHIN + Duration::from_millis(100) {
        return Some(format!("took {:?}", outcome.took));
    }
    match &outcome.answer {
        None if case.may_close && outcome.closed => None,
        None if outcome.closed => Some("closed without an answer".into()),
        None => Some("no answer".into()),
        Some(answer)
            if answer.status >= 500
                && !allowed_server_error(answer)
                && !(case.head_invocation && answer.status == 500) =>
        {
            Some(format!(
                "answered {}: {}",
                answer.status,
                answer.body.chars().take(300).collect::<String>()
            ))
        }
        Some(_) => None,
    }
}

/// The cases of `tests/bad_input/http.corpus`.
fn corpus() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input/http.corpus");
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n%%\n")
        .skip(1)
        .enumerate()
        .map(|(i, block)| {
            let may_close = block.contains("# may-close");
            let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
            let title = lines.first().copied().unwrap_or_default();
            let mut joined = lines.join("\r\n");
            // A block ending in an empty line ends its head there.
            if block.ends_with('\n') {
                joined.push_str("\r\n\r\n");
            }
            let mut bytes = unescape(&joined);
            if let Some(at) = find(&bytes, b"Content-Length: auto") {
                let body_len = find(&bytes, b"\r\n\r\n").map_or(0, |end| bytes.len() - end - 4);
                let value = format!("Content-Length: {body_len}");
                bytes.splice(at..at + "Content-Length: auto".len(), value.bytes());
            }
            let complete = find(&bytes, b"\r\n\r\n").is_some();
            Case {
                name: format!(
                    "corpus #{i}: {}",
                    title.chars().take(80).collect::<String>()
                ),
                bytes,
                may_close: may_close || !complete || !title.contains(" HTTP/1.1"),
                head_invocation: false,
            }
        })
        .collect()
}

/// `\xNN` escapes as bytes.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(hex) = text.get(i + 2..i + 4)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The generator of HTTP cases.
struct Generator {
    rng: fastrand::Rng,
}

const TTLS: &[&str] = &[
    "-1",
    "0",
    "1",
    "-2",
    "2147483647",
    "2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999",
    "1.5",
    "1e3",
    "soon",
    "",
    " 5",
    "+5",
];
const ETAGS: &[&str] = &[
    "",
    "1",
    "-1",
    "abc",
    "00000000-0000-0000-0000-000000000000",
    "99999999999999999999999999999999",
    "\u{202e}\u{0}",
    "\"quoted\"",
];
const CONCURRENCY: &[&str] = &["first-write", "last-write", "", "FIRST-WRITE", "x", "\u{0}"];
const CONSISTENCY: &[&str] = &["eventual", "strong", "", "sometimes", "\u{ffff}"];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "BREW", "get",
    "M-SEARCH",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "text/plain",
    "application/octet-stream",
    "application/json; charset=utf-16",
    "application/cloudevents+json",
    "multipart/form-data; boundary=",
    "\u{0}",
];

impl Generator {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(..100) < percent
    }

    /// A store name, key or app id: usually ordinary, often not.
    fn name(&mut self) -> String {
        match self.rng.u8(..12) {
            0..=4 => "statestore".into(),
            5 => "k".into(),
            6 => "a||b".into(),
            7 => "\u{1f4a3}\u{202e}\u{7}\u{0}".into(),
            8 => "x".repeat(self.rng.usize(200..5000)),
            9 => "..".into(),
            10 => " ".into(),
            _ => (0..self.rng.usize(1..20))
                .map(|_| char::from_u32(self.rng.u32(1..0x2_0000)).unwrap_or('?'))
                .collect(),
        }
    }

    /// A random JSON value, at most `depth` deep.
    fn json(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        match self.rng.u8(..if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.bool()),
            2 => serde_json::json!(self.rng.i64(..)),
            3 => serde_json::json!(self.rng.f64() * 1e300),
            4 => Value::String(self.name()),
            5 => Value::Array(
                (0..self.rng.usize(..4))
                    .map(|_| self.json(depth - 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..self.rng.usize(..4))
                    .map(|_| (self.name(), self.json(depth - 1)))
                    .collect(),
            ),
        }
    }

    /// A field value that is the right kind of thing, or not.
    fn scalar(&mut self, good: &[&str]) -> serde_json::Value {
        match self.rng.u8(..10) {
            0..=6 => serde_json::Value::String(self.pick(good).into()),
            _ => self.json(2),
        }
    }

    fn metadata(&mut self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        if self.chance(60) {
            map.insert("ttlInSeconds".into(), self.scalar(TTLS));
        }
        if self.chance(30) {
            map.insert("contentType".into(), self.scalar(CONTENT_TYPES));
        }
        if self.chance(10) {
            map.insert(self.name(), self.json(2));
        }
        serde_json::Value::Object(map)
    }

    fn state_item(&mut self) -> serde_json::Value {
        let mut item = serde_json::json!({"key": self.name(), "value": self.json(3)});
        if self.chance(40) {
            item["etag"] = self.scalar(ETAGS);
        }
        if self.chance(60) {
            item["metadata"] = self.metadata();
        }
        if self.chance(40) {
            item["options"] = serde_json::json!({
                "concurrency": self.scalar(CONCURRENCY),
                "consistency": self.scalar(CONSISTENCY),
            });
        }
        if self.chance(5) {
            item = self.json(3);
        }
        item
    }

    /// A body for `route`, then maybe broken.
    fn body(&mut self, route: &str) -> Vec<u8> {
        let value = match route {
            "save" => serde_json::Value::Array(
                (0..self.rng.usize(..4))
                    .map(|_| self.state_item())
                    .collect(),
            ),
            "bulk" => {
                let keys = if self.chance(10) {
                    (0..self.rng.usize(..3000))
                        .map(|i| format!("k{i}"))
                        .collect()
                } else {
                    (0..self.rng.usize(..5))
                        .map(|_| self.name())
                        .collect::<Vec<_>>()
                };
                let parallelism = match self.rng.u8(..6) {
                    0 => serde_json::json!(i64::MAX),
                    1 => serde_json::json!(-1),
                    2 => serde_json::json!(u64::MAX),
                    3 => serde_json::json!("many"),
                    _ => serde_json::json!(self.rng.i64(0..1000)),
                };
                serde_json::json!({"keys": keys, "parallelism": parallelism, "metadata": self.metadata()})
            }
            "transaction" => {
                let operations: Vec<_> = (0..self.rng.usize(..4))
                    .map(|_| {
                        let operation =
                            fastrand::choice(["upsert", "delete", "merge", ""]).unwrap();
                        serde_json::json!({"operation": operation, "request": self.state_item()})
                    })
                    .collect();
                serde_json::json!({"operations": operations, "metadata": self.metadata()})
            }
            "query" => self.query(3),
            "bulkpublish" => {
                let entries: Vec<_> = (0..self.rng.usize(..5))
                    .map(|i| {
                        let id = match self.rng.u8(..4) {
                            0 => serde_json::Value::Null,
                            1 => serde_json::json!("same"),
                            _ => serde_json::json!(format!("e{i}")),
                        };
                        serde_json::json!({"entryId": id, "event": self.json(2),
                            "contentType": self.scalar(CONTENT_TYPES), "metadata": self.metadata()})
                    })
                    .collect();
                serde_json::Value::Array(entries)
            }
            _ => self.json(3),
        };
        let mut body = serde_json::to_vec(&value).unwrap();
        match self.rng.u8(..20) {
            0 => body.truncate(self.rng.usize(..=body.len())),
            1 if !body.is_empty() => {
                let at = self.rng.usize(..body.len());
                body[at] = self.rng.u8(..);
            }
            2 => {
                // Deep nesting, far past any parser's recursion limit.
                let depth = self.rng.usize(1000..50_000);
                body = format!(
                    "[{{\"key\":\"deep\",\"value\":{}{}}}]",
                    "[".repeat(depth),
                    "]".repeat(depth)
                )
                .into_bytes();
            }
            3 => {
                body = (0..self.rng.usize(..512))
                    .map(|_| self.rng.u8(..))
                    .collect()
            }
            _ => {}
        }
        body
    }

    /// A query body: filters, sorts and pages, valid or not.
    fn query(&mut self, depth: u32) -> serde_json::Value {
        let filter = self.filter(depth);
        let mut query = serde_json::json!({"filter": filter});
        if self.chance(50) {
            let order = fastrand::choice(["ASC", "DESC", "SIDEWAYS", ""]).unwrap();
            query["sort"] = serde_json::json!([{"key": self.name(), "order": order}]);
        }
        if self.chance(50) {
            let limit = match self.rng.u8(..4) {
                0 => serde_json::json!(-5),
                1 => serde_json::json!(u64::MAX),
                2 => serde_json::json!("ten"),
                _ => serde_json::json!(self.rng.u32(..100)),
            };
            query["page"] = serde_json::json!({"limit": limit, "token": self.scalar(&["0", "-1", "zz", "99999999999999999999"])});
        }
        query
    }

    fn filter(&mut self, depth: u32) -> serde_json::Value {
        let op = fastrand::choice(["EQ", "NEQ", "GT", "IN", "AND", "OR", "NOT", "eq", ""]).unwrap();
        match op {
            "AND" | "OR" if depth > 0 => {
                let filters: Vec<_> = (0..self.rng.usize(..4))
                    .map(|_| self.filter(depth - 1))
                    .collect();
                serde_json::json!({op: filters})
            }
            _ => serde_json::json!({op: {self.name(): self.json(1)}}),
        }
    }

    /// A path segment, percent-encoded (or, rarely, raw).
    fn segment(&mut self) -> String {
        let name = self.name();
        if self.chance(3) {
            return name;
        }
        name.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn case(&mut self, index: usize) -> Case {
        let route = fastrand::choice([
            "save",
            "get",
            "delete",
            "bulk",
            "transaction",
            "query",
            "invoke",
            "publish",
            "bulkpublish",
            "metadata",
            "healthz",
            "outbound",
            "random",
        ])
        .unwrap();
        let store = self.segment();
        let key = self.segment();
        // Half the publishes go to the embedded default pub/sub.
        let pubsub = if self.chance(50) {
            "pubsub".to_owned()
        } else {
            store.clone()
        };
        let (method, path) = match route {
            "save" => (self.pick(&["POST", "PUT"]), format!("/v1.0/state/{store}")),
            "get" => ("GET", format!("/v1.0/state/{store}/{key}")),
            "delete" => ("DELETE", format!("/v1.0/state/{store}/{key}")),
            "bulk" => ("POST", format!("/v1.0/state/{store}/bulk")),
            "transaction" => ("POST", format!("/v1.0/state/{store}/transaction")),
            "query" => ("POST", format!("/v1.0-alpha1/state/{store}/query")),
            "invoke" => ("POST", format!("/v1.0/invoke/{store}/method/{key}")),
            "publish" => (
                self.pick(&["POST", "PUT"]),
                format!("/v1.0/publish/{pubsub}/{key}"),
            ),
            "bulkpublish" => (
                "POST",
                format!(
                    "/{}/publish/bulk/{pubsub}/{key}",
                    self.pick(&["v1.0", "v1.0-alpha1"])
                ),
            ),
            "metadata" => ("GET", "/v1.0/metadata".to_owned()),
            "healthz" => ("GET", "/v1.0/healthz".to_owned()),
            "outbound" => ("GET", "/v1.0/healthz/outbound".to_owned()),
            _ => ("GET", format!("/{store}/{key}")),
        };
        let method = if self.chance(20) {
            self.pick(METHODS)
        } else {
            method
        };
        let mut query = Vec::new();
        for _ in 0..self.rng.usize(..4) {
            let (name, value) = match self.rng.u8(..7) {
                0 => (
                    "metadata.ttlInSeconds".to_owned(),
                    self.pick(TTLS).to_owned(),
                ),
                1 => ("concurrency".to_owned(), self.pick(CONCURRENCY).to_owned()),
                2 => ("consistency".to_owned(), self.pick(CONSISTENCY).to_owned()),
                3 => (
                    "metadata.contentType".to_owned(),
                    self.pick(CONTENT_TYPES).to_owned(),
                ),
                4 => (format!("metadata.{}", self.segment()), self.segment()),
                5 => (
                    "metadata.rawPayload".to_owned(),
                    self.pick(&["true", "yes", "", "\u{0}", "1"]).to_owned(),
                ),
                _ => ("%%%".to_owned(), "&&=".to_owned()),
            };
            let value: String = value
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            query.push(format!("{name}={value}"));
        }
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut headers = vec!["Host: 127.0.0.1".to_owned(), "Connection: close".to_owned()];
        for _ in 0..self.rng.usize(..4) {
            headers.push(match self.rng.u8(..8) {
                0 => format!(
                    "If-Match: {}",
                    self.pick(ETAGS).replace(['\0', '\u{202e}'], "")
                ),
                1 => format!(
                    "Content-Type: {}",
                    self.pick(CONTENT_TYPES).replace('\0', "")
                ),
                2 => format!("dapr-app-id: {}", self.segment()),
                3 => format!("X-Big: {}", "b".repeat(self.rng.usize(1000..12_000))),
                4 => "traceparent: 00-zz-zz-zz".to_owned(),
                5 => "dapr-api-token: nope".to_owned(),
                6 => (0..100)
                    .map(|i| format!("X-Many-{i}: {i}"))
                    .collect::<Vec<_>>()
                    .join("\r\n"),
                _ => "Expect: 100-continue".to_owned(),
            });
        }
        // No body on GET/HEAD/DELETE most of the time, as clients send them.
        let body = if matches!(method, "GET" | "HEAD" | "DELETE") && self.chance(80) {
            Vec::new()
        } else {
            self.body(route)
        };
        let chunked = self.chance(15);
        if chunked {
            headers.push("Transfer-Encoding: chunked".to_owned());
        } else {
            headers.push(format!("Content-Length: {}", body.len()));
        }
        let mut bytes = format!(
            "{method} {target} HTTP/1.1\r\n{}\r\n\r\n",
            headers.join("\r\n")
        )
        .into_bytes();
        if chunked {
            for piece in body.chunks(700) {
                bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            bytes.extend_from_slice(&body);
        }
        Case {
            name: format!(
                "generated #{index}: {method} {}",
                target.chars().take(120).collect::<String>()
            ),
            bytes,
            // A raw (unencoded) odd byte in the target is not HTTP.
            may_close: !target.is_ascii() || target.bytes().any(|b| b <= b' ' || b == 0x7f),
            head_invocation: method == "HEAD"
                && (route == "invoke" || headers.iter().any(|h| h.starts_with("dapr-app-id"))),
        }
    }
}

fn seed() -> u64 {
    std::env::var("BAD_INPUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

fn case_count() -> usize {
    std::env::var("BAD_INPUT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Runs `cases` against the sidecar, checking health every 50 cases.
fn run_http(sidecar: &mut Sidecar, cases: impl IntoIterator<Item = Case>, seed: u64) {
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let outcome = send(sidecar.http, &case.bytes);
        if outcome.took > Duration::from_millis(200) {
            eprintln!("slow: {} took {:?}", case.name, outcome.took);
        }
        if let Some(problem) = judge(&case, &outcome) {
            failures.push(format!("{} (seed {seed}): {problem}", case.name));
        }
        if i % 50 == 49 {
            sidecar.assert_healthy(&case.name);
        }
    }
    sidecar.assert_healthy("the last case");
    assert!(
        failures.is_empty(),
        "{} bad answers:\n{}\nlog:\n{}",
        failures.len(),
        failures.join("\n"),
        sidecar.log()
    );
}

/// The corpus and the generated HTTP cases.
#[test]
fn http_bad_input() {
    let mut sidecar = Sidecar::start();
    let seed = seed();
    run_http(&mut sidecar, corpus(), seed);
    let mut generator = Generator {
        rng: fastrand::Rng::with_seed(seed),
    };
    fastrand::seed(seed);
    let cases: Vec<Case> = (0..case_count()).map(|i| generator.case(i)).collect();
    run_http(&mut sidecar, cases, seed);
    // Still a working store.
    let body = r#"[{"key":"after","value":"ok"}]"#;
    let save = format!(
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let saved = send(sidecar.http, save.as_bytes()).answer;
    assert_eq!(saved.map(|a| a.status), Some(204));
    let get = b"GET /v1.0/state/statestore/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = send(sidecar.http, get).answer.expect("an answer");
    assert_eq!((got.status, got.body.as_str()), (200, "\"ok\""));
}

// ---------------------------------------------------------------- gRPC

/// Sends and receives messages as the bytes they are.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The methods called (never `Shutdown`), the unimplemented ones included.
const GRPC_METHODS: &[&str] = &[
    "GetState",
    "GetBulkState",
    "SaveState",
    "QueryStateAlpha1",
    "DeleteState",
    "DeleteBulkState",
    "ExecuteStateTransaction",
    "InvokeService",
    "GetMetadata",
    "PublishEvent",
    "InvokeBinding",
    "GetSecret",
    "TryLockAlpha1",
    "NoSuchMethod",
];

/// A gRPC status code that means the server failed. Two `INTERNAL`s are
/// daprd's own answers and so are allowed: `ERR_DIRECT_INVOKE`, and a
/// message that is not protobuf (grpc-go answers "error unmarshalling
/// request" with `INTERNAL`, as the gRPC status code table asks for an
/// unparseable request; tonic does the same).
fn server_fault(status: &tonic::Status) -> bool {
    use tonic::Code;
    let daprs_own = status.message().contains("ERR_DIRECT_INVOKE")
        || status.message().contains("cannot create cloudevent")
        || (status.code() == Code::Internal
            && status
                .message()
                .starts_with("failed to decode Protobuf message"));
    matches!(
        status.code(),
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable
    ) && !daprs_own
}

/// Typed messages with fields out of their range.
fn out_of_range(rng: &mut fastrand::Rng) -> (&'static str, Vec<u8>) {
    let item = |rng: &mut fastrand::Rng| common_pb::StateItem {
        key: format!("k{}", rng.u8(..)),
        value: vec![rng.u8(..); rng.usize(..64)],
        etag: Some(common_pb::Etag {
            value: ETAGS[rng.usize(..ETAGS.len())].into(),
        }),
        metadata: [(
            "ttlInSeconds".to_string(),
            TTLS[rng.usize(..TTLS.len())].to_string(),
        )]
        .into(),
        options: Some(common_pb::StateOptions {
            concurrency: rng.i32(..),
            consistency: rng.i32(-3..5),
        }),
    };
    let publish_metadata = |rng: &mut fastrand::Rng| -> std::collections::HashMap<String, String> {
        [
            (
                "rawPayload".to_string(),
                (fastrand::choice(["true", "maybe", ""]).unwrap()).to_string(),
            ),
            (
                "ttlInSeconds".to_string(),
                TTLS[rng.usize(..TTLS.len())].to_string(),
            ),
        ]
        .into()
    };
    let content_type =
        |rng: &mut fastrand::Rng| CONTENT_TYPES[rng.usize(..CONTENT_TYPES.len())].to_string();
    match rng.u8(..7) {
        5 => (
            "PublishEvent",
            runtime_pb::PublishEventRequest {
                pubsub_name: (fastrand::choice(["pubsub", "", "nope"]).unwrap()).into(),
                topic: (fastrand::choice(["orders", "", "a/../b", "\u{0}"]).unwrap()).into(),
                data: (0..rng.usize(..64)).map(|_| rng.u8(..)).collect(),
                data_content_type: content_type(rng),
                metadata: publish_metadata(rng),
            }
            .encode_to_vec(),
        ),
        6 => (
            fastrand::choice(["BulkPublishEvent", "BulkPublishEventAlpha1"]).unwrap(),
            runtime_pb::BulkPublishRequest {
                pubsub_name: (fastrand::choice(["pubsub", "", "nope"]).unwrap()).into(),
                topic: (fastrand::choice(["orders", "", "x"]).unwrap()).into(),
                entries: (0..rng.usize(..5))
                    .map(|i| runtime_pb::BulkPublishRequestEntry {
                        entry_id: (fastrand::choice(["", "same", &format!("e{i}")]).unwrap())
                            .to_string(),
                        event: (0..rng.usize(..64)).map(|_| rng.u8(..)).collect(),
                        content_type: content_type(rng),
                        metadata: publish_metadata(rng),
                    })
                    .collect(),
                metadata: publish_metadata(rng),
            }
            .encode_to_vec(),
        ),
        0 => (
            "SaveState",
            runtime_pb::SaveStateRequest {
                store_name: "statestore".into(),
                states: (0..rng.usize(1..4)).map(|_| item(rng)).collect(),
            }
            .encode_to_vec(),
        ),
        1 => (
            "GetBulkState",
            runtime_pb::GetBulkStateRequest {
                store_name: "statestore".into(),
                keys: (0..rng.usize(..2000)).map(|i| format!("k{i}")).collect(),
                parallelism: fastrand::choice([i32::MAX, i32::MIN, -1, 0, 7]).unwrap(),
                metadata: Default::default(),
            }
            .encode_to_vec(),
        ),
        2 => (
            "InvokeService",
            runtime_pb::InvokeServiceRequest {
                id: (fastrand::choice(["badinput", "", "nobody", "\u{0}"]).unwrap()).into(),
                message: Some(common_pb::InvokeRequest {
                    method: "m".into(),
                    data: None,
                    content_type: "x".into(),
                    http_extension: Some(common_pb::HttpExtension {
                        verb: rng.i32(..),
                        querystring: "%%%&&".into(),
                    }),
                }),
            }
            .encode_to_vec(),
        ),
        3 => (
            "ExecuteStateTransaction",
            runtime_pb::ExecuteStateTransactionRequest {
                store_name: "statestore".into(),
                operations: (0..rng.usize(..4))
                    .map(|_| runtime_pb::TransactionalStateOperation {
                        operation_type: (fastrand::choice(["upsert", "delete", "x"]).unwrap())
                            .into(),
                        request: rng.bool().then(|| item(rng)),
                    })
                    .collect(),
                metadata: Default::default(),
            }
            .encode_to_vec(),
        ),
        _ => (
            "QueryStateAlpha1",
            runtime_pb::QueryStateRequest {
                store_name: "statestore".into(),
                query: (fastrand::choice([
                    "{\"filter\":{\"EQ\":{\"a\":1}},\"page\":{\"limit\":-1}}",
                    "{\"filter\":{\"AND\":[]}}",
                    "[",
                    "{\"sort\":[{\"key\":\"a\",\"order\":\"x\"}]}",
                ])
                .unwrap())
                .into(),
                metadata: Default::default(),
            }
            .encode_to_vec(),
        ),
    }
}

/// Random bytes and out-of-range fields to every method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_input() {
    let mut sidecar = Sidecar::start();
    let seed = seed();
    fastrand::seed(seed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", sidecar.grpc))
            .unwrap()
            .connect()
            .await
            .expect("connect");
    let mut failures = Vec::new();
    for i in 0..case_count() / 2 {
        let (method, message) = if rng.bool() {
            let method = GRPC_METHODS[rng.usize(..GRPC_METHODS.len())];
            let bytes: Vec<u8> = match rng.u8(..4) {
                // Valid framing of a nested message with junk inside.
                0 => {
                    let mut junk = vec![0x0a, 0x7f];
                    junk.extend((0..0x7f).map(|_| rng.u8(..)));
                    junk
                }
                // A length that runs past the end.
                1 => vec![0x12, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
                _ => (0..rng.usize(..300)).map(|_| rng.u8(..)).collect(),
            };
            (method, bytes)
        } else {
            out_of_range(&mut rng)
        };
        let path = format!("/dapr.proto.runtime.v1.Dapr/{method}");
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let started = Instant::now();
        let call = grpc.unary(
            tonic::Request::new(Bytes::from(message)),
            http::uri::PathAndQuery::try_from(path.as_str()).unwrap(),
            RawCodec,
        );
        let outcome = tokio::time::timeout(ANSWER_WITHIN, call).await;
        let problem = match outcome {
            Err(_) => Some(format!("no answer within {ANSWER_WITHIN:?}")),
            Ok(Err(status)) if server_fault(&status) => Some(format!("{status:?}")),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "gRPC #{i} {method} (seed {seed}, {:?}): {problem}",
                started.elapsed()
            ));
        }
        if i % 50 == 49 {
            sidecar.assert_healthy(&format!("gRPC case #{i} {method}"));
        }
    }
    sidecar.assert_healthy("the last gRPC case");
    assert!(
        failures.is_empty(),
        "{} bad answers:\n{}\nlog:\n{}",
        failures.len(),
        failures.join("\n"),
        sidecar.log()
    );
}
