//! The Dapr gRPC API through the generated `DaprClient`.

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use prost::Message as _;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::{Sidecar, TOKEN};

async fn client(s: &Sidecar) -> DaprClient<Channel> {
    DaprClient::connect(s.grpc.clone()).await.expect("connect")
}

fn item(key: &str, value: &[u8], etag: Option<&str>) -> common::StateItem {
    common::StateItem {
        key: key.into(),
        value: value.to_vec(),
        etag: etag.map(|e| common::Etag { value: e.into() }),
        ..Default::default()
    }
}

fn save(store: &str, items: Vec<common::StateItem>) -> runtime::SaveStateRequest {
    runtime::SaveStateRequest {
        store_name: store.into(),
        states: items,
    }
}

fn get(store: &str, key: &str) -> runtime::GetStateRequest {
    runtime::GetStateRequest {
        store_name: store.into(),
        key: key.into(),
        ..Default::default()
    }
}

/// `google.rpc.ErrorInfo`, to read the detail Dapr attaches.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
}

/// The Dapr error code in a status's `ErrorInfo` detail.
fn reason(status: &Status) -> String {
    let details = dapr::google::rpc::Status::decode(status.details()).expect("details");
    let any = details
        .details
        .iter()
        .find(|a| a.type_url.ends_with("google.rpc.ErrorInfo"))
        .expect("an ErrorInfo detail");
    ErrorInfo::decode(any.value.as_slice())
        .expect("ErrorInfo")
        .reason
}

/// Raw bytes saved over gRPC come back as given, with an ETag; bulk get,
/// delete and a missing key (empty response) behave as Dapr's.
#[tokio::test]
async fn state_round_trip() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    let bytes = [0u8, 159, 146, 150, b'x'];
    c.save_state(save(
        "statestore",
        vec![item("k", &bytes, None), item("j", b"2", None)],
    ))
    .await
    .expect("save");
    let got = c
        .get_state(get("statestore", "k"))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.data, bytes);
    assert!(!got.etag.is_empty());

    let bulk = c
        .get_bulk_state(runtime::GetBulkStateRequest {
            store_name: "statestore".into(),
            keys: vec!["k".into(), "j".into(), "none".into()],
            ..Default::default()
        })
        .await
        .expect("bulk")
        .into_inner();
    assert_eq!(bulk.items.len(), 3);
    assert_eq!(bulk.items[1].data, b"2");
    assert!(bulk.items[2].data.is_empty() && bulk.items[2].etag.is_empty());

    c.delete_state(runtime::DeleteStateRequest {
        store_name: "statestore".into(),
        key: "k".into(),
        etag: Some(common::Etag { value: got.etag }),
        ..Default::default()
    })
    .await
    .expect("delete");
    let missing = c
        .get_state(get("statestore", "k"))
        .await
        .expect("get")
        .into_inner();
    assert!(missing.data.is_empty() && missing.etag.is_empty());

    c.execute_state_transaction(runtime::ExecuteStateTransactionRequest {
        store_name: "statestore".into(),
        operations: vec![
            runtime::TransactionalStateOperation {
                operation_type: "upsert".into(),
                request: Some(item("t", b"{\"n\":1}", None)),
            },
            runtime::TransactionalStateOperation {
                operation_type: "delete".into(),
                request: Some(item("j", b"", None)),
            },
        ],
        ..Default::default()
    })
    .await
    .expect("transaction");
    assert!(
        c.get_state(get("statestore", "j"))
            .await
            .unwrap()
            .into_inner()
            .data
            .is_empty()
    );

    let q = c
        .query_state_alpha1(runtime::QueryStateRequest {
            store_name: "statestore".into(),
            query: r#"{"filter":{"EQ":{"n":1}}}"#.into(),
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert_eq!(q.results.len(), 1);
    assert_eq!(q.results[0].key, "t");

    let m = c
        .get_metadata(runtime::GetMetadataRequest {})
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(m.id, crate::APP_ID);
    assert!(
        m.registered_components
            .iter()
            .any(|c| c.name == "statestore" && c.r#type == "state.in-memory")
    );
}

/// A stale ETag is ABORTED with reason ERR_STATE_SAVE.
#[tokio::test]
async fn etag_conflict_is_aborted() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    c.save_state(save("statestore", vec![item("k", b"1", None)]))
        .await
        .unwrap();
    let status = c
        .save_state(save("statestore", vec![item("k", b"2", Some("999"))]))
        .await
        .expect_err("stale etag");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(reason(&status), "ERR_STATE_SAVE");
    assert!(status.message().contains("ERR_STATE_SAVE"));
}

/// An unknown store is INVALID_ARGUMENT with daprd's reason
/// DAPR_STATE_NOT_FOUND; a transaction on a store without transactions is
/// UNIMPLEMENTED with DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED.
#[tokio::test]
async fn store_errors_map_to_codes() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    let status = c
        .get_state(get("nope", "k"))
        .await
        .expect_err("unknown store");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "DAPR_STATE_NOT_FOUND");
    assert!(status.message().contains("ERR_STATE_STORE_NOT_FOUND"));

    let status = c
        .execute_state_transaction(runtime::ExecuteStateTransactionRequest {
            store_name: "notx".into(),
            ..Default::default()
        })
        .await
        .expect_err("no transactions");
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(reason(&status), "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED");
    assert!(status.message().contains("ERR_STATE_STORE_NOT_SUPPORTED"));

    let status = c
        .query_state_alpha1(runtime::QueryStateRequest {
            store_name: "statestore".into(),
            query: "{not json".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad query");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "ERR_MALFORMED_REQUEST");
}

/// Methods of building blocks not built yet are UNIMPLEMENTED, naming the method.
#[tokio::test]
async fn other_methods_are_unimplemented() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    let status = c
        .invoke_binding(runtime::InvokeBindingRequest::default())
        .await
        .expect_err("unimplemented");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("InvokeBinding"),
        "{}",
        status.message()
    );
    let status = c
        .subscribe_configuration(runtime::SubscribeConfigurationRequest::default())
        .await
        .expect_err("unimplemented stream");
    assert_eq!(status.code(), Code::Unimplemented);
}

