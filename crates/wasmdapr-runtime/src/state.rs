//! The state building block: the [`StateStore`] trait every backend
//! implements, the request types the runtime hands it, and the semantics
//! shared by all backends (write conditions from ETag + concurrency, TTL).
//!
//! Keys reaching a store are already prefixed (`<app-id>||<key>` by default):
//! backends store what they are given and never see app ids or scopes.

pub mod query;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};

/// Metadata of a request (`metadata.<name>` query parameters, gRPC metadata maps).
pub type Metadata = HashMap<String, String>;

/// `options.concurrency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Not given: last-write-wins, but a given ETag is still checked.
    #[default]
    Unspecified,
    /// The write succeeds only if nobody wrote since the caller read: with an
    /// ETag it must match; without one, the key must not exist yet.
    FirstWrite,
    /// The write always succeeds unless an ETag is given and does not match.
    LastWrite,
}

/// `options.consistency` / `consistency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Not given.
    #[default]
    Unspecified,
    /// Eventual consistency.
    Eventual,
    /// Strong consistency.
    Strong,
}

/// Options of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateOptions {
    /// ETag / first-write semantics.
    pub concurrency: Concurrency,
    /// Replication semantics (stores with one replica ignore it).
    pub consistency: Consistency,
}

/// A stored value as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateValue {
    /// The bytes exactly as saved.
    pub data: Vec<u8>,
    /// The opaque version of the value; `None` for stores without ETags.
    pub etag: Option<String>,
    /// Store-provided metadata, e.g. `ttlExpireTime` (RFC 3339).
    pub metadata: Metadata,
}

/// A read of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetRequest {
    /// The (prefixed) key.
    pub key: String,
    /// Requested consistency.
    pub consistency: Consistency,
    /// Request metadata.
    pub metadata: Metadata,
}

/// A write of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// The (prefixed) key.
    pub key: String,
    /// The bytes to store.
    pub value: Vec<u8>,
    /// The ETag the caller read, if any.
    pub etag: Option<String>,
    /// Concurrency and consistency.
    pub options: StateOptions,
    /// Request metadata (`ttlInSeconds`, `contentType`, …).
    pub metadata: Metadata,
    /// The time to live, parsed from `metadata.ttlInSeconds` by the runtime
    /// before the request reaches a store ([`Ttl::from_metadata`]): backends
    /// read this and never parse the metadata themselves, so a TTL is
    /// validated once, with one set of rules, whatever the backend.
    pub ttl: Ttl,
}

/// The metadata key of a write's time to live, in seconds.
pub const TTL_METADATA: &str = "ttlInSeconds";

/// A write's time to live, as Dapr's `ttlInSeconds` gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ttl {
    /// No `ttlInSeconds` (or an empty one): the store's default applies
    /// (none, unless the component configures one).
    #[default]
    Unset,
    /// `-1`: never expire, even if the component has a default TTL.
    Never,
    /// Expire this long after the write.
    After(Duration),
}

impl Ttl {
    /// The largest TTL Dapr accepts: `math.MaxInt32` seconds (about 68
    /// years), so every backend can add it to the current time without
    /// overflow.
    pub const MAX_SECONDS: i64 = i32::MAX as i64;

    /// Parses `ttlInSeconds` with the rules of Dapr's `ParseTTL`
    /// (components-contrib `state/utils`): absent or empty is unset, else a
    /// base-10 integer from -1 (never expire) to [`Ttl::MAX_SECONDS`];
    /// anything else is refused, huge values included, rather than clamped.
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, StateError> {
        let raw = match metadata.get(TTL_METADATA) {
            None => return Ok(Ttl::Unset),
            Some(raw) if raw.is_empty() => return Ok(Ttl::Unset),
            Some(raw) => raw,
        };
        let invalid = || {
            StateError::InvalidRequest(format!(
                "incorrect value for metadata '{TTL_METADATA}' ({}): must be -1 or an integer \
                 from 0 to {}",
                crate::error::echo(raw),
                Self::MAX_SECONDS
            ))
        };
        match raw.parse::<i64>().map_err(|_| invalid())? {
            -1 => Ok(Ttl::Never),
            seconds @ 0..=Self::MAX_SECONDS => Ok(Ttl::After(Duration::from_secs(seconds as u64))),
            _ => Err(invalid()),
        }
    }

    /// The time to live, if the value expires (`Unset` and `Never` do not;
    /// a store with a default TTL tells them apart itself).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Ttl::After(ttl) => Some(ttl),
            Ttl::Unset | Ttl::Never => None,
        }
    }
}

/// A delete of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The (prefixed) key.
    pub key: String,
    /// The ETag the caller read, if any.
    pub etag: Option<String>,
    /// Concurrency and consistency.
    pub options: StateOptions,
    /// Request metadata.
    pub metadata: Metadata,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Insert or update.
    Upsert(SetRequest),
    /// Delete.
    Delete(DeleteRequest),
}

