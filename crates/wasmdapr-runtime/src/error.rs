//! [`ApiError`]: every error a Dapr API caller can receive, built once with
//! its Dapr error code, HTTP status and gRPC code, so the HTTP API, the gRPC
//! API and the WIT imports of guests report the same failure the same way.
//!
//! The table follows Dapr's `pkg/messages` and `pkg/api/errors`: the codes are
//! stable strings SDKs and users match on.
//!
//! daprd builds some errors with rich details (`dapr/kit` `errors.NewBuilder`,
//! `pkg/api/errors/state.go`): a `google.rpc.ErrorInfo` whose `reason` is a
//! `DAPR_…` string, a `ResourceInfo` naming the component and, for bad input,
//! `BadRequest` field violations. Those kinds carry their reason in the table
//! ([`ErrorKind::reason`]) and the errors carry the rest as typed data
//! ([`ErrorDetails`]), built by one constructor per daprd error
//! ([`ApiError::state_store`]); the front doors render them (the runtime
//! knows no gRPC library).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// The `domain` of every `google.rpc.ErrorInfo` Dapr sends.
pub const DOMAIN: &str = "dapr.io";

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
    /// `UNKNOWN` (2): what grpc-go answers for a plain Go error.
    Unknown,
}

/// `Some(reason)` for a row that names one, else `None`.
macro_rules! reason {
    () => {
        None
    };
    ($reason:literal) => {
        Some($reason)
    };
}

/// Declares [`ErrorKind`], its one table of `(Dapr code, HTTP status, gRPC
/// code[, ErrorInfo reason])` rows and the list of every kind, from one
/// list, so no kind can lack a row or be missing from [`ErrorKind::ALL`].
macro_rules! error_table {
    ($($(#[doc = $doc:literal])* $kind:ident => ($code:literal, $status:literal, $grpc:ident $(, $reason:literal)?),)*) => {
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

            /// The `google.rpc.ErrorInfo` reason daprd gives this kind when
            /// it builds it with rich details (`DAPR_STATE_NOT_FOUND`), or
            /// `None` for daprd's plain errors (`{errorCode, message}` over
            /// HTTP), whose gRPC `ErrorInfo` reason is the code itself.
            pub const fn reason(self) -> Option<&'static str> {
                match self {
                    $(ErrorKind::$kind => reason!($($reason)?),)*
                }
            }
        }
    };
}

