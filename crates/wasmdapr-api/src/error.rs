//! The runtime's [`ApiError`] on the wire, in one place per door, as daprd
//! renders its errors (`dapr/kit` `errors.go`):
//!
//! - HTTP ([`HttpError`]): the table's status and
//!   `{"errorCode": "ERR_…", "message": "…"}`; an error daprd builds with
//!   rich details (its kind has an `ErrorInfo` reason) adds them as
//!   `details`, each with its `@type`
//!   (`type.googleapis.com/google.rpc.ErrorInfo`, `…ResourceInfo`,
//!   `…BadRequest`, `…Help`), keys as Go's JSON writes them.
//! - gRPC ([`status`]): the table's code and a `google.rpc.Status` whose
//!   details are the same messages (tonic-types), always ending with an
//!   `ErrorInfo` (domain `dapr.io`) whose reason is the kind's `DAPR_…`
//!   reason, or the Dapr code for daprd's plain errors. The message starts
//!   with the code (`ERR_STATE_SAVE: …`), for clients that read no details.
//! - Back from a remote sidecar ([`api_error`]): a status read back into the
//!   same [`ApiError`], details included, so a `RemoteDapr` in front of a
//!   real daprd hands its callers what daprd said.
//!
//! The order of the details is daprd's: `BadRequest` or `Help` (added by
//! the builder), then `ResourceInfo`, then `ErrorInfo` (added by `build`).

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::{Code, Status};
use tonic_types::{
    BadRequest, ErrorDetail, ErrorInfo, FieldViolation, Help, HelpLink, ResourceInfo, StatusExt,
};
use wasmdapr_runtime::error::{self as runtime_error, DOMAIN, ErrorDetails};
use wasmdapr_runtime::{ApiError, ErrorKind, GrpcCode};

// ---------------------------------------------------------------- HTTP

/// An [`ApiError`] as Dapr's HTTP error response.
pub(crate) struct HttpError(pub(crate) ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

/// Dapr's error body (`errorJSON` of `dapr/kit`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error_code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<JsonDetail<'a>>,
}

/// One entry of `details`, with the keys `dapr/kit`'s
/// `convertErrorDetails` writes (Go sorts them, and so does the field order
/// here).
#[derive(Serialize)]
#[serde(untagged)]
enum JsonDetail<'a> {
    BadRequest {
        #[serde(rename = "@type")]
        type_url: &'static str,
        field_violations: Vec<JsonFieldViolation<'a>>,
    },
    Help {
        #[serde(rename = "@type")]
        type_url: &'static str,
        links: Vec<JsonHelpLink<'a>>,
    },
    ResourceInfo {
        #[serde(rename = "@type")]
        type_url: &'static str,
        description: &'a str,
        owner: &'a str,
        resource_name: &'a str,
        resource_type: &'a str,
    },
    ErrorInfo {
        #[serde(rename = "@type")]
        type_url: &'static str,
        domain: &'static str,
        /// `null` when empty, as Go writes a nil map.
        metadata: Option<&'a BTreeMap<String, String>>,
        reason: &'a str,
    },
}

/// A `BadRequest.FieldViolation` as Go's JSON writes the proto struct
/// (`omitempty` fields, declaration order).
#[derive(Serialize)]
struct JsonFieldViolation<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    field: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
}

/// A `Help.Link` as Go's JSON writes the proto struct.
#[derive(Serialize)]
struct JsonHelpLink<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    url: &'a str,
}

const TYPE_ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
const TYPE_RESOURCE_INFO: &str = "type.googleapis.com/google.rpc.ResourceInfo";
const TYPE_BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";
const TYPE_HELP: &str = "type.googleapis.com/google.rpc.Help";

