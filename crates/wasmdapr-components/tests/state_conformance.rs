//! The state store conformance suite: ONE generic body, [`conformance`],
//! run against every backend, each built through [`wasmdapr_components::register`]
//! exactly as the binary builds it from component YAML.
//!
//! Backends that need a server use the real one on this machine (Redis at
//! 127.0.0.1:6379, PostgreSQL at 127.0.0.1:5432); when it is down the test
//! fails, it never skips. Every run uses keys under a fresh UUID prefix, so
//! runs (and the tests of one run) never see each other's data.
//!
//! A feature a backend declares is checked to work; a feature it does not
//! declare is checked to be absent (Dapr's "does not claim what it lacks").

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use wasmdapr_components::state::memory::MemoryStateStore;
use wasmdapr_runtime::state::{
    BulkSetError, Concurrency, DeleteRequest, GetRequest, Operation, SetRequest, StateError,
    StateFeatures, StateOptions, StateStore, StateValue, Ttl,
};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec};

/// Every feature.
const ALL: StateFeatures = StateFeatures {
    etag: true,
    transactional: true,
    ttl: true,
    query: true,
};

/// Builds a store of `kind` through the registry, as the runtime does.
async fn build(kind: &str, metadata: &[(&str, &str)]) -> Arc<dyn StateStore> {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let factory = registry
        .state(kind)
        .unwrap_or_else(|| panic!("{kind} is not registered"));
    let spec = ComponentSpec {
        name: "conformance".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/state_conformance.rs"),
    };
    factory(spec)
        .await
        .unwrap_or_else(|e| panic!("{kind} could not be started (is its server running?): {e}"))
}

/// `state.in-memory` passes the whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory() {
    conformance(build("state.in-memory", &[]).await, ALL).await;
}

/// `state.sqlite` on a file (created with its missing parent directory)
/// passes the whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("state.db");
    let store = build(
        "state.sqlite",
        &[("connectionString", path.to_str().expect("utf-8 path"))],
    )
    .await;
    conformance(store, ALL).await;
    assert!(path.exists(), "the database file was not created");
}

/// `state.sqlite` with `:memory:` and a custom table passes the whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_memory() {
    let store = build(
        "state.sqlite",
        &[("connectionString", ":memory:"), ("tableName", "kv")],
    )
    .await;
    conformance(store, ALL).await;
}

/// SQLite state survives closing and reopening the file (the point of the
/// embedded default).
#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let metadata = [("connectionString", path.to_str().expect("utf-8 path"))];
    let store = build("state.sqlite", &metadata).await;
    store.set(set("kept", b"value")).await.expect("set");
    drop(store);
    let store = build("state.sqlite", &metadata).await;
    let value = store.get(get("kept")).await.expect("get").expect("kept");
    assert_eq!(value.data, b"value");
}

/// `state.redis` against the real server at 127.0.0.1:6379 passes the whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis() {
    let store = build("state.redis", &[("redisHost", "127.0.0.1:6379")]).await;
    conformance(store, ALL).await;
}

/// A Redis key that is not one of the store's hashes (written by another
/// client) fails its own item of a bulk get, not its neighbours'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bulk_get_isolates_a_foreign_key() {
    let store = build("state.redis", &[("redisHost", "127.0.0.1:6379")]).await;
    let base = format!("conformance-{}||", uuid::Uuid::new_v4());
    let (good, foreign, missing) = (
        format!("{base}good"),
        format!("{base}foreign"),
        format!("{base}missing"),
    );
    store.set(set(&good, b"v")).await.expect("set");
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("SET")
        .arg(&foreign)
        .arg("a plain string")
        .query_async(&mut connection)
        .await
        .expect("SET");
    let answers = store
        .bulk_get(vec![get(&good), get(&foreign), get(&missing)], 0)
        .await;
    assert_eq!(
        answers[0]
            .as_ref()
            .expect("good")
            .as_ref()
            .map(|v| v.data.as_slice()),
        Some(&b"v"[..])
    );
    assert!(
        matches!(answers[1], Err(StateError::Backend(_))),
        "{answers:?}"
    );
    assert_eq!(answers[2], Ok(None));
    let _: () = redis::cmd("DEL")
        .arg(&foreign)
        .arg(&good)
        .query_async(&mut connection)
        .await
        .expect("DEL");
}