// Dapr keeps the operation's code for ETag problems and signals them by
// status: 409 Conflict / ABORTED for a mismatch, 400 / INVALID_ARGUMENT for
// an unparseable ETag. The reasons are daprd's `pkg/messages/errorcodes`.
// Where rows share a code, the plain row comes first: `from_wire` takes the
// first row of a code when nothing more tells them apart.
error_table! {
    /// The request is malformed (bad JSON, missing key, bad option).
    MalformedRequest => ("ERR_MALFORMED_REQUEST", 400, InvalidArgument),
    /// A state key holds the key separator `||` (daprd's `InvalidKeyName`).
    StateIllegalKey => ("ERR_MALFORMED_REQUEST", 400, InvalidArgument, "DAPR_STATE_ILLEGAL_KEY"),
    /// The named state store does not exist (or is out of the app's scope).
    StateStoreNotFound => ("ERR_STATE_STORE_NOT_FOUND", 400, InvalidArgument, "DAPR_STATE_NOT_FOUND"),
    /// No state store is configured at all.
    StateStoreNotConfigured => ("ERR_STATE_STORE_NOT_CONFIGURED", 500, FailedPrecondition, "DAPR_STATE_NOT_CONFIGURED"),
    /// The state store refused an operation as not supported.
    StateStoreNotSupported => ("ERR_STATE_STORE_NOT_SUPPORTED", 500, Unimplemented),
    /// The state store has no transactions.
    StateStoreTransactionsNotSupported => ("ERR_STATE_STORE_NOT_SUPPORTED", 500, Unimplemented, "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"),
    /// The state store has no query API.
    StateStoreQueryNotSupported => ("ERR_STATE_STORE_NOT_SUPPORTED", 500, Internal, "DAPR_STATE_QUERYING_NOT_SUPPORTED"),
    /// A transaction has more operations than the store allows.
    StateStoreTooManyTransactions => ("ERR_STATE_STORE_TOO_MANY_TRANSACTIONS", 400, InvalidArgument, "DAPR_STATE_TOO_MANY_TRANSACTIONS"),
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
    StateQuery => ("ERR_STATE_QUERY", 500, Internal, "DAPR_STATE_QUERY_FAILED"),
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
    /// The named pub/sub component does not exist (or is out of the app's
    /// scope, or none is loaded: daprd always has a publisher, so it never
    /// answers `ERR_PUBSUB_NOT_CONFIGURED` for publishes).
    PubSubNotFound => ("ERR_PUBSUB_NOT_FOUND", 404, InvalidArgument, "DAPR_PUBSUB_NOT_FOUND"),
    /// A publish names no pub/sub component.
    PubSubEmpty => ("ERR_PUBSUB_EMPTY", 404, InvalidArgument, "DAPR_PUBSUB_NAME_EMPTY"),
    /// A publish names no topic.
    PubSubTopicEmpty => ("ERR_TOPIC_NAME_EMPTY", 404, InvalidArgument, "DAPR_PUBSUB_TOPIC_NAME_EMPTY"),
    /// Publish metadata that cannot be read (`rawPayload` not a boolean).
    PubSubRequestMetadata => ("ERR_PUBSUB_REQUEST_METADATA", 400, InvalidArgument, "DAPR_PUBSUB_METADATA_DESERIALIZATION"),
    /// No CloudEvent can be made of the body (a body sent as
    /// `application/cloudevents+json` that is no JSON object).
    PubSubCloudEventCreation => ("ERR_PUBSUB_CLOUD_EVENTS_SER", 500, InvalidArgument, "DAPR_PUBSUB_CLOUD_EVENT_CREATION"),
    /// A bulk entry's event does not match its content type.
    PubSubMarshalEnvelope => ("ERR_PUBSUB_EVENTS_SER", 400, InvalidArgument, "DAPR_PUBSUB_MARSHAL_ENVELOPE"),
    /// Bulk entries without an id, or with the same id.
    PubSubMarshalEvents => ("ERR_PUBSUB_EVENTS_SER", 400, InvalidArgument, "DAPR_PUBSUB_MARSHAL_EVENTS"),
    /// A bulk publish body that is no JSON array of entries.
    PubSubUnmarshalEvents => ("ERR_PUBSUB_EVENTS_SER", 400, InvalidArgument, "DAPR_PUBSUB_UNMARSHAL_EVENTS"),
    /// The app may not publish to the topic (`publishingScopes`,
    /// `allowedTopics`, `protectedTopics`).
    PubSubForbidden => ("ERR_PUBSUB_FORBIDDEN", 403, PermissionDenied, "DAPR_PUBSUB_FORBIDDEN"),
    /// The broker failed to take the message.
    PubSubPublishMessage => ("ERR_PUBSUB_PUBLISH_MESSAGE", 500, Internal, "DAPR_PUBSUB_PUBLISH_MESSAGE"),
    /// A state transaction on an outbox store could not publish its
    /// internal outbox message (nothing was written).
    PubSubOutbox => ("ERR_PUBLISH_OUTBOX", 500, Internal, "DAPR_PUBSUB_OUTBOX"),
    /// A streaming subscription could not start or went wrong: a first
    /// message that is no `initial_request`, no pub/sub or topic named, a
    /// second `initial_request`, a topic the app may not subscribe to, a
    /// broker that refused. daprd answers these with plain Go errors
    /// (`UNKNOWN`, no code); the code is wasmdapr's, so guests can match on
    /// it.
    PubSubSubscribe => ("ERR_PUBSUB_SUBSCRIBE", 500, Unknown),
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
    /// The kind a Dapr sidecar meant by `code` sent with `grpc`, where
    /// `code` is an `ErrorInfo` reason (`DAPR_STATE_NOT_FOUND`) or a Dapr
    /// error code (`ERR_STATE_SAVE`): the row with that reason, else the
    /// row whose code and gRPC code both match, else the first row with the
    /// code. This is how errors of a remote sidecar become ours again.
    pub fn from_wire(code: &str, grpc: GrpcCode) -> Option<ErrorKind> {
        if let Some(&kind) = Self::ALL.iter().find(|k| k.reason() == Some(code)) {
            return Some(kind);
        }
        let mut same_code = Self::ALL.iter().filter(|k| k.row().0 == code);
        let first = same_code.clone().next().copied();
        same_code.find(|k| k.row().2 == grpc).copied().or(first)
    }
}

