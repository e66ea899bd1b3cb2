//! The caller id an app sees cannot be forged: the public APIs always name
//! their own app as the caller, and the internal endpoint between sidecars
//! names only the app of a client certificate of the trust bundle, refusing
//! every other peer and never forwarding a call. Real sidecars (HTTP, gRPC
//! and internal servers over real runtimes), real apps behind real
//! [`HttpApp`](wasmdapr_api::HttpApp) channels that record what they get,
//! and real certificates issued with rcgen.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use wasmdapr_api::InternalClient;
use wasmdapr_api::internal::{
    CALL_LOCAL_PATH, CertificateAuthority, InternalInvokeRequest, InternalInvokeResponse,
    ListStringValue,
};
use wasmdapr_runtime::{AppId, InvokeRequest, RemoteInvoker};

use crate::invoke::{App, sidecar, sidecar_as};
use crate::{Sidecar, TOKEN};

const HOUR: Duration = Duration::from_secs(3600);

fn id(name: &str) -> AppId {
    AppId::new(name).unwrap()
}

/// A sidecar of `name` connected to a recording app of the same name.
async fn with_app(name: &'static str, dir: &std::path::Path) -> (Sidecar, App) {
    let app = App::start(name).await;
    let s = sidecar(name, dir, Some(TOKEN)).await;
    let channel = app.channel(None);
    channel
        .wait_ready(Some(Duration::from_secs(5)))
        .await
        .unwrap();
    s.runtime.set_app_channel(Arc::new(channel)).ok().unwrap();
    (s, app)
}

/// The caller and callee ids the app saw last.
fn ids(app: &App) -> (String, String) {
    let seen = app.seen();
    let last = seen.last().expect("the app saw a request");
    let header = |name| {
        let values: Vec<_> = last.headers.get_all(name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].to_str().unwrap().to_owned()
    };
    (header("dapr-caller-app-id"), header("dapr-callee-app-id"))
}

/// A client of the public APIs that sends `dapr-caller-app-id` and
/// `dapr-callee-app-id` does not choose the caller the app sees: on HTTP
/// (by path and by `dapr-app-id` header) and gRPC, to the own app and to
/// another app through its sidecar, the app sees the app of the sidecar
/// the client called. Sending to another sidecar's public API what a hop
/// used to look like does not make it a forwarded call either.
#[tokio::test]
async fn forged_caller_ids_on_the_public_apis_do_not_reach_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let (checkout, checkout_app) = with_app("checkout", dir.path()).await;
    let (billing, billing_app) = with_app("billing", dir.path()).await;
    let forged = [
        ("dapr-caller-app-id", "admin"),
        ("dapr-callee-app-id", "billing"),
    ];

    // HTTP, by path, to the own app and to the other app.
    for (target, app, expected) in [
        ("checkout", &checkout_app, ("checkout", "checkout")),
        ("billing", &billing_app, ("checkout", "billing")),
    ] {
        let mut request = checkout
            .client
            .post(checkout.url(&format!("/v1.0/invoke/{target}/method/pay")))
            .header("dapr-api-token", TOKEN);
        for (name, value) in forged {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 201, "{target}");
        let (caller, callee) = ids(app);
        assert_eq!((caller.as_str(), callee.as_str()), expected, "{target}");
    }

    // HTTP, by `dapr-app-id` header.
    let response = checkout
        .client
        .post(checkout.url("/pay"))
        .header("dapr-api-token", TOKEN)
        .header("dapr-app-id", "billing")
        .header("dapr-caller-app-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(ids(&billing_app), ("checkout".into(), "billing".into()));

    // What a hop between sidecars used to be: a call on billing's public
    // API naming another caller and billing as the callee.
    let response = billing
        .client
        .post(billing.url("/v1.0/invoke/billing/method/pay"))
        .header("dapr-api-token", TOKEN)
        .header("dapr-caller-app-id", "checkout")
        .header("dapr-callee-app-id", "billing")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(ids(&billing_app), ("billing".into(), "billing".into()));

    // gRPC InvokeService, to the own app and to the other app.
    let mut grpc = DaprClient::connect(checkout.grpc.clone()).await.unwrap();
    for (target, app, expected) in [
        ("checkout", &checkout_app, ("checkout", "checkout")),
        ("billing", &billing_app, ("checkout", "billing")),
    ] {
        let mut request =
            tonic::Request::new(dapr::dapr::proto::runtime::v1::InvokeServiceRequest {
                id: target.into(),
                message: Some(common::InvokeRequest {
                    method: "pay".into(),
                    http_extension: Some(common::HttpExtension {
                        verb: 3,
                        querystring: String::new(),
                    }),
                    ..Default::default()
                }),
            });
        let metadata = request.metadata_mut();
        metadata.insert("dapr-api-token", TOKEN.parse().unwrap());
        for (name, value) in forged {
            metadata.insert(name, value.parse().unwrap());
        }
        grpc.invoke_service(request).await.unwrap();
        let (caller, callee) = ids(app);
        assert_eq!(
            (caller.as_str(), callee.as_str()),
            expected,
            "gRPC {target}"
        );
    }
}