/// A bulk set of 200 writes reaches Redis as one request (one script),
/// not 200: a TCP proxy between the store and the real server counts what
/// the store sends; the same writes one by one are a request each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bulk_set_is_one_request() {
    let (proxy, sends) = counting_proxy("127.0.0.1:6379").await;
    let store = build("state.redis", &[("redisHost", &proxy.to_string())]).await;
    let base = format!("conformance-{}||", uuid::Uuid::new_v4());
    let requests: Vec<SetRequest> = (0..200)
        .map(|i| set(&format!("{base}{i}"), format!("v{i}").as_bytes()))
        .collect();
    let sent = || sends.load(std::sync::atomic::Ordering::SeqCst);
    let before = sent();
    store.bulk_set(requests.clone()).await.expect("bulk set");
    let bulk = sent() - before;
    // One EVALSHA, plus an EVAL if the server did not know the script yet;
    // a large request may arrive in a few reads.
    assert!(bulk <= 4, "a bulk set of 200 writes took {bulk} sends");
    let before = sent();
    for request in requests {
        store.set(request).await.expect("set");
    }
    let one_by_one = sent() - before;
    assert!(one_by_one >= 200, "200 sets took {one_by_one} sends");
    let last = store
        .get(get(&format!("{base}199")))
        .await
        .expect("get")
        .expect("written");
    assert_eq!(last.data, b"v199");
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = (0..200).map(|i| format!("{base}{i}")).collect();
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut connection)
        .await
        .expect("DEL");
}

/// A TCP proxy on 127.0.0.1 to `upstream`, counting the reads of what
/// clients send (each request the store writes is at least one).
async fn counting_proxy(
    upstream: &'static str,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let sends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sends.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(upstream)
                .await
                .expect("upstream");
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 1 << 16];
                while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    (address, sends)
}

/// `state.postgresql` against the real server at 127.0.0.1:5432 passes the
/// whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql() {
    let store = build(
        "state.postgresql",
        &[(
            "connectionString",
            "host=127.0.0.1 port=5432 user=postgres dbname=test",
        )],
    )
    .await;
    conformance(store, ALL).await;
}

/// A store that implements only the required methods declares no feature,
/// and the suite confirms every optional behaviour is absent (so the
/// absent-feature checks are themselves exercised).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn required_methods_only() {
    conformance(
        Arc::new(RequiredOnly(MemoryStateStore::new())),
        StateFeatures::default(),
    )
    .await;
}

/// A store with only `get`/`set`/`delete`: no ETags reported, TTL ignored,
/// and the trait's defaults for `transact` and `scan`.
struct RequiredOnly(MemoryStateStore);

#[async_trait]
impl StateStore for RequiredOnly {
    fn features(&self) -> StateFeatures {
        StateFeatures::default()
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        Ok(self.0.get(request).await?.map(|value| StateValue {
            data: value.data,
            etag: None,
            metadata: Default::default(),
        }))
    }

    async fn set(&self, mut request: SetRequest) -> Result<(), StateError> {
        request.ttl = Ttl::Unset;
        request.etag = None;
        self.0.set(request).await
    }

    async fn delete(&self, mut request: DeleteRequest) -> Result<(), StateError> {
        request.etag = None;
        self.0.delete(request).await
    }
}

// ---------------------------------------------------------------------------
// The suite.

/// The one generic test body: every check, against one store, under a fresh
/// key prefix. `features` is what the backend must declare.
async fn conformance(store: Arc<dyn StateStore>, features: StateFeatures) {
    assert_eq!(
        store.features(),
        features,
        "the store declares other features than expected"
    );
    let suite = Suite {
        store,
        features,
        base: format!("conformance-{}||", uuid::Uuid::new_v4()),
    };
    suite.get_missing().await;
    suite.round_trip_bytes().await;
    suite.delete_missing().await;
    suite.last_write_without_etag().await;
    suite.bulk_get().await;
    suite.bulk_set().await;
    if features.etag {
        suite.bulk_set_stops_at_the_first_failure().await;
        suite.overwrite_changes_etag().await;
        suite.set_with_etag().await;
        suite.first_write().await;
        suite.delete_with_etag().await;
        suite.invalid_etag().await;
        suite.concurrent_increments().await;
    } else {
        suite.no_etags().await;
    }
    if features.transactional {
        suite.transaction_applies().await;
        suite.transaction_all_or_nothing().await;
    } else {
        suite.transactions_refused().await;
    }
    if features.query {
        suite.scan_prefix().await;
        suite.scan_batches().await;
    } else {
        suite.scan_refused().await;
    }
    if features.ttl {
        suite.ttl().await;
    } else {
        suite.ttl_ignored().await;
    }
    suite.clean_up().await;
}

struct Suite {
    store: Arc<dyn StateStore>,
    features: StateFeatures,
    /// The prefix of every key of this run.
    base: String,
}