/// `google.rpc.ResourceInfo`: the component an error is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceInfo {
    /// The kind of component (`state`).
    pub resource_type: String,
    /// The component's name (as the caller gave it, quoted through [`echo`]).
    pub resource_name: String,
    /// Who owns it (daprd leaves it empty).
    pub owner: String,
    /// What is wrong with it (daprd leaves it empty).
    pub description: String,
}

/// One `google.rpc.BadRequest.FieldViolation`: which input is wrong and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldViolation {
    /// The input (daprd names the offending key itself).
    pub field: String,
    /// Why it is refused.
    pub description: String,
}

/// One `google.rpc.Help.Link`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpLink {
    /// What the link explains.
    pub description: String,
    /// Where.
    pub url: String,
}

/// The rich details of an error beyond its kind's reason: what daprd puts in
/// `google.rpc.Status.details` next to the `ErrorInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// The `ErrorInfo` metadata (`appID`, `maxOpsPerTransaction`, …);
    /// ordered, as daprd's JSON (Go sorts map keys).
    pub metadata: BTreeMap<String, String>,
    /// The `ResourceInfo`, when the error is about one component.
    pub resource: Option<ResourceInfo>,
    /// The `BadRequest` field violations, for bad input.
    pub field_violations: Vec<FieldViolation>,
    /// The `Help` links.
    pub help: Vec<HelpLink>,
}

impl ErrorDetails {
    /// No details at all.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// An error returned to a Dapr API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// Which row of the table.
    pub kind: ErrorKind,
    /// A message for humans, naming what failed.
    pub message: String,
    /// The rich details, boxed: most errors have none, and an `ApiError`
    /// travels in every `Result` of the API.
    details: Option<Box<ErrorDetails>>,
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
        Self {
            kind,
            message,
            details: None,
        }
    }

    /// The state errors daprd builds with rich details, for store `name`.
    pub fn state_store(name: &str) -> StateStoreError<'_> {
        StateStoreError { name }
    }

    /// The pub/sub errors daprd builds with rich details, for component `name`.
    pub fn pubsub(name: &str) -> PubSubErrors<'_> {
        PubSubErrors { name }
    }

    /// The rich details (empty for most errors).
    pub fn details(&self) -> &ErrorDetails {
        static NONE: ErrorDetails = ErrorDetails {
            metadata: BTreeMap::new(),
            resource: None,
            field_violations: Vec::new(),
            help: Vec::new(),
        };
        self.details.as_deref().unwrap_or(&NONE)
    }

    /// This error with `details` (a remote sidecar's, read back).
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = (!details.is_empty()).then(|| Box::new(details));
        self
    }

    fn details_mut(&mut self) -> &mut ErrorDetails {
        self.details.get_or_insert_default()
    }

    /// This error with `key` = `value` in its `ErrorInfo` metadata.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details_mut().metadata.insert(key.into(), value.into());
        self
    }

    /// This error about component `name` of type `resource_type`.
    pub fn with_resource(mut self, resource_type: &str, name: &str) -> Self {
        self.details_mut().resource = Some(ResourceInfo {
            resource_type: resource_type.to_owned(),
            resource_name: echo(name).into_owned(),
            ..ResourceInfo::default()
        });
        self
    }

    /// This error with a `BadRequest` violation of `field` (quoted through
    /// [`echo`]), for `description`.
    pub fn with_field_violation(mut self, field: &str, description: impl Into<String>) -> Self {
        self.details_mut().field_violations.push(FieldViolation {
            field: echo(field).into_owned(),
            description: truncate(&description.into(), MAX_MESSAGE).into_owned(),
        });
        self
    }

    /// This error with `appID` in its metadata, as daprd sets it when it
    /// knows the app id (none when `app_id` is empty).
    fn with_app_id(self, app_id: &str) -> Self {
        if app_id.is_empty() {
            self
        } else {
            self.with_metadata("appID", app_id)
        }
    }

    /// This error with a `Help` link.
    pub fn with_help_link(mut self, url: &str, description: &str) -> Self {
        self.details_mut().help.push(HelpLink {
            description: description.to_owned(),
            url: url.to_owned(),
        });
        self
    }

    /// The `ErrorInfo` reason: the kind's `DAPR_…` reason when daprd builds
    /// it with rich details, else `None`.
    pub fn reason(&self) -> Option<&'static str> {
        self.kind.reason()
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

