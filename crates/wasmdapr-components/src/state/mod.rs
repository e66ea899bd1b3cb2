//! State store backends, one module each, all implementing
//! [`StateStore`](wasmdapr_runtime::state::StateStore) with the write
//! semantics of [`WriteCondition`](wasmdapr_runtime::state::WriteCondition).
//!
//! - [`memory`]: `state.in-memory`, a map in the process (tests, caches).
//! - [`sqlite`]: `state.sqlite`, a file next to the app: the embedded default.
//! - [`redis`]: `state.redis`, Dapr's layout (a hash per key, `data` + `version`).
//! - [`postgres`]: `state.postgresql`, one table, conditional writes in SQL.
//!
//! The two SQL stores share one SQL shape (`sql`): the statements are
//! written once, for a dialect.
//!
//! What they share lives here: the `ttlExpireTime` metadata a read returns,
//! the SQL table-name check, the conversion of backend faults,
//! [`bounded`], the deadline every backend call runs under, and
//! [`bulk_get_in_chunks`], how the batched bulk gets walk their keys.

pub mod memory;
pub mod postgres;
pub mod redis;
mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{BulkGetResult, GetRequest, Metadata, StateError, StateValue};

/// The metadata name under which a read reports when its value expires.
pub const TTL_EXPIRE_TIME: &str = "ttlExpireTime";

/// The metadata of a value that expires at `expires_at` (Dapr formats it as
/// RFC 3339 in UTC, to the second).
pub(crate) fn expiry_metadata(expires_at: Option<SystemTime>) -> Metadata {
    let mut metadata = Metadata::new();
    if let Some(at) = expires_at {
        metadata.insert(
            TTL_EXPIRE_TIME.to_owned(),
            humantime::format_rfc3339_seconds(at).to_string(),
        );
    }
    metadata
}

/// Milliseconds since the Unix epoch, the unit expiry times are stored in by
/// the backends that keep them as integers.
pub(crate) fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`unix_millis`].
pub(crate) fn from_unix_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// A backend fault (lost connection, server error) as the runtime reports it.
/// Backend error types are foreign to the runtime's [`StateError`], so they
/// are converted here rather than with `From`.
pub(crate) fn backend_error(context: &str, error: impl std::fmt::Display) -> StateError {
    tracing::warn!(%error, "state store: {context} failed");
    StateError::Backend(format!("{context}: {error}"))
}

/// Runs one backend call under a deadline: `work` gets `deadline` to finish,
/// else the call fails with [`StateError::Backend`] ("no answer within …").
/// `None` means no deadline (only when the user disabled the timeout).
///
/// Every store's calls go through here, so a hung server (a stopped process,
/// a lost network path: connections stay open and nothing answers) costs a
/// caller at most the deadline, whatever the client library does while it
/// waits — retries, backoff sleeps, a connection pool's queue. The runtime
/// turns the error into Dapr's `ERR_STATE_GET` / `ERR_STATE_SAVE` (500).
/// Dropping `work` at the deadline must leave the store usable: the stores
/// below only give up on futures whose cancellation is safe (a pooled
/// connection, a multiplexed Redis request, a wait for SQLite's lock).
pub(crate) async fn bounded<T>(
    what: &str,
    deadline: Option<Duration>,
    work: impl Future<Output = Result<T, StateError>>,
) -> Result<T, StateError> {
    let Some(limit) = deadline else {
        return work.await;
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(deadline_passed(what, limit)),
    }
}

/// The error of a call that got no answer within `limit`.
fn deadline_passed(what: &str, limit: Duration) -> StateError {
    tracing::warn!(?limit, "state store: {what} got no answer in time");
    StateError::Backend(format!("{what}: no answer within {limit:?}"))
}

/// When a call started under a deadline must be over, for work that cannot
/// be cancelled from outside (a blocking SQLite statement checks it before
/// it starts, so work its caller gave up on is never run).
pub(crate) fn deadline_at(deadline: Option<Duration>) -> Option<Instant> {
    deadline.map(|limit| Instant::now() + limit)
}

/// How many keys one batched request of a bulk get or bulk set sends to the
/// backend: a 100k-key bulk is a hundred round trips, while one statement's
/// parameters, one script's arguments and one reply stay small.
pub(crate) const BULK_CHUNK: usize = 1000;

