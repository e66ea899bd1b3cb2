//! Errors as the SDKs read them: daprd's rich details (`ErrorInfo`,
//! `ResourceInfo`, `BadRequest`) on both doors of a real sidecar, decoded
//! the way clients decode them (tonic-types for gRPC, the JSON `details` for
//! HTTP), and kept whole through a `RemoteDapr`.

use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt as _;
use wasmdapr_api::RemoteDapr;
use wasmdapr_runtime::ErrorKind;
use wasmdapr_runtime::api::StateApi;
use wasmdapr_runtime::state::GetRequest;

use crate::{APP_ID, Sidecar};

const ILLEGAL: &str = "input key/keyPrefix 'k||' can't contain '||'";

/// An illegal key over gRPC: INVALID_ARGUMENT with daprd's wording and its
/// three details (BadRequest naming the key, ResourceInfo naming the store,
/// ErrorInfo `DAPR_STATE_ILLEGAL_KEY` in domain `dapr.io`).
#[tokio::test]
async fn grpc_illegal_key_carries_daprd_details() {
    let s = Sidecar::start().await;
    let mut c = DaprClient::connect(s.grpc.clone()).await.unwrap();
    let status = c
        .get_state(runtime::GetStateRequest {
            store_name: "statestore".into(),
            key: "k||".into(),
            ..Default::default()
        })
        .await
        .expect_err("illegal key");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().ends_with(ILLEGAL), "{}", status.message());
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DAPR_STATE_ILLEGAL_KEY");
    assert_eq!(info.domain, "dapr.io");
    let resource = details.resource_info().expect("ResourceInfo");
    assert_eq!(resource.resource_type, "state");
    assert_eq!(resource.resource_name, "statestore");
    let bad = details.bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "k||");
    assert_eq!(bad.field_violations[0].description, ILLEGAL);
}

/// An unknown store over gRPC: `DAPR_STATE_NOT_FOUND` with the app id in
/// the metadata and no ResourceInfo (daprd skips it for this error).
#[tokio::test]
async fn grpc_unknown_store_names_the_app() {
    let s = Sidecar::start().await;
    let mut c = DaprClient::connect(s.grpc.clone()).await.unwrap();
    let status = c
        .get_state(runtime::GetStateRequest {
            store_name: "nope".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown store");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DAPR_STATE_NOT_FOUND");
    assert_eq!(info.metadata["appID"], APP_ID);
    assert!(status.get_details_resource_info().is_none());
    assert!(status.message().ends_with("state store nope is not found"));
}

/// The same errors over HTTP: daprd's body, `details` with `@type`s.
#[tokio::test]
async fn http_errors_carry_daprd_details() {
    let s = Sidecar::start().await;
    let response = s
        .client
        .get(s.url("/v1.0/state/statestore/k||"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "errorCode": "ERR_MALFORMED_REQUEST",
            "message": ILLEGAL,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "field_violations": [{"field": "k||", "description": ILLEGAL}],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                    "description": "",
                    "owner": "",
                    "resource_name": "statestore",
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

    let response = s
        .client
        .post(s.url("/v1.0/state/notx/transaction"))
        .json(&json!({"operations": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "ERR_STATE_STORE_NOT_SUPPORTED");
    assert_eq!(
        body["message"],
        "state store notx doesn't support transactions"
    );
    let types: Vec<_> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["@type"].as_str().unwrap().rsplit('.').next().unwrap())
        .collect();
    assert_eq!(types, ["Help", "ResourceInfo", "ErrorInfo"]);
    assert_eq!(
        body["details"][2]["reason"],
        "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"
    );
}

/// A `RemoteDapr` hands its caller the remote's error whole: kind, message
/// and details, as the local runtime gives them.
#[tokio::test]
async fn remote_keeps_the_details() {
    let s = Sidecar::start().await;
    let remote = RemoteDapr::connect(&s.grpc, None).await.unwrap();
    let get = || GetRequest {
        key: "k||".into(),
        ..GetRequest::default()
    };
    let local = s.runtime.get_state("statestore", get()).await.unwrap_err();
    let through = remote.get_state("statestore", get()).await.unwrap_err();
    assert_eq!(through.kind, ErrorKind::StateIllegalKey);
    assert_eq!(through, local);
    assert_eq!(through.details().field_violations[0].field, "k||");
}