/// The state errors daprd builds with rich details
/// (`pkg/api/errors/state.go`), one constructor each, worded as daprd words
/// them. Every one but "not found" / "not configured" names the store in a
/// `ResourceInfo`.
#[derive(Debug, Clone, Copy)]
pub struct StateStoreError<'a> {
    name: &'a str,
}

impl StateStoreError<'_> {
    /// The store does not exist (or is out of `app_id`'s scope).
    pub fn not_found(self, app_id: &str) -> ApiError {
        ApiError::new(
            ErrorKind::StateStoreNotFound,
            format!("state store {} is not found", echo(self.name)),
        )
        .with_app_id(app_id)
    }

    /// No state store is configured at all.
    pub fn not_configured(self, app_id: &str) -> ApiError {
        ApiError::new(
            ErrorKind::StateStoreNotConfigured,
            format!("state store {} is not configured", echo(self.name)),
        )
        .with_app_id(app_id)
    }

    /// `key` holds `separator`, which would forge another key prefix.
    pub fn illegal_key(self, key: &str, separator: &str) -> ApiError {
        let message = format!(
            "input key/keyPrefix '{}' can't contain '{separator}'",
            echo(key)
        );
        ApiError::new(ErrorKind::StateIllegalKey, message.clone())
            .with_field_violation(key, message)
            .with_resource("state", self.name)
    }

    /// The store has no transactions.
    pub fn transactions_not_supported(self) -> ApiError {
        ApiError::new(
            ErrorKind::StateStoreTransactionsNotSupported,
            format!(
                "state store {} doesn't support transactions",
                echo(self.name)
            ),
        )
        .with_help_link(
            "https://docs.dapr.io/reference/components-reference/supported-state-stores/",
            "Check the list of state stores and the features they support",
        )
        .with_resource("state", self.name)
    }

    /// A transaction of `count` operations, over the store's `max`.
    pub fn too_many_transactional_ops(self, count: usize, max: usize) -> ApiError {
        ApiError::new(
            ErrorKind::StateStoreTooManyTransactions,
            format!(
                "the transaction contains {count} operations, which is more than what the state store supports: {max}"
            ),
        )
        .with_resource("state", self.name)
        .with_metadata("currentOpsTransaction", count.to_string())
        .with_metadata("maxOpsPerTransaction", max.to_string())
    }

    /// The store has no query API.
    pub fn query_not_supported(self) -> ApiError {
        ApiError::new(
            ErrorKind::StateStoreQueryNotSupported,
            "state store does not support querying",
        )
        .with_resource("state", self.name)
    }

    /// A query failed, for `detail`.
    pub fn query_failed(self, detail: impl fmt::Display) -> ApiError {
        ApiError::new(
            ErrorKind::StateQuery,
            format!("state store {} query failed: {detail}", echo(self.name)),
        )
        .with_resource("state", self.name)
    }
}

