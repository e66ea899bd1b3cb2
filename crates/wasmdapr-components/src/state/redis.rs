//! `state.redis`: Dapr's Redis layout, so a store can be shared with a real
//! Dapr sidecar: each key is a hash with fields `data` (the bytes) and
//! `version` (an integer, incremented by every write). The ETag is the
//! version as a decimal string; an ETag that is not a number is
//! [`StateError::EtagInvalid`].
//!
//! Every conditional write is one Lua script, which Redis runs atomically:
//! the check and the write cannot interleave with another client. A
//! transaction is one script too: it checks the conditions of all operations
//! (simulating the versions earlier operations of the same transaction would
//! produce) before it writes anything. TTLs are Redis expirations, so an
//! expired key is simply gone. A read is one script doing `HMGET key data
//! version` + `PEXPIRETIME key`; a bulk get runs it for a thousand keys per
//! round trip.
//!
//! # Outages
//!
//! One multiplexed connection, kept by redis-rs's `ConnectionManager`,
//! serves every call. Each call runs under a deadline ([`bounded`]:
//! `dialTimeout` + the response timeout), and each request on the wire under
//! the response timeout (`readTimeout`/`writeTimeout`), so a hung server
//! costs a caller about a second, not minutes. When a call finds the
//! connection broken, the manager reconnects in the background and the call
//! is tried again on the new connection (`redisMaxRetries`), so calls fail
//! within milliseconds while the server is down and the first call after it
//! is back succeeds. The manager's own retry loop is switched off: its
//! backoff starts at one second and grows a hundredfold per attempt (redis-rs
//! 0.32 hands its `factor` to backon as the multiplier), and every call
//! waited on it — the 26 s to 90 s hangs of a Redis outage.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisError, RedisResult, Script};
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    BulkGetResult, BulkSetError, DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest,
    StateError, StateFeatures, StateStore, StateValue, Ttl, WriteCondition,
};

use super::{
    BULK_CHUNK, backend_error, bounded, bulk_get_in_chunks, expiry_metadata, from_unix_millis,
};

/// Writes `data` to hash `KEYS[i]` (a new `version`, the TTL set or
/// removed) with ARGV[4i-3 .. 4i] = condition (`always` | `absent` |
/// `etag`), etag, data, ttl seconds (-1: none), in order, stopping at the
/// first write whose condition fails: returns 0 when every write was made, else the (1-based)
/// index of the failed one, the writes before it made. One script is one
/// round trip for the whole bulk, and atomic.
static BULK_SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 1, #KEYS do
  local key, base = KEYS[i], (i - 1) * 4
  local cond, etag = ARGV[base + 1], ARGV[base + 2]
  local version = redis.call("HGET", key, "version")
  if cond == "absent" and version then return i end
  if cond == "etag" and version ~= etag then return i end
  redis.call("HINCRBY", key, "version", 1)
  redis.call("HSET", key, "data", ARGV[base + 3])
  local ttl = tonumber(ARGV[base + 4])
  if ttl >= 0 then redis.call("EXPIRE", key, ttl) else redis.call("PERSIST", key) end
end
return 0
"#,
    )
});

/// Reads every key of `KEYS`: for each, `data`, `version` (nil when the key
/// or field is missing) and its `PEXPIRETIME`, flattened. One script is one
/// atomic step, so a key's value and expiry belong together; a single get
/// and each batch of a bulk get are the same read.
static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i, key in ipairs(KEYS) do
  local hash = redis.call("HMGET", key, "data", "version")
  out[3 * i - 2] = hash[1]
  out[3 * i - 1] = hash[2]
  out[3 * i] = redis.call("PEXPIRETIME", key)
end
return out
"#,
    )
});

/// The script a read runs ([`READ_SCRIPT`]), so a benchmark can time the
/// backend's own cost of exactly this read beside the sidecar's.
pub fn read_script() -> &'static Script {
    &READ_SCRIPT
}

/// Deletes `KEYS[1]` if its version is `ARGV[1]`; returns 1, or 0 when the
/// version differs (or the key is missing).
static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call("HGET", KEYS[1], "version") ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
return 1
"#,
    )
});

