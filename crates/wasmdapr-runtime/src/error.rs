//! [`ApiError`]: every error a Dapr API caller can receive, built once with
//! its Dapr error code, HTTP status and gRPC code, so the HTTP API, the gRPC
//! API and the WIT imports of guests report the same failure the same way.
//!
//! The table follows Dapr's `pkg/messages` and `pkg/api/errors`: the codes are
//! stable strings SDKs and users match on.

use std::borrow::Cow;
use std::fmt;

/// The most of one client-given value (a store name, a key, a path) an
/// error message repeats, in bytes.
pub const MAX_ECHO: usize = 256;

/// The longest error message, in bytes: gRPC carries it in the
/// `grpc-message` header (percent-encoded, so up to three times longer)
/// and clients refuse headers over 16 KiB, so a message must stay well
/// below that whatever it quotes.
pub const MAX_MESSAGE: usize = 2048;

/// `input` as an error message may quote it: at most [`MAX_ECHO`] bytes,
/// cut at a character boundary and ended with `…` when longer. Every error
/// built from client input quotes it through this, so a 100 KB store name
/// gives a short error rather than an answer the client cannot read.
pub fn echo(input: &str) -> Cow<'_, str> {
    truncate(input, MAX_ECHO)
}

/// `text` cut to at most `max` bytes (ellipsis included) at a character
/// boundary.
fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    const ELLIPSIS: &str = "…";
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

/// gRPC status codes (the subset Dapr answers with), kept here so the runtime
/// needs no gRPC library; the gRPC front door maps them one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument,
    /// `NOT_FOUND` (5).
    NotFound,
    /// `FAILED_PRECONDITION` (9).
    FailedPrecondition,
    /// `ABORTED` (10).
    Aborted,
    /// `UNIMPLEMENTED` (12).
    Unimplemented,
    /// `INTERNAL` (13).
    Internal,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated,
    /// `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted,
}

