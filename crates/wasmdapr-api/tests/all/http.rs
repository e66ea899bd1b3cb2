//! The Dapr HTTP API, status by status and error code by error code.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmdapr_api::ApiConfig;

use crate::{Sidecar, TOKEN, spec, usual_specs};

/// Asserts a Dapr error answer: its status and `errorCode`; returns the message.
async fn assert_error(response: Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "status of {code}");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["errorCode"], code, "body: {body}");
    body["message"].as_str().expect("message").to_owned()
}

async fn save(s: &Sidecar, store: &str, body: Value) -> Response {
    s.client
        .post(s.url(&format!("/v1.0/state/{store}")))
        .json(&body)
        .send()
        .await
        .expect("save")
}

async fn get(s: &Sidecar, store: &str, key: &str) -> Response {
    s.client
        .get(s.url(&format!("/v1.0/state/{store}/{key}")))
        .send()
        .await
        .expect("get")
}

/// A string value is saved as its JSON text, read back byte for byte with
/// an ETag, and a missing key answers 204 with no body.
#[tokio::test]
async fn save_then_get_round_trips_with_etag() {
    let s = Sidecar::start().await;
    // A raw body: `json!` would sort the object's keys before sending.
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore"))
        .body(r#"[{"key":"planet","value":"Death Star"},{"key":"obj","value":{"b":1,"a":[true]}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = get(&s, "statestore", "planet").await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(!etag.is_empty());
    assert_eq!(r.bytes().await.unwrap(), "\"Death Star\"");

    let r = get(&s, "statestore", "obj").await;
    assert_eq!(r.text().await.unwrap(), r#"{"b":1,"a":[true]}"#);

    let r = get(&s, "statestore", "nothing-here").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());

    // PUT is the same as POST.
    let r = s
        .client
        .put(s.url("/v1.0/state/statestore"))
        .json(&json!([{"key": "planet", "value": 42}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&s, "statestore", "planet").await.text().await.unwrap(),
        "42"
    );
}

/// A string with a non-JSON `contentType` is stored as raw text.
#[tokio::test]
async fn non_json_content_type_stores_raw_text() {
    let s = Sidecar::start().await;
    let r = save(
        &s,
        "statestore",
        json!([{"key": "k", "value": "plain words", "metadata": {"contentType": "text/plain"}}]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&s, "statestore", "k").await.text().await.unwrap(),
        "plain words"
    );
}

/// `ttlInSeconds` metadata is honoured and the expiry comes back as the
/// `metadata.ttlExpireTime` header, as Dapr sends it.
#[tokio::test]
async fn ttl_expiry_is_a_metadata_header() {
    let s = Sidecar::start().await;
    let r = save(
        &s,
        "statestore",
        json!([{"key": "k", "value": 1, "metadata": {"ttlInSeconds": "3600"}}]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = get(&s, "statestore", "k").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().contains_key("metadata.ttlExpireTime"),
        "headers: {:?}",
        r.headers()
    );
}

/// A stale ETag is 409 ERR_STATE_SAVE, an unparseable one 400
/// ERR_STATE_SAVE, and the current one succeeds.
#[tokio::test]
async fn etags_are_checked_on_save() {
    let s = Sidecar::start().await;
    save(&s, "statestore", json!([{"key": "k", "value": 1}])).await;
    let etag = get(&s, "statestore", "k").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    save(&s, "statestore", json!([{"key": "k", "value": 2}])).await;

    let stale = save(
        &s,
        "statestore",
        json!([{"key": "k", "value": 3, "etag": etag}]),
    )
    .await;
    assert_error(stale, 409, "ERR_STATE_SAVE").await;

    let invalid = save(
        &s,
        "statestore",
        json!([{"key": "k", "value": 3, "etag": "not-a-version"}]),
    )
    .await;
    assert_error(invalid, 400, "ERR_STATE_SAVE").await;

    let current = get(&s, "statestore", "k").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let ok = save(
        &s,
        "statestore",
        json!([{"key": "k", "value": 3, "etag": current}]),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&s, "statestore", "k").await.text().await.unwrap(), "3");
}

/// First-write concurrency without an ETag refuses to overwrite: 409.
#[tokio::test]
async fn first_write_conflict_is_409() {
    let s = Sidecar::start().await;
    let first = json!([{"key": "k", "value": 1, "options": {"concurrency": "first-write", "consistency": "strong"}}]);
    assert_eq!(save(&s, "statestore", first.clone()).await.status(), 204);
    assert_error(save(&s, "statestore", first).await, 409, "ERR_STATE_SAVE").await;
    let bad = json!([{"key": "k", "value": 1, "options": {"concurrency": "sometimes"}}]);
    assert_error(
        save(&s, "statestore", bad).await,
        400,
        "ERR_MALFORMED_REQUEST",
    )
    .await;
}

/// DELETE honours `If-Match`: a stale ETag is 409 ERR_STATE_DELETE, the
/// current one deletes (204), and the key is gone.
#[tokio::test]
async fn delete_with_if_match() {
    let s = Sidecar::start().await;
    save(&s, "statestore", json!([{"key": "k", "value": 1}])).await;
    let etag = get(&s, "statestore", "k").await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = s.url("/v1.0/state/statestore/k");
    let stale = s
        .client
        .delete(&url)
        .header("If-Match", "999")
        .send()
        .await
        .unwrap();
    assert_error(stale, 409, "ERR_STATE_DELETE").await;
    let r = s
        .client
        .delete(format!(
            "{url}?concurrency=first-write&consistency=eventual&metadata.x=y"
        ))
        .header("If-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&s, "statestore", "k").await.status(), 204);
}

/// An unknown store and a store scoped to another app are both 400
/// ERR_STATE_STORE_NOT_FOUND, on every state route.
#[tokio::test]
async fn unknown_and_scoped_out_stores_are_not_found() {
    let s = Sidecar::start().await;
    for store in ["nope", "scoped"] {
        let r = save(&s, store, json!([{"key": "k", "value": 1}])).await;
        assert_error(r, 400, "ERR_STATE_STORE_NOT_FOUND").await;
        assert_error(get(&s, store, "k").await, 400, "ERR_STATE_STORE_NOT_FOUND").await;
        let r = s
            .client
            .post(s.url(&format!("/v1.0/state/{store}/bulk")))
            .json(&json!({"keys": ["k"]}))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "ERR_STATE_STORE_NOT_FOUND").await;
    }
}

/// With no state store at all, state calls are 500 ERR_STATE_STORE_NOT_CONFIGURED.
#[tokio::test]
async fn no_stores_is_not_configured() {
    let s = Sidecar::start_with(Vec::new(), ApiConfig::default()).await;
    let r = save(&s, "statestore", json!([{"key": "k", "value": 1}])).await;
    assert_error(r, 500, "ERR_STATE_STORE_NOT_CONFIGURED").await;
    assert_error(
        get(&s, "statestore", "k").await,
        500,
        "ERR_STATE_STORE_NOT_CONFIGURED",
    )
    .await;
}

/// Bodies that are not JSON, not an array, or have an empty key are 400
/// ERR_MALFORMED_REQUEST, and nothing of a partly bad batch is written.
#[tokio::test]
async fn malformed_bodies_are_400() {
    let s = Sidecar::start().await;
    let url = s.url("/v1.0/state/statestore");
    for body in [
        "{not json",
        r#"{"key":"k","value":1}"#,
        r#"[{"key":"","value":1}]"#,
        r#"[{"value":1}]"#,
        r#"[{"key":"good","value":1},{"key":"","value":2}]"#,
    ] {
        let r = s.client.post(&url).body(body).send().await.unwrap();
        let message = assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
        assert!(!message.is_empty());
    }
    assert_eq!(get(&s, "statestore", "good").await.status(), 204);
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore/transaction"))
        .body(r#"{"operations":[{"operation":"merge","request":{"key":"k"}}]}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
}

/// Bulk get answers one item per key: JSON data as stored, raw text as a
/// JSON string, missing keys without data.
#[tokio::test]
async fn bulk_get_returns_items() {
    let s = Sidecar::start().await;
    save(
        &s,
        "statestore",
        json!([
            {"key": "a", "value": {"n": 1}},
            {"key": "b", "value": "hello"},
            {"key": "t", "value": "raw text", "metadata": {"contentType": "text/plain"}}
        ]),
    )
    .await;
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore/bulk"))
        .json(&json!({"keys": ["a", "b", "t", "missing"], "parallelism": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let items: Vec<Value> = r.json().await.unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["key"], "a");
    assert_eq!(items[0]["data"], json!({"n": 1}));
    assert!(items[0]["etag"].is_string());
    assert_eq!(items[1]["data"], "hello");
    assert_eq!(items[2]["data"], "raw text");
    assert_eq!(items[3], json!({"key": "missing"}));
}

/// A transaction upserts and deletes atomically (204); on a store without
/// transactions it is 500 ERR_STATE_STORE_NOT_SUPPORTED.
#[tokio::test]
async fn transactions() {
    let s = Sidecar::start().await;
    save(&s, "statestore", json!([{"key": "old", "value": 1}])).await;
    let tx = json!({
        "operations": [
            {"operation": "upsert", "request": {"key": "new", "value": {"x": 1}}},
            {"operation": "delete", "request": {"key": "old"}}
        ],
        "metadata": {"partitionKey": "p"}
    });
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore/transaction"))
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&s, "statestore", "new").await.text().await.unwrap(),
        r#"{"x":1}"#
    );
    assert_eq!(get(&s, "statestore", "old").await.status(), 204);

    let r = s
        .client
        .post(s.url("/v1.0/state/notx/transaction"))
        .json(&tx)
        .send()
        .await
        .unwrap();
    assert_error(r, 500, "ERR_STATE_STORE_NOT_SUPPORTED").await;
}

/// The query API filters, sorts and pages JSON values; a store without
/// queries is 500 ERR_STATE_STORE_NOT_SUPPORTED.
#[tokio::test]
async fn query_state() {
    let s = Sidecar::start().await;
    save(
        &s,
        "statestore",
        json!([
            {"key": "1", "value": {"state": "CA", "n": 1}},
            {"key": "2", "value": {"state": "WA", "n": 2}},
            {"key": "3", "value": {"state": "CA", "n": 3}}
        ]),
    )
    .await;
    let query = json!({
        "filter": {"EQ": {"state": "CA"}},
        "sort": [{"key": "n", "order": "DESC"}],
        "page": {"limit": 1}
    });
    let r = s
        .client
        .post(s.url("/v1.0-alpha1/state/statestore/query"))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"][0]["key"], "3");
    assert_eq!(body["results"][0]["data"], json!({"state": "CA", "n": 3}));
    assert!(body["results"][0]["etag"].is_string());
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert!(body["token"].is_string(), "body: {body}");

    let r = s
        .client
        .put(s.url("/v1.0-alpha1/state/notx/query"))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_error(r, 500, "ERR_STATE_STORE_NOT_SUPPORTED").await;
}

/// With a token configured, requests without it or with a wrong one are
/// 401 ERR_UNAUTHORIZED, the right one passes, and health checks need none.
#[tokio::test]
async fn api_token_is_required_except_for_health() {
    let s = Sidecar::with_token().await;
    let r = get(&s, "statestore", "k").await;
    assert_error(r, 401, "ERR_UNAUTHORIZED").await;
    let r = s
        .client
        .get(s.url("/v1.0/metadata"))
        .header("dapr-api-token", "wrong")
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "ERR_UNAUTHORIZED").await;
    let r = s
        .client
        .get(s.url("/v1.0/state/statestore/k"))
        .header("dapr-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
    }
}

/// Sends raw bytes and returns the status code of the answer, bounded in
/// time so a server that waits for a body it will never get fails the test.
async fn raw_status(s: &Sidecar, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(s.http_addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await
    .expect("the server answered in time");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// Bodies over `max_body_size` are 413 ERR_BODY_TOO_LARGE: a declared
/// length is refused before any body byte is sent, a chunked body is cut
/// off, and a body at the limit passes.
#[tokio::test]
async fn oversize_bodies_are_413() {
    let config = ApiConfig {
        max_body_size: 1024,
        ..ApiConfig::default()
    };
    let s = Sidecar::start_with(usual_specs(), config).await;
    let big = format!(r#"[{{"key":"k","value":"{}"}}]"#, "x".repeat(2000));
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "ERR_BODY_TOO_LARGE").await;

    // Headers only, claiming 10 GB: answered without waiting for the body.
    let status = raw_status(
        &s,
        b"POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);

    // Chunked, no length: cut off once past the limit.
    let mut chunked =
        b"POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(format!("400\r\n{}\r\n", "y".repeat(1024)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_status(&s, &chunked).await, 413);

    let small = format!(r#"[{{"key":"k","value":"{}"}}]"#, "x".repeat(900));
    let r = s
        .client
        .post(s.url("/v1.0/state/statestore"))
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// `GET /v1.0/metadata` has Dapr's shape: id, runtimeVersion,
/// enabledFeatures, and the app's components (scoped-out ones hidden) with
/// their capabilities.
#[tokio::test]
async fn metadata_has_dapr_shape() {
    let s = Sidecar::start().await;
    let r = s.client.get(s.url("/v1.0/metadata")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["id"], crate::APP_ID);
    assert!(m["runtimeVersion"].is_string());
    assert_eq!(m["enabledFeatures"], json!([]));
    assert!(m["extended"].is_object());
    let components = m["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"statestore") && names.contains(&"notx"));
    assert!(
        !names.contains(&"scoped"),
        "scoped-out store listed: {names:?}"
    );
    let store = components
        .iter()
        .find(|c| c["name"] == "statestore")
        .unwrap();
    assert_eq!(store["type"], "state.in-memory");
    assert_eq!(store["version"], "v1");
    let caps = store["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("ETAG")) && caps.contains(&json!("TRANSACTIONAL")));
}

/// `PUT /v1.0/metadata/{key}` takes the raw body as the attribute's value
/// (204); `GET /v1.0/metadata` reports it under `extended`, beside
/// `daprRuntimeVersion`, and `appConnectionProperties` leaves out what the
/// sidecar does not have, as daprd's `omitempty` does, then shows the app's
/// connection with its health checks.
#[tokio::test]
async fn put_metadata_and_app_connection() {
    let s = Sidecar::start().await;
    for value in ["payments", "billing and \"more\""] {
        let r = s
            .client
            .put(s.url("/v1.0/metadata/team"))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let r = s
        .client
        .put(s.url("/v1.0/metadata/binary"))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
    let m = get_metadata(&s).await;
    assert_eq!(m["extended"]["team"], "billing and \"more\"");
    assert!(m["extended"]["daprRuntimeVersion"].is_string());
    assert!(m["extended"].get("binary").is_none());
    assert_eq!(m["appConnectionProperties"], json!({"protocol": "http"}));
    assert_eq!(m["actors"], json!([]));
    assert_eq!(m["subscriptions"], json!([]));
    assert_eq!(m["httpEndpoints"], json!([]));

    s.runtime
        .set_app_connection(wasmdapr_runtime::api::AppConnectionProperties {
            port: 3000,
            protocol: "http".into(),
            channel_address: "127.0.0.1".into(),
            max_concurrency: 8,
            health: Some(wasmdapr_runtime::api::AppHealthProperties::new(
                "/healthz",
                std::time::Duration::from_secs(5),
                std::time::Duration::from_millis(500),
                3,
            )),
        });
    let m = get_metadata(&s).await;
    assert_eq!(
        m["appConnectionProperties"],
        json!({
            "port": 3000,
            "protocol": "http",
            "channelAddress": "127.0.0.1",
            "maxConcurrency": 8,
            "health": {
                "healthCheckPath": "/healthz",
                "healthProbeInterval": "5s",
                "healthProbeTimeout": "500ms",
                "healthThreshold": 3
            }
        })
    );
}

async fn get_metadata(s: &Sidecar) -> Value {
    let r = s.client.get(s.url("/v1.0/metadata")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Unknown paths are 404 with a JSON error naming the path.
#[tokio::test]
async fn unknown_paths_are_404() {
    let s = Sidecar::start().await;
    let r = s.client.get(s.url("/v1.0/nothing")).send().await.unwrap();
    let message = assert_error(r, 404, "ERR_NOT_FOUND").await;
    assert!(message.contains("/v1.0/nothing"));
}

/// Keys named like the fixed routes (`bulk`, `transaction`) can still be
/// read and deleted.
#[tokio::test]
async fn keys_named_like_routes() {
    let s = Sidecar::start().await;
    save(&s, "statestore", json!([{"key": "bulk", "value": 1}])).await;
    assert_eq!(
        get(&s, "statestore", "bulk").await.text().await.unwrap(),
        "1"
    );
    let r = s
        .client
        .delete(s.url("/v1.0/state/statestore/bulk"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&s, "statestore", "bulk").await.status(), 204);
}

/// `POST /v1.0/shutdown` answers 204, then the runtime is asked to shut
/// down and the HTTP server stops.
#[tokio::test]
async fn shutdown_answers_then_stops() {
    let s = Sidecar::start().await;
    let r = s.client.post(s.url("/v1.0/shutdown")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    tokio::time::timeout(Duration::from_secs(10), s.runtime.shutdown_requested())
        .await
        .expect("shutdown requested");
    let served = tokio::time::timeout(Duration::from_secs(10), s.http_task)
        .await
        .expect("server stopped");
    assert!(served.unwrap().is_ok());
}

/// Health checks answer 204 without a token configured too.
#[tokio::test]
async fn health_is_204() {
    let s = Sidecar::start_with(
        vec![spec("statestore", "state.in-memory", &[])],
        ApiConfig::default(),
    )
    .await;
    let r = s.client.get(s.url("/v1.0/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// A `ttlInSeconds` Dapr refuses is 400 ERR_MALFORMED_REQUEST and writes
/// nothing, in a save and in a transaction; `9223372036854775807` used to
/// overflow the in-memory store's clock (a panic, the connection dropped).
/// -1, empty and `MaxInt32` are accepted, as Dapr's `ParseTTL` accepts them.
#[tokio::test]
async fn ttls_dapr_refuses_are_400() {
    let s = Sidecar::start().await;
    for ttl in ["9223372036854775807", "2147483648", "-2", "soon", "1e3"] {
        let item = json!([{"key": "k", "value": 1, "metadata": {"ttlInSeconds": ttl}}]);
        let r = save(&s, "statestore", item).await;
        let message = assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
        assert!(message.contains("ttlInSeconds"), "{message}");
        let transaction = json!({"operations": [{"operation": "upsert",
            "request": {"key": "k", "value": 1, "metadata": {"ttlInSeconds": ttl}}}]});
        let r = s
            .client
            .post(s.url("/v1.0/state/statestore/transaction"))
            .json(&transaction)
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
    }
    assert_eq!(get(&s, "statestore", "k").await.status(), 204);
    for ttl in ["-1", "", "2147483647"] {
        let item = json!([{"key": "k", "value": 1, "metadata": {"ttlInSeconds": ttl}}]);
        let r = save(&s, "statestore", item).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "ttlInSeconds {ttl:?}");
    }
}

/// Client input quoted in an error is cut short: a 100 KB key or a 30 KB
/// store name gives a message of a few hundred bytes, not the input back.
#[tokio::test]
async fn long_input_is_not_echoed_whole() {
    let s = Sidecar::start().await;
    let key = format!("{}||x", "k".repeat(100_000));
    let r = save(&s, "statestore", json!([{"key": key, "value": 1}])).await;
    let message = assert_error(r, 400, "ERR_MALFORMED_REQUEST").await;
    assert!(message.len() < 1024, "a message of {} bytes", message.len());
    let store = "s".repeat(30_000);
    let message = assert_error(get(&s, &store, "k").await, 400, "ERR_STATE_STORE_NOT_FOUND").await;
    assert!(message.len() < 1024, "a message of {} bytes", message.len());
    let path = format!("/{}", "p".repeat(30_000));
    let r = s.client.get(s.url(&path)).send().await.unwrap();
    let message = assert_error(r, 404, "ERR_NOT_FOUND").await;
    assert!(message.len() < 1024, "a message of {} bytes", message.len());
}
