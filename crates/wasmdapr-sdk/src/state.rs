//! The state building block: [`StateStore`] and its request types.
//!
//! Values are JSON by default (what Dapr's HTTP API stores, so other apps
//! and the query API read them); the `*_bytes` methods store bytes as given.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasmdapr::dapr::state as wit;
use crate::bindings::wasmdapr::dapr::types as wit_types;

/// Dapr's `options.concurrency` of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Not given: last-write-wins, but a given ETag is still checked.
    #[default]
    Unspecified,
    /// With an ETag it must match; without one the key must not exist yet.
    FirstWrite,
    /// Always succeeds unless a given ETag does not match.
    LastWrite,
}

/// Dapr's `options.consistency`.
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

impl From<Concurrency> for wit_types::Concurrency {
    fn from(c: Concurrency) -> Self {
        match c {
            Concurrency::Unspecified => Self::Unspecified,
            Concurrency::FirstWrite => Self::FirstWrite,
            Concurrency::LastWrite => Self::LastWrite,
        }
    }
}

impl From<Consistency> for wit_types::Consistency {
    fn from(c: Consistency) -> Self {
        match c {
            Consistency::Unspecified => Self::Unspecified,
            Consistency::Eventual => Self::Eventual,
            Consistency::Strong => Self::Strong,
        }
    }
}

/// A value with the ETag it was read at, for a later conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version; `None` for stores without ETags.
    pub etag: Option<String>,
}

/// One key of [`StateStore::bulk_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem<T> {
    /// The key.
    pub key: String,
    /// The value; `None` when the key does not exist or on error.
    pub value: Option<T>,
    /// Its ETag.
    pub etag: Option<String>,
    /// Why this key could not be read (the others still were).
    pub error: Option<String>,
}

/// One row of [`StateStore::query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryItem<T> {
    /// The key.
    pub key: String,
    /// The value.
    pub value: T,
    /// Its ETag.
    pub etag: Option<String>,
}

/// A page of [`StateStore::query`] results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPage<T> {
    /// The rows of this page.
    pub results: Vec<QueryItem<T>>,
    /// Pass as `page.token` of the next query for the next page.
    pub token: Option<String>,
}

/// One write, for [`StateStore::save_many`] and [`Transaction::upsert_request`].
///
/// ```no_run
/// use wasmdapr_sdk::{Concurrency, SaveRequest};
/// # fn main() -> Result<(), wasmdapr_sdk::Error> {
/// let only_if_new = SaveRequest::json("order-1", &serde_json::json!({"qty": 2}))?
///     .concurrency(Concurrency::FirstWrite)
///     .metadata("ttlInSeconds", "60");
/// wasmdapr_sdk::Dapr::new().state("statestore").save_many([only_if_new])?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRequest {
    key: String,
    value: Vec<u8>,
    etag: Option<String>,
    concurrency: Concurrency,
    consistency: Consistency,
    metadata: Vec<(String, String)>,
}

impl SaveRequest {
    /// A write of `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(key: impl Into<String>, value: &T) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::json("serializing", e))?;
        Ok(Self::bytes(key, bytes))
    }

    /// A write of `value` exactly as given.
    pub fn bytes(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            etag: None,
            concurrency: Concurrency::Unspecified,
            consistency: Consistency::Unspecified,
            metadata: Vec::new(),
        }
    }

    /// Succeeds only if the stored ETag is still `etag`.
    pub fn etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    /// Sets the concurrency mode.
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the consistency mode.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Adds request metadata (`ttlInSeconds`, `contentType`, …).
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((name.into(), value.into()));
        self
    }

    fn into_wit(self) -> wit::SaveItem {
        wit::SaveItem {
            key: self.key,
            value: self.value,
            etag: self.etag,
            concurrency: self.concurrency.into(),
            consistency: self.consistency.into(),
            metadata: self.metadata,
        }
    }
}

fn delete_item(key: &str, etag: Option<&str>) -> wit::DeleteItem {
    wit::DeleteItem {
        key: key.to_owned(),
        etag: etag.map(str::to_owned),
        concurrency: wit_types::Concurrency::Unspecified,
        consistency: wit_types::Consistency::Unspecified,
        metadata: Vec::new(),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::json(&format!("value of `{key}`"), e))
}

/// A state store of this app, from [`crate::Dapr::state`].
///
/// Keys are the app's own: the host prefixes them with the app id, so two
/// apps' `weapon` keys never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    name: String,
}