/// Applies operation i on `KEYS[i]` with ARGV[5i-4 .. 5i] = kind (`set` |
/// `del`), condition, etag, data, ttl; all conditions are checked first, so
/// it returns 0 having written nothing, or 1 having written everything.
static TRANSACTION_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local versions = {}
for i = 1, #KEYS do
  local key, base = KEYS[i], (i - 1) * 5
  local kind, cond, etag = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local current = versions[key]
  if current == nil then current = redis.call("HGET", key, "version") end
  if cond == "absent" and current then return 0 end
  if cond == "etag" and current ~= etag then return 0 end
  if kind == "set" then
    versions[key] = tostring((tonumber(current) or 0) + 1)
  else
    versions[key] = false
  end
end
for i = 1, #KEYS do
  local key, base = KEYS[i], (i - 1) * 5
  if ARGV[base + 1] == "set" then
    redis.call("HINCRBY", key, "version", 1)
    redis.call("HSET", key, "data", ARGV[base + 4])
    local ttl = tonumber(ARGV[base + 5])
    if ttl >= 0 then redis.call("EXPIRE", key, ttl) else redis.call("PERSIST", key) end
  else
    redis.call("DEL", key)
  end
end
return 1
"#,
    )
});

/// The most keys one `SCAN` step of a query asks for (and so the most values
/// one pipelined read fetches); the query asks for fewer when values are big.
const SCAN_BATCH: usize = 500;

/// The metadata of a `state.redis` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redisHost`, `host:port`, default `localhost:6379`.
    pub host: String,
    /// The port of `redisHost` (6379 when not given).
    pub port: u16,
    /// `redisUsername` (ACL user).
    pub username: Option<String>,
    /// `redisPassword`.
    pub password: Option<String>,
    /// `redisDB`, default 0.
    pub db: i64,
    /// `redisMaxRetries` (or `maxRetries`, its older name), default 3, `-1`
    /// for none: how many times a call that found the connection broken is
    /// tried again on a new one.
    pub max_retries: usize,
    /// `dialTimeout`, default 5 s (`None`: disabled with a negative value).
    pub dial_timeout: Option<Duration>,
    /// `readTimeout`, default 3 s (`None`: disabled): the longest a reply may take.
    pub read_timeout: Option<Duration>,
    /// `writeTimeout`, default `readTimeout` (`None`: disabled).
    pub write_timeout: Option<Duration>,
    /// `ttlInSeconds`: the TTL of writes that do not give one (none by default).
    pub default_ttl: Option<Duration>,
}

impl RedisConfig {
    /// Parses the component's metadata.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let address = spec
            .metadata("redisHost")
            .unwrap_or("localhost:6379")
            .trim();
        let (host, port) = split_host_port(address).ok_or_else(|| {
            spec.field_error(
                "spec.metadata.redisHost",
                format!("`{address}` is not `host:port`"),
            )
        })?;
        if spec.parse_or("enableTLS", false)? {
            return Err(spec.field_error(
                "spec.metadata.enableTLS",
                "TLS connections to Redis are not supported by this build of wasmdapr; \
                 set enableTLS to false (e.g. reach Redis through a TLS tunnel)",
            ));
        }
        let db: i64 = spec.parse_or("redisDB", 0)?;
        if db < 0 {
            return Err(spec.field_error("spec.metadata.redisDB", format!("{db} is negative")));
        }
        let default_ttl = match spec.parse_or::<i64>("ttlInSeconds", -1)? {
            -1 => None,
            s if s < 0 => {
                return Err(spec.field_error(
                    "spec.metadata.ttlInSeconds",
                    format!("{s} is negative (use -1 for no expiry)"),
                ));
            }
            s => Some(Duration::from_secs(s.unsigned_abs())),
        };
        let retries_name = if spec.metadata("redisMaxRetries").is_some() {
            "redisMaxRetries"
        } else {
            "maxRetries"
        };
        let max_retries = match spec.parse_or::<i64>(retries_name, 3)? {
            -1 => 0,
            n if n < 0 => {
                return Err(spec.field_error(
                    format!("spec.metadata.{retries_name}"),
                    format!("{n} is negative (use -1 for no retries)"),
                ));
            }
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let read_timeout = redis_timeout(spec, "readTimeout", Some(Duration::from_secs(3)))?;
        Ok(RedisConfig {
            host,
            port,
            username: spec.metadata("redisUsername").map(str::to_owned),
            password: spec.metadata("redisPassword").map(str::to_owned),
            db,
            max_retries,
            dial_timeout: redis_timeout(spec, "dialTimeout", Some(Duration::from_secs(5)))?,
            read_timeout,
            write_timeout: redis_timeout(spec, "writeTimeout", read_timeout)?,
            default_ttl,
        })
    }