/// A call of the internal endpoint `addr` with `config`, as a sidecar (or
/// an impostor) would make it: `CallLocal` of `method` for `callee`.
async fn call_local(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
    callee: &str,
) -> Result<InternalInvokeResponse, String> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let connect = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from("dapr-internal").unwrap();
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(connect)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| format!("ready: {e:?}"))?;
    let request = InternalInvokeRequest {
        ver: 1,
        metadata: [(
            "dapr-callee-app-id".to_owned(),
            ListStringValue {
                values: vec![callee.to_owned()],
            },
        )]
        .into(),
        message: Some(common::InvokeRequest {
            method: "pay".into(),
            http_extension: Some(common::HttpExtension {
                verb: 3,
                querystring: String::new(),
            }),
            ..Default::default()
        }),
    };
    let codec = tonic_prost::ProstCodec::<InternalInvokeRequest, InternalInvokeResponse>::default();
    grpc.unary(
        tonic::Request::new(request),
        http::uri::PathAndQuery::from_static(CALL_LOCAL_PATH),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
    .map_err(|status| format!("{status:?}"))
}

/// Accepts any server certificate: lets a test reach the server's own
/// checks of the client (a real sidecar checks the server too).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client without a client certificate.
fn anonymous() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// The internal endpoint delivers a call from a sidecar of the trust
/// bundle as from the app of its certificate, whatever the call's headers
/// say; it refuses a peer with no client certificate, with a certificate
/// of another trust bundle, with an expired certificate of its own bundle,
/// and one speaking plain text; none of them reaches the app.
#[tokio::test]
async fn internal_endpoint_accepts_only_sidecars_of_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (billing, billing_app) = with_app("billing", dir.path()).await;
    let addr = billing.internal_addr.unwrap();
    let bundle = CertificateAuthority::local(&dir.path().join("trust"), "public").unwrap();
    let billing_id = bundle
        .identity("default", &id("billing"), HOUR)
        .unwrap()
        .peer(&id("billing"));

    // No client certificate.
    let err = call_local(addr, anonymous(), "billing").await.unwrap_err();
    assert!(!err.is_empty());
    // Another trust bundle (the server's anchors trusted, so only the
    // server's check can fail).
    let other = CertificateAuthority::generate("public", HOUR).unwrap();
    let stranger = other
        .issue("default", &id("checkout"), HOUR)
        .unwrap()
        .identity(bundle.cert_pem())
        .unwrap();
    let err = call_local(
        addr,
        stranger.client_config(billing_id.clone()).unwrap(),
        "billing",
    )
    .await
    .unwrap_err();
    assert!(!err.is_empty());
    // The right bundle, expired.
    let now = SystemTime::now();
    let expired = bundle
        .issue_between("default", &id("checkout"), now - 2 * HOUR, now - HOUR)
        .unwrap()
        .identity(bundle.cert_pem())
        .unwrap();
    let err = call_local(
        addr,
        expired.client_config(billing_id.clone()).unwrap(),
        "billing",
    )
    .await
    .unwrap_err();
    assert!(!err.is_empty());
    // Plain text.
    let mut plain = DaprClient::connect(format!("http://{addr}")).await;
    if let Ok(client) = plain.as_mut() {
        let status = client
            .get_metadata(dapr::dapr::proto::runtime::v1::GetMetadataRequest {})
            .await
            .unwrap_err();
        assert_ne!(status.code(), tonic::Code::Ok);
    }
    assert!(
        billing_app.seen().is_empty(),
        "an unauthenticated peer reached the app: {:?}",
        billing_app.seen()
    );

    // A valid certificate of the bundle: delivered as from its app, the
    // forged caller header notwithstanding.
    let checkout = bundle.identity("default", &id("checkout"), HOUR).unwrap();
    let mut request = InvokeRequest::new(http::Method::POST, "pay");
    request
        .headers
        .insert("dapr-caller-app-id", "admin".parse().unwrap());
    request
        .headers
        .insert("dapr-callee-app-id", "billing".parse().unwrap());
    let client = InternalClient::new(checkout.clone(), 1 << 20);
    let answer = client
        .invoke(&addr.to_string(), &id("billing"), request)
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(ids(&billing_app), ("checkout".into(), "billing".into()));
    // The same through the test's own client, so the refusals above are
    // not artefacts of it.
    let ok = call_local(addr, checkout.client_config(billing_id).unwrap(), "billing")
        .await
        .unwrap();
    assert_eq!(ok.status.unwrap().code, 201);
    assert_eq!(billing_app.seen().len(), 2);
}