/// The `details` of `e`'s HTTP body: none for daprd's plain errors (its
/// `messages.APIError` writes only code and message), daprd's order else.
fn json_details(e: &ApiError) -> Vec<JsonDetail<'_>> {
    let Some(reason) = e.reason() else {
        return Vec::new();
    };
    let d = e.details();
    let mut details = Vec::new();
    if !d.field_violations.is_empty() {
        details.push(JsonDetail::BadRequest {
            type_url: TYPE_BAD_REQUEST,
            field_violations: d
                .field_violations
                .iter()
                .map(|v| JsonFieldViolation {
                    field: &v.field,
                    description: &v.description,
                })
                .collect(),
        });
    }
    if !d.help.is_empty() {
        details.push(JsonDetail::Help {
            type_url: TYPE_HELP,
            links: d
                .help
                .iter()
                .map(|l| JsonHelpLink {
                    description: &l.description,
                    url: &l.url,
                })
                .collect(),
        });
    }
    if let Some(r) = &d.resource {
        details.push(JsonDetail::ResourceInfo {
            type_url: TYPE_RESOURCE_INFO,
            description: &r.description,
            owner: &r.owner,
            resource_name: &r.resource_name,
            resource_type: &r.resource_type,
        });
    }
    details.push(JsonDetail::ErrorInfo {
        type_url: TYPE_ERROR_INFO,
        domain: DOMAIN,
        metadata: (!d.metadata.is_empty()).then_some(&d.metadata),
        reason,
    });
    details
}

fn json_response(status: StatusCode, body: &ErrorBody<'_>) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response()
}

/// A Dapr error response of `status` with `code` and `message` and no
/// details: for answers that are no [`ApiError`] (an unknown path).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &ErrorBody {
            error_code: code,
            message,
            details: Vec::new(),
        },
    )
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = e.code(), message = %e.message, "request failed");
        } else {
            tracing::debug!(code = e.code(), message = %e.message, "request refused");
        }
        json_response(
            status,
            &ErrorBody {
                error_code: e.code(),
                message: &e.message,
                details: json_details(&e),
            },
        )
    }
}

// ---------------------------------------------------------------- gRPC

fn code(code: GrpcCode) -> Code {
    match code {
        GrpcCode::InvalidArgument => Code::InvalidArgument,
        GrpcCode::NotFound => Code::NotFound,
        GrpcCode::FailedPrecondition => Code::FailedPrecondition,
        GrpcCode::Aborted => Code::Aborted,
        GrpcCode::Unimplemented => Code::Unimplemented,
        GrpcCode::Internal => Code::Internal,
        GrpcCode::PermissionDenied => Code::PermissionDenied,
        GrpcCode::Unauthenticated => Code::Unauthenticated,
        GrpcCode::ResourceExhausted => Code::ResourceExhausted,
        GrpcCode::Unknown => Code::Unknown,
    }
}

fn grpc_code(code: Code) -> GrpcCode {
    match code {
        Code::InvalidArgument => GrpcCode::InvalidArgument,
        Code::NotFound => GrpcCode::NotFound,
        Code::FailedPrecondition => GrpcCode::FailedPrecondition,
        Code::Aborted => GrpcCode::Aborted,
        Code::Unimplemented => GrpcCode::Unimplemented,
        Code::PermissionDenied => GrpcCode::PermissionDenied,
        Code::Unauthenticated => GrpcCode::Unauthenticated,
        Code::ResourceExhausted => GrpcCode::ResourceExhausted,
        Code::Unknown => GrpcCode::Unknown,
        _ => GrpcCode::Internal,
    }
}

/// An [`ApiError`] as a gRPC status with Dapr's details.
pub(crate) fn status(e: ApiError) -> Status {
    let code = code(e.grpc_code());
    let message = e.to_string();
    if matches!(code, Code::Internal) {
        tracing::warn!(error = %message, "gRPC call failed");
    } else {
        tracing::debug!(error = %message, "gRPC call refused");
    }
    let d = e.details();
    let mut details = Vec::new();
    if !d.field_violations.is_empty() {
        details.push(ErrorDetail::BadRequest(BadRequest::new(
            d.field_violations
                .iter()
                .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                .collect::<Vec<_>>(),
        )));
    }
    if !d.help.is_empty() {
        details.push(ErrorDetail::Help(Help::new(
            d.help
                .iter()
                .map(|l| HelpLink::new(l.description.clone(), l.url.clone()))
                .collect::<Vec<_>>(),
        )));
    }
    if let Some(r) = &d.resource {
        details.push(ErrorDetail::ResourceInfo(ResourceInfo::new(
            r.resource_type.clone(),
            r.resource_name.clone(),
            r.owner.clone(),
            r.description.clone(),
        )));
    }
    details.push(ErrorDetail::ErrorInfo(ErrorInfo::new(
        e.reason().unwrap_or(e.code()),
        DOMAIN,
        d.metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )));
    Status::with_error_details_vec(code, message, details)
}

