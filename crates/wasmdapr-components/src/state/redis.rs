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
//! expired key is simply gone.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo, Script};
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest, StateError, StateFeatures,
    StateStore, StateValue, WriteCondition,
};

use super::{backend_error, duration_or, expiry_metadata, from_unix_millis};

/// Writes `data` to hash `KEYS[1]` if the condition holds; returns the new
/// version, or 0 when the condition fails.
/// ARGV: condition (`always` | `absent` | `etag`), etag, data, ttl seconds (-1: none).
static SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local version = redis.call("HGET", KEYS[1], "version")
if ARGV[1] == "absent" and version then return 0 end
if ARGV[1] == "etag" and version ~= ARGV[2] then return 0 end
local next = redis.call("HINCRBY", KEYS[1], "version", 1)
redis.call("HSET", KEYS[1], "data", ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl >= 0 then redis.call("EXPIRE", KEYS[1], ttl) else redis.call("PERSIST", KEYS[1]) end
return next
"#,
    )
});

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
    /// `maxRetries`, default 3: reconnection attempts before a call fails.
    pub max_retries: usize,
    /// `dialTimeout`, default 5 s.
    pub dial_timeout: Duration,
    /// `readTimeout`, default 10 s: the longest a command may take.
    pub read_timeout: Duration,
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
        Ok(RedisConfig {
            host,
            port,
            username: spec.metadata("redisUsername").map(str::to_owned),
            password: spec.metadata("redisPassword").map(str::to_owned),
            db,
            max_retries: spec.parse_or("maxRetries", 3)?,
            dial_timeout: duration_or(spec, "dialTimeout", Duration::from_secs(5))?,
            read_timeout: duration_or(spec, "readTimeout", Duration::from_secs(10))?,
            default_ttl,
        })
    }
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
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(config.host.clone(), config.port),
            redis: RedisConnectionInfo {
                db: config.db,
                username: config.username.clone(),
                password: config.password.clone(),
                ..Default::default()
            },
        };
        let client = redis::Client::open(info).map_err(|e| spec.init_error(e))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(config.max_retries)
            .set_connection_timeout(config.dial_timeout)
            .set_response_timeout(config.read_timeout);
        let address = format!("{}:{}", config.host, config.port);
        let unreachable = |e: &dyn std::fmt::Display| {
            spec.init_error(format!("cannot reach Redis at {address}: {e}"))
        };
        // The manager retries the first connection too; bound the whole
        // start so an unreachable server fails in seconds, not minutes.
        let start = async {
            let mut connection = ConnectionManager::new_with_config(client, manager_config)
                .await
                .map_err(|e| unreachable(&e))?;
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| unreachable(&e))?;
            Ok::<_, ComponentError>(connection)
        };
        let limit = config.dial_timeout * 2 + config.read_timeout;
        let connection = tokio::time::timeout(limit, start)
            .await
            .map_err(|_| unreachable(&format!("no answer within {limit:?}")))??;
        tracing::info!(component = %spec.name, %address, db = config.db, "Redis state store ready");
        Ok(RedisStateStore {
            connection,
            default_ttl: config.default_ttl,
        })
    }

    /// The TTL argument of the scripts: seconds, or -1 for none. A request
    /// without `ttlInSeconds` gets the component's default.
    fn ttl_arg(&self, request: &SetRequest) -> Result<i64, StateError> {
        let ttl = if request.metadata.contains_key("ttlInSeconds") {
            request.ttl()?
        } else {
            self.default_ttl
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

fn redis_error(context: &str) -> impl Fn(redis::RedisError) -> StateError + '_ {
    move |error| backend_error(context, error)
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

type HashRead = ((Option<Vec<u8>>, Option<String>), i64);

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
        let mut connection = self.connection.clone();
        let ((data, version), expires): HashRead = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(&request.key)
            .arg("data")
            .arg("version")
            .cmd("PEXPIRETIME")
            .arg(&request.key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error("Redis get"))?;
        Ok(to_value(data, version, expires))
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        let ttl = self.ttl_arg(&request)?;
        let (condition, etag) = condition_args(request.condition())?;
        let mut connection = self.connection.clone();
        let version: i64 = SET_SCRIPT
            .key(&request.key)
            .arg(condition)
            .arg(etag)
            .arg(&request.value)
            .arg(ttl)
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error("Redis set"))?;
        if version == 0 {
            return Err(StateError::EtagMismatch);
        }
        Ok(())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        let mut connection = self.connection.clone();
        match condition_args(request.condition())? {
            ("etag", etag) => {
                let deleted: i64 = DELETE_SCRIPT
                    .key(&request.key)
                    .arg(etag)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(redis_error("Redis delete"))?;
                if deleted == 0 {
                    return Err(StateError::EtagMismatch);
                }
            }
            _ => {
                let _: i64 = redis::cmd("DEL")
                    .arg(&request.key)
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error("Redis delete"))?;
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
        let mut connection = self.connection.clone();
        let applied: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error("Redis transaction"))?;
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
        let mut connection = self.connection.clone();
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
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(batch.clamp(1, SCAN_BATCH))
            .arg("TYPE")
            .arg("hash")
            .query_async(&mut connection)
            .await
            .map_err(redis_error("Redis scan"))?;
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
        let values: Vec<redis::Value> = pipe
            .query_async(&mut connection)
            .await
            .map_err(redis_error("Redis scan"))?;
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
                dial_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(10),
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
            (("maxRetries", "-1"), "spec.metadata.maxRetries"),
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
