//! The Rust guest SDK of wasmdapr, for apps built with
//! `cargo build --target wasm32-wasip2`: typed clients for the Dapr building
//! blocks over the `wasmdapr:dapr` WIT imports of `wit/`, served in-process by
//! the host (no HTTP, no network grant, no token in the guest).
//!
//! ```no_run
//! use wasmdapr_sdk::Dapr;
//!
//! # fn main() -> Result<(), wasmdapr_sdk::Error> {
//! let dapr = Dapr::new();
//! let store = dapr.state("statestore");
//! store.save("weapon", "Death Star")?;
//! let weapon: Option<String> = store.get("weapon")?;
//! assert_eq!(weapon.as_deref(), Some("Death Star"));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`Dapr`]: the entry point; one per app, cheap to create.
//! - [`state`]: [`StateStore`] (get, save, etags, bulk, delete, query) and its
//!   request types ([`SaveRequest`], [`Transaction`]).
//! - [`invoke`]: service invocation: [`Invoker`] calls another app by id
//!   ([`Call`] for query, headers, JSON), answering a [`Response`].
//! - [`events`]: pub/sub events for HTTP-handler apps: [`events::Subscriptions`]
//!   declares the topics and answers the sidecar's `GET /dapr/subscribe`
//!   and event deliveries, handing each handler a typed [`events::Event`].
//! - [`pubsub`]: publish and subscribe: [`PubSub`] publishes (JSON in a
//!   CloudEvent, raw bytes, bulk) and subscribes, handing out a
//!   [`Subscription`] whose [`Event`]s the app answers.
//! - [`Error`]: a Dapr error code and message, exactly what the sidecar's
//!   HTTP API would answer; plus the SDK's own JSON errors.
//! - `bindings` (private): the `wit-bindgen` output for `wit/`.
//!
//! On a native target the crate compiles (so workspace tools check it) but
//! every call panics: the imports exist only inside a wasmdapr host.

#![deny(missing_docs)]

mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "app",
    });
}

pub mod events;
pub mod invoke;
pub mod pubsub;
pub mod state;

use std::fmt;

pub use invoke::{Call, Invoker, Response};
pub use pubsub::{Event, EventStatus, PubSub, Subscription};
pub use state::{
    BulkItem, Concurrency, Consistency, QueryItem, QueryPage, SaveRequest, StateStore, Transaction,
    Versioned,
};

/// The Dapr building blocks of this app.
///
/// Holds nothing: the host already knows the app's id and which components
/// it may use, so creating a `Dapr` is free and needs no address or token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dapr {
    _private: (),
}

impl Dapr {
    /// The client of this app's Dapr API.
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// The state store named `name` (a component's `metadata.name`).
    ///
    /// Nothing is checked here; a store that does not exist, or is out of the
    /// app's scope, is an `ERR_STATE_STORE_NOT_FOUND` [`Error`] on first use.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// store.save_bytes("raw", b"\x00\x01")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self, name: &str) -> StateStore {
        StateStore::new(name)
    }

    /// Calls methods of the app `app_id` (service invocation): this app
    /// itself when it is its own id, else another app, found by the host
    /// through name resolution and reached through its sidecar.
    ///
    /// Nothing is checked here; an app that is unknown or not running is an
    /// `ERR_DIRECT_INVOKE` [`Error`] on the call. The app's own error
    /// answers (404, 500, …) are [`Response`]s.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let dapr = wasmdapr_sdk::Dapr::new();
    /// let response = dapr.invoke("greeter").post("hello", "Leia")?;
    /// assert!(response.is_success());
    /// println!("{}", response.text()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn invoke(&self, app_id: &str) -> Invoker {
        Invoker::new(app_id)
    }

    /// The pub/sub component named `name`, to publish to and subscribe to
    /// its topics.
    ///
    /// Nothing is checked here; a component that does not exist, or is out
    /// of the app's scope, is an `ERR_PUBSUB_NOT_FOUND` [`Error`] on first
    /// use.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let pubsub = wasmdapr_sdk::Dapr::new().pubsub("pubsub");
    /// pubsub.publish("orders", &serde_json::json!({"order": 17}))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pubsub(&self, name: &str) -> PubSub {
        PubSub::new(name)
    }
}

/// A failed Dapr call.
///
/// `code` is Dapr's stable error code (`ERR_STATE_STORE_NOT_FOUND`,
/// `ERR_STATE_SAVE`, …), the same the sidecar's HTTP API returns, so match on
/// it rather than on `message`. Three codes come from wasmdapr itself:
/// [`Error::NOT_GRANTED`], [`Error::JSON`] and [`Error::UTF8`].
///
/// Non-exhaustive: later fields must not break an app's `match`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Error {
    /// Dapr's error code.
    pub code: String,
    /// A message for humans.
    pub message: String,
    /// The HTTP status Dapr answers this error with (409 for an ETag
    /// mismatch, 400 for bad input, 500 for a failing store, …); 0 for the
    /// errors the SDK raises itself ([`Error::JSON`], [`Error::UTF8`]).
    pub status: u16,
}

impl Error {
    /// The app was run without the Dapr grant.
    pub const NOT_GRANTED: &'static str = "ERR_DAPR_NOT_GRANTED";
    /// A value could not be serialized to, or deserialized from, JSON in the
    /// guest (the host never saw it).
    pub const JSON: &'static str = "ERR_SDK_JSON";
    /// A body read as text is not UTF-8 (the host never saw the problem).
    pub const UTF8: &'static str = "ERR_SDK_UTF8";
    /// A service invocation could not be delivered (Dapr's code).
    pub const DIRECT_INVOKE: &'static str = "ERR_DIRECT_INVOKE";

    /// Whether a conditional write lost to a concurrent one: the ETag it
    /// carried no longer matches (Dapr's 409 on save, delete or
    /// transaction). The answer to it is to read again and retry; any other
    /// failure with the same code (an unparseable ETag, a failing store) is
    /// not worth retrying.
    ///
    /// ```no_run
    /// use wasmdapr_sdk::{Concurrency, SaveRequest};
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let store = wasmdapr_sdk::Dapr::new().state("statestore");
    /// loop {
    ///     let (next, etag) = match store.get_with_etag::<u64>("count")? {
    ///         Some(current) => (current.value + 1, current.etag),
    ///         None => (1, None),
    ///     };
    ///     // First-write: with no ETag, the write fails if the key appeared.
    ///     let mut write = SaveRequest::json("count", &next)?.concurrency(Concurrency::FirstWrite);
    ///     if let Some(etag) = etag {
    ///         write = write.etag(etag);
    ///     }
    ///     match store.save_many([write]) {
    ///         Err(e) if e.is_etag_mismatch() => continue,
    ///         other => break other,
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_etag_mismatch(&self) -> bool {
        self.status == 409
            && matches!(
                self.code.as_str(),
                "ERR_STATE_SAVE" | "ERR_STATE_DELETE" | "ERR_STATE_TRANSACTION"
            )
    }

    pub(crate) fn json(what: &str, e: serde_json::Error) -> Self {
        Self {
            status: 0,
            code: Self::JSON.to_owned(),
            message: format!("{what}: {e}"),
        }
    }
}

impl From<bindings::wasmdapr::dapr::types::Error> for Error {
    fn from(e: bindings::wasmdapr::dapr::types::Error) -> Self {
        Self {
            code: e.code,
            message: e.message,
            status: e.status,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}