    /// The longest one request may wait for its reply. redis-rs bounds the
    /// write and the read of a request together, so it is the longer of
    /// `readTimeout` and `writeTimeout`; none when reads are unbounded.
    pub fn response_timeout(&self) -> Option<Duration> {
        let read = self.read_timeout?;
        Some(self.write_timeout.map_or(read, |write| write.max(read)))
    }

    /// The deadline of one call: a new connection, then one request (a
    /// call retried after a broken connection fails fast, so retries fit).
    pub fn call_deadline(&self) -> Option<Duration> {
        Some(self.dial_timeout? + self.response_timeout()?)
    }

    /// The client of this server, and the shared connection every call of
    /// a component uses, checked with `PING` within [`Self::call_deadline`]
    /// so a wrong address fails the start rather than the first request.
    /// The manager makes one connection attempt per reconnection (see the
    /// module's "Outages"): calls retry, within their deadline, instead.
    pub(crate) async fn connect(
        &self,
        spec: &ComponentSpec,
    ) -> Result<(redis::Client, ConnectionManager), ComponentError> {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(self.host.clone(), self.port),
            redis: RedisConnectionInfo {
                db: self.db,
                username: self.username.clone(),
                password: self.password.clone(),
                ..Default::default()
            },
        };
        let client = redis::Client::open(info).map_err(|e| spec.init_error(e))?;
        let mut manager_config = ConnectionManagerConfig::new().set_number_of_retries(0);
        if let Some(dial) = self.dial_timeout {
            manager_config = manager_config.set_connection_timeout(dial);
        }
        if let Some(response) = self.response_timeout() {
            manager_config = manager_config.set_response_timeout(response);
        }
        let address = format!("{}:{}", self.host, self.port);
        let unreachable = |e: &dyn std::fmt::Display| {
            spec.init_error(format!("cannot reach Redis at {address}: {e}"))
        };
        let start = async {
            let mut connection = ConnectionManager::new_with_config(client.clone(), manager_config)
                .await
                .map_err(|e| unreachable(&e))?;
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| unreachable(&e))?;
            Ok::<_, ComponentError>(connection)
        };
        let connection = match self.call_deadline() {
            Some(limit) => tokio::time::timeout(limit, start)
                .await
                .map_err(|_| unreachable(&format!("no answer within {limit:?}")))??,
            None => start.await?,
        };
        Ok((client, connection))
    }
}

/// A timeout as Dapr's Redis components read it (go-redis semantics): a
/// bare integer is milliseconds, `0` (or nothing) means the default, a
/// negative value disables the timeout; otherwise a duration such as `500ms`
/// or `3s`.
fn redis_timeout(
    spec: &ComponentSpec,
    name: &str,
    default: Option<Duration>,
) -> Result<Option<Duration>, ComponentError> {
    let Some(raw) = spec.metadata(name).map(str::trim) else {
        return Ok(default);
    };
    let parse = |text: &str| {
        text.parse::<u64>()
            .map(Duration::from_millis)
            .or_else(|_| humantime::parse_duration(text))
            .map_err(|_| {
                spec.field_error(
                    format!("spec.metadata.{name}"),
                    format!("`{raw}` is not a duration (e.g. `500ms`, `3s` or `-1` for none)"),
                )
            })
    };
    if let Some(negative) = raw.strip_prefix('-') {
        parse(negative)?;
        return Ok(None);
    }
    let timeout = parse(raw)?;
    Ok(if timeout.is_zero() {
        default
    } else {
        Some(timeout)
    })
}

/// `host:port`, `host` (port 6379) or `[v6]:port`.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if rest.is_empty() => 6379,
            None => return None,
        };
        return (!host.is_empty()).then(|| (host.to_owned(), port));
    }
    match address.split_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None if !address.is_empty() => Some((address.to_owned(), 6379)),
        None => None,
    }
}

/// The Redis state store.
#[derive(Clone)]
pub struct RedisStateStore {
    connection: ConnectionManager,
    default_ttl: Option<Duration>,
    /// See [`RedisConfig::call_deadline`].
    deadline: Option<Duration>,
    /// See [`RedisConfig::max_retries`].
    max_retries: usize,
}