/// The internal endpoint delivers only to its own app: a call meant for
/// another app is refused, and that app's sidecar (registered in the same
/// name resolution) never hears of it. A client also refuses a server that
/// is not the app it meant to call (a stale address now serving another
/// app), before sending anything.
#[tokio::test]
async fn internal_endpoint_never_forwards_and_the_callee_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (billing, billing_app) = with_app("billing", dir.path()).await;
    let (_shipping, shipping_app) = with_app("shipping", dir.path()).await;
    let bundle = CertificateAuthority::local(&dir.path().join("trust"), "public").unwrap();
    let checkout = bundle.identity("default", &id("checkout"), HOUR).unwrap();
    let addr = billing.internal_addr.unwrap();

    let err = call_local(
        addr,
        checkout
            .client_config(checkout.peer(&id("billing")))
            .unwrap(),
        "shipping",
    )
    .await
    .unwrap_err();
    assert!(err.contains("stale"), "{err}");
    assert!(shipping_app.seen().is_empty());
    assert!(billing_app.seen().is_empty());

    let client = InternalClient::new(checkout, 1 << 20);
    let err = client
        .invoke(
            &addr.to_string(),
            &id("shipping"),
            InvokeRequest::new(http::Method::POST, "pay"),
        )
        .await
        .unwrap_err();
    assert!(
        err.reason.contains("spiffe://public/ns/default/billing"),
        "{err}"
    );
    assert!(shipping_app.seen().is_empty());
    assert!(billing_app.seen().is_empty());
}

/// Two sidecars with certificates of a bundle made as `wasmdapr certs`
/// makes one (not the machine-local default) invoke each other both ways,
/// and each app sees the other as its caller.
#[tokio::test]
async fn sidecars_of_a_generated_bundle_name_the_true_caller() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("example.org", HOUR).unwrap();
    let apps = [App::start("orders").await, App::start("stock").await];
    let mut sidecars = Vec::new();
    for (name, app) in ["orders", "stock"].into_iter().zip(&apps) {
        let identity = ca.identity("prod", &id(name), HOUR).unwrap();
        assert_eq!(
            identity.id.to_string(),
            format!("spiffe://example.org/ns/prod/{name}")
        );
        let s = sidecar_as(identity, dir.path(), None).await;
        s.runtime
            .set_app_channel(Arc::new(app.channel(None)))
            .ok()
            .unwrap();
        sidecars.push(s);
    }
    for (from, to, app) in [(0, "stock", &apps[1]), (1, "orders", &apps[0])] {
        let s = &sidecars[from];
        let response = s
            .client
            .post(s.url(&format!("/v1.0/invoke/{to}/method/check")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{to}");
        let caller = ["orders", "stock"][from];
        assert_eq!(ids(app), (caller.to_owned(), to.to_owned()));
    }
}