fn get(key: &str) -> GetRequest {
    GetRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn set(key: &str, value: &[u8]) -> SetRequest {
    SetRequest {
        key: key.into(),
        value: value.to_vec(),
        ..Default::default()
    }
}

fn set_etag(key: &str, value: &[u8], etag: &str) -> SetRequest {
    SetRequest {
        etag: Some(etag.into()),
        ..set(key, value)
    }
}

/// A write with `ttlInSeconds`, its TTL parsed as the runtime parses it
/// before a store sees the request.
fn set_ttl(key: &str, value: &[u8], ttl: &str) -> SetRequest {
    let metadata: wasmdapr_runtime::state::Metadata =
        [("ttlInSeconds".to_string(), ttl.to_string())].into();
    SetRequest {
        ttl: Ttl::from_metadata(&metadata).expect("a valid ttlInSeconds"),
        metadata,
        ..set(key, value)
    }
}

/// Lets the concurrency helpers work on sets and deletes alike.
trait HasOptions {
    fn options(&mut self) -> &mut StateOptions;
}

impl HasOptions for SetRequest {
    fn options(&mut self) -> &mut StateOptions {
        &mut self.options
    }
}

impl HasOptions for DeleteRequest {
    fn options(&mut self) -> &mut StateOptions {
        &mut self.options
    }
}

fn first_write<T: HasOptions>(mut request: T) -> T {
    request.options().concurrency = Concurrency::FirstWrite;
    request
}

fn last_write<T: HasOptions>(mut request: T) -> T {
    request.options().concurrency = Concurrency::LastWrite;
    request
}

fn delete(key: &str) -> DeleteRequest {
    DeleteRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn delete_etag(key: &str, etag: &str) -> DeleteRequest {
    DeleteRequest {
        etag: Some(etag.into()),
        ..delete(key)
    }
}

impl Suite {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    async fn read(&self, key: &str) -> Option<StateValue> {
        self.store
            .get(get(key))
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
    }

    async fn data(&self, key: &str) -> Option<Vec<u8>> {
        self.read(key).await.map(|v| v.data)
    }

    async fn etag(&self, key: &str) -> String {
        self.read(key)
            .await
            .unwrap_or_else(|| panic!("{key} is missing"))
            .etag
            .unwrap_or_else(|| panic!("{key} has no etag"))
    }

    async fn write(&self, request: SetRequest) {
        let key = request.key.clone();
        self.store
            .set(request)
            .await
            .unwrap_or_else(|e| panic!("set {key}: {e}"));
    }

    /// A key never written reads as missing.
    async fn get_missing(&self) {
        assert_eq!(self.read(&self.key("never-written")).await, None);
    }

    /// Values round-trip byte-exactly: JSON text, non-UTF-8 bytes, empty.
    async fn round_trip_bytes(&self) {
        let json = br#"{"name":"caf\u00e9","n":[1,2.5,null],"s":"\"quoted\""}"#;
        let binary: Vec<u8> = (0..=255u8).rev().chain([0, 0, 0xff, 0xfe]).collect();
        for (name, value) in [
            ("json", json.to_vec()),
            ("binary", binary),
            ("empty", Vec::new()),
            ("unicode-key-é🙂", "naïve ☃".as_bytes().to_vec()),
        ] {
            let key = self.key(name);
            self.write(set(&key, &value)).await;
            assert_eq!(
                self.data(&key).await.as_deref(),
                Some(&value[..]),
                "round trip of {name}"
            );
        }
    }

    /// Deleting a missing key (without an ETag) succeeds.
    async fn delete_missing(&self) {
        self.store
            .delete(delete(&self.key("never-written")))
            .await
            .expect("deleting a missing key");
        self.store
            .delete(last_write(delete(&self.key("never-written"))))
            .await
            .expect("deleting a missing key, last-write");
    }

    /// Without an ETag, writes always succeed, whatever the mode but first-write.
    async fn last_write_without_etag(&self) {
        let key = self.key("last-write");
        self.write(set(&key, b"1")).await;
        self.write(last_write(set(&key, b"2"))).await;
        self.write(set(&key, b"3")).await;
        assert_eq!(self.data(&key).await.as_deref(), Some(&b"3"[..]));
        self.store.delete(delete(&key)).await.expect("delete");
        assert_eq!(self.read(&key).await, None);
    }

    /// `bulk_get` answers every request, in order, exactly as `get` answers
    /// it (value, ETag, metadata such as `ttlExpireTime`), duplicates and
    /// missing keys included, across the batches of large bulks, whatever
    /// the parallelism; an empty bulk is an empty answer.
    async fn bulk_get(&self) {
        let mut keys = Vec::new();
        for i in 0..2100 {
            let key = self.key(&format!("bulk/{i}"));
            // Every 7th key exists; some with a TTL (long enough to stay).
            if i % 7 == 0 {
                let value = format!("v{i}").into_bytes();
                if i % 2 == 0 && self.features.ttl {
                    self.write(set_ttl(&key, &value, "3600")).await;
                } else {
                    self.write(set(&key, &value)).await;
                }
            }
            keys.push(key);
        }
        // Duplicates, at both ends of the batches.
        keys.push(keys[0].clone());
        keys.insert(1000, keys[7].clone());
        keys.push(self.key("bulk/never-written"));
        let mut expected = Vec::new();
        for key in &keys {
            expected.push(Ok(self.read(key).await));
        }
        for parallelism in [0, 1, 16] {
            let requests: Vec<GetRequest> = keys.iter().map(|k| get(k)).collect();
            let answers = self.store.bulk_get(requests, parallelism).await;
            assert_eq!(answers.len(), expected.len(), "parallelism {parallelism}");
            for (i, (answer, want)) in answers.iter().zip(&expected).enumerate() {
                assert_eq!(
                    answer, want,
                    "key {} with parallelism {parallelism}",
                    keys[i]
                );
            }
        }
        let present = expected.iter().filter(|e| matches!(e, Ok(Some(_)))).count();
        assert_eq!(present, 2100 / 7 + 2, "values found");
        assert!(self.store.bulk_get(Vec::new(), 0).await.is_empty());
    }

    /// `bulk_set` writes every request in order, as `set` would one by one:
    /// a key written twice keeps the later value, a TTL is honoured (when
    /// the store has TTLs), a bulk larger than one backend batch is written
    /// whole, and an empty bulk is a no-op.
    async fn bulk_set(&self) {
        let twice = self.key("bulk-set/twice");
        let brief = self.key("bulk-set/ttl");
        let mut requests: Vec<SetRequest> = (0..2500)
            .map(|i| {
                set(
                    &self.key(&format!("bulk-set/{i}")),
                    format!("v{i}").as_bytes(),
                )
            })
            .collect();
        requests.insert(10, set(&twice, b"first"));
        requests.push(set(&twice, b"second"));
        requests.push(set_ttl(&brief, b"expires", "3600"));
        self.store.bulk_set(requests).await.expect("bulk set");
        let keys: Vec<String> = (0..2500)
            .map(|i| self.key(&format!("bulk-set/{i}")))
            .collect();
        let answers = self
            .store
            .bulk_get(keys.iter().map(|k| get(k)).collect(), 0)
            .await;
        for (i, answer) in answers.into_iter().enumerate() {
            let value = answer
                .expect("read")
                .unwrap_or_else(|| panic!("{} missing", keys[i]));
            assert_eq!(value.data, format!("v{i}").into_bytes(), "{}", keys[i]);
        }
        assert_eq!(self.data(&twice).await.as_deref(), Some(&b"second"[..]));
        let brief = self.read(&brief).await.expect("present");
        assert_eq!(
            brief.metadata.contains_key("ttlExpireTime"),
            self.features.ttl,
            "{:?}",
            brief.metadata
        );
        self.store
            .bulk_set(Vec::new())
            .await
            .expect("empty bulk set");
    }

    /// A bulk set stops at its first failing write and returns it with its
    /// index: the writes before it are made, it and the ones after it are
    /// not; a stale ETag is EtagMismatch, a key that exists under
    /// first-write too, and an ETag that cannot be one is EtagInvalid.
    async fn bulk_set_stops_at_the_first_failure(&self) {
        let (a, b, c) = (
            self.key("bulk-fail/a"),
            self.key("bulk-fail/b"),
            self.key("bulk-fail/c"),
        );
        self.write(set(&b, b"b1")).await;
        let stale = self.etag(&b).await;
        self.write(set(&b, b"b2")).await;
        let bogus = "not-an-etag";
        for (index, failing, error) in [
            (1, set_etag(&b, b"stale", &stale), StateError::EtagMismatch),
            (1, first_write(set(&b, b"again")), StateError::EtagMismatch),
            (
                1,
                set_etag(&b, b"bogus", bogus),
                StateError::EtagInvalid(bogus.into()),
            ),
        ] {
            let result = self
                .store
                .bulk_set(vec![set(&a, b"a-new"), failing.clone(), set(&c, b"c")])
                .await;
            assert_eq!(result, Err(BulkSetError { index, error }), "{failing:?}");
            assert_eq!(self.data(&a).await.as_deref(), Some(&b"a-new"[..]));
            assert_eq!(self.data(&b).await.as_deref(), Some(&b"b2"[..]));
            assert_eq!(self.read(&c).await, None, "written after {failing:?}");
            self.store.delete(delete(&a)).await.expect("delete");
        }
        // A failure at the start writes nothing; with the current ETag the
        // same bulk goes through.
        let current = self.etag(&b).await;
        let result = self
            .store
            .bulk_set(vec![set_etag(&b, b"x", &stale), set(&c, b"c")])
            .await;
        assert_eq!(result.map_err(|e| e.index), Err(0), "a stale etag first");
        assert_eq!(self.read(&c).await, None);
        self.store
            .bulk_set(vec![set_etag(&b, b"b3", &current), set(&c, b"c")])
            .await
            .expect("bulk set with the current etag");
        assert_eq!(self.data(&b).await.as_deref(), Some(&b"b3"[..]));
        assert_eq!(self.data(&c).await.as_deref(), Some(&b"c"[..]));
    }

    /// Every write gives the value a new ETag.
    async fn overwrite_changes_etag(&self) {
        let key = self.key("etag-changes");
        self.write(set(&key, b"a")).await;
        let first = self.etag(&key).await;
        self.write(set(&key, b"a")).await;
        let second = self.etag(&key).await;
        assert_ne!(first, second, "an identical rewrite must change the etag");
        self.write(set_etag(&key, b"b", &second)).await;
        assert_ne!(self.etag(&key).await, second);
    }

    /// A write with the current ETag succeeds; with a stale one it fails
    /// with EtagMismatch and changes nothing.
    async fn set_with_etag(&self) {
        let key = self.key("etag-set");
        self.write(set(&key, b"v1")).await;
        let v1 = self.etag(&key).await;
        self.write(set_etag(&key, b"v2", &v1)).await;
        let v2 = self.etag(&key).await;
        for mode in [
            Concurrency::Unspecified,
            Concurrency::FirstWrite,
            Concurrency::LastWrite,
        ] {
            let mut stale = set_etag(&key, b"stale", &v1);
            stale.options.concurrency = mode;
            assert_eq!(
                self.store.set(stale).await,
                Err(StateError::EtagMismatch),
                "a stale etag under {mode:?}"
            );
        }
        let value = self.read(&key).await.expect("present");
        assert_eq!((value.data.as_slice(), value.etag), (&b"v2"[..], Some(v2)));
        // An ETag on a missing key cannot match.
        let missing = self.key("etag-set-missing");
        assert_eq!(
            self.store.set(set_etag(&missing, b"x", &v1)).await,
            Err(StateError::EtagMismatch)
        );
        assert_eq!(self.read(&missing).await, None);
    }

    /// First-write without an ETag inserts a new key and refuses an existing one.
    async fn first_write(&self) {
        let key = self.key("first-write");
        self.write(first_write(set(&key, b"first"))).await;
        assert_eq!(
            self.store.set(first_write(set(&key, b"second"))).await,
            Err(StateError::EtagMismatch)
        );
        assert_eq!(self.data(&key).await.as_deref(), Some(&b"first"[..]));
        // With the current ETag, first-write proceeds.
        let etag = self.etag(&key).await;
        self.write(first_write(set_etag(&key, b"third", &etag)))
            .await;
        assert_eq!(self.data(&key).await.as_deref(), Some(&b"third"[..]));
        // After a delete the key is new again.
        self.store.delete(delete(&key)).await.expect("delete");
        self.write(first_write(set(&key, b"again"))).await;
    }

    /// Deletes honour ETags: stale → EtagMismatch (nothing deleted), current
    /// → deleted, any ETag on a missing key → EtagMismatch.
    async fn delete_with_etag(&self) {
        let key = self.key("etag-delete");
        self.write(set(&key, b"v1")).await;
        let v1 = self.etag(&key).await;
        self.write(set(&key, b"v2")).await;
        assert_eq!(
            self.store.delete(delete_etag(&key, &v1)).await,
            Err(StateError::EtagMismatch)
        );
        assert_eq!(self.data(&key).await.as_deref(), Some(&b"v2"[..]));
        let v2 = self.etag(&key).await;
        self.store
            .delete(delete_etag(&key, &v2))
            .await
            .expect("delete with the current etag");
        assert_eq!(self.read(&key).await, None);
        assert_eq!(
            self.store.delete(delete_etag(&key, &v2)).await,
            Err(StateError::EtagMismatch),
            "an etag on a missing key"
        );
        // First-write delete without an ETag is unconditional.
        self.write(set(&key, b"v3")).await;
        self.store
            .delete(first_write(delete(&key)))
            .await
            .expect("first-write delete without etag");
        assert_eq!(self.read(&key).await, None);
    }

    /// An ETag that cannot be a version of the store is EtagInvalid, for
    /// sets, deletes and transactions, and changes nothing.
    async fn invalid_etag(&self) {
        let key = self.key("etag-invalid");
        self.write(set(&key, b"v")).await;
        let bogus = "not-an-etag";
        assert_eq!(
            self.store.set(set_etag(&key, b"x", bogus)).await,
            Err(StateError::EtagInvalid(bogus.into()))
        );
        assert_eq!(
            self.store.delete(delete_etag(&key, bogus)).await,
            Err(StateError::EtagInvalid(bogus.into()))
        );
        if self.features.transactional {
            let other = self.key("etag-invalid-other");
            let result = self
                .store
                .transact(vec![
                    Operation::Upsert(set(&other, b"x")),
                    Operation::Delete(delete_etag(&key, bogus)),
                ])
                .await;
            assert_eq!(result, Err(StateError::EtagInvalid(bogus.into())));
            assert_eq!(self.read(&other).await, None);
        }
        assert_eq!(self.data(&key).await.as_deref(), Some(&b"v"[..]));
    }

    /// 8 tasks × 10 read-modify-write increments with ETags and retries end
    /// at exactly 80: conditional writes are atomic.
    async fn concurrent_increments(&self) {
        const TASKS: usize = 8;
        const INCREMENTS: usize = 10;
        let key = self.key("counter");
        self.write(set(&key, b"0")).await;
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let store = self.store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0usize;
                for _ in 0..INCREMENTS {
                    loop {
                        let value = store.get(get(&key)).await.expect("get").expect("counter");
                        let n: u64 = std::str::from_utf8(&value.data)
                            .expect("utf-8")
                            .parse()
                            .expect("a number");
                        let etag = value.etag.expect("etag");
                        let next = (n + 1).to_string();
                        match store.set(set_etag(&key, next.as_bytes(), &etag)).await {
                            Ok(()) => break,
                            Err(StateError::EtagMismatch) => conflicts += 1,
                            Err(e) => panic!("increment: {e}"),
                        }
                    }
                }
                conflicts
            }));
        }
        for task in tasks {
            task.await.expect("increment task");
        }
        assert_eq!(
            self.data(&key).await.as_deref(),
            Some(format!("{}", TASKS * INCREMENTS).as_bytes())
        );
    }

    /// Without the etag feature, reads carry no ETag.
    async fn no_etags(&self) {
        let key = self.key("no-etag");
        self.write(set(&key, b"v")).await;
        assert_eq!(self.read(&key).await.expect("present").etag, None);
    }

    /// A transaction's upserts and deletes are all applied.
    async fn transaction_applies(&self) {
        let (a, b, c) = (self.key("tx-a"), self.key("tx-b"), self.key("tx-c"));
        self.write(set(&a, b"old-a")).await;
        self.write(set(&b, b"old-b")).await;
        let b_etag = self.etag(&b).await;
        self.store
            .transact(vec![
                Operation::Delete(delete(&a)),
                Operation::Upsert(set_etag(&b, b"new-b", &b_etag)),
                Operation::Upsert(first_write(set(&c, b"new-c"))),
            ])
            .await
            .expect("transaction");
        assert_eq!(self.read(&a).await, None);
        assert_eq!(self.data(&b).await.as_deref(), Some(&b"new-b"[..]));
        assert_eq!(self.data(&c).await.as_deref(), Some(&b"new-c"[..]));
        // Operations on one key apply in order.
        self.store
            .transact(vec![
                Operation::Upsert(set(&a, b"1")),
                Operation::Upsert(set(&a, b"2")),
            ])
            .await
            .expect("transaction on one key");
        assert_eq!(self.data(&a).await.as_deref(), Some(&b"2"[..]));
    }

    /// A transaction whose last operation's condition fails applies nothing
    /// and reports EtagMismatch.
    async fn transaction_all_or_nothing(&self) {
        let (a, b, c, d) = (
            self.key("txn-a"),
            self.key("txn-b"),
            self.key("txn-c"),
            self.key("txn-d"),
        );
        self.write(set(&a, b"a1")).await;
        let stale = self.etag(&a).await;
        self.write(set(&a, b"a2")).await;
        self.write(set(&c, b"c1")).await;
        self.write(set(&d, b"d1")).await;
        for failing in [
            Operation::Upsert(set_etag(&a, b"a3", &stale)),
            Operation::Delete(delete_etag(&a, &stale)),
            Operation::Upsert(first_write(set(&d, b"d2"))),
        ] {
            let result = self
                .store
                .transact(vec![
                    Operation::Upsert(set(&b, b"b1")),
                    Operation::Delete(delete(&c)),
                    Operation::Upsert(set(&d, b"d-changed")),
                    failing.clone(),
                ])
                .await;
            assert_eq!(result, Err(StateError::EtagMismatch), "{failing:?}");
            assert_eq!(self.read(&b).await, None, "upsert applied by {failing:?}");
            assert_eq!(
                self.data(&c).await.as_deref(),
                Some(&b"c1"[..]),
                "delete applied by {failing:?}"
            );
            assert_eq!(self.data(&d).await.as_deref(), Some(&b"d1"[..]));
            assert_eq!(self.data(&a).await.as_deref(), Some(&b"a2"[..]));
        }
    }

    /// Without the transactional feature, `transact` is NotSupported and
    /// applies nothing.
    async fn transactions_refused(&self) {
        let key = self.key("no-tx");
        let result = self
            .store
            .transact(vec![Operation::Upsert(set(&key, b"x"))])
            .await;
        assert!(
            matches!(result, Err(StateError::NotSupported(_))),
            "{result:?}"
        );
        assert_eq!(self.read(&key).await, None);
    }

    /// `scan(prefix)` returns exactly the live keys under the prefix, with
    /// their values and ETags, even when the prefix holds characters special
    /// to LIKE and glob patterns.
    async fn scan_prefix(&self) {
        let prefix = self.key("scan/q%_*?[a]\\/");
        let mut expected = BTreeMap::new();
        for (name, value) in [("1", &b"one"[..]), ("2", b"{\"n\":2}"), ("3", &[0xff, 0])] {
            let key = format!("{prefix}{name}");
            self.write(set(&key, value)).await;
            expected.insert(key, value.to_vec());
        }
        // Keys that a prefix match with unescaped LIKE/glob patterns, or a
        // case-insensitive one, would wrongly include.
        for decoy in [
            self.key("scan/qABC*?[a]/1"),
            self.key("scan/q%_ZZa/1"),
            self.key("scan/Q%_*?[a]\\/1"),
            self.key("scan/q%_*?[a]\\"),
            self.key("scan"),
        ] {
            self.write(set(&decoy, b"decoy")).await;
        }
        let deleted = format!("{prefix}deleted");
        self.write(set(&deleted, b"x")).await;
        self.store.delete(delete(&deleted)).await.expect("delete");

        let rows = self.scan(&prefix, 2).await;
        let found: BTreeMap<String, Vec<u8>> = rows
            .iter()
            .map(|(k, v)| (k.clone(), v.data.clone()))
            .collect();
        assert_eq!(found, expected);
        if self.features.etag {
            for (key, value) in &rows {
                assert_eq!(value.etag, Some(self.etag(key).await), "etag of {key}");
            }
        }
        let nothing = self.scan(&self.key("scan-none/"), 2).await;
        assert!(nothing.is_empty(), "{nothing:?}");
    }

    /// A scan in batches: each batch of a store that sizes its own batches
    /// holds at most the rows asked for, in ascending key order across the
    /// whole scan when the store says so, and together the batches hold
    /// every key exactly once.
    async fn scan_batches(&self) {
        let prefix = self.key("batches/");
        let expected: BTreeSet<String> = (0..25).map(|i| format!("{prefix}{i:02}")).collect();
        for key in &expected {
            self.write(set(key, b"{}")).await;
        }
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        let mut batches = 0;
        // A store that sizes batches itself (Redis SCAN: COUNT is how many
        // entries of the whole, shared keyspace a step examines) gets 100.
        let size = if self.store.scan_in_key_order() {
            4
        } else {
            100
        };
        loop {
            let batch = self
                .store
                .scan(&prefix, cursor.as_deref(), size)
                .await
                .expect("scan");
            batches += 1;
            assert!(batches < 1_000_000, "the scan does not end");
            if self.store.scan_in_key_order() {
                assert!(
                    batch.rows.len() <= 4,
                    "{} rows in a batch of 4",
                    batch.rows.len()
                );
            }
            seen.extend(batch.rows.into_iter().map(|(k, _)| k));
            match batch.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if self.store.scan_in_key_order() {
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "not in ascending key order, or repeated: {seen:?}"
            );
            assert!(batches >= 7, "25 rows in {batches} batches of 4");
        }
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    }

    /// Every live row under `prefix`, following the scan's cursor in
    /// batches of `batch` (a store that sizes batches itself gets at least
    /// 100, as a shared Redis keyspace needs many steps otherwise); a key
    /// repeated by an unordered scan is kept once.
    async fn scan(&self, prefix: &str, batch: usize) -> Vec<(String, StateValue)> {
        let ordered = self.store.scan_in_key_order();
        let batch = if ordered { batch } else { batch.max(100) };
        let mut rows = BTreeMap::new();
        let mut cursor: Option<String> = None;
        let mut last: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(prefix, cursor.as_deref(), batch)
                .await
                .unwrap_or_else(|e| panic!("scan {prefix}: {e}"));
            for (key, value) in page.rows {
                if ordered {
                    assert!(
                        last.as_ref().is_none_or(|l| *l < key),
                        "{key} after {last:?} in a scan in key order"
                    );
                    last = Some(key.clone());
                }
                rows.insert(key, value);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return rows.into_iter().collect(),
            }
        }
    }

    /// Without the query feature, `scan` is NotSupported.
    async fn scan_refused(&self) {
        let result = self.store.scan(&self.base, None, 10).await;
        assert!(
            matches!(result, Err(StateError::NotSupported(_))),
            "{result:?}"
        );
    }

    /// `ttlInSeconds` = 1: the value is readable with `ttlExpireTime` (RFC
    /// 3339, in the near future), then reads as missing (and leaves scans)
    /// within a few seconds; `-1` and a later write without TTL never expire.
    async fn ttl(&self) {
        let prefix = self.key("ttl/");
        let short = format!("{prefix}short");
        let forever = format!("{prefix}forever");
        let rewritten = format!("{prefix}rewritten");
        let started = SystemTime::now();
        self.write(set_ttl(&short, b"brief", "1")).await;
        self.write(set_ttl(&forever, b"kept", "-1")).await;
        self.write(set_ttl(&rewritten, b"brief", "1")).await;
        self.write(set(&rewritten, b"kept")).await;

        let value = self.read(&short).await.expect("readable before it expires");
        assert_eq!(value.data, b"brief");
        let expires = value
            .metadata
            .get("ttlExpireTime")
            .unwrap_or_else(|| panic!("no ttlExpireTime in {:?}", value.metadata));
        let expires = humantime::parse_rfc3339(expires)
            .unwrap_or_else(|e| panic!("ttlExpireTime `{expires}` is not RFC 3339: {e}"));
        assert!(
            expires + Duration::from_secs(2) >= started
                && expires <= started + Duration::from_secs(30),
            "ttlExpireTime {expires:?} is not about a second after {started:?}"
        );
        let forever_value = self.read(&forever).await.expect("present");
        assert!(!forever_value.metadata.contains_key("ttlExpireTime"));

        let deadline = Instant::now() + Duration::from_secs(15);
        while self.read(&short).await.is_some() {
            assert!(Instant::now() < deadline, "{short} did not expire");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.features.query {
            let keys: BTreeSet<String> = self
                .scan(&prefix, 1)
                .await
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(keys, BTreeSet::from([forever.clone(), rewritten.clone()]));
        }
        if self.features.etag {
            // An expired key is missing for conditional writes too.
            self.write(first_write(set(&short, b"reborn"))).await;
        }
        // Give the rewritten key time to (wrongly) expire.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(self.data(&forever).await.as_deref(), Some(&b"kept"[..]));
        assert_eq!(self.data(&rewritten).await.as_deref(), Some(&b"kept"[..]));
        let rewritten = self.read(&rewritten).await.expect("present");
        assert!(!rewritten.metadata.contains_key("ttlExpireTime"));
    }

    /// Removes this run's keys from servers that outlive the test (only
    /// possible, and only needed, for stores that can list keys).
    async fn clean_up(&self) {
        if !self.features.query {
            return;
        }
        let rows = self.scan(&self.base, 100).await;
        for (key, _) in rows {
            self.store
                .delete(delete(&key))
                .await
                .expect("clean-up delete");
        }
        let left = self.scan(&self.base, 100).await;
        assert!(left.is_empty(), "keys left after clean-up: {left:?}");
    }

    /// Without the ttl feature, `ttlInSeconds` does not make values expire.
    async fn ttl_ignored(&self) {
        let key = self.key("no-ttl");
        match self.store.set(set_ttl(&key, b"v", "1")).await {
            Err(_) => {}
            Ok(()) => {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                assert_eq!(self.data(&key).await.as_deref(), Some(&b"v"[..]));
            }
        }
    }
}
