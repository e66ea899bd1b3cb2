//! `state.in-memory`: a map in the process, for tests and caches. State is
//! lost when the process ends; every feature of the contract is supported, so
//! it is also the reference the other backends are compared with.
//!
//! ETags are version numbers from one counter per store, so an ETag is never
//! reused, even after a key is deleted and written again; an ETag that is not
//! a number is [`StateError::EtagInvalid`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use wasmdapr_runtime::ComponentSpec;
use wasmdapr_runtime::component::ComponentError;
use wasmdapr_runtime::state::{
    BulkGetResult, DeleteRequest, GetRequest, Operation, ScanBatch, SetRequest, StateError,
    StateFeatures, StateStore, StateValue, WriteCondition,
};

use super::{BULK_CHUNK, expiry_metadata};

/// How many writes pass between two sweeps of expired entries. Reads purge
/// the entry they find expired; the sweep bounds the memory held by expired
/// keys nobody reads again.
const SWEEP_EVERY_WRITES: usize = 1024;

/// The in-memory state store.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Ordered, so a query's scan reads it in key order, a batch at a time.
    map: BTreeMap<String, Entry>,
    /// The last version handed out.
    version: u64,
    writes_since_sweep: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    data: Vec<u8>,
    version: u64,
    expires_at: Option<SystemTime>,
}

impl Entry {
    fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn to_value(&self) -> StateValue {
        StateValue {
            data: self.data.clone(),
            etag: Some(self.version.to_string()),
            metadata: expiry_metadata(self.expires_at),
        }
    }
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the store from its component spec. `state.in-memory` has no
    /// metadata; unknown names are ignored, as Dapr does.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self, ComponentError> {
        tracing::debug!(component = %spec.name, "in-memory state store ready");
        Ok(Self::new())
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written
        // (every mutation is a single insert/remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The version an ETag names, or `EtagInvalid` when it cannot be one.
fn parse_version(etag: &str) -> Result<u64, StateError> {
    etag.parse()
        .map_err(|_| StateError::EtagInvalid(etag.to_owned()))
}

impl Entries {
    /// The live entry of `key`, purging it if it has expired.
    fn live(&mut self, key: &str, now: SystemTime) -> Option<&Entry> {
        if self.map.get(key).is_some_and(|e| !e.is_live(now)) {
            self.map.remove(key);
        }
        self.map.get(key)
    }

    /// Checks `condition` against the current (live) entry of `key`.
    fn check(
        &mut self,
        key: &str,
        condition: &WriteCondition,
        now: SystemTime,
    ) -> Result<(), StateError> {
        let current = self.live(key, now).map(|e| e.version);
        match condition {
            WriteCondition::Always => Ok(()),
            WriteCondition::MustNotExist if current.is_none() => Ok(()),
            WriteCondition::MustNotExist => Err(StateError::EtagMismatch),
            WriteCondition::EtagMatches(etag) => {
                let wanted = parse_version(etag)?;
                if current == Some(wanted) {
                    Ok(())
                } else {
                    Err(StateError::EtagMismatch)
                }
            }
        }
    }

    fn set(&mut self, request: &SetRequest, now: SystemTime) -> Result<(), StateError> {
        let ttl = request.ttl.duration();
        self.check(&request.key, &request.condition(), now)?;
        self.version += 1;
        let entry = Entry {
            data: request.value.clone(),
            version: self.version,
            expires_at: ttl.map(|ttl| now + ttl),
        };
        self.map.insert(request.key.clone(), entry);
        self.wrote(now);
        Ok(())
    }

    fn delete(&mut self, request: &DeleteRequest, now: SystemTime) -> Result<(), StateError> {
        self.check(&request.key, &request.condition(), now)?;
        self.map.remove(&request.key);
        self.wrote(now);
        Ok(())
    }

    fn wrote(&mut self, now: SystemTime) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= SWEEP_EVERY_WRITES {
            self.writes_since_sweep = 0;
            self.map.retain(|_, e| e.is_live(now));
        }
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn features(&self) -> StateFeatures {
        StateFeatures {
            etag: true,
            transactional: true,
            ttl: true,
            query: true,
        }
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError> {
        let now = SystemTime::now();
        Ok(self.lock().live(&request.key, now).map(Entry::to_value))
    }

    /// Reads the map directly, taking the lock once per chunk of keys so
    /// writers are not held off by a large bulk.
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetResult> {
        let now = SystemTime::now();
        let mut answers = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(BULK_CHUNK) {
            let mut entries = self.lock();
            answers.extend(
                chunk
                    .iter()
                    .map(|r| Ok(entries.live(&r.key, now).map(Entry::to_value))),
            );
        }
        answers
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        self.lock().set(&request, SystemTime::now())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        self.lock().delete(&request, SystemTime::now())
    }

    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        // Remember every touched entry as it was, so a failed operation can
        // put them all back: the lock is held throughout, so nobody sees the
        // partial state.
        let mut before: HashMap<String, Option<Entry>> = HashMap::new();
        for operation in &operations {
            let key = match operation {
                Operation::Upsert(set) => &set.key,
                Operation::Delete(delete) => &delete.key,
            };
            if !before.contains_key(key) {
                let entry = entries.live(key, now).cloned();
                before.insert(key.clone(), entry);
            }
        }
        for operation in &operations {
            let applied = match operation {
                Operation::Upsert(set) => entries.set(set, now),
                Operation::Delete(delete) => entries.delete(delete, now),
            };
            if let Err(error) = applied {
                for (key, entry) in before {
                    match entry {
                        Some(entry) => entries.map.insert(key, entry),
                        None => entries.map.remove(&key),
                    };
                }
                return Err(error);
            }
        }
        Ok(())
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<ScanBatch, StateError> {
        let now = SystemTime::now();
        let entries = self.lock();
        let from = match cursor {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        let mut next = None;
        let mut rows = Vec::new();
        for (key, entry) in entries
            .map
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            if rows.len() == batch.max(1) {
                next = rows
                    .last()
                    .map(|(key, _): &(String, StateValue)| key.clone());
                break;
            }
            if entry.is_live(now) {
                rows.push((key.clone(), entry.to_value()));
            }
        }
        Ok(ScanBatch { rows, next })
    }

    fn scan_in_key_order(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version that is not a number is refused as invalid, not as a mismatch.
    #[test]
    fn etags_are_numbers() {
        assert_eq!(parse_version("12"), Ok(12));
        assert_eq!(
            parse_version("abc"),
            Err(StateError::EtagInvalid("abc".into()))
        );
    }

    /// Unknown metadata does not stop the store from being built.
    #[test]
    fn builds_from_any_spec() {
        let spec = super::super::test_support::spec("state.in-memory", &[("whatever", "1")]);
        assert!(MemoryStateStore::from_spec(&spec).is_ok());
    }
}