impl StateStore {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads `key` as JSON; `None` when it does not exist.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// let planets: Option<serde_json::Value> = store.get("planets")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get_bytes(key)?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// Reads `key`'s bytes exactly as saved; `None` when it does not exist.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_item(key)?.map(|item| item.value))
    }

    /// Reads `key` as JSON with its ETag, for [`StateStore::save_with_etag`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// if let Some(mut counter) = store.get_with_etag::<u64>("counter")? {
    ///     counter.value += 1;
    ///     // Fails with ERR_STATE_SAVE if someone wrote in between.
    ///     store.save_with_etag("counter", &counter.value, counter.etag.as_deref().unwrap_or(""))?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_with_etag<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, Error> {
        self.get_item(key)?
            .map(|item| {
                Ok(Versioned {
                    value: decode(key, &item.value)?,
                    etag: item.etag,
                })
            })
            .transpose()
    }

    fn get_item(&self, key: &str) -> Result<Option<wit::Item>, Error> {
        Ok(wit::get(
            &self.name,
            key,
            wit_types::Consistency::Unspecified,
            &[],
        )?)
    }

    /// Saves `value` as JSON under `key`.
    pub fn save<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        self.save_many([SaveRequest::json(key, value)?])
    }

    /// Saves `value` under `key` exactly as given.
    pub fn save_bytes(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.save_many([SaveRequest::bytes(key, value)])
    }

    /// Saves `value` as JSON only if `key` is still at `etag`; a mismatch is
    /// an `ERR_STATE_SAVE` error (HTTP 409 at the sidecar).
    pub fn save_with_etag<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> Result<(), Error> {
        self.save_many([SaveRequest::json(key, value)?.etag(etag)])
    }

    /// Saves many items in order; the first failure stops and is returned.
    ///
    /// ```no_run
    /// use wasmdapr_sdk::SaveRequest;
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// store.save_many([
    ///     SaveRequest::json("a", &1)?,
    ///     SaveRequest::bytes("b", b"raw".to_vec()),
    /// ])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_many(&self, items: impl IntoIterator<Item = SaveRequest>) -> Result<(), Error> {
        let items: Vec<_> = items.into_iter().map(SaveRequest::into_wit).collect();
        Ok(wit::save(&self.name, &items)?)
    }

    /// Reads many keys as JSON in one call; a key that fails is reported in
    /// its [`BulkItem::error`] while the others are still read.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// for item in store.bulk_get::<serde_json::Value>(&["a", "b"])? {
    ///     println!("{} = {:?}", item.key, item.value);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn bulk_get<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<BulkItem<T>>, Error> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let items = wit::get_bulk(&self.name, &keys, 0, &[])?;
        items
            .into_iter()
            .map(|b| {
                let (value, etag) = match b.item {
                    Some(item) => (Some(decode(&b.key, &item.value)?), item.etag),
                    None => (None, None),
                };
                Ok(BulkItem {
                    key: b.key,
                    value,
                    etag,
                    error: b.error,
                })
            })
            .collect()
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(wit::delete(&self.name, &delete_item(key, None))?)
    }

    /// Deletes `key` only if it is still at `etag`.
    pub fn delete_with_etag(&self, key: &str, etag: &str) -> Result<(), Error> {
        Ok(wit::delete(&self.name, &delete_item(key, Some(etag)))?)
    }

    /// Starts a transaction: every operation applies, or none does.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// store
    ///     .transaction()
    ///     .upsert("balance", &90)?
    ///     .upsert("ledger", &serde_json::json!([-10]))?
    ///     .delete("pending")
    ///     .commit()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            store: self,
            operations: Vec::new(),
            metadata: Vec::new(),
        }
    }

    /// Runs a query in Dapr's query language (filter, sort, page) and decodes
    /// each row as JSON. The store must support queries.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// let page = store.query::<serde_json::Value>(&serde_json::json!({
    ///     "filter": {"EQ": {"name": "Tatooine"}},
    ///     "page": {"limit": 10}
    /// }))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn query<T: DeserializeOwned>(
        &self,
        query: &serde_json::Value,
    ) -> Result<QueryPage<T>, Error> {
        let response = wit::query(&self.name, &query.to_string(), &[])?;
        let results = response
            .results
            .into_iter()
            .map(|row| {
                Ok(QueryItem {
                    value: decode(&row.key, &row.value)?,
                    key: row.key,
                    etag: row.etag,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(QueryPage {
            results,
            token: response.token,
        })
    }
}

/// A transaction being built, from [`StateStore::transaction`]; nothing is
/// sent until [`Transaction::commit`].
#[derive(Debug)]
#[must_use = "a transaction does nothing until `commit`"]
pub struct Transaction<'a> {
    store: &'a StateStore,
    operations: Vec<wit::Operation>,
    metadata: Vec<(String, String)>,
}

impl Transaction<'_> {
    /// Inserts or updates `key` with `value` as JSON.
    pub fn upsert<T: Serialize + ?Sized>(self, key: &str, value: &T) -> Result<Self, Error> {
        Ok(self.upsert_request(SaveRequest::json(key, value)?))
    }

    /// Inserts or updates `key` with `value` exactly as given.
    pub fn upsert_bytes(self, key: &str, value: &[u8]) -> Self {
        self.upsert_request(SaveRequest::bytes(key, value))
    }

    /// Inserts or updates with a full request (ETag, concurrency, metadata).
    pub fn upsert_request(mut self, request: SaveRequest) -> Self {
        self.operations
            .push(wit::Operation::Upsert(request.into_wit()));
        self
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: &str) -> Self {
        self.operations
            .push(wit::Operation::Delete(delete_item(key, None)));
        self
    }

    /// Deletes `key` only if it is still at `etag`.
    pub fn delete_with_etag(mut self, key: &str, etag: &str) -> Self {
        self.operations
            .push(wit::Operation::Delete(delete_item(key, Some(etag))));
        self
    }

    /// Adds metadata of the whole transaction.
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((name.into(), value.into()));
        self
    }

    /// Applies every operation atomically.
    pub fn commit(self) -> Result<(), Error> {
        Ok(wit::transaction(
            &self.store.name,
            &self.operations,
            &self.metadata,
        )?)
    }
}