// ---------------------------------------------------------------- remote

/// A remote failure as the [`ApiError`] the local runtime would have
/// returned, with the details the remote sent.
///
/// The kind comes from the `ErrorInfo` reason (a `DAPR_…` reason or a Dapr
/// code), else from the message's `CODE: ` prefix (a wasmdapr sidecar's); a
/// failure with neither (the sidecar is down, the call timed out) keeps
/// `fallback`, the operation's own code.
pub(crate) fn api_error(status: Status, fallback: ErrorKind) -> ApiError {
    let grpc = grpc_code(status.code());
    let mut reason = None;
    let mut details = ErrorDetails::default();
    for detail in status.get_error_details_vec() {
        match detail {
            ErrorDetail::ErrorInfo(info) => {
                reason = Some(info.reason);
                details.metadata = info.metadata.into_iter().collect();
            }
            ErrorDetail::ResourceInfo(r) => {
                details.resource = Some(runtime_error::ResourceInfo {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name,
                    owner: r.owner,
                    description: r.description,
                });
            }
            ErrorDetail::BadRequest(b) => {
                details
                    .field_violations
                    .extend(b.field_violations.into_iter().map(|v| {
                        runtime_error::FieldViolation {
                            field: v.field,
                            description: v.description,
                        }
                    }));
            }
            ErrorDetail::Help(h) => {
                details
                    .help
                    .extend(h.links.into_iter().map(|l| runtime_error::HelpLink {
                        description: l.description,
                        url: l.url,
                    }));
            }
            _ => {}
        }
    }
    let message = status.message();
    let (prefix, rest) = match message.split_once(": ") {
        Some((code, rest)) if code.starts_with("ERR_") => (Some(code), rest),
        _ => (None, message),
    };
    let kind = reason
        .and_then(|reason| ErrorKind::from_wire(&reason, grpc))
        .or_else(|| prefix.and_then(|code| ErrorKind::from_wire(code, grpc)))
        .unwrap_or(fallback);
    ApiError::new(kind, rest.to_owned()).with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};

    async fn http_body(e: ApiError) -> (StatusCode, Value) {
        let response = HttpError(e).into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// An illegal key answers daprd's body byte for byte in shape: the
    /// code, daprd's wording and the three details in daprd's order, keys
    /// as Go writes them (nil metadata as `null`).
    #[tokio::test]
    async fn http_renders_daprd_details() {
        let e = ApiError::state_store("mystore").illegal_key("k||", "||");
        let (status, body) = http_body(e).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = "input key/keyPrefix 'k||' can't contain '||'";
        assert_eq!(
            body,
            json!({
                "errorCode": "ERR_MALFORMED_REQUEST",
                "message": message,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "field_violations": [{"field": "k||", "description": message}],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                        "description": "",
                        "owner": "",
                        "resource_name": "mystore",
                        "resource_type": "state",
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "domain": "dapr.io",
                        "metadata": null,
                        "reason": "DAPR_STATE_ILLEGAL_KEY",
                    },
                ],
            })
        );

        let e = ApiError::state_store("nope").not_found("myapp");
        let (status, body) = http_body(e).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errorCode"], "ERR_STATE_STORE_NOT_FOUND");
        assert_eq!(
            body["details"],
            json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "domain": "dapr.io",
                "metadata": {"appID": "myapp"},
                "reason": "DAPR_STATE_NOT_FOUND",
            }])
        );
    }

    /// daprd's plain errors keep the plain body: no `details` key at all.
    #[tokio::test]
    async fn http_plain_errors_have_no_details() {
        let e = ApiError::new(ErrorKind::StateSaveEtagMismatch, "failed saving state");
        let (status, body) = http_body(e).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body,
            json!({"errorCode": "ERR_STATE_SAVE", "message": "failed saving state"})
        );
    }

    /// The gRPC status carries the same details, readable by tonic-types,
    /// and a plain error an `ErrorInfo` whose reason is its code.
    #[test]
    fn grpc_renders_daprd_details() {
        let s = status(ApiError::state_store("mystore").illegal_key("k||", "||"));
        assert_eq!(s.code(), Code::InvalidArgument);
        let details = s.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("DAPR_STATE_ILLEGAL_KEY", "dapr.io")
        );
        let resource = details.resource_info().expect("ResourceInfo");
        assert_eq!(
            (
                resource.resource_type.as_str(),
                resource.resource_name.as_str()
            ),
            ("state", "mystore")
        );
        let bad = details.bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "k||");
        let order: Vec<_> = s
            .get_error_details_vec()
            .into_iter()
            .map(|d| match d {
                ErrorDetail::BadRequest(_) => "BadRequest",
                ErrorDetail::ResourceInfo(_) => "ResourceInfo",
                ErrorDetail::ErrorInfo(_) => "ErrorInfo",
                _ => "other",
            })
            .collect();
        assert_eq!(order, ["BadRequest", "ResourceInfo", "ErrorInfo"]);

        let s = status(ApiError::state_store("s").too_many_transactional_ops(3, 2));
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.metadata["maxOpsPerTransaction"], "2");

        let s = status(ApiError::new(ErrorKind::StateGet, "boom"));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "ERR_STATE_GET: boom");
        assert_eq!(s.get_details_error_info().unwrap().reason, "ERR_STATE_GET");
        assert!(s.get_details_resource_info().is_none());
    }

    /// A remote status maps back to the same error kind, from the detail or the message prefix.
    #[test]
    fn statuses_map_back_to_kinds() {
        let s = Status::new(Code::Aborted, "ERR_STATE_SAVE: possible etag mismatch");
        let e = api_error(s, ErrorKind::StateGet);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::StateSaveEtagMismatch, "possible etag mismatch")
        );
        let e = api_error(
            Status::new(Code::Unavailable, "connection refused"),
            ErrorKind::StateGet,
        );
        assert_eq!(e.kind, ErrorKind::StateGet);
    }

    /// Every rich error survives the trip through gRPC and back whole, as
    /// does one from a real daprd (no message prefix, reason only).
    #[test]
    fn rich_errors_round_trip_through_a_remote() {
        let errors = [
            ApiError::state_store("mystore").illegal_key("k||", "||"),
            ApiError::state_store("mystore").not_found("myapp"),
            ApiError::state_store("mystore").not_configured("myapp"),
            ApiError::state_store("mystore").transactions_not_supported(),
            ApiError::state_store("mystore").too_many_transactional_ops(3, 2),
            ApiError::state_store("mystore").query_not_supported(),
            ApiError::state_store("mystore").query_failed("boom"),
            ApiError::pubsub("mypubsub").not_found(),
            ApiError::pubsub("mypubsub")
                .topic_empty(&HashMap::from([("k".to_string(), "v".to_string())])),
            ApiError::pubsub("mypubsub").forbidden("t", "myapp"),
            ApiError::pubsub("mypubsub").publish_message("t", "connection refused"),
            ApiError::pubsub("mypubsub").marshal_events("myapp", "t", "duplicate entryId"),
        ];
        for e in errors {
            let back = api_error(status(e.clone()), ErrorKind::StateGet);
            assert_eq!(back, e);
        }

        let daprd = Status::with_error_details_vec(
            Code::InvalidArgument,
            "state store nope is not found",
            [ErrorDetail::ErrorInfo(ErrorInfo::new(
                "DAPR_STATE_NOT_FOUND",
                "dapr.io",
                [("appID".to_owned(), "other".to_owned())],
            ))],
        );
        let e = api_error(daprd, ErrorKind::StateGet);
        assert_eq!(e.kind, ErrorKind::StateStoreNotFound);
        assert_eq!(e.message, "state store nope is not found");
        assert_eq!(e.details().metadata["appID"], "other");
    }
}