/// What must hold for a write or delete to proceed, derived once from the
/// request's ETag and concurrency so every backend applies the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Unconditional (last-write-wins, no ETag).
    Always,
    /// The key must not exist (first-write without an ETag).
    MustNotExist,
    /// The stored ETag must equal this one.
    EtagMatches(String),
}

impl WriteCondition {
    /// The condition for a write with `etag` under `concurrency`.
    ///
    /// A given ETag is always checked, whatever the concurrency mode (Dapr's
    /// optimistic concurrency); without one, first-write means "insert only".
    pub fn new(etag: Option<&str>, concurrency: Concurrency) -> Self {
        match (etag.filter(|e| !e.is_empty()), concurrency) {
            (Some(etag), _) => WriteCondition::EtagMatches(etag.to_owned()),
            (None, Concurrency::FirstWrite) => WriteCondition::MustNotExist,
            (None, _) => WriteCondition::Always,
        }
    }
}

impl SetRequest {
    /// The write condition of this request.
    pub fn condition(&self) -> WriteCondition {
        WriteCondition::new(self.etag.as_deref(), self.options.concurrency)
    }
}

impl DeleteRequest {
    /// The delete condition of this request. Deleting a missing key is not
    /// an error; a first-write delete without an ETag is unconditional.
    pub fn condition(&self) -> WriteCondition {
        match WriteCondition::new(self.etag.as_deref(), self.options.concurrency) {
            WriteCondition::MustNotExist => WriteCondition::Always,
            other => other,
        }
    }
}

/// What a store supports, declared once and checked by the conformance suite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFeatures {
    /// Values carry ETags and writes honour them.
    pub etag: bool,
    /// `transact` is atomic.
    pub transactional: bool,
    /// `ttlInSeconds` is honoured.
    pub ttl: bool,
    /// `query` works.
    pub query: bool,
}

impl StateFeatures {
    /// Dapr's names of the features this store has, for the metadata API.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.etag {
            names.push("ETAG");
        }
        if self.transactional {
            names.push("TRANSACTIONAL");
        }
        if self.ttl {
            names.push("TTL");
        }
        if self.query {
            names.push("QUERY_API");
        }
        names
    }
}

/// Errors of a state store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The ETag (or first-write condition) does not hold.
    #[error("possible etag mismatch: the value was changed or deleted since it was read")]
    EtagMismatch,
    /// The ETag cannot be a version of this store.
    #[error("invalid etag value `{0}`")]
    EtagInvalid(String),
    /// The store does not do this.
    #[error("the state store does not support {0}")]
    NotSupported(&'static str),
    /// The request carries a value the store cannot accept (bad TTL, …).
    #[error("{0}")]
    InvalidRequest(String),
    /// The backend failed (connection lost, server error, …).
    #[error("{0}")]
    Backend(String),
}

/// Why a [`StateStore::bulk_set`] stopped: the first write that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write {index} of the bulk: {error}")]
pub struct BulkSetError {
    /// Its position in the bulk; every write before it was applied.
    pub index: usize,
    /// Why it failed.
    pub error: StateError,
}

/// One key's answer in a bulk get ([`StateStore::bulk_get`]): its value,
/// `None` when it does not exist, or why it could not be read.
pub type BulkGetResult = Result<Option<StateValue>, StateError>;

/// How many single gets the default [`StateStore::bulk_get`] keeps in
/// flight when the caller sets no limit (`parallelism` 0). Dapr reads "no
/// limit" as one request per key at once; that is the slow path for large
/// bulks (a 100k-key bulk queued 100k requests on one connection), so "no
/// limit" means "the store's best", which for this default is a bounded
/// window.
pub const DEFAULT_BULK_GET_PARALLELISM: usize = 64;

