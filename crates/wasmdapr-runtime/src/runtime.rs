//! [`Runtime`]: the [`DaprApi`] of one app over the components loaded for
//! the process ([`Components`]). This is where Dapr's semantics live once:
//! store lookup and scopes, key prefixing, validation, and the mapping of
//! store errors to Dapr's error table.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{BulkStateItem, ComponentInfo, DaprApi, RuntimeMetadata};
use crate::app_channel::AppChannel;
use crate::app_id::AppId;
use crate::components::{Components, KEY_SEPARATOR, LoadedStateStore, LookupError};
use crate::error::{ApiError, ErrorKind, echo};
use crate::invoke::{self, InvokeRequest, InvokeResponse, RemoteInvocation};
use crate::state::query::{self, Query, QueryResponse};
use crate::state::{
    DeleteRequest, GetRequest, Metadata, Operation, SetRequest, StateError, StateStore, StateValue,
    Ttl,
};

/// The most keys one bulk get may ask for; more is refused with
/// `ERR_MALFORMED_REQUEST` (400) naming this limit. Dapr sets no such limit
/// (only its request body size bounds the key count), but every key's value
/// is held in memory until the answer is written, so the count is bounded
/// here, generously: 100,000 keys (the bulk of issue 10's load test).
pub const MAX_BULK_GET_KEYS: usize = 100_000;

/// The Dapr API of one app.
pub struct Runtime {
    app_id: AppId,
    components: Arc<Components>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The app this runtime delivers to. Set once, after start, because the
    /// app (a Wasm component, or a process on `--app-port`) is usually
    /// brought up after its sidecar.
    app_channel: std::sync::OnceLock<Arc<dyn AppChannel>>,
    /// How other apps are reached; `None`: only the own app is invocable.
    remote: Option<RemoteInvocation>,
    /// Set by [`Runtime::expect_app`]: not ready until the app is connected.
    expects_app: std::sync::atomic::AtomicBool,
}

impl Runtime {
    /// The runtime of `app_id` over `components`.
    pub fn new(app_id: AppId, components: Arc<Components>) -> Self {
        Self {
            app_id,
            components,
            shutdown: tokio::sync::watch::Sender::new(false),
            app_channel: std::sync::OnceLock::new(),
            remote: None,
            expects_app: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Lets this runtime invoke other apps: resolved by `remote.resolver`,
    /// called through their sidecars by `remote.invoker`.
    pub fn with_remote_invocation(mut self, remote: RemoteInvocation) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Connects the app this runtime serves. A runtime has at most one app:
    /// a second call returns the channel it was given back as the error.
    pub fn set_app_channel(&self, channel: Arc<dyn AppChannel>) -> Result<(), Arc<dyn AppChannel>> {
        self.app_channel.set(channel)
    }

    /// Declares that an app will be connected: until it is,
    /// [`DaprApi::ready`] reports `ERR_HEALTH_NOT_READY`.
    pub fn expect_app(&self) {
        self.expects_app
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The app this runtime serves, once connected.
    pub fn app_channel(&self) -> Option<&Arc<dyn AppChannel>> {
        self.app_channel.get()
    }

    /// Delivers a call another sidecar forwarded to this runtime's app, as
    /// from `caller`, the app id that sidecar authenticated as (see
    /// [`invoke::deliver_forwarded`]): the internal endpoint's entry point.
    pub async fn invoke_forwarded(
        &self,
        caller: &AppId,
        target: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        invoke::deliver_forwarded(
            &self.app_id,
            self.app_channel.get(),
            caller,
            target,
            request,
        )
        .await
    }

    /// The app id.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// Resolves once [`DaprApi::shutdown`] has been called.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|requested| *requested).await;
    }

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
impl DaprApi for Runtime {
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
        for mut item in items {
            let key = item.key.clone();
            item.key = prefixed(store, &head, &key)?;
            item.ttl = Ttl::from_metadata(&item.metadata)
                .map_err(|e| write_error(e, WriteOp::Save, store, &key))?;
            loaded
                .component
                .set(item)
                .await
                .map_err(|e| write_error(e, WriteOp::Save, store, &key))?;
        }
        Ok(())
    }

    async fn delete_state(&self, store: &str, mut request: DeleteRequest) -> Result<(), ApiError> {
        let (loaded, head) = self.store(store)?;
        let key = request.key.clone();
        request.key = prefixed(store, &head, &key)?;
        loaded
            .component
            .delete(request)
            .await
            .map_err(|e| write_error(e, WriteOp::Delete, store, &key))
    }

    async fn delete_bulk_state(
        &self,
        store: &str,
        requests: Vec<DeleteRequest>,
    ) -> Result<(), ApiError> {
        for request in requests {
            self.delete_state(store, request).await?;
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
        loaded
            .component
            .transact(operations)
            .await
            .map_err(|e| write_error(e, WriteOp::Transaction, store, ""))
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

    async fn invoke(
        &self,
        app_id: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        invoke::route(
            &self.app_id,
            self.app_channel.get(),
            self.remote.as_ref(),
            app_id,
            request,
        )
        .await
    }

    fn ready(&self) -> Result<(), ApiError> {
        let waiting = self.expects_app.load(std::sync::atomic::Ordering::Acquire)
            && self.app_channel.get().is_none();
        if waiting {
            return Err(ApiError::new(
                ErrorKind::HealthNotReady,
                format!(
                    "dapr is not ready: app '{}' is not connected yet",
                    self.app_id
                ),
            ));
        }
        Ok(())
    }

    async fn metadata(&self) -> Result<RuntimeMetadata, ApiError> {
        let components = self
            .components
            .state_stores()
            .filter(|s| s.spec.in_scope(self.app_id.as_str()))
            .map(|s| ComponentInfo {
                name: s.spec.name.clone(),
                kind: s.spec.kind.clone(),
                version: s.spec.version.clone(),
                capabilities: s
                    .component
                    .features()
                    .names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            })
            .collect();
        Ok(RuntimeMetadata {
            id: self.app_id.to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            components,
        })
    }

    fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    //! The runtime's own logic (lookup, scopes, prefixes, error mapping) over
    //! a small map-backed store defined here; backends are tested by the
    //! conformance suite in `wasmdapr-components`.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::component::ComponentSpec;
    use crate::registry::ComponentRegistry;
    use crate::state::{ScanBatch, StateFeatures, WriteCondition};

    /// Stores values in a map; ETags are a counter; transactions are
    /// limited to two operations; every write condition is honoured.
    #[derive(Default)]
    struct MapStore {
        data: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
        /// The TTL of every write, as the store received it.
        ttls: Mutex<Vec<Ttl>>,
        /// What scans have returned so far.
        scans: Mutex<ScanCount>,
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
    async fn components(
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

    fn runtime(app: &str, components: &Arc<Components>) -> Runtime {
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