/// Runs a bulk get as batched reads of [`BULK_CHUNK`] keys, one after
/// the other (so at most one backend request is in flight, within any
/// `parallelism` the caller set), and returns one answer per request in
/// their order. `read_chunk` answers one chunk, in its order. When a chunk
/// fails as a whole, the backend is taken to be unavailable: that chunk's
/// keys and all later ones get its error without being tried, so a bulk get
/// during an outage costs one call deadline, not one per chunk.
pub(crate) async fn bulk_get_in_chunks<F, Fut>(
    requests: Vec<GetRequest>,
    mut read_chunk: F,
) -> Vec<BulkGetResult>
where
    F: FnMut(Vec<GetRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<BulkGetResult>, StateError>>,
{
    let total = requests.len();
    let mut answers = Vec::with_capacity(total);
    let mut requests = requests.into_iter();
    loop {
        let chunk: Vec<GetRequest> = requests.by_ref().take(BULK_CHUNK).collect();
        let size = chunk.len();
        if size == 0 {
            break;
        }
        match read_chunk(chunk).await {
            Ok(chunk_answers) if chunk_answers.len() == size => answers.extend(chunk_answers),
            Ok(chunk_answers) => {
                let error = StateError::Backend(format!(
                    "bulk get: {} answers to {size} keys",
                    chunk_answers.len()
                ));
                answers.resize(answers.len() + size, Err(error));
            }
            Err(error) => {
                answers.resize(total, Err(error));
                break;
            }
        }
    }
    answers
}

/// The answers to `requests` from the rows a batched read found (keyed by
/// key), in the order of the requests; a key asked more than once gets a
/// copy of its row each time, any other row is moved, not copied.
pub(crate) fn in_request_order(
    requests: &[GetRequest],
    mut found: HashMap<String, StateValue>,
) -> Vec<BulkGetResult> {
    let mut asked: HashMap<&str, usize> = HashMap::with_capacity(requests.len());
    for request in requests {
        *asked.entry(request.key.as_str()).or_default() += 1;
    }
    requests
        .iter()
        .map(|request| {
            let left = asked.entry(request.key.as_str()).or_default();
            *left = left.saturating_sub(1);
            Ok(if *left == 0 {
                found.remove(&request.key)
            } else {
                found.get(&request.key).cloned()
            })
        })
        .collect()
}

/// The `tableName` metadata: it is spliced into SQL text (identifiers cannot
/// be bound as parameters), so only plain identifiers, optionally qualified
/// by a schema (`schema.table`), are accepted.
pub(crate) fn table_name(spec: &ComponentSpec, default: &str) -> Result<String, ComponentError> {
    let name = spec.metadata("tableName").unwrap_or(default);
    let valid_part = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| valid_part(p)) {
        return Err(spec.field_error(
            "spec.metadata.tableName",
            format!(
                "`{name}` is not a valid table name (letters, digits and `_`, optionally `schema.table`)"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// A duration given either as whole seconds (`20`) or in Go/humantime
/// notation (`20s`, `1m30s`), the two forms Dapr's components accept.
pub(crate) fn duration_or(
    spec: &ComponentSpec,
    name: &str,
    default: Duration,
) -> Result<Duration, ComponentError> {
    let Some(raw) = spec.metadata(name) else {
        return Ok(default);
    };
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(raw).map_err(|_| {
        spec.field_error(
            format!("spec.metadata.{name}"),
            format!("`{raw}` is not a duration (e.g. `20s` or `20`)"),
        )
    })
}

/// The `cleanupInterval` of the SQL stores: how often expired rows are
/// deleted (default 1 h); `0` or a negative value disables the sweep, as in
/// Dapr (expired rows still read as missing).
pub(crate) fn cleanup_interval(spec: &ComponentSpec) -> Result<Option<Duration>, ComponentError> {
    match spec.metadata("cleanupInterval").map(str::trim) {
        Some(raw) if raw == "0" || raw.starts_with('-') => Ok(None),
        _ => Ok(Some(duration_or(
            spec,
            "cleanupInterval",
            Duration::from_secs(3600),
        )?)
        .filter(|d| !d.is_zero())),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use wasmdapr_runtime::ComponentSpec;

    /// A spec of `kind` with the given metadata, as the YAML loader makes it.
    pub fn spec(kind: &str, metadata: &[(&str, &str)]) -> ComponentSpec {
        ComponentSpec {
            name: "store".into(),
            kind: kind.into(),
            version: "v1".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            scopes: Vec::new(),
            source: PathBuf::from("components/store.yaml"),
        }
    }

    /// Asserts that parsing `metadata` for `kind` with `parse` fails with
    /// a field error naming `spec.metadata.<field>`.
    pub fn refuses<T: std::fmt::Debug>(
        kind: &str,
        metadata: &[(&str, &str)],
        field: &str,
        parse: impl Fn(&ComponentSpec) -> Result<T, wasmdapr_runtime::ComponentError>,
    ) {
        let err = parse(&spec(kind, metadata)).expect_err("refused");
        assert!(
            err.to_string().contains(&format!("spec.metadata.{field}")),
            "{metadata:?}: {err}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::spec;
    use super::*;

    /// Table names are identifiers only, because they are spliced into SQL.
    #[test]
    fn table_names() {
        assert_eq!(table_name(&spec("s", &[]), "state").unwrap(), "state");
        assert_eq!(
            table_name(&spec("s", &[("tableName", "app.st_1")]), "state").unwrap(),
            "app.st_1"
        );
        for bad in ["x; drop table y", "1abc", "a.b.c", "a-b", "\"q\""] {
            let err = table_name(&spec("s", &[("tableName", bad)]), "state")
                .unwrap_err()
                .to_string();
            assert!(err.contains("spec.metadata.tableName"), "{err}");
        }
    }

    /// Durations are accepted as seconds or with units; garbage names the field.
    #[test]
    fn durations() {
        let d = |v: &str| duration_or(&spec("s", &[("timeout", v)]), "timeout", Duration::ZERO);
        assert_eq!(d("20").unwrap(), Duration::from_secs(20));
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        let err = d("soon").unwrap_err().to_string();
        assert!(err.contains("spec.metadata.timeout"), "{err}");
    }

    /// A call that outlives its deadline fails with a backend error naming
    /// it; a call within its deadline, or without one, is untouched.
    #[tokio::test]
    async fn calls_are_bounded() {
        let hung = bounded("Redis get", Some(Duration::from_millis(50)), async {
            std::future::pending::<Result<(), StateError>>().await
        })
        .await;
        match hung {
            Err(StateError::Backend(message)) => {
                assert!(
                    message.starts_with("Redis get: no answer within 50ms"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        let quick = bounded("get", Some(Duration::from_secs(1)), async { Ok(7) }).await;
        assert_eq!(quick, Ok(7));
        let slow = bounded("get", None, async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(8)
        })
        .await;
        assert_eq!(slow, Ok(8));
    }

    fn get(key: &str) -> GetRequest {
        GetRequest {
            key: key.into(),
            ..Default::default()
        }
    }

    fn value(data: &str) -> StateValue {
        StateValue {
            data: data.into(),
            etag: None,
            metadata: Metadata::new(),
        }
    }

    /// Rows come back in request order, duplicates answered each time,
    /// missing keys as `None`.
    #[test]
    fn rows_in_request_order() {
        let requests = ["b", "x", "a", "b"].map(get);
        let found = HashMap::from([("a".into(), value("1")), ("b".into(), value("2"))]);
        let answers = in_request_order(&requests, found);
        let data: Vec<Option<Vec<u8>>> = answers
            .into_iter()
            .map(|a| a.unwrap().map(|v| v.data))
            .collect();
        assert_eq!(
            data,
            [
                Some(b"2".to_vec()),
                None,
                Some(b"1".to_vec()),
                Some(b"2".to_vec())
            ]
        );
    }

    /// Keys are read chunk by chunk, in order; after a chunk fails, it and
    /// every later key carry its error and no later chunk is tried.
    #[tokio::test]
    async fn chunks_and_failures() {
        let requests: Vec<GetRequest> = (0..2500).map(|i| get(&i.to_string())).collect();
        let mut sizes = Vec::new();
        let answers = bulk_get_in_chunks(requests.clone(), |chunk| {
            sizes.push(chunk.len());
            async move { Ok(chunk.into_iter().map(|r| Ok(Some(value(&r.key)))).collect()) }
        })
        .await;
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(answers.len(), 2500);
        assert_eq!(
            answers[1234].as_ref().unwrap().as_ref().unwrap().data,
            b"1234"
        );

        let mut tried = 0;
        let answers = bulk_get_in_chunks(requests, |chunk| {
            tried += 1;
            let fail = tried == 2;
            async move {
                if fail {
                    Err(StateError::Backend("down".into()))
                } else {
                    Ok(chunk.into_iter().map(|_| Ok(None)).collect())
                }
            }
        })
        .await;
        assert_eq!(tried, 2);
        assert_eq!(answers.len(), 2500);
        assert!(answers[..1000].iter().all(|a| a == &Ok(None)));
        assert!(
            answers[1000..]
                .iter()
                .all(|a| a == &Err(StateError::Backend("down".into())))
        );
    }

    /// Expiry metadata is RFC 3339 UTC, as Dapr reports it.
    #[test]
    fn expiry_is_rfc3339() {
        let at = from_unix_millis(1_700_000_000_000);
        assert_eq!(
            expiry_metadata(Some(at))
                .get(TTL_EXPIRE_TIME)
                .map(String::as_str),
            Some("2023-11-14T22:13:20Z")
        );
        assert!(expiry_metadata(None).is_empty());
        assert_eq!(unix_millis(at), 1_700_000_000_000);
    }
}
