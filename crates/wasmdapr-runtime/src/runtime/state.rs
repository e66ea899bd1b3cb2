//! The state building block of [`Runtime`]: [`StateApi`] with Dapr's
//! semantics, once for every door. A store is looked up by name within the
//! app's scopes; every key is checked (not empty, not forging another
//! prefix) and prefixed, and every `ttlInSeconds` parsed into a [`Ttl`],
//! before a store sees a request, so backends receive typed, valid requests
//! only; store errors map onto Dapr's error table by operation.

use async_trait::async_trait;

use super::outbox::OutboxConfig;
use super::{MAX_BULK_GET_KEYS, Runtime};
use crate::api::{BulkStateItem, StateApi};
use crate::components::{KEY_SEPARATOR, LoadedStateStore, LookupError};
use crate::error::{ApiError, ErrorKind, echo};
use crate::state::query::{self, Query, QueryResponse};
use crate::state::{
    DeleteRequest, GetRequest, Metadata, Operation, SetRequest, StateError, StateStore, StateValue,
    Ttl,
};

impl Runtime {
    fn store(&self, name: &str) -> Result<(&LoadedStateStore, String), ApiError> {
        match self.components.scoped::<dyn StateStore>(name, &self.app_id) {
            Ok(loaded) => Ok((loaded, loaded.prefix().head(&self.app_id, name))),
            Err(LookupError::NotConfigured) => {
                Err(ApiError::state_store(name).not_configured(self.app_id.as_str()))
            }
            Err(LookupError::NotFound) => {
                Err(ApiError::state_store(name).not_found(self.app_id.as_str()))
            }
        }
    }
}

/// Prefixes a caller's key, refusing empty keys and keys that would forge
/// another prefix.
fn prefixed(store: &str, head: &str, key: &str) -> Result<String, ApiError> {
    if key.is_empty() {
        return Err(ApiError::malformed("state key cannot be empty"));
    }
    if !head.is_empty() && key.contains(KEY_SEPARATOR) {
        return Err(ApiError::state_store(store).illegal_key(key, KEY_SEPARATOR));
    }
    Ok(format!("{head}{key}"))
}

/// The error of a failed write, by operation: ETag problems keep Dapr's
/// 409 / 400 split, bad input is the caller's, the rest is the store's.
fn write_error(error: StateError, op: WriteOp, store: &str, key: &str) -> ApiError {
    // Worded as daprd's `pkg/messages` (`ErrStateSave`, `ErrStateDelete`,
    // `ErrStateTransaction`).
    let (mismatch, invalid, failed, message) = match op {
        WriteOp::Save => (
            ErrorKind::StateSaveEtagMismatch,
            ErrorKind::StateSaveEtagInvalid,
            ErrorKind::StateSave,
            format!(
                "failed saving state in state store {}: {error}",
                echo(store)
            ),
        ),
        WriteOp::Delete => (
            ErrorKind::StateDeleteEtagMismatch,
            ErrorKind::StateDeleteEtagInvalid,
            ErrorKind::StateDelete,
            format!("failed deleting state with key {}: {error}", echo(key)),
        ),
        WriteOp::Transaction => (
            ErrorKind::StateTransactionEtagMismatch,
            ErrorKind::StateTransactionEtagInvalid,
            ErrorKind::StateTransaction,
            format!("error while executing state transaction: {error}"),
        ),
    };
    let kind = match &error {
        StateError::EtagMismatch => mismatch,
        StateError::EtagInvalid(_) => invalid,
        StateError::InvalidRequest(_) => ErrorKind::MalformedRequest,
        StateError::NotSupported(_) => ErrorKind::StateStoreNotSupported,
        StateError::Backend(_) => failed,
    };
    ApiError::new(kind, message)
}

#[derive(Clone, Copy)]
enum WriteOp {
    Save,
    Delete,
    Transaction,
}

#[async_trait]
impl StateApi for Runtime {
    async fn get_state(
        &self,
        store: &str,
        mut request: GetRequest,
    ) -> Result<Option<StateValue>, ApiError> {
        let (loaded, head) = self.store(store)?;
        let key = request.key.clone();
        request.key = prefixed(store, &head, &key)?;
        loaded.component.get(request).await.map_err(|e| {
            ApiError::new(
                ErrorKind::StateGet,
                format!(
                    "fail to get {} from state store {}: {e}",
                    echo(&key),
                    echo(store)
                ),
            )
        })
    }

