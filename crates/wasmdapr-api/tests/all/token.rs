//! The API token (`DAPR_API_TOKEN`) guards every route and every way of
//! naming an app: each HTTP route, the `dapr-app-id` header and the
//! `dapr-app-id:<id>@` basic-auth forms on any path (the exempt health paths
//! with any suffix or spelling included), and every gRPC method. Refused
//! requests answer 401 (gRPC `UNAUTHENTICATED`) and never reach the app,
//! which here is a real HTTP app behind a real [`HttpApp`] channel that
//! records every request it gets.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::invoke::{App, sidecar};
use crate::{Sidecar, TOKEN};

/// A sidecar of `myapp` requiring [`TOKEN`], connected to a recording app.
async fn guarded() -> (Sidecar, App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("myapp").await;
    let s = sidecar("myapp", dir.path(), Some(TOKEN)).await;
    let channel = app.channel(None);
    channel
        .wait_ready(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    s.runtime.set_app_channel(Arc::new(channel)).ok().unwrap();
    (s, app, dir)
}

/// Sends `method target` exactly as written (no client-side normalisation
/// of `..`, `%2F` or slashes) with `headers` and a small body, and returns
/// the status of the answer, bounded in time.
async fn raw(s: &Sidecar, method: &str, target: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: 2\r\n",
        s.http_addr
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n{}");
    let mut stream = tokio::net::TcpStream::connect(s.http_addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// Extra request headers of a case.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn basic_app_id(id: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("dapr-app-id:{id}"));
    format!("Basic {encoded}")
}

/// Every HTTP route, and every way of naming the app on any path, answers
/// 401 without the token and with a wrong one, and the app sees nothing;
/// the shutdown route does not stop the sidecar. Only `GET /v1.0/healthz`
/// and `GET /v1.0/healthz/outbound`, spelled exactly, pass without it; the
/// same invocation forms pass with the token, so the refusals are the
/// token's doing.
#[tokio::test]
async fn every_http_route_and_form_needs_the_token() {
    let (s, app, _dir) = guarded().await;
    let basic = basic_app_id("myapp");
    let header: &[(&str, &str)] = &[("dapr-app-id", "myapp")];
    let basic_auth: &[(&str, &str)] = &[("authorization", &basic)];
    let none: &[(&str, &str)] = &[];

    let mut cases: Vec<(&str, String, Headers)> = Vec::new();
    for (method, path) in [
        ("POST", "/v1.0/state/statestore"),
        ("PUT", "/v1.0/state/statestore"),
        ("GET", "/v1.0/state/statestore/k"),
        ("DELETE", "/v1.0/state/statestore/k"),
        ("POST", "/v1.0/state/statestore/bulk"),
        ("GET", "/v1.0/state/statestore/bulk"),
        ("POST", "/v1.0/state/statestore/transaction"),
        ("DELETE", "/v1.0/state/statestore/transaction"),
        ("POST", "/v1.0-alpha1/state/statestore/query"),
        ("GET", "/v1.0/invoke/myapp/method/x"),
        ("POST", "/v1.0/invoke/myapp/method/x"),
        ("DELETE", "/v1.0/invoke/myapp/method/a/b?c=d"),
        ("GET", "/v1.0/metadata"),
        ("PUT", "/v1.0/metadata/team"),
        ("PUT", "/v1.0/metadata/%2e%2e%2fhealthz"),
        ("POST", "/v1.0/publish/pubsub/orders"),
        ("PUT", "/v1.0/publish/pubsub/orders/nested/topic"),
        ("POST", "/v1.0/publish/pubsub/%2e%2e%2f%2e%2e%2fhealthz"),
        ("POST", "/v1.0/publish/bulk/pubsub/orders"),
        ("POST", "/v1.0-alpha1/publish/bulk/pubsub/orders"),
        ("POST", "/v1.0/shutdown"),
        // The health paths with other verbs.
        ("HEAD", "/v1.0/healthz"),
        ("POST", "/v1.0/healthz"),
        ("DELETE", "/v1.0/healthz/outbound"),
        ("GET", "/v1.0/unknown"),
    ] {
        cases.push((method, path.to_owned(), none));
    }
    // Paths that look like, start like or decode to the health endpoints,
    // each with the two ways of naming the app.
    for path in [
        "/v1.0/healthz/anything",
        "/v1.0/healthz/outbound/x",
        "/v1.0/healthz/../invoke/myapp/method/x",
        "/v1.0/healthz/%2e%2e/invoke/myapp/method/x",
        "/v1.0/healthz/",
        "/v1.0/healthz/outbound/",
        "/v1.0/healthz//",
        "//v1.0/healthz",
        "/v1.0//healthz",
        "/v1.0/healthz%2Foutbound",
        "/v1.0/%68ealthz",
        "/v1.0/healthz%2F..%2Finvoke",
        "/V1.0/HEALTHZ",
        "/v1.0/healthzz",
        "/v1.0/healthz;x",
        "/other/path",
    ] {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            cases.push((method, path.to_owned(), header));
            cases.push((method, path.to_owned(), basic_auth));
        }
    }
    // The absolute form of the request target.
    let absolute = format!("http://{}/v1.0/healthz/anything", s.http_addr);
    cases.push(("GET", absolute, header));

    for (method, target, headers) in &cases {
        let mut wrong = headers.to_vec();
        wrong.push(("dapr-api-token", "wrong-token"));
        for (label, headers) in [("no token", headers.to_vec()), ("wrong token", wrong)] {
            let status = raw(&s, method, target, &headers).await;
            assert_eq!(status, 401, "{method} {target} {headers:?} ({label})");
        }
    }
    assert!(
        app.seen().is_empty(),
        "the app was reached without the token: {:?}",
        app.seen()
    );

    // Still running (the refused shutdown did nothing); the exempt
    // endpoints answer without a token, with a query string too.
    for target in [
        "/v1.0/healthz",
        "/v1.0/healthz/outbound",
        "/v1.0/healthz?appid=myapp",
    ] {
        assert_eq!(raw(&s, "GET", target, none).await, 204, "{target}");
    }
    // With the token the same forms are invocations the app receives.
    let with_token = |mut h: Vec<(&'static str, String)>| {
        h.push(("dapr-api-token", TOKEN.to_owned()));
        h
    };
    for headers in [
        with_token(vec![("dapr-app-id", "myapp".to_owned())]),
        with_token(vec![("authorization", basic.clone())]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let status = raw(&s, "POST", "/v1.0/healthz/anything", &headers).await;
        assert_eq!(status, 201, "{headers:?}");
    }
    assert_eq!(app.seen().len(), 2);
    assert_eq!(app.seen()[0].uri, "/v1.0/healthz/anything");
}

/// Every method of the Dapr gRPC service (the 88 of `dapr.proto.runtime.v1`,
/// unary and streaming), unknown methods and services (health, reflection)
/// answer `UNAUTHENTICATED` without the token and with a wrong one, before
/// any decoding or routing; `InvokeService` never reaches the app. With the
/// token, a call gets past the check.
#[tokio::test]
async fn every_grpc_method_needs_the_token() {
    let (s, app, _dir) = guarded().await;
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = |path: String, token: Option<&'static str>| {
        let channel = channel.clone();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            let mut request = tonic::Request::new(());
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("dapr-api-token", token.parse().unwrap());
            }
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let path = http::uri::PathAndQuery::try_from(path).unwrap();
            grpc.unary(request, path, codec).await
        }
    };
    let mut paths: Vec<String> = DAPR_METHODS
        .iter()
        .map(|m| format!("/dapr.proto.runtime.v1.Dapr/{m}"))
        .collect();
    paths.extend(
        [
            "/dapr.proto.runtime.v1.Dapr/NoSuchMethod",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .map(str::to_owned),
    );
    for path in &paths {
        for token in [None, Some("wrong-token")] {
            let status = call(path.clone(), token).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{path} {token:?}: {status:?}"
            );
        }
    }
    // InvokeService with a real message and a wrong token.
    let mut client = dapr::dapr::proto::runtime::v1::dapr_client::DaprClient::new(channel.clone());
    let mut request = tonic::Request::new(dapr::dapr::proto::runtime::v1::InvokeServiceRequest {
        id: "myapp".into(),
        message: Some(dapr::dapr::proto::common::v1::InvokeRequest {
            method: "x".into(),
            ..Default::default()
        }),
    });
    request
        .metadata_mut()
        .insert("dapr-api-token", "wrong-token".parse().unwrap());
    let status = client.invoke_service(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // With the token the check passes (the empty message is then the
    // method's own business).
    let status = call(
        "/dapr.proto.runtime.v1.Dapr/NoSuchMethod".into(),
        Some(TOKEN),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    call(
        "/dapr.proto.runtime.v1.Dapr/GetMetadata".into(),
        Some(TOKEN),
    )
    .await
    .unwrap();
}

/// The methods of `dapr.proto.runtime.v1.Dapr` in the `dapr` crate 0.20.
const DAPR_METHODS: [&str; 88] = [
    "BatchQueryVectorsAlpha1",
    "BulkPublishEvent",
    "BulkPublishEventAlpha1",
    "ConverseAlpha1",
    "ConverseAlpha2",
    "CreateCollectionAlpha1",
    "CreateIndexAlpha1",
    "DecryptAlpha1",
    "DeleteBulkState",
    "DeleteCollectionAlpha1",
    "DeleteDocumentsAlpha1",
    "DeleteIndexAlpha1",
    "DeleteJob",
    "DeleteJobAlpha1",
    "DeleteJobsByPrefix",
    "DeleteJobsByPrefixAlpha1",
    "DeleteState",
    "DeleteVectorsAlpha1",
    "EncryptAlpha1",
    "ExecuteActorStateTransaction",
    "ExecuteStateTransaction",
    "GetActorReminder",
    "GetActorState",
    "GetBulkSecret",
    "GetBulkState",
    "GetCollectionAlpha1",
    "GetConfiguration",
    "GetConfigurationAlpha1",
    "GetDocumentsAlpha1",
    "GetIndexAlpha1",
    "GetJob",
    "GetJobAlpha1",
    "GetMetadata",
    "GetSecret",
    "GetState",
    "GetVectorsAlpha1",
    "GetWorkflowAlpha1",
    "GetWorkflowBeta1",
    "IndexDocumentsAlpha1",
    "InvokeActor",
    "InvokeBinding",
    "InvokeService",
    "ListActorReminders",
    "ListCollectionsAlpha1",
    "ListIndexesAlpha1",
    "ListJobs",
    "ListJobsAlpha1",
    "PauseWorkflowAlpha1",
    "PauseWorkflowBeta1",
    "PublishEvent",
    "PurgeWorkflowAlpha1",
    "PurgeWorkflowBeta1",
    "QueryStateAlpha1",
    "QueryVectorsAlpha1",
    "RaiseEventWorkflowAlpha1",
    "RaiseEventWorkflowBeta1",
    "RegisterActorReminder",
    "RegisterActorTimer",
    "ResumeWorkflowAlpha1",
    "ResumeWorkflowBeta1",
    "SaveState",
    "ScheduleJob",
    "ScheduleJobAlpha1",
    "SearchAlpha1",
    "SetMetadata",
    "Shutdown",
    "StartWorkflowAlpha1",
    "StartWorkflowBeta1",
    "SubscribeConfiguration",
    "SubscribeConfigurationAlpha1",
    "SubscribeTopicEventsAlpha1",
    "SubtleDecryptAlpha1",
    "SubtleEncryptAlpha1",
    "SubtleGetKeyAlpha1",
    "SubtleSignAlpha1",
    "SubtleUnwrapKeyAlpha1",
    "SubtleVerifyAlpha1",
    "SubtleWrapKeyAlpha1",
    "TerminateWorkflowAlpha1",
    "TerminateWorkflowBeta1",
    "TryLockAlpha1",
    "UnlockAlpha1",
    "UnregisterActorReminder",
    "UnregisterActorRemindersByType",
    "UnregisterActorTimer",
    "UnsubscribeConfiguration",
    "UnsubscribeConfigurationAlpha1",
    "UpsertVectorsAlpha1",
];