impl std::fmt::Debug for RedisStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStateStore")
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisStateStore {
    /// Connects and checks the server answers (`PING`), so a wrong address
    /// fails the sidecar's start rather than its first request.
    pub async fn connect(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        let config = RedisConfig::from_spec(spec)?;
        let (_, connection) = config.connect(spec).await?;
        let address = format!("{}:{}", config.host, config.port);
        tracing::info!(component = %spec.name, %address, db = config.db, "Redis state store ready");
        Ok(RedisStateStore {
            connection,
            default_ttl: config.default_ttl,
            deadline: config.call_deadline(),
            max_retries: config.max_retries,
        })
    }

    /// Runs one request (a command, a pipeline, a script) built by
    /// `attempt` on the shared connection, under the call's deadline. A
    /// request that failed because the connection is broken (refused,
    /// reset, closed) is tried again, up to `redisMaxRetries` times: the
    /// failure made the manager reconnect, and the retry waits for that
    /// connection. As in Dapr (go-redis retries the same way), a write
    /// whose connection broke after Redis ran it but before its reply
    /// arrived runs twice: harmless for a plain write (same value, next
    /// version); a conditional one then reports an ETag mismatch.
    async fn call<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> Result<T, StateError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        bounded(what, self.deadline, async {
            let mut retries = 0;
            loop {
                match attempt(self.connection.clone()).await {
                    Err(error) if retries < self.max_retries && is_broken_connection(&error) => {
                        retries += 1;
                        tracing::debug!(%error, retries, "Redis state store: {what}: connection broken, trying again");
                    }
                    result => return result.map_err(redis_error(what)),
                }
            }
        })
        .await
    }

    /// The TTL argument of the scripts: seconds, or -1 for none. A request
    /// without `ttlInSeconds` gets the component's default.
    fn ttl_arg(&self, request: &SetRequest) -> Result<i64, StateError> {
        let ttl = match request.ttl {
            Ttl::Unset => self.default_ttl,
            ttl => ttl.duration(),
        };
        Ok(ttl.map_or(-1, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)))
    }
}

/// The condition and ETag arguments of the scripts, refusing ETags that
/// cannot be versions.
fn condition_args(condition: WriteCondition) -> Result<(&'static str, String), StateError> {
    match condition {
        WriteCondition::Always => Ok(("always", String::new())),
        WriteCondition::MustNotExist => Ok(("absent", String::new())),
        WriteCondition::EtagMatches(etag) => match etag.parse::<u64>() {
            // Normalised, so `007` names version 7 as Redis prints it.
            Ok(version) => Ok(("etag", version.to_string())),
            Err(_) => Err(StateError::EtagInvalid(etag)),
        },
    }
}

fn redis_error(context: &str) -> impl Fn(RedisError) -> StateError + '_ {
    move |error| backend_error(context, error)
}

/// The connection is gone (the server closed or refused it): the request
/// may be tried again on a new one. A timeout is not such an error: the
/// connection stays (a late reply is matched and dropped) and trying again
/// would only double the wait.
pub(crate) fn is_broken_connection(error: &RedisError) -> bool {
    error.is_io_error() && error.is_unrecoverable_error()
}

/// One hash as `HMGET key data version` + `PEXPIRETIME key` return it.
fn to_value(
    data: Option<Vec<u8>>,
    version: Option<String>,
    expire_at_ms: i64,
) -> Option<StateValue> {
    let data = data?;
    Some(StateValue {
        data,
        etag: version,
        // PEXPIRETIME: -1 no expiry, -2 no key.
        metadata: expiry_metadata((expire_at_ms >= 0).then(|| from_unix_millis(expire_at_ms))),
    })
}

/// The value of one key from its three replies in [`READ_SCRIPT`]'s answer.
fn read_reply(replies: &[redis::Value]) -> Result<Option<StateValue>, RedisError> {
    let [data, version, expires] = replies else {
        return Err(RedisError::from((
            redis::ErrorKind::TypeError,
            "a read answers three values per key",
        )));
    };
    Ok(to_value(
        redis::from_redis_value(data)?,
        redis::from_redis_value(version)?,
        redis::from_redis_value(expires)?,
    ))
}