    async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
        parallelism: usize,
        metadata: Metadata,
    ) -> Result<Vec<BulkStateItem>, ApiError> {
        let (loaded, head) = self.store(store)?;
        if keys.len() > MAX_BULK_GET_KEYS {
            return Err(ApiError::malformed(format!(
                "a bulk get reads at most {MAX_BULK_GET_KEYS} keys; this one asks for {}",
                keys.len()
            )));
        }
        let requests = keys
            .iter()
            .map(|key| {
                Ok(GetRequest {
                    key: prefixed(store, &head, key)?,
                    metadata: metadata.clone(),
                    ..GetRequest::default()
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mut answers = loaded
            .component
            .bulk_get(requests, parallelism)
            .await
            .into_iter();
        let items = keys
            .into_iter()
            .map(|key| match answers.next() {
                Some(Ok(value)) => BulkStateItem {
                    key,
                    value,
                    error: None,
                },
                Some(Err(e)) => BulkStateItem {
                    key,
                    value: None,
                    error: Some(e.to_string()),
                },
                // A store that answered fewer keys than asked is at fault,
                // not the caller: the key is reported as unread.
                None => BulkStateItem {
                    key,
                    value: None,
                    error: Some(format!("state store {store} gave no answer for this key")),
                },
            })
            .collect();
        Ok(items)
    }

    async fn save_state(&self, store: &str, items: Vec<SetRequest>) -> Result<(), ApiError> {
        let (loaded, head) = self.store(store)?;
        // Every item is checked before any is written (Dapr checks every
        // key first), so the store receives valid requests only.
        let mut keys = Vec::with_capacity(items.len());
        let mut requests = items
            .into_iter()
            .map(|mut item| {
                let key = std::mem::take(&mut item.key);
                item.key = prefixed(store, &head, &key)?;
                item.ttl = Ttl::from_metadata(&item.metadata)
                    .map_err(|e| write_error(e, WriteOp::Save, store, &key))?;
                keys.push(key);
                Ok(item)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        if requests.len() == 1
            && let Some(request) = requests.pop()
        {
            return loaded
                .component
                .set(request)
                .await
                .map_err(|e| write_error(e, WriteOp::Save, store, &keys[0]));
        }
        loaded.component.bulk_set(requests).await.map_err(|failed| {
            let key = keys.get(failed.index).map_or("", String::as_str);
            write_error(failed.error, WriteOp::Save, store, key)
        })
    }

    async fn delete_state(&self, store: &str, request: DeleteRequest) -> Result<(), ApiError> {
        self.delete_bulk_state(store, vec![request]).await
    }

    async fn delete_bulk_state(
        &self,
        store: &str,
        requests: Vec<DeleteRequest>,
    ) -> Result<(), ApiError> {
        let (loaded, head) = self.store(store)?;
        // As for saves, every key is checked before any is deleted.
        let mut keys = Vec::with_capacity(requests.len());
        let requests = requests
            .into_iter()
            .map(|mut request| {
                let key = std::mem::take(&mut request.key);
                request.key = prefixed(store, &head, &key)?;
                keys.push(key);
                Ok(request)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        for (request, key) in requests.into_iter().zip(&keys) {
            loaded
                .component
                .delete(request)
                .await
                .map_err(|e| write_error(e, WriteOp::Delete, store, key))?;
        }
        Ok(())
    }

    async fn transact_state(
        &self,
        store: &str,
        operations: Vec<Operation>,
        _metadata: Metadata,
    ) -> Result<(), ApiError> {
        let (loaded, head) = self.store(store)?;
        if !loaded.component.features().transactional {
            return Err(ApiError::state_store(store).transactions_not_supported());
        }
        if let Some(max) = loaded.component.max_transaction_operations()
            && operations.len() > max
        {
            return Err(
                ApiError::state_store(store).too_many_transactional_ops(operations.len(), max)
            );
        }
        let operations = operations
            .into_iter()
            .map(|op| {
                Ok(match op {
                    Operation::Upsert(mut r) => {
                        r.ttl = Ttl::from_metadata(&r.metadata)
                            .map_err(|e| write_error(e, WriteOp::Transaction, store, &r.key))?;
                        r.key = prefixed(store, &head, &r.key)?;
                        Operation::Upsert(r)
                    }
                    Operation::Delete(mut r) => {
                        r.key = prefixed(store, &head, &r.key)?;
                        Operation::Delete(r)
                    }
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let Some(outbox) = OutboxConfig::of(&loaded.spec) else {
            return loaded
                .component
                .transact(operations)
                .await
                .map_err(|e| write_error(e, WriteOp::Transaction, store, ""));
        };
        let (operations, markers) = self.outbox_publish(&outbox, operations).await?;
        let committed = loaded.component.transact(operations).await;
        if committed.is_err() {
            self.outbox_failed(markers);
        }
        committed.map_err(|e| write_error(e, WriteOp::Transaction, store, ""))
    }

    async fn query_state(
        &self,
        store: &str,
        query: serde_json::Value,
        _metadata: Metadata,
    ) -> Result<QueryResponse, ApiError> {
        let (loaded, head) = self.store(store)?;
        if !loaded.component.features().query {
            return Err(ApiError::state_store(store).query_not_supported());
        }
        let query =
            Query::parse(&query).map_err(|e| ApiError::malformed(format!("invalid query: {e}")))?;
        query::run(&*loaded.component, &head, &query, |key| {
            let key = key.strip_prefix(&head)?;
            // Under a shared prefix (`none`, `name`), keys of other apps'
            // prefixes are not this app's rows.
            (head.is_empty() || !key.contains(KEY_SEPARATOR)).then(|| key.to_owned())
        })
        .await
        .map_err(|e| ApiError::state_store(store).query_failed(e))
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! The runtime's own logic (lookup, scopes, prefixes, error mapping) over
    //! a small map-backed store defined here; backends are tested by the
    //! conformance suite in `wasmdapr-components`.

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::app_id::AppId;
    use crate::component::ComponentSpec;
    use crate::registry::ComponentRegistry;
    use crate::runtime::Components;
    use crate::state::{BulkSetError, ScanBatch, StateFeatures, StateStore, WriteCondition};

    /// Stores values in a map; ETags are a counter; transactions are
    /// limited to two operations; every write condition is honoured.
    #[derive(Default)]
    pub(in crate::runtime) struct MapStore {
        data: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
        /// The TTL of every write, as the store received it.
        ttls: Mutex<Vec<Ttl>>,
        /// What scans have returned so far.
        scans: Mutex<ScanCount>,
        /// The size of every bulk set the store received.
        bulk_sets: Mutex<Vec<usize>>,
    }

    /// Rows returned by scans, and the batch sizes asked for.
    #[derive(Default)]
    struct ScanCount {
        rows: usize,
        requested: Vec<usize>,
    }

    impl MapStore {
        fn check(
            data: &BTreeMap<String, (Vec<u8>, u64)>,
            key: &str,
            cond: &WriteCondition,
        ) -> Result<(), StateError> {
            let current = data.get(key).map(|(_, v)| v.to_string());
            match (cond, current) {
                (WriteCondition::Always, _) => Ok(()),
                (WriteCondition::MustNotExist, None) => Ok(()),
                (WriteCondition::EtagMatches(e), Some(c)) if *e == c => Ok(()),
                (WriteCondition::EtagMatches(e), _) if e.parse::<u64>().is_err() => {
                    Err(StateError::EtagInvalid(e.clone()))
                }
                _ => Err(StateError::EtagMismatch),
            }
        }
    }

    #[async_trait]
    impl StateStore for MapStore {
        fn features(&self) -> StateFeatures {
            StateFeatures {
                etag: true,
                transactional: true,
                ttl: false,
                query: true,
            }
        }
        async fn get(&self, r: GetRequest) -> Result<Option<StateValue>, StateError> {
            if r.key.ends_with("unreadable") {
                return Err(StateError::Backend("cannot read this key".into()));
            }
            Ok(self
                .data
                .lock()
                .unwrap()
                .get(&r.key)
                .map(|(d, v)| StateValue {
                    data: d.clone(),
                    etag: Some(v.to_string()),
                    metadata: Metadata::new(),
                }))
        }
        async fn set(&self, r: SetRequest) -> Result<(), StateError> {
            self.ttls.lock().unwrap().push(r.ttl);
            let mut data = self.data.lock().unwrap();
            Self::check(&data, &r.key, &r.condition())?;
            let version = data.get(&r.key).map_or(1, |(_, v)| v + 1);
            data.insert(r.key, (r.value, version));
            Ok(())
        }
        async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), BulkSetError> {
            self.bulk_sets.lock().unwrap().push(requests.len());
            for (index, request) in requests.into_iter().enumerate() {
                self.set(request)
                    .await
                    .map_err(|error| BulkSetError { index, error })?;
            }
            Ok(())
        }
        async fn delete(&self, r: DeleteRequest) -> Result<(), StateError> {
            let mut data = self.data.lock().unwrap();
            Self::check(&data, &r.key, &r.condition())?;
            data.remove(&r.key);
            Ok(())
        }
        async fn transact(&self, ops: Vec<Operation>) -> Result<(), StateError> {
            for op in ops {
                match op {
                    Operation::Upsert(r) => self.set(r).await?,
                    Operation::Delete(r) => self.delete(r).await?,
                }
            }
            Ok(())
        }
        fn max_transaction_operations(&self) -> Option<usize> {
            Some(2)
        }
        async fn scan(
            &self,
            prefix: &str,
            cursor: Option<&str>,
            batch: usize,
        ) -> Result<ScanBatch, StateError> {
            use std::ops::Bound;
            let data = self.data.lock().unwrap();
            let from = match cursor {
                Some(after) => Bound::Excluded(after),
                None => Bound::Included(prefix),
            };
            let rows: Vec<(String, StateValue)> = data
                .range::<str, _>((from, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(batch)
                .map(|(k, (d, v))| {
                    (
                        k.clone(),
                        StateValue {
                            data: d.clone(),
                            etag: Some(v.to_string()),
                            metadata: Metadata::new(),
                        },
                    )
                })
                .collect();
            let mut scans = self.scans.lock().unwrap();
            scans.rows += rows.len();
            scans.requested.push(batch);
            let next = (rows.len() == batch).then(|| rows[batch - 1].0.clone());
            Ok(ScanBatch { rows, next })
        }
        fn scan_in_key_order(&self) -> bool {
            true
        }
    }

    /// Components with one `MapStore` per `(name, keyPrefix, scopes)`.
    pub(in crate::runtime) async fn components(
        stores: &[(&str, Option<&str>, &[&str])],
    ) -> (Arc<Components>, Vec<Arc<MapStore>>) {
        let mut registry = ComponentRegistry::new();
        let made: Arc<Mutex<Vec<Arc<MapStore>>>> = Arc::default();
        let sink = made.clone();
        registry.register_state("state.map", move |_spec| {
            let store = Arc::new(MapStore::default());
            sink.lock().unwrap().push(store.clone());
            async move { Ok(store as Arc<dyn StateStore>) }
        });
        let specs = stores
            .iter()
            .map(|(name, prefix, scopes)| ComponentSpec {
                name: name.to_string(),
                kind: "state.map".into(),
                version: "v1".into(),
                metadata: prefix
                    .iter()
                    .map(|p| ("keyPrefix".to_string(), p.to_string()))
                    .collect(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                source: "test.yaml".into(),
            })
            .collect();
        let components = Components::load(specs, &registry).await.unwrap();
        let made = made.lock().unwrap().clone();
        (Arc::new(components), made)
    }

    pub(in crate::runtime) fn runtime(app: &str, components: &Arc<Components>) -> Runtime {
        Runtime::new(AppId::new(app).unwrap(), components.clone())
    }

    fn item(key: &str, value: &str) -> SetRequest {
        SetRequest {
            key: key.into(),
            value: value.into(),
            ..SetRequest::default()
        }
    }

    fn keys(store: &MapStore) -> Vec<String> {
        store.data.lock().unwrap().keys().cloned().collect()
    }

    /// Each `keyPrefix` mode stores keys as Dapr does.
    #[tokio::test]
    async fn key_prefixes() {
        let (c, stores) = components(&[
            ("a", None, &[]),
            ("b", Some("name"), &[]),
            ("c", Some("none"), &[]),
            ("d", Some("shared"), &[]),
        ])
        .await;
        let rt = runtime("orders", &c);
        for store in ["a", "b", "c", "d"] {
            rt.save_state(store, vec![item("k", "v")]).await.unwrap();
        }
        let all: Vec<Vec<String>> = stores.iter().map(|s| keys(s)).collect();
        assert_eq!(
            all,
            [
                vec!["orders||k"],
                vec!["b||k"],
                vec!["k"],
                vec!["shared||k"]
            ]
        );
        let got = rt
            .get_state(
                "a",
                GetRequest {
                    key: "k".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(got.unwrap().data, b"v");
    }

    /// A bulk get answers every key in the caller's order and spelling
    /// (duplicates included), a key's failure in its own item; too many
    /// keys is a malformed request naming the limit, and a forged key
    /// fails the whole request as for a single get.
    #[tokio::test]
    async fn bulk_get() {
        let (c, _) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        rt.save_state("a", vec![item("k1", "1"), item("k2", "2")])
            .await
            .unwrap();
        let keys = ["k2", "missing", "k1", "unreadable", "k2"].map(String::from);
        for parallelism in [0, 1, 3] {
            let items = rt
                .get_bulk_state("a", keys.to_vec(), parallelism, Metadata::new())
                .await
                .unwrap();
            let seen: Vec<(&str, Option<&[u8]>, bool)> = items
                .iter()
                .map(|i| {
                    let data = i.value.as_ref().map(|v| v.data.as_slice());
                    (i.key.as_str(), data, i.error.is_some())
                })
                .collect();
            assert_eq!(
                seen,
                [
                    ("k2", Some(&b"2"[..]), false),
                    ("missing", None, false),
                    ("k1", Some(&b"1"[..]), false),
                    ("unreadable", None, true),
                    ("k2", Some(&b"2"[..]), false),
                ],
                "parallelism {parallelism}"
            );
        }
        let too_many = vec!["k".to_string(); MAX_BULK_GET_KEYS + 1];
        let err = rt
            .get_bulk_state("a", too_many, 0, Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_MALFORMED_REQUEST");
        assert!(err.to_string().contains("100000"), "{err}");
        let forged = vec!["k1".to_string(), "other||k".to_string()];
        let err = rt
            .get_bulk_state("a", forged, 0, Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_MALFORMED_REQUEST");
    }

    /// A save of N items reaches the store as one bulk set (one item as a
    /// single set); an invalid item anywhere refuses the request before
    /// anything is written; the first failing write names its own key, the
    /// writes before it stay and the ones after it are not made.
    #[tokio::test]
    async fn saves_are_one_bulk_set_checked_first() {
        let (c, stores) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        rt.save_state("a", vec![item("k1", "1"), item("k2", "2"), item("k3", "3")])
            .await
            .unwrap();
        rt.save_state("a", vec![item("one", "1")]).await.unwrap();
        assert_eq!(stores[0].bulk_sets.lock().unwrap().as_slice(), &[3]);
        assert_eq!(keys(&stores[0]).len(), 4);

        let bad_ttl = SetRequest {
            metadata: [("ttlInSeconds".to_string(), "soon".to_string())].into(),
            ..item("new2", "v")
        };
        for bad in [item("", "v"), item("x||y", "v"), bad_ttl] {
            let err = rt
                .save_state("a", vec![item("new1", "v"), bad.clone()])
                .await
                .unwrap_err();
            assert_eq!(err.code(), "ERR_MALFORMED_REQUEST", "{bad:?}");
            assert!(!keys(&stores[0]).contains(&"orders||new1".to_string()));
        }
        assert_eq!(stores[0].bulk_sets.lock().unwrap().len(), 1);

        let stale = SetRequest {
            etag: Some("99".into()),
            ..item("k2", "stale")
        };
        let err = rt
            .save_state("a", vec![item("k1", "new"), stale, item("k4", "4")])
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("ERR_STATE_SAVE", 409));
        // Worded as daprd's `ErrStateSave`: the store, not the key.
        assert!(
            err.message
                .starts_with("failed saving state in state store a: "),
            "{err}"
        );
        let data = stores[0].data.lock().unwrap();
        assert_eq!(data["orders||k1"].0, b"new");
        assert_eq!(data["orders||k2"].0, b"2");
        assert!(!data.contains_key("orders||k4"));
    }

    /// A bulk delete checks every key before deleting any.
    #[tokio::test]
    async fn bulk_deletes_are_checked_first() {
        let (c, stores) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        rt.save_state("a", vec![item("k1", "1"), item("k2", "2")])
            .await
            .unwrap();
        let delete = |key: &str| DeleteRequest {
            key: key.into(),
            ..Default::default()
        };
        let err = rt
            .delete_bulk_state("a", vec![delete("k1"), delete("")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_MALFORMED_REQUEST");
        assert_eq!(keys(&stores[0]).len(), 2);
        rt.delete_bulk_state("a", vec![delete("k1"), delete("k2")])
            .await
            .unwrap();
        assert!(keys(&stores[0]).is_empty());
    }

    /// A key that would forge another app's prefix, and an empty key, are malformed.
    #[tokio::test]
    async fn forged_and_empty_keys_are_refused() {
        let (c, _) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        for key in ["other||k", ""] {
            let err = rt.save_state("a", vec![item(key, "v")]).await.unwrap_err();
            assert_eq!(err.code(), "ERR_MALFORMED_REQUEST", "{key}");
        }
    }

    /// A scoped store is not found for other apps; no stores at all is "not configured".
    #[tokio::test]
    async fn scopes_and_missing_stores() {
        let (c, _) = components(&[("private", None, &["billing"])]).await;
        let get = GetRequest {
            key: "k".into(),
            ..Default::default()
        };
        let err = runtime("orders", &c)
            .get_state("private", get.clone())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("ERR_STATE_STORE_NOT_FOUND", 400)
        );
        assert!(err.message.contains("private"));
        assert!(
            runtime("billing", &c)
                .get_state("private", get.clone())
                .await
                .is_ok()
        );
        let none = Arc::new(Components::default());
        let err = runtime("orders", &none)
            .get_state("x", get)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("ERR_STATE_STORE_NOT_CONFIGURED", 500)
        );
    }

    /// Store errors map onto Dapr's table: mismatch 409, invalid ETag 400, per operation code.
    #[tokio::test]
    async fn etag_errors_map_to_dapr_codes() {
        let (c, _) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        rt.save_state("a", vec![item("k", "1")]).await.unwrap();
        let stale = SetRequest {
            etag: Some("99".into()),
            ..item("k", "2")
        };
        let err = rt.save_state("a", vec![stale]).await.unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("ERR_STATE_SAVE", 409));
        let bad = SetRequest {
            etag: Some("not-a-version".into()),
            ..item("k", "2")
        };
        let err = rt.save_state("a", vec![bad]).await.unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("ERR_STATE_SAVE", 400));
        let del = DeleteRequest {
            key: "k".into(),
            etag: Some("99".into()),
            ..Default::default()
        };
        let err = rt.delete_state("a", del).await.unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("ERR_STATE_DELETE", 409));
    }

    /// A `ttlInSeconds` Dapr refuses (huge, below -1, not a number) is the
    /// caller's 400 in a save and in a transaction, checked before the
    /// store is called; the store receives the parsed TTL.
    #[tokio::test]
    async fn ttls_are_validated_once_here() {
        let (c, stores) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        let with_ttl = |ttl: &str| SetRequest {
            metadata: [("ttlInSeconds".to_string(), ttl.to_string())].into(),
            ..item("k", "v")
        };
        for bad in ["9223372036854775807", "2147483648", "-2", "soon"] {
            let err = rt.save_state("a", vec![with_ttl(bad)]).await.unwrap_err();
            assert_eq!(
                (err.code(), err.http_status()),
                ("ERR_MALFORMED_REQUEST", 400),
                "{bad}: {err}"
            );
            let op = Operation::Upsert(with_ttl(bad));
            let err = rt
                .transact_state("a", vec![op], Metadata::new())
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), 400, "{bad}: {err}");
        }
        assert!(keys(&stores[0]).is_empty());
        rt.save_state("a", vec![with_ttl("2147483647")])
            .await
            .unwrap();
        assert_eq!(
            stores[0].ttls.lock().unwrap().as_slice(),
            &[Ttl::After(std::time::Duration::from_secs(2_147_483_647))]
        );
    }

    /// A store name or key of any length is quoted short in the error.
    #[tokio::test]
    async fn long_input_is_echoed_short() {
        let (c, _) = components(&[("a", None, &[])]).await;
        let rt = runtime("orders", &c);
        let name = "n".repeat(100_000);
        let err = rt
            .get_state(&name, GetRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_STATE_STORE_NOT_FOUND");
        assert!(err.message.len() < 400, "{}", err.message.len());
        let key = format!("{}||x", "k".repeat(100_000));
        let err = rt.save_state("a", vec![item(&key, "v")]).await.unwrap_err();
        assert!(err.message.len() < 400, "{}", err.message.len());
    }

    /// A transaction longer than the store allows is refused before it starts.
    #[tokio::test]
    async fn too_many_transaction_operations() {
        let (c, stores) = components(&[("a", None, &[])]).await;
        let ops = (0..3)
            .map(|i| Operation::Upsert(item(&format!("k{i}"), "v")))
            .collect();
        let err = runtime("orders", &c)
            .transact_state("a", ops, Metadata::new())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("ERR_STATE_STORE_TOO_MANY_TRANSACTIONS", 400)
        );
        assert!(keys(&stores[0]).is_empty());
    }

    /// Queries see only the caller's keys, returned without the prefix.
    #[tokio::test]
    async fn queries_see_only_own_keys() {
        let (c, _) = components(&[("a", None, &[])]).await;
        runtime("orders", &c)
            .save_state("a", vec![item("mine", r#"{"n":1}"#)])
            .await
            .unwrap();
        runtime("billing", &c)
            .save_state("a", vec![item("theirs", r#"{"n":2}"#)])
            .await
            .unwrap();
        let result = runtime("orders", &c)
            .query_state("a", serde_json::json!({}), Metadata::new())
            .await
            .unwrap();
        let keys: Vec<_> = result.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["mine"]);
        let err = runtime("orders", &c)
            .query_state(
                "a",
                serde_json::json!({"filter": {"NOPE": {}}}),
                Metadata::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ERR_MALFORMED_REQUEST");
    }

    /// A query over a big store reads it a batch at a time: without `sort`
    /// it stops once its page is full, and after a batch of big values the
    /// next ones ask for fewer rows, about `SCAN_BATCH_BYTES` of them.
    #[tokio::test]
    async fn queries_read_a_big_store_in_bounded_batches() {
        let (c, stores) = components(&[("a", None, &[])]).await;
        let store = &stores[0];
        {
            let mut data = store.data.lock().unwrap();
            for i in 0..50_000 {
                let value = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(1000));
                data.insert(format!("orders||k{i:06}"), (value.into_bytes(), 1));
            }
            // Big values after the small ones.
            for i in 0..200 {
                let value = format!(r#"{{"n":{i},"pad":"{}"}}"#, "y".repeat(256 << 10));
                data.insert(format!("orders||z{i:03}"), (value.into_bytes(), 1));
            }
        }
        let orders = runtime("orders", &c);
        let page = orders
            .query_state(
                "a",
                serde_json::json!({"page": {"limit": 5, "token": "100"}}),
                Metadata::new(),
            )
            .await
            .unwrap();
        let keys: Vec<_> = page.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            ["k000100", "k000101", "k000102", "k000103", "k000104"]
        );
        assert_eq!(page.token.as_deref(), Some("105"));
        let read = store.scans.lock().unwrap().rows;
        assert!(
            read <= 105 + query::SCAN_BATCH_ROWS,
            "read {read} rows for one early page"
        );

        // A sorted query reads every row: in batches of up to 256 small
        // values, then of fewer big ones.
        store.scans.lock().unwrap().requested.clear();
        let page = orders
            .query_state(
                "a",
                serde_json::json!({
                    "filter": {"GTE": {"n": 38}},
                    "sort": [{"key": "pad", "order": "DESC"}],
                    "page": {"limit": 3}
                }),
                Metadata::new(),
            )
            .await
            .unwrap();
        let keys: Vec<_> = page.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["z038", "z039", "z040"]);
        assert_eq!(page.token.as_deref(), Some("3"));
        let requested = store.scans.lock().unwrap().requested.clone();
        assert_eq!(requested.iter().max(), Some(&query::SCAN_BATCH_ROWS));
        // The batch that brought 184 values of 256 KiB (and the last 72
        // small ones) makes the next ask for 8 MiB of rows that size.
        let last = *requested.last().unwrap();
        assert!(
            last <= 2 * query::SCAN_BATCH_BYTES / (256 << 10),
            "asked for {last} rows after values of 256 KiB: {requested:?}"
        );
    }
}
