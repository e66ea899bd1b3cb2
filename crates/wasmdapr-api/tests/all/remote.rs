//! `RemoteDapr` against a real gRPC sidecar: every operation returns what
//! the local runtime returns — values, ETag semantics and errors — so a host
//! forwarding to another sidecar is indistinguishable from a local one.

use std::sync::Arc;

use wasmdapr_api::{ApiConfig, RemoteDapr};
use wasmdapr_runtime::api::prelude::*;
use wasmdapr_runtime::state::{
    Concurrency, DeleteRequest, GetRequest, Operation, SetRequest, StateOptions,
};

use crate::{Sidecar, TOKEN, usual_specs};

fn set(key: &str, value: &str) -> SetRequest {
    SetRequest {
        key: key.into(),
        value: value.into(),
        ..SetRequest::default()
    }
}

fn get(key: &str) -> GetRequest {
    GetRequest {
        key: key.into(),
        ..GetRequest::default()
    }
}

/// The same script of calls gives the same answers locally and through the
/// remote client: round trip, ETags, first-write, bulk, transaction, query,
/// and the error of each failure (code, status, kind).
#[tokio::test]
async fn remote_calls_behave_like_local_calls() {
    let sidecar = Sidecar::start().await;
    let remote = RemoteDapr::connect(&sidecar.grpc, None).await.unwrap();
    let local: Arc<dyn DaprApi> = sidecar.runtime.clone();
    for (api, tag) in [
        (local, "local"),
        (Arc::new(remote) as Arc<dyn DaprApi>, "remote"),
    ] {
        let k = |name: &str| format!("{tag}-{name}");
        api.save_state("statestore", vec![set(&k("weapon"), "\"Death Star\"")])
            .await
            .unwrap();
        let got = api
            .get_state("statestore", get(&k("weapon")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.data, b"\"Death Star\"", "{tag}");
        let etag = got.etag.clone().unwrap();
        assert!(
            api.get_state("statestore", get(&k("missing")))
                .await
                .unwrap()
                .is_none(),
            "{tag}"
        );

        api.save_state(
            "statestore",
            vec![SetRequest {
                etag: Some(etag.clone()),
                ..set(&k("weapon"), "2")
            }],
        )
        .await
        .unwrap();
        let stale = api
            .save_state(
                "statestore",
                vec![SetRequest {
                    etag: Some(etag.clone()),
                    ..set(&k("weapon"), "3")
                }],
            )
            .await
            .unwrap_err();
        assert_eq!(
            (stale.code(), stale.http_status()),
            ("ERR_STATE_SAVE", 409),
            "{tag}"
        );

        let first_write = SetRequest {
            options: StateOptions {
                concurrency: Concurrency::FirstWrite,
                ..StateOptions::default()
            },
            ..set(&k("weapon"), "4")
        };
        let err = api
            .save_state("statestore", vec![first_write])
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 409, "{tag}");

        let bulk = api
            .get_bulk_state(
                "statestore",
                vec![k("weapon"), k("missing")],
                2,
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(bulk[0].value.as_ref().unwrap().data, b"2", "{tag}");
        assert!(bulk[1].value.is_none(), "{tag}");

        api.transact_state(
            "statestore",
            vec![
                Operation::Upsert(set(&k("planet"), r#"{"name":"Tatooine","test":123}"#)),
                Operation::Delete(DeleteRequest {
                    key: k("weapon"),
                    ..DeleteRequest::default()
                }),
            ],
            Default::default(),
        )
        .await
        .unwrap();
        assert!(
            api.get_state("statestore", get(&k("weapon")))
                .await
                .unwrap()
                .is_none(),
            "{tag}"
        );

        let query = serde_json::json!({"filter": {"EQ": {"name": "Tatooine"}}});
        let found = api
            .query_state("statestore", query, Default::default())
            .await
            .unwrap();
        assert!(found.results.iter().any(|r| r.key == k("planet")), "{tag}");

        for (store, code, status) in [
            ("nope", "ERR_STATE_STORE_NOT_FOUND", 400),
            ("scoped", "ERR_STATE_STORE_NOT_FOUND", 400),
        ] {
            let err = api.get_state(store, get("x")).await.unwrap_err();
            assert_eq!(
                (err.code(), err.http_status()),
                (code, status),
                "{tag} {store}"
            );
            assert!(err.message.contains(store), "{tag}: {}", err.message);
        }
        let err = api
            .transact_state(
                "notx",
                vec![Operation::Upsert(set("a", "b"))],
                Default::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("ERR_STATE_STORE_NOT_SUPPORTED", 500),
            "{tag}"
        );

        api.set_metadata(&format!("set-by-{tag}"), tag)
            .await
            .unwrap();
        let metadata = api.metadata().await.unwrap();
        assert_eq!(metadata.id, crate::APP_ID, "{tag}");
        assert_eq!(
            metadata
                .extended
                .get(&format!("set-by-{tag}"))
                .map(String::as_str),
            Some(tag),
            "{tag}"
        );
        assert_eq!(metadata.app_connection.protocol, "http", "{tag}");
        assert!(
            metadata.components.iter().any(|c| c.name == "statestore"),
            "{tag}"
        );
    }
}

/// The client sends the API token, and without it the sidecar's refusal
/// comes back as the same unauthorized error.
#[tokio::test]
async fn remote_sends_the_api_token() {
    let config = ApiConfig {
        api_token: Some(TOKEN.into()),
        ..ApiConfig::default()
    };
    let sidecar = Sidecar::start_with(usual_specs(), config).await;
    let with = RemoteDapr::connect(&sidecar.grpc, Some(TOKEN))
        .await
        .unwrap();
    with.save_state("statestore", vec![set("k", "v")])
        .await
        .unwrap();
    let without = RemoteDapr::connect(&sidecar.grpc, None).await.unwrap();
    let err = without.get_state("statestore", get("k")).await.unwrap_err();
    assert_eq!(err.grpc_code(), wasmdapr_runtime::GrpcCode::Unauthenticated);
}

/// An endpoint nobody listens on fails at connect, naming it.
#[tokio::test]
async fn unreachable_endpoint_fails_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let err = RemoteDapr::connect(&endpoint, None)
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains(&endpoint), "{err}");
}