/// Escapes the characters special to `SCAN MATCH` glob patterns.
fn glob_escape(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

#[async_trait]
impl StateStore for RedisStateStore {
    fn features(&self) -> StateFeatures {
        StateFeatures {
            etag: true,
            transactional: true,
            ttl: true,
            query: true,
        }
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        let mut invocation = READ_SCRIPT.prepare_invoke();
        invocation.key(&request.key);
        let invocation = &invocation;
        let (data, version, expires) = self
            .call("Redis get", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(to_value(data, version, expires))
    }

    /// [`READ_SCRIPT`] for each chunk of keys, so each key reads exactly as
    /// [`StateStore::get`] reads it. A chunk that fails on the server (a key
    /// that is not a hash: `WRONGTYPE`) is read again key by key, so the
    /// error lands on its key alone.
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetResult> {
        bulk_get_in_chunks(requests, |chunk| async move {
            let mut invocation = READ_SCRIPT.prepare_invoke();
            for request in &chunk {
                invocation.key(&request.key);
            }
            let invocation = &invocation;
            let values = self
                .call("Redis bulk get", |mut c| async move {
                    match invocation.invoke_async::<Vec<redis::Value>>(&mut c).await {
                        Ok(replies) => replies
                            .chunks(3)
                            .map(read_reply)
                            .collect::<Result<Vec<_>, _>>()
                            .map(Some),
                        // The server refused the read (not the connection
                        // failing, not a timeout): find which key.
                        Err(error) if !error.is_io_error() => Ok(None),
                        Err(error) => Err(error),
                    }
                })
                .await?;
            match values {
                Some(values) => Ok(values.into_iter().map(Ok).collect()),
                None => {
                    let mut answers = Vec::with_capacity(chunk.len());
                    for request in chunk {
                        answers.push(self.get(request).await);
                    }
                    Ok(answers)
                }
            }
        })
        .await
    }

    /// A bulk of one: [`BULK_SET_SCRIPT`] checks and writes atomically.
    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        self.bulk_set(vec![request])
            .await
            .map_err(|failed| failed.error)
    }

    /// One [`BULK_SET_SCRIPT`] per [`BULK_CHUNK`] writes (one round trip
    /// for any usual bulk, while one script never holds the server long). A
    /// write whose ETag cannot be a version is found out before its chunk is
    /// sent: the writes before it are made, as they would be one by one, and
    /// its error is returned at its index.
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), BulkSetError> {
        for (chunk_index, chunk) in requests.chunks(BULK_CHUNK).enumerate() {
            let offset = chunk_index * BULK_CHUNK;
            let mut invocation = BULK_SET_SCRIPT.prepare_invoke();
            let mut invalid = None;
            let mut sent = 0;
            for (i, request) in chunk.iter().enumerate() {
                let args = self
                    .ttl_arg(request)
                    .and_then(|ttl| Ok((ttl, condition_args(request.condition())?)));
                match args {
                    Ok((ttl, (condition, etag))) => {
                        invocation
                            .key(&request.key)
                            .arg(condition)
                            .arg(etag)
                            .arg(&request.value)
                            .arg(ttl);
                        sent += 1;
                    }
                    Err(error) => {
                        invalid = Some(BulkSetError {
                            index: offset + i,
                            error,
                        });
                        break;
                    }
                }
            }
            if sent > 0 {
                let invocation = &invocation;
                let what = if requests.len() == 1 {
                    "Redis set"
                } else {
                    "Redis bulk set"
                };
                let failed: i64 = self
                    .call(what, |mut c| async move {
                        invocation.invoke_async(&mut c).await
                    })
                    .await
                    .map_err(|error| BulkSetError {
                        index: offset,
                        error,
                    })?;
                if let Ok(failed @ 1..) = usize::try_from(failed) {
                    return Err(BulkSetError {
                        index: offset + failed - 1,
                        error: StateError::EtagMismatch,
                    });
                }
            }
            if let Some(invalid) = invalid {
                return Err(invalid);
            }
        }
        Ok(())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        match condition_args(request.condition())? {
            ("etag", etag) => {
                let mut invocation = DELETE_SCRIPT.prepare_invoke();
                invocation.key(&request.key).arg(etag);
                let invocation = &invocation;
                let deleted: i64 = self
                    .call("Redis delete", |mut c| async move {
                        invocation.invoke_async(&mut c).await
                    })
                    .await?;
                if deleted == 0 {
                    return Err(StateError::EtagMismatch);
                }
            }
            _ => {
                let mut command = redis::cmd("DEL");
                command.arg(&request.key);
                let command = &command;
                let _: i64 = self
                    .call("Redis delete", |mut c| async move {
                        command.query_async(&mut c).await
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        if operations.is_empty() {
            return Ok(());
        }
        let mut invocation = TRANSACTION_SCRIPT.prepare_invoke();
        for operation in &operations {
            match operation {
                Operation::Upsert(set) => {
                    let ttl = self.ttl_arg(set)?;
                    let (condition, etag) = condition_args(set.condition())?;
                    invocation
                        .key(&set.key)
                        .arg("set")
                        .arg(condition)
                        .arg(etag)
                        .arg(&set.value)
                        .arg(ttl);
                }
                Operation::Delete(delete) => {
                    let (condition, etag) = condition_args(delete.condition())?;
                    invocation
                        .key(&delete.key)
                        .arg("del")
                        .arg(condition)
                        .arg(etag)
                        .arg("")
                        .arg(-1);
                }
            }
        }
        let invocation = &invocation;
        let applied: i64 = self
            .call("Redis transaction", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        if applied == 0 {
            return Err(StateError::EtagMismatch);
        }
        Ok(())
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<ScanBatch, StateError> {
        let pattern = format!("{}*", glob_escape(prefix));
        // The cursor is SCAN's own: batches follow the server's hash order,
        // COUNT is a hint, and a key may come twice (the query's evaluation
        // holds a key once).
        let cursor: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| StateError::Backend(format!("Redis scan: bad cursor `{c}`")))?,
        };
        // Both steps run under the store's deadline and retry, as every
        // other call: a hung Redis must not hold a query either.
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(batch.clamp(1, SCAN_BATCH))
            .arg("TYPE")
            .arg("hash");
        let (next, keys): (u64, Vec<String>) = self
            .call("Redis scan", |mut connection| {
                let scan = scan.clone();
                async move { scan.query_async(&mut connection).await }
            })
            .await?;
        let next = (next != 0).then(|| next.to_string());
        if keys.is_empty() {
            return Ok(ScanBatch {
                rows: Vec::new(),
                next,
            });
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("HMGET")
                .arg(key)
                .arg("data")
                .arg("version")
                .cmd("PEXPIRETIME")
                .arg(key);
        }
        let values: Vec<redis::Value> = self
            .call("Redis scan", |mut connection| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut connection).await }
            })
            .await?;
        if values.len() != keys.len() * 2 {
            return Err(StateError::Backend(format!(
                "Redis scan: {} replies to {} commands",
                values.len(),
                keys.len() * 2
            )));
        }
        let mut rows = Vec::with_capacity(keys.len());
        for (key, pair) in keys.into_iter().zip(values.chunks(2)) {
            let (data, version): (Option<Vec<u8>>, Option<String>) =
                redis::from_redis_value(&pair[0]).map_err(redis_error("Redis scan"))?;
            let expires: i64 =
                redis::from_redis_value(&pair[1]).map_err(redis_error("Redis scan"))?;
            // A key deleted or expired between SCAN and HMGET is skipped.
            if let Some(value) = to_value(data, version, expires) {
                rows.push((key, value));
            }
        }
        Ok(ScanBatch { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::spec;
    use super::*;

    /// Defaults match Dapr's.
    #[test]
    fn parses_config() {
        let config = RedisConfig::from_spec(&spec("state.redis", &[])).unwrap();
        assert_eq!(
            config,
            RedisConfig {
                host: "localhost".into(),
                port: 6379,
                username: None,
                password: None,
                db: 0,
                max_retries: 3,
                dial_timeout: Some(Duration::from_secs(5)),
                read_timeout: Some(Duration::from_secs(3)),
                write_timeout: Some(Duration::from_secs(3)),
                default_ttl: None,
            }
        );
        let config = RedisConfig::from_spec(&spec(
            "state.redis",
            &[
                ("redisHost", "[::1]:7000"),
                ("redisUsername", "app"),
                ("redisPassword", "secret"),
                ("redisDB", "3"),
                ("enableTLS", "false"),
                ("maxRetries", "5"),
                ("ttlInSeconds", "60"),
            ],
        ))
        .unwrap();
        assert_eq!((config.host.as_str(), config.port), ("::1", 7000));
        assert_eq!(config.username.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("secret"));
        assert_eq!((config.db, config.max_retries), (3, 5));
        assert_eq!(config.default_ttl, Some(Duration::from_secs(60)));
        assert_eq!(split_host_port("redis"), Some(("redis".into(), 6379)));
        let dapr_name = RedisConfig::from_spec(&spec(
            "state.redis",
            &[("redisMaxRetries", "-1"), ("maxRetries", "7")],
        ))
        .unwrap();
        assert_eq!(dapr_name.max_retries, 0);
    }

    /// Timeouts read as Dapr reads them: bare integers are milliseconds,
    /// `0` is the default, negative disables; the call deadline is a dial
    /// plus a request.
    #[test]
    fn parses_timeouts() {
        let config = |metadata: &[(&str, &str)]| {
            RedisConfig::from_spec(&spec("state.redis", metadata)).unwrap()
        };
        let c = config(&[("dialTimeout", "250"), ("readTimeout", "1s")]);
        assert_eq!(c.dial_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(1)));
        assert_eq!(c.write_timeout, Some(Duration::from_secs(1)));
        assert_eq!(c.response_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(c.call_deadline(), Some(Duration::from_millis(1250)));
        let c = config(&[("readTimeout", "500ms"), ("writeTimeout", "2s")]);
        assert_eq!(c.response_timeout(), Some(Duration::from_secs(2)));
        let c = config(&[("readTimeout", "0"), ("dialTimeout", "0s")]);
        assert_eq!(c.read_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.dial_timeout, Some(Duration::from_secs(5)));
        let c = config(&[("readTimeout", "-1")]);
        assert_eq!((c.read_timeout, c.write_timeout), (None, None));
        assert_eq!((c.response_timeout(), c.call_deadline()), (None, None));
    }

    /// Each bad value is reported with the field it came from.
    #[test]
    fn bad_metadata_names_the_field() {
        for (metadata, field) in [
            (("redisHost", "host:port"), "spec.metadata.redisHost"),
            (("redisHost", ":6379"), "spec.metadata.redisHost"),
            (("redisDB", "first"), "spec.metadata.redisDB"),
            (("redisDB", "-2"), "spec.metadata.redisDB"),
            (("enableTLS", "yes please"), "spec.metadata.enableTLS"),
            (("enableTLS", "true"), "spec.metadata.enableTLS"),
            (("maxRetries", "-2"), "spec.metadata.maxRetries"),
            (("redisMaxRetries", "x"), "spec.metadata.redisMaxRetries"),
            (("dialTimeout", "-soon"), "spec.metadata.dialTimeout"),
            (("writeTimeout", "1 parsec"), "spec.metadata.writeTimeout"),
            (("ttlInSeconds", "-5"), "spec.metadata.ttlInSeconds"),
            (("ttlInSeconds", "1h"), "spec.metadata.ttlInSeconds"),
            (("readTimeout", "slow"), "spec.metadata.readTimeout"),
        ] {
            let err = RedisConfig::from_spec(&spec("state.redis", &[metadata]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "expected {field} in {err}");
        }
    }

    /// Glob characters of a prefix match themselves only.
    #[test]
    fn escapes_glob_patterns() {
        assert_eq!(glob_escape("a||b"), "a||b");
        assert_eq!(glob_escape(r"q*?[x]\^-"), r"q\*\?\[x\]\\\^\-");
    }

    /// Versions are numbers; anything else is an invalid ETag.
    #[test]
    fn etags_are_versions() {
        assert_eq!(
            condition_args(WriteCondition::EtagMatches("007".into())),
            Ok(("etag", "7".into()))
        );
        assert_eq!(
            condition_args(WriteCondition::EtagMatches("x1".into())),
            Err(StateError::EtagInvalid("x1".into()))
        );
    }

    /// An unreachable server fails the start with an init error naming the
    /// address, instead of hanging.
    #[tokio::test]
    async fn unreachable_server_is_an_init_error() {
        let err = RedisStateStore::connect(&spec(
            "state.redis",
            &[
                ("redisHost", "127.0.0.1:1"),
                ("maxRetries", "0"),
                ("dialTimeout", "1s"),
            ],
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot reach Redis at 127.0.0.1:1"), "{err}");
    }
}