/// Declares [`ErrorKind`], its one table of `(Dapr code, HTTP status, gRPC
/// code)` rows and the list of every kind, from one list, so no kind can
/// lack a row or be missing from [`ErrorKind::ALL`].
macro_rules! error_table {
    ($($(#[doc = $doc:literal])* $kind:ident => ($code:literal, $status:literal, $grpc:ident),)*) => {
        /// The kinds of API error, each one row of Dapr's error table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, for looking rows up in reverse.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)*];

            /// `(Dapr error code, HTTP status, gRPC code)`: the one table.
            pub const fn row(self) -> (&'static str, u16, GrpcCode) {
                match self {
                    $(ErrorKind::$kind => ($code, $status, GrpcCode::$grpc),)*
                }
            }
        }
    };
}

// Dapr keeps the operation's code for ETag problems and signals them by
// status: 409 Conflict / ABORTED for a mismatch, 400 / INVALID_ARGUMENT for
// an unparseable ETag.
error_table! {
    /// The request is malformed (bad JSON, missing key, bad option).
    MalformedRequest => ("ERR_MALFORMED_REQUEST", 400, InvalidArgument),
    /// The named state store does not exist (or is out of the app's scope).
    StateStoreNotFound => ("ERR_STATE_STORE_NOT_FOUND", 400, InvalidArgument),
    /// No state store is configured at all.
    StateStoreNotConfigured => ("ERR_STATE_STORE_NOT_CONFIGURED", 500, FailedPrecondition),
    /// The state store lacks the feature asked for (transactions, query).
    StateStoreNotSupported => ("ERR_STATE_STORE_NOT_SUPPORTED", 500, Unimplemented),
    /// A transaction has more operations than the store allows.
    StateStoreTooManyTransactions => ("ERR_STATE_STORE_TOO_MANY_TRANSACTIONS", 400, InvalidArgument),
    /// Reading state failed.
    StateGet => ("ERR_STATE_GET", 500, Internal),
    /// Reading state in bulk failed.
    StateBulkGet => ("ERR_STATE_BULK_GET", 500, Internal),
    /// Saving state failed.
    StateSave => ("ERR_STATE_SAVE", 500, Internal),
    /// Deleting state failed.
    StateDelete => ("ERR_STATE_DELETE", 500, Internal),
    /// Deleting state in bulk failed.
    StateBulkDelete => ("ERR_STATE_BULK_DELETE", 500, Internal),
    /// A state transaction failed.
    StateTransaction => ("ERR_STATE_TRANSACTION", 500, Internal),
    /// A state query failed.
    StateQuery => ("ERR_STATE_QUERY", 500, Internal),
    /// A write's ETag does not match the stored one (save).
    StateSaveEtagMismatch => ("ERR_STATE_SAVE", 409, Aborted),
    /// A delete's ETag does not match the stored one.
    StateDeleteEtagMismatch => ("ERR_STATE_DELETE", 409, Aborted),
    /// A transaction's ETag does not match.
    StateTransactionEtagMismatch => ("ERR_STATE_TRANSACTION", 409, Aborted),
    /// An ETag the store cannot parse (save).
    StateSaveEtagInvalid => ("ERR_STATE_SAVE", 400, InvalidArgument),
    /// An ETag the store cannot parse (delete).
    StateDeleteEtagInvalid => ("ERR_STATE_DELETE", 400, InvalidArgument),
    /// An ETag the store cannot parse (transaction).
    StateTransactionEtagInvalid => ("ERR_STATE_TRANSACTION", 400, InvalidArgument),
    /// The request lacks the API token or carries a wrong one.
    Unauthorized => ("ERR_UNAUTHORIZED", 401, Unauthenticated),
    /// The request body is larger than `--max-body-size`.
    BodyTooLarge => ("ERR_BODY_TOO_LARGE", 413, ResourceExhausted),
    /// A service invocation could not be delivered (unknown app id, app
    /// unreachable, app failed or timed out).
    DirectInvoke => ("ERR_DIRECT_INVOKE", 500, Internal),
    /// The sidecar is up but its app is not connected yet (`/v1.0/healthz`).
    HealthNotReady => ("ERR_HEALTH_NOT_READY", 500, Internal),
    /// The app was not granted the Dapr API. wasmdapr's own code (a Dapr app
    /// always has its sidecar; here the grant is a capability): the typed
    /// imports of a guest run without it return this error value.
    DaprNotGranted => ("ERR_DAPR_NOT_GRANTED", 403, PermissionDenied),
    /// The API exists in Dapr but not (yet) here.
    NotImplemented => ("ERR_NOT_IMPLEMENTED", 501, Unimplemented),
}

impl ErrorKind {
    /// The kind a Dapr sidecar meant by `code` sent with `grpc` (the row
    /// whose code and gRPC code both match, else the first row with the
    /// code): how errors of a remote sidecar become ours again unchanged.
    pub fn from_wire(code: &str, grpc: GrpcCode) -> Option<ErrorKind> {
        let mut same_code = Self::ALL.iter().filter(|k| k.row().0 == code);
        let first = same_code.clone().next().copied();
        same_code.find(|k| k.row().2 == grpc).copied().or(first)
    }
}

/// An error returned to a Dapr API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// Which row of the table.
    pub kind: ErrorKind,
    /// A message for humans, naming what failed.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`, cut to [`MAX_MESSAGE`] bytes: a
    /// safety net under [`echo`] for messages that quote something long
    /// (a backend's error about a long key, a parser's excerpt).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            message = truncate(&message, MAX_MESSAGE).into_owned();
        }
        Self { kind, message }
    }

    /// A malformed request.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MalformedRequest, message)
    }

    /// The Dapr error code, e.g. `ERR_STATE_STORE_NOT_FOUND`.
    pub fn code(&self) -> &'static str {
        self.kind.row().0
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        self.kind.row().1
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> GrpcCode {
        self.kind.row().2
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows Dapr's SDKs and docs rely on.
    #[test]
    fn table_matches_dapr() {
        let e = ApiError::new(ErrorKind::StateStoreNotFound, "state store x is not found");
        assert_eq!(
            (e.code(), e.http_status()),
            ("ERR_STATE_STORE_NOT_FOUND", 400)
        );
        assert_eq!(e.grpc_code(), GrpcCode::InvalidArgument);
        assert_eq!(
            ErrorKind::StateSaveEtagMismatch.row(),
            ("ERR_STATE_SAVE", 409, GrpcCode::Aborted)
        );
        assert_eq!(ErrorKind::StateStoreNotConfigured.row().1, 500);
        assert_eq!(ErrorKind::StateStoreTooManyTransactions.row().1, 400);
    }

    /// Client input is quoted at most `MAX_ECHO` bytes long, cut at a
    /// character boundary; whole messages at most `MAX_MESSAGE`.
    #[test]
    fn echoed_input_is_capped() {
        assert_eq!(echo("statestore"), "statestore");
        let long = "é".repeat(100_000);
        let quoted = echo(&long);
        assert!(quoted.len() <= MAX_ECHO, "{}", quoted.len());
        assert!(quoted.ends_with('…'));
        assert!(quoted.starts_with("éé"));
        let exact = "a".repeat(MAX_ECHO);
        assert_eq!(echo(&exact), exact.as_str());
        let e = ApiError::malformed(format!("bad: {long}"));
        assert!(e.message.len() <= MAX_MESSAGE);
        assert!(e.message.starts_with("bad: é"));
    }

    /// Every row reads back from its wire form, ETag rows included.
    #[test]
    fn rows_round_trip_from_the_wire() {
        for &kind in ErrorKind::ALL {
            let (code, _, grpc) = kind.row();
            assert_eq!(ErrorKind::from_wire(code, grpc), Some(kind), "{kind:?}");
        }
        assert_eq!(ErrorKind::from_wire("ERR_NOPE", GrpcCode::Internal), None);
    }
}