/// A state store backend.
///
/// Implementations are cheap to share (`Arc<dyn StateStore>`) and safe to call
/// concurrently. Only `get`, `set` and `delete` are required; a store that
/// declares a feature in [`StateStore::features`] overrides the matching method.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The features this store has.
    fn features(&self) -> StateFeatures;

    /// Reads a key; `None` when it does not exist (or has expired).
    async fn get(&self, request: GetRequest) -> Result<Option<StateValue>, StateError>;

    /// Writes a key under [`SetRequest::condition`].
    async fn set(&self, request: SetRequest) -> Result<(), StateError>;

    /// Reads many keys: one answer per request, in the order of `requests`
    /// (a key asked twice is answered twice), each with the semantics of
    /// [`StateStore::get`]. A key that cannot be read is an `Err` in its
    /// own place, never a failure of the whole bulk. `parallelism` bounds
    /// how many backend requests are in flight at once (0: the store
    /// chooses).
    ///
    /// The default runs single gets, [`DEFAULT_BULK_GET_PARALLELISM`] at a
    /// time when no limit is given; stores with a batched read (a Redis
    /// pipeline, SQL `IN`) override it.
    async fn bulk_get(&self, requests: Vec<GetRequest>, parallelism: usize) -> Vec<BulkGetResult> {
        let window = match parallelism {
            0 => DEFAULT_BULK_GET_PARALLELISM,
            n => n,
        };
        stream::iter(requests)
            .map(|request| self.get(request))
            .buffered(window)
            .collect()
            .await
    }

    /// Writes many keys, in order, each under its own
    /// [`SetRequest::condition`], as Dapr's `BulkSet`: the first failure
    /// stops the bulk and is returned with its index; the writes before it
    /// stay applied, the ones after it are not tried.
    ///
    /// The default runs [`StateStore::set`] once per request; stores that
    /// can write many keys in one round trip (a Redis script, one SQL
    /// transaction) override it, keeping these semantics.
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), BulkSetError> {
        for (index, request) in requests.into_iter().enumerate() {
            self.set(request)
                .await
                .map_err(|error| BulkSetError { index, error })?;
        }
        Ok(())
    }

    /// Deletes a key under [`DeleteRequest::condition`]; a missing key is not an error.
    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError>;

    /// Applies all operations atomically, or none.
    async fn transact(&self, operations: Vec<Operation>) -> Result<(), StateError> {
        let _ = operations;
        Err(StateError::NotSupported("transactions"))
    }

    /// The largest transaction the store accepts, if it has a limit.
    fn max_transaction_operations(&self) -> Option<usize> {
        None
    }

    /// One batch of the live `(key, value)` pairs whose key starts with
    /// `prefix`, for the query API (which filters, sorts and pages them
    /// batch by batch in [`query::Evaluation`], so a query holds a batch and
    /// a page, never the whole store).
    ///
    /// `cursor` is `None` for the first batch and then the
    /// [`ScanBatch::next`] of the batch before; a batch without `next` is
    /// the last. A batch has about `batch` rows: stores whose server sizes
    /// the batch (Redis `SCAN … COUNT`) may return somewhat more or fewer,
    /// even none before the end. Keys are in ascending byte order across the
    /// whole scan when [`StateStore::scan_in_key_order`] says so; otherwise
    /// the order is the store's and a key may appear in more than one batch.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<ScanBatch, StateError> {
        let _ = (prefix, cursor, batch);
        Err(StateError::NotSupported("queries"))
    }

    /// Whether [`StateStore::scan`] returns keys once each, in ascending
    /// byte order (as `str::cmp` orders them). A query without `sort` then
    /// stops as soon as its page is full; otherwise it reads every batch.
    fn scan_in_key_order(&self) -> bool {
        false
    }
}

/// One batch of a [`StateStore::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanBatch {
    /// Live `(key, value)` pairs under the prefix.
    pub rows: Vec<(String, StateValue)>,
    /// The cursor of the next batch; `None` when this one is the last.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETag + concurrency map to one condition, the same for every backend.
    #[test]
    fn write_conditions() {
        use Concurrency::*;
        assert_eq!(
            WriteCondition::new(None, Unspecified),
            WriteCondition::Always
        );
        assert_eq!(WriteCondition::new(None, LastWrite), WriteCondition::Always);
        assert_eq!(
            WriteCondition::new(Some(""), LastWrite),
            WriteCondition::Always
        );
        assert_eq!(
            WriteCondition::new(None, FirstWrite),
            WriteCondition::MustNotExist
        );
        for c in [Unspecified, FirstWrite, LastWrite] {
            assert_eq!(
                WriteCondition::new(Some("7"), c),
                WriteCondition::EtagMatches("7".into())
            );
        }
        let delete = DeleteRequest {
            options: StateOptions {
                concurrency: FirstWrite,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(delete.condition(), WriteCondition::Always);
    }

    /// `ttlInSeconds` follows Dapr's `ParseTTL`: -1 is forever, empty is
    /// unset, and what is not an integer from -1 to `MaxInt32` is refused
    /// (a huge value too: it would overflow the stores' clocks).
    #[test]
    fn ttl_metadata() {
        let parse =
            |v: &str| Ttl::from_metadata(&[(TTL_METADATA.to_string(), v.to_string())].into());
        assert_eq!(Ttl::from_metadata(&Metadata::new()), Ok(Ttl::Unset));
        assert_eq!(parse(""), Ok(Ttl::Unset));
        assert_eq!(parse("30"), Ok(Ttl::After(Duration::from_secs(30))));
        assert_eq!(parse("0"), Ok(Ttl::After(Duration::ZERO)));
        assert_eq!(parse("-1"), Ok(Ttl::Never));
        assert_eq!(
            parse("2147483647"),
            Ok(Ttl::After(Duration::from_secs(2_147_483_647)))
        );
        for bad in [
            "-5",
            "soon",
            "2147483648",
            "9223372036854775807",
            "99999999999999999999",
            " 5",
            "1.5",
        ] {
            assert!(
                matches!(parse(bad), Err(StateError::InvalidRequest(_))),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(Ttl::Never.duration(), None);
        assert_eq!(Ttl::Unset.duration(), None);
    }
}
