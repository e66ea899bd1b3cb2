//! Service invocation: [`Invoker`], calling a method of another app by its
//! app id, and [`Call`] for calls with a query, headers or a JSON body.
//!
//! The host routes the call: to this app itself when the id is its own,
//! else to the target's sidecar through name resolution. The target app's
//! answer comes back as a [`Response`] whatever its status; an [`Error`]
//! (`ERR_DIRECT_INVOKE`) means it could not be delivered at all.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasmdapr::dapr::invoke as wit;

/// Calls methods of one app, from [`crate::Dapr::invoke`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    app_id: String,
}

impl Invoker {
    pub(crate) fn new(app_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
        }
    }

    /// The target app's id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// `GET /{method}` on the app.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let orders = wasmdapr_sdk::Dapr::new().invoke("orders");
    /// let response = orders.get("orders/17")?;
    /// if response.status == 404 {
    ///     println!("no order 17");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, method: &str) -> Result<Response, Error> {
        self.call("GET", method).send()
    }

    /// `POST /{method}` on the app with `body` as given.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let billing = wasmdapr_sdk::Dapr::new().invoke("billing");
    /// let receipt = billing.post("charge", "card=4242")?;
    /// println!("{}: {}", receipt.status, receipt.text()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn post(&self, method: &str, body: impl Into<Vec<u8>>) -> Result<Response, Error> {
        self.call("POST", method).body(body).send()
    }

    /// A call of `method` with `verb` (`GET`, `PUT`, `DELETE`, …), to add a
    /// query, headers or a body to before [`Call::send`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmdapr_sdk::Error> {
    /// let inventory = wasmdapr_sdk::Dapr::new().invoke("inventory");
    /// let response = inventory
    ///     .call("PUT", "items/42")
    ///     .query("reserve=true")
    ///     .header("x-request-id", "abc")
    ///     .json(&serde_json::json!({"qty": 2}))?
    ///     .send()?;
    /// let stock: serde_json::Value = response.json()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn call(&self, verb: &str, method: &str) -> Call<'_> {
        Call {
            invoker: self,
            request: wit::Request {
                verb: verb.to_owned(),
                method: method.trim_start_matches('/').to_owned(),
                query: None,
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }
}

/// A call being built, from [`Invoker::call`]; nothing is sent until
/// [`Call::send`].
#[derive(Debug)]
#[must_use = "a call does nothing until `send`"]
pub struct Call<'a> {
    invoker: &'a Invoker,
    request: wit::Request,
}

impl Call<'_> {
    /// Sets the query string (without `?`), passed to the app as is.
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.request.query = Some(query.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body as given.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::json("serializing", e))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the call and returns the app's answer, whatever its status.
    pub fn send(self) -> Result<Response, Error> {
        let response = wit::call(&self.invoker.app_id, &self.request)?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// The invoked app's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Its HTTP status.
    pub status: u16,
    /// Its headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<String, Error> {
        String::from_utf8(self.body.clone()).map_err(|e| Error {
            status: 0,
            code: Error::UTF8.to_owned(),
            message: format!("the response body is not UTF-8: {e}"),
        })
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::json("the response body", e))
    }
}