/// The most request-metadata entries an error's `ErrorInfo` repeats (daprd
/// repeats them all; they travel in a gRPC header, so they are bounded).
const MAX_ECHOED_METADATA: usize = 16;

/// The pub/sub errors daprd builds with rich details
/// (`pkg/api/errors/pubsub.go`), one constructor each, worded as daprd
/// words them. All but "not found" name the component in a `ResourceInfo`
/// of type `pubsub` whose description is the message.
#[derive(Debug, Clone, Copy)]
pub struct PubSubErrors<'a> {
    name: &'a str,
}

impl PubSubErrors<'_> {
    fn build(self, kind: ErrorKind, message: String) -> ApiError {
        let mut e = ApiError::new(kind, message);
        let description = e.message.clone();
        e.details_mut().resource = Some(ResourceInfo {
            resource_type: "pubsub".into(),
            resource_name: echo(self.name).into_owned(),
            owner: String::new(),
            description,
        });
        e
    }

    /// This error with the request's metadata in its `ErrorInfo`.
    fn with_request_metadata<'m>(
        mut e: ApiError,
        metadata: impl IntoIterator<Item = (&'m String, &'m String)>,
    ) -> ApiError {
        for (k, v) in metadata.into_iter().take(MAX_ECHOED_METADATA) {
            e = e.with_metadata(echo(k), echo(v));
        }
        e
    }

    /// This error with `appID` and `error` in its `ErrorInfo` (daprd's
    /// `WithAppError`).
    fn with_app_error(e: ApiError, app_id: &str, error: Option<&str>) -> ApiError {
        let e = e.with_metadata("appID", app_id);
        match error {
            Some(error) => e.with_metadata("error", truncate(error, MAX_MESSAGE)),
            None => e,
        }
    }

    /// The component does not exist, is out of the app's scope, or no
    /// pub/sub is loaded. No `ResourceInfo`, as daprd.
    pub fn not_found(self) -> ApiError {
        ApiError::new(
            ErrorKind::PubSubNotFound,
            format!("pubsub {} is not found", echo(self.name)),
        )
    }

    /// The request names no component.
    pub fn name_empty<'m>(
        self,
        metadata: impl IntoIterator<Item = (&'m String, &'m String)>,
    ) -> ApiError {
        let e = self.build(ErrorKind::PubSubEmpty, "pubsub name is empty".into());
        Self::with_request_metadata(e, metadata)
    }

    /// The request names no topic.
    pub fn topic_empty<'m>(
        self,
        metadata: impl IntoIterator<Item = (&'m String, &'m String)>,
    ) -> ApiError {
        let message = format!("topic is empty in pubsub {}", echo(self.name));
        Self::with_request_metadata(self.build(ErrorKind::PubSubTopicEmpty, message), metadata)
    }

    /// Request metadata that cannot be read (`rawPayload`).
    pub fn metadata_deserialize<'m>(
        self,
        metadata: impl IntoIterator<Item = (&'m String, &'m String)>,
        error: impl fmt::Display,
    ) -> ApiError {
        let message = format!("failed deserializing metadata. Error: {error}");
        Self::with_request_metadata(
            self.build(ErrorKind::PubSubRequestMetadata, message),
            metadata,
        )
    }

    /// No CloudEvent can be made of the body.
    pub fn cloud_event_creation(self, app_id: &str, error: impl fmt::Display) -> ApiError {
        let e = self.build(
            ErrorKind::PubSubCloudEventCreation,
            "cannot create cloudevent".into(),
        );
        Self::with_app_error(e, app_id, Some(&error.to_string()))
    }

    /// A bulk entry's event does not match its content type.
    pub fn marshal_envelope(self, app_id: &str, topic: &str, error: impl fmt::Display) -> ApiError {
        let error = error.to_string();
        let message = format!(
            "error when marshalling cloud event envelope for topic {} pubsub {}: {error}",
            echo(topic),
            echo(self.name)
        );
        let e = self.build(ErrorKind::PubSubMarshalEnvelope, message);
        Self::with_app_error(e, app_id, Some(&error))
    }

    /// Bulk entries without an id or with duplicate ids.
    pub fn marshal_events(self, app_id: &str, topic: &str, error: impl fmt::Display) -> ApiError {
        let error = error.to_string();
        let message = format!(
            "error marshaling events to bytes for topic {} pubsub {}. error: {error}",
            echo(topic),
            echo(self.name)
        );
        let e = self.build(ErrorKind::PubSubMarshalEvents, message);
        Self::with_app_error(e, app_id, Some(&error))
    }

    /// A bulk body that does not parse.
    pub fn unmarshal_events(self, app_id: &str, topic: &str, error: impl fmt::Display) -> ApiError {
        let message = format!(
            "error when unmarshaling the request for topic {} pubsub {}: {error}",
            echo(topic),
            echo(self.name)
        );
        let e = self.build(ErrorKind::PubSubUnmarshalEvents, message);
        Self::with_app_error(e, app_id, None)
    }

    /// `app_id` may not publish to `topic`.
    pub fn forbidden(self, topic: &str, app_id: &str) -> ApiError {
        let message = format!(
            "topic {} is not allowed for app id {}",
            echo(topic),
            echo(app_id)
        );
        self.build(ErrorKind::PubSubForbidden, message.clone())
            .with_metadata("topic", echo(topic))
            .with_metadata("error", message)
    }

    /// A transaction on an outbox state store could not publish its
    /// outbox message (daprd's `PubSubOutbox`: no `ResourceInfo`).
    pub fn outbox(self, app_id: &str, error: impl fmt::Display) -> ApiError {
        let error = error.to_string();
        let e = ApiError::new(
            ErrorKind::PubSubOutbox,
            format!("error while publishing outbox message: {error}"),
        );
        Self::with_app_error(e, app_id, Some(&error))
    }

    /// The broker refused or failed the publish.
    pub fn publish_message(self, topic: &str, error: impl fmt::Display) -> ApiError {
        let error = truncate(&error.to_string(), MAX_MESSAGE).into_owned();
        let message = format!(
            "error when publishing to topic {} in pubsub {}: {error}",
            echo(topic),
            echo(self.name)
        );
        self.build(ErrorKind::PubSubPublishMessage, message)
            .with_metadata("topic", echo(topic))
            .with_metadata("error", error)
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
        // daprd's `PubSubOutbox`: 500, Internal, reason DAPR_PUBSUB_OUTBOX,
        // `appID` and `error` in the ErrorInfo, no ResourceInfo.
        let e = ApiError::pubsub("p").outbox("app", "broker down");
        assert_eq!(
            ErrorKind::PubSubOutbox.row(),
            ("ERR_PUBLISH_OUTBOX", 500, GrpcCode::Internal)
        );
        assert_eq!(
            e.message,
            "error while publishing outbox message: broker down"
        );
        assert_eq!(e.details().metadata["appID"], "app");
        assert!(e.details().resource.is_none());
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

    /// Every row reads back from its wire form (the `ErrorInfo` reason, which
    /// is the code for plain errors), ETag rows included.
    #[test]
    fn rows_round_trip_from_the_wire() {
        for &kind in ErrorKind::ALL {
            let (code, _, grpc) = kind.row();
            let reason = kind.reason().unwrap_or(code);
            assert_eq!(ErrorKind::from_wire(reason, grpc), Some(kind), "{kind:?}");
        }
        assert_eq!(ErrorKind::from_wire("ERR_NOPE", GrpcCode::Internal), None);
        // A code alone (a message prefix) reads as the plain row.
        assert_eq!(
            ErrorKind::from_wire("ERR_MALFORMED_REQUEST", GrpcCode::InvalidArgument),
            Some(ErrorKind::MalformedRequest)
        );
    }

    /// The rich state errors carry daprd's reasons, statuses, wording and
    /// details (`pkg/api/errors/state.go`).
    #[test]
    fn rich_state_errors_match_daprd() {
        let e = ApiError::state_store("mystore").not_found("myapp");
        assert_eq!(
            (e.code(), e.http_status(), e.grpc_code(), e.reason()),
            (
                "ERR_STATE_STORE_NOT_FOUND",
                400,
                GrpcCode::InvalidArgument,
                Some("DAPR_STATE_NOT_FOUND")
            )
        );
        assert_eq!(e.message, "state store mystore is not found");
        assert_eq!(e.details().metadata["appID"], "myapp");
        assert_eq!(e.details().resource, None, "daprd skips ResourceInfo here");

        let e = ApiError::state_store("mystore").not_configured("");
        assert_eq!(e.reason(), Some("DAPR_STATE_NOT_CONFIGURED"));
        assert_eq!(e.message, "state store mystore is not configured");
        assert!(e.details().is_empty());

        let e = ApiError::state_store("mystore").illegal_key("k||", "||");
        assert_eq!(
            (e.code(), e.http_status(), e.reason()),
            ("ERR_MALFORMED_REQUEST", 400, Some("DAPR_STATE_ILLEGAL_KEY"))
        );
        assert_eq!(e.message, "input key/keyPrefix 'k||' can't contain '||'");
        assert_eq!(
            e.details().field_violations,
            [FieldViolation {
                field: "k||".into(),
                description: e.message.clone(),
            }]
        );
        let resource = e.details().resource.clone().expect("ResourceInfo");
        assert_eq!(
            (
                resource.resource_type.as_str(),
                resource.resource_name.as_str()
            ),
            ("state", "mystore")
        );

        let e = ApiError::state_store("mystore").transactions_not_supported();
        assert_eq!(
            (e.grpc_code(), e.reason()),
            (
                GrpcCode::Unimplemented,
                Some("DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED")
            )
        );
        assert_eq!(e.details().help.len(), 1);

        let e = ApiError::state_store("mystore").too_many_transactional_ops(5, 2);
        assert_eq!(e.details().metadata["currentOpsTransaction"], "5");
        assert_eq!(e.details().metadata["maxOpsPerTransaction"], "2");

        let e = ApiError::state_store("mystore").query_not_supported();
        assert_eq!(
            (e.code(), e.grpc_code()),
            ("ERR_STATE_STORE_NOT_SUPPORTED", GrpcCode::Internal)
        );
        let e = ApiError::state_store("mystore").query_failed("boom");
        assert_eq!(e.message, "state store mystore query failed: boom");
        assert_eq!(e.reason(), Some("DAPR_STATE_QUERY_FAILED"));

        // daprd's plain errors have no reason of their own.
        assert_eq!(ErrorKind::StateSave.reason(), None);
    }

    /// A long key or store name is quoted short in the details too: they
    /// travel in the `grpc-status-details-bin` header.
    #[test]
    fn details_quote_input_short() {
        let long = "k".repeat(100_000);
        let e = ApiError::state_store(&long).illegal_key(&format!("{long}||"), "||");
        let details = e.details();
        assert!(details.field_violations[0].field.len() <= MAX_ECHO);
        assert!(details.field_violations[0].description.len() <= MAX_MESSAGE);
        assert!(details.resource.as_ref().unwrap().resource_name.len() <= MAX_ECHO);
    }
}
