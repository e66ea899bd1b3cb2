//! How long a 100k-key bulk get takes with `parallelism` 0, the old way
//! (one `get` per key, all at once, as the runtime did before
//! `StateStore::bulk_get`) and through the store's `bulk_get`, measured in
//! the same run against the same data. A measurement, not a test: ignored
//! by default, it prints figures and asserts only that both ways agree.
//!
//! ```sh
//! cargo nextest run -p wasmdapr-components --test bulk_get_speed \
//!     --run-ignored only --no-capture
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use wasmdapr_runtime::state::{BulkGetResult, GetRequest, Operation, SetRequest, StateStore};
use wasmdapr_runtime::{ComponentRegistry, ComponentSpec};

/// The keys of one bulk get (the runtime's limit).
const KEYS: usize = 100_000;

async fn build(kind: &str, metadata: &[(&str, &str)]) -> Arc<dyn StateStore> {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    let spec = ComponentSpec {
        name: "speed".into(),
        kind: kind.into(),
        version: "v1".into(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scopes: Vec::new(),
        source: PathBuf::from("tests/bulk_get_speed.rs"),
    };
    registry.state(kind).expect("registered")(spec)
        .await
        .expect("store")
}

/// Writes `KEYS` keys (in transactions of 1000), bulk-reads them both ways,
/// prints the times, and deletes them.
async fn measure(name: &str, store: Arc<dyn StateStore>) {
    let base = format!("speed-{}||", uuid::Uuid::new_v4());
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{base}{i}")).collect();
    for chunk in keys.chunks(1000) {
        let writes = chunk
            .iter()
            .map(|key| {
                Operation::Upsert(SetRequest {
                    key: key.clone(),
                    value: format!("{{\"key\":\"{key}\",\"n\":42}}").into_bytes(),
                    ..Default::default()
                })
            })
            .collect();
        store.transact(writes).await.expect("write");
    }
    let requests = || -> Vec<GetRequest> {
        keys.iter()
            .map(|key| GetRequest {
                key: key.clone(),
                ..Default::default()
            })
            .collect()
    };

    let started = Instant::now();
    let old: Vec<_> = stream::iter(requests())
        .map(|request| store.get(request))
        .buffered(KEYS)
        .collect()
        .await;
    let old_time = started.elapsed();

    let started = Instant::now();
    let old_100: Vec<_> = stream::iter(requests())
        .map(|request| store.get(request))
        .buffered(100)
        .collect()
        .await;
    let old_100_time = started.elapsed();

    let started = Instant::now();
    let new = store.bulk_get(requests(), 0).await;
    let new_time = started.elapsed();

    // The old way may now fail keys: 100k requests queued at once outlast
    // the store's call deadline. Count them; compare the rest.
    let failed = |answers: &[BulkGetResult]| answers.iter().filter(|a| a.is_err()).count();
    assert_eq!(old.len(), KEYS);
    assert_eq!(failed(&new), 0, "bulk_get failed keys");
    assert_eq!(failed(&old_100), 0, "single gets 100 at a time failed keys");
    assert!(
        new.iter().all(|a| matches!(a, Ok(Some(_)))),
        "a key is missing"
    );
    assert_eq!(new, old_100, "bulk_get answers differ from single gets");
    for (old, new) in old.iter().zip(&new) {
        if old.is_ok() {
            assert_eq!(old, new);
        }
    }
    println!(
        "{name}: {KEYS}-key bulk get, parallelism 0: single gets all at once {old_time:.2?} \
         ({} keys failed), bulk_get {new_time:.2?} ({:.1}x faster); \
         single gets 100 at a time {old_100_time:.2?}",
        failed(&old),
        old_time.as_secs_f64() / new_time.as_secs_f64()
    );

    for chunk in keys.chunks(1000) {
        let deletes = chunk
            .iter()
            .map(|key| {
                Operation::Delete(wasmdapr_runtime::state::DeleteRequest {
                    key: key.clone(),
                    ..Default::default()
                })
            })
            .collect();
        store.transact(deletes).await.expect("clean up");
    }
}

/// SQLite on a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --run-ignored only --no-capture"]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = build(
        "state.sqlite",
        &[("connectionString", path.to_str().expect("utf-8"))],
    )
    .await;
    measure("SQLite", store).await;
}

/// Redis at 127.0.0.1:6379, without a response timeout so the old way runs
/// as it did before calls had deadlines (with them, most of its 100k queued
/// requests now fail at the deadline instead of completing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --run-ignored only --no-capture"]
async fn redis() {
    let store = build(
        "state.redis",
        &[("redisHost", "127.0.0.1:6379"), ("readTimeout", "-1")],
    )
    .await;
    measure("Redis", store).await;
}

/// PostgreSQL at 127.0.0.1:5432.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --run-ignored only --no-capture"]
async fn postgresql() {
    let store = build(
        "state.postgresql",
        &[(
            "connectionString",
            "host=127.0.0.1 port=5432 user=postgres dbname=test",
        )],
    )
    .await;
    measure("PostgreSQL", store).await;
}
