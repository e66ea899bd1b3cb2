//! The internal endpoint: how sidecars call each other, as Dapr's
//! `dapr.proto.internals.v1.ServiceInvocation/CallLocal` on
//! `--dapr-internal-grpc-port`, over mutual TLS.
//!
//! ```text
//!  app A ─► A's public API ─► runtime::invoke::route (caller := A, always)
//!        ─► InternalClient ══ gRPC, mTLS: A's cert, B's cert checked to be B ══►
//!        ─► B's internal endpoint (caller := the app id of A's certificate)
//!        ─► runtime::invoke::deliver_forwarded ─► B's app (never forwarded again)
//! ```
//!
//! The public APIs never treat a request as forwarded, so the only way to
//! name a caller other than the sidecar's own app is a certificate of the
//! trust bundle. Name resolution registers this endpoint's address, not the
//! public API's.
//!
//! The messages are written out here with prost (the `dapr` crate ships the
//! runtime and common protos, not the internal ones); only `CallLocal` is
//! served, every other path answers `UNIMPLEMENTED`.
//!
//! - [`identity`]: SPIFFE ids, [`SidecarIdentity`] and its rustls configs.
//! - [`certs`]: [`CertificateAuthority`]: trust bundles and sidecar
//!   certificates (the `wasmdapr certs` command, the machine-local bundle).
//! - [`serve_internal`] and [`InternalClient`]: the two ends.

pub mod certs;
mod client;
pub mod identity;
mod server;

use std::collections::HashMap;

pub use certs::CertificateAuthority;
pub use client::InternalClient;
use http::{HeaderMap, HeaderName, HeaderValue};
pub use identity::{SidecarIdentity, SpiffeId};
pub use server::serve_internal;

/// The gRPC path of `CallLocal`.
pub const CALL_LOCAL_PATH: &str = "/dapr.proto.internals.v1.ServiceInvocation/CallLocal";

/// The gRPC service name.
pub const SERVICE_NAME: &str = "dapr.proto.internals.v1.ServiceInvocation";

/// Room for the envelope of a message around a body of `--max-body-size`.
const ENVELOPE_ALLOWANCE: usize = 64 * 1024;

/// `dapr.proto.internals.v1.ListStringValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListStringValue {
    /// The values of one header.
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// `dapr.proto.internals.v1.Status`: the HTTP status of the app's answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalStatus {
    /// The status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// An error message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `dapr.proto.internals.v1.InternalInvokeRequest` (without the actor field).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalInvokeRequest {
    /// `APIVersion`: 1 (`V1`).
    #[prost(int32, tag = "1")]
    pub ver: i32,
    /// The caller's headers.
    #[prost(map = "string, message", tag = "2")]
    pub metadata: HashMap<String, ListStringValue>,
    /// Method, verb, query, content type and body.
    #[prost(message, optional, tag = "3")]
    pub message: Option<dapr::dapr::proto::common::v1::InvokeRequest>,
}

/// `dapr.proto.internals.v1.InternalInvokeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalInvokeResponse {
    /// The app's HTTP status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<InternalStatus>,
    /// The app's response headers.
    #[prost(map = "string, message", tag = "2")]
    pub headers: HashMap<String, ListStringValue>,
    /// Trailers (none from HTTP apps).
    #[prost(map = "string, message", tag = "3")]
    pub trailers: HashMap<String, ListStringValue>,
    /// The body and its content type.
    #[prost(message, optional, tag = "4")]
    pub message: Option<dapr::dapr::proto::common::v1::InvokeResponse>,
}

/// Headers as the proto's map of value lists. Values that are not UTF-8
/// cannot be carried (the proto has strings) and are left out.
fn headers_to_map(headers: &HeaderMap) -> HashMap<String, ListStringValue> {
    let mut map: HashMap<String, ListStringValue> = HashMap::new();
    for (name, value) in headers {
        match value.to_str() {
            Ok(value) => map
                .entry(name.as_str().to_owned())
                .or_default()
                .values
                .push(value.to_owned()),
            Err(_) => tracing::debug!(header = %name, "a non-UTF-8 header value is not forwarded"),
        }
    }
    map
}

/// The proto's map back as headers; invalid names or values are left out.
fn map_to_headers(map: HashMap<String, ListStringValue>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, list) in map {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in list.values {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name.clone(), value);
            }
        }
    }
    headers
}