/// With a token configured, calls without it are UNAUTHENTICATED and calls
/// with it succeed.
#[tokio::test]
async fn token_is_required() {
    let s = Sidecar::with_token().await;
    let mut c = client(&s).await;
    let status = c
        .get_state(get("statestore", "k"))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut wrong = Request::new(get("statestore", "k"));
    wrong
        .metadata_mut()
        .insert("dapr-api-token", "nope".parse().unwrap());
    assert_eq!(
        c.get_state(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut right = Request::new(get("statestore", "k"));
    right
        .metadata_mut()
        .insert("dapr-api-token", TOKEN.parse().unwrap());
    c.get_state(right).await.expect("with token");
}

/// `Shutdown` answers, then the runtime is asked to shut down.
#[tokio::test]
async fn shutdown_is_requested() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    c.shutdown(runtime::ShutdownRequest {})
        .await
        .expect("shutdown");
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.runtime.shutdown_requested(),
    )
    .await
    .expect("shutdown requested");
}

/// A message over `max_body_size` is refused as daprd refuses it,
/// RESOURCE_EXHAUSTED with `ERR_BODY_TOO_LARGE` (not tonic's OUT_OF_RANGE),
/// and nothing is saved.
#[tokio::test]
async fn oversize_message_is_refused() {
    let config = wasmdapr_api::ApiConfig {
        max_body_size: 1024,
        ..wasmdapr_api::ApiConfig::default()
    };
    let s = Sidecar::start_with(crate::usual_specs(), config).await;
    let mut c = client(&s).await;
    let status = c
        .save_state(save("statestore", vec![item("k", &[7u8; 4096], None)]))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "ERR_BODY_TOO_LARGE");
    let got = c
        .get_state(get("statestore", "k"))
        .await
        .unwrap()
        .into_inner();
    assert!(got.data.is_empty());
}

/// A `ttlInSeconds` Dapr refuses is INVALID_ARGUMENT ERR_MALFORMED_REQUEST;
/// `9223372036854775807` used to panic the in-memory store (the stream
/// was reset without a status).
#[tokio::test]
async fn ttls_dapr_refuses_are_invalid_argument() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    for ttl in ["9223372036854775807", "-2", "soon"] {
        let mut state = item("k", b"v", None);
        state.metadata = [("ttlInSeconds".to_string(), ttl.to_string())].into();
        let status = c
            .save_state(save("statestore", vec![state]))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{ttl}: {status:?}");
        assert_eq!(reason(&status), "ERR_MALFORMED_REQUEST");
    }
}

/// A 100 KB store name is refused with a short message: the whole name in
/// `grpc-message` overflowed the client's 16 KiB header limit, so the
/// client saw a protocol error instead of Dapr's status.
#[tokio::test]
async fn long_input_is_not_echoed_whole() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    let status = c
        .get_state(get(&"s".repeat(100_000), "k"))
        .await
        .expect_err("unknown store");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "DAPR_STATE_NOT_FOUND");
    assert!(status.message().len() < 1024, "{}", status.message().len());
}

/// `SetMetadata` adds an extended attribute that `GetMetadata` then
/// reports, with `daprRuntimeVersion` as daprd adds it; an empty key is
/// ignored; `appConnectionProperties` is daprd's for a sidecar without an
/// app, then what the runtime was told of its app.
#[tokio::test]
async fn set_metadata_and_full_get_metadata() {
    let s = Sidecar::start().await;
    let mut c = client(&s).await;
    for (key, value) in [("team", "payments"), ("team", "billing"), ("", "x")] {
        c.set_metadata(runtime::SetMetadataRequest {
            key: key.into(),
            value: value.into(),
        })
        .await
        .expect("set metadata");
    }
    let m = c
        .get_metadata(runtime::GetMetadataRequest {})
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(
        m.extended_metadata.get("team").map(String::as_str),
        Some("billing")
    );
    assert!(m.extended_metadata.contains_key("daprRuntimeVersion"));
    assert!(!m.extended_metadata.contains_key(""));
    let app = m
        .app_connection_properties
        .expect("appConnectionProperties");
    assert_eq!((app.port, app.protocol.as_str()), (0, "http"));
    let store = m
        .registered_components
        .iter()
        .find(|c| c.name == "statestore")
        .expect("statestore");
    assert!(store.capabilities.contains(&"ETAG".to_string()));

    s.runtime
        .set_app_connection(wasmdapr_runtime::api::AppConnectionProperties {
            port: 3000,
            protocol: "http".into(),
            channel_address: "127.0.0.1".into(),
            max_concurrency: 0,
            health: None,
        });
    let app = c
        .get_metadata(runtime::GetMetadataRequest {})
        .await
        .expect("metadata")
        .into_inner()
        .app_connection_properties
        .expect("appConnectionProperties");
    assert_eq!(
        (app.port, app.channel_address.as_str(), app.health),
        (3000, "127.0.0.1", None)
    );
}
