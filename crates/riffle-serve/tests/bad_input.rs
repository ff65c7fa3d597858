//! Bad input of every kind answers a 4xx with `{"error": {"code", "message"}}` naming the
//! problem — never a 5xx, never a panic. Also the bearer-token checks.

mod common;

use serde_json::{json, Value};

async fn server() -> common::Server {
    common::embedded(common::registry("serve.toml"), Default::default()).await
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, mention: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(mention),
        "{message:?} should mention {mention:?}"
    );
}

#[tokio::test]
async fn malformed_json_and_wrong_shapes() {
    let s = server().await;
    for path in [
        "/v1/features",
        "/get-online-features",
        "/v1/push",
        "/push",
        "/write-to-online-store",
    ] {
        let (status, text) = s.post_raw(path, b"{not json".to_vec()).await;
        let body: Value = serde_json::from_str(&text).expect("JSON error");
        assert_error(status, &body, 400, "malformed_json", "JSON");
        let (status, text) = s.post_raw(path, Vec::new()).await;
        let body: Value = serde_json::from_str(&text).expect("JSON error");
        assert_eq!(status, 400, "{path}: empty body: {body}");
        let (status, body) = s.post(path, &json!({"unexpected": 1})).await;
        assert!(status == 422 || status == 400, "{path}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, body) = s
        .post("/v1/features", &json!({"entity": "user", "ids": "u1"}))
        .await;
    assert_error(status, &body, 422, "invalid_request", "expected a sequence");
}

#[tokio::test]
async fn unknown_names() {
    let s = server().await;
    let (st, b) = s.get("/v1/features/nobody/u1").await;
    assert_error(st, &b, 404, "unknown_entity", "nobody");
    let (st, b) = s.get("/v1/features/user/u1?groups=nope").await;
    assert_error(st, &b, 404, "unknown_group", "nope");
    let (st, b) = s
        .get("/v1/features/user/u1?features=user_velocity:nope")
        .await;
    assert_error(st, &b, 404, "unknown_feature", "nope");
    let (st, b) = s.get("/v1/features/user/u1?features=justaname").await;
    assert_error(st, &b, 400, "bad_feature_ref", "justaname");
    let (st, b) = s.get("/v1/features/user/u1?colour=red").await;
    assert_eq!(st, 422, "{b}");
    // Selections are remembered by raw query: a refused one is refused again, and a good
    // one answered once answers the same for another entity kind of the same query.
    let (st, b) = s.get("/v1/features/user/u1?colour=red").await;
    assert_eq!(st, 422, "{b}");
    let (st, _) = s.get("/v1/features/user/u1?groups=user_velocity").await;
    assert_eq!(st, 200);
    let (st, b) = s.get("/v1/features/nobody/u1?groups=user_velocity").await;
    assert_error(st, &b, 404, "unknown_entity", "nobody");
    let (st, b) = s
        .post(
            "/get-online-features",
            &json!({"feature_service": "nope", "entities": {"user_id": ["u1"]}}),
        )
        .await;
    assert_error(st, &b, 404, "unknown_service", "nope");
    let (st, b) = s
        .post(
            "/get-online-features",
            &json!({"features": ["user_velocity:tx_count_1h"], "entities": {"customer": ["u1"]}}),
        )
        .await;
    assert_error(st, &b, 422, "invalid_request", "customer");
    let (st, b) = s
        .post(
            "/push",
            &json!({"push_source_name": "nope", "df": {"user_id": ["u1"]}}),
        )
        .await;
    assert_error(st, &b, 404, "unknown_push_source", "nope");
    let (st, b) = s
        .post(
            "/write-to-online-store",
            &json!({"feature_view_name": "nope", "df": {}}),
        )
        .await;
    assert_error(st, &b, 404, "unknown_group", "nope");
    let (st, b) = s
        .post("/v1/push", &json!({"group": "user_velocity", "rows": [{"id": "u1", "features": {"tx_count_1h": 1, "tx_sum_1h": 1.0, "extra": 1}}]}))
        .await;
    assert_error(st, &b, 404, "unknown_feature", "extra");
    let (st, b) = s.get("/no/such/route").await;
    assert_error(st, &b, 404, "not_found", "/no/such/route");
    let resp = s
        .client
        .delete(s.url("/v1/push"))
        .send()
        .await
        .expect("request");
    let (st, b) = common::decode(resp).await;
    assert_error(st, &b, 405, "method_not_allowed", "method");
}

#[tokio::test]
async fn wrong_key_types_and_absurd_ids() {
    let s = server().await;
    let (st, b) = s.get("/v1/features/account/abc").await;
    assert_error(st, &b, 400, "bad_entity_id", "int64");
    let (st, b) = s
        .post("/v1/features", &json!({"entity": "account", "ids": [1.5]}))
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "int64");
    let (st, b) = s
        .post("/v1/features", &json!({"entity": "user", "ids": [7]}))
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "string");
    let (st, b) = s
        .post(
            "/v1/features",
            &json!({"entity": "user", "ids": ["x".repeat(300)]}),
        )
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "256");
    let (st, b) = s
        .post(
            "/v1/features",
            &json!({"entity": "user", "ids": ["a\u{7}b"]}),
        )
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "control");
    let (st, b) = s
        .post("/v1/features", &json!({"entity": "user", "ids": [""]}))
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "empty");
    let (st, b) = s
        .post(
            "/get-online-features",
            &json!({"features": ["account_limits:limit"], "entities": {"account_id": ["ten"]}}),
        )
        .await;
    assert_error(st, &b, 400, "bad_entity_id", "int64");
    let (st, b) = s
        .post("/v1/push", &json!({"group": "user_velocity", "rows": [{"id": "u1", "features": {"tx_count_1h": "three", "tx_sum_1h": 1.0}}]}))
        .await;
    assert_error(st, &b, 400, "bad_value", "tx_count_1h");
    let (st, b) = s
        .post(
            "/push",
            &json!({"push_source_name": "nope", "df": {}, "to": "offline"}),
        )
        .await;
    assert_error(st, &b, 400, "unsupported", "offline");
}

#[tokio::test]
async fn empty_and_oversize_batches_and_bodies() {
    let s = server().await;
    let (st, b) = s
        .post("/v1/features", &json!({"entity": "user", "ids": []}))
        .await;
    assert_error(st, &b, 400, "empty_batch", "no entities");
    let ids: Vec<String> = (0..11).map(|i| format!("u{i}")).collect();
    let (st, b) = s
        .post("/v1/features", &json!({"entity": "user", "ids": ids}))
        .await;
    assert_error(st, &b, 400, "batch_too_large", "10");
    let (st, b) = s
        .post(
            "/get-online-features",
            &json!({"features": ["user_velocity:tx_count_1h"], "entities": {"user_id": ids}}),
        )
        .await;
    assert_error(st, &b, 400, "batch_too_large", "10");
    let big = format!(
        "{{\"entity\": \"user\", \"ids\": [\"{}\"]}}",
        "x".repeat(8000)
    );
    let (st, text) = s.post_raw("/v1/features", big.into_bytes()).await;
    let b: Value = serde_json::from_str(&text).expect("JSON error");
    assert_error(st, &b, 413, "body_too_large", "4096");
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_set() {
    let s = common::embedded(
        common::registry("serve.toml"),
        common::Options {
            token: Some("sekrit".into()),
            ..Default::default()
        },
    )
    .await;
    let body = json!({"group": "user_velocity", "rows": [{"id": "u1", "features": {"tx_count_1h": 1, "tx_sum_1h": 1.0}}]});
    for path in ["/v1/push", "/push", "/write-to-online-store"] {
        let (st, b) = s.post(path, &body).await;
        assert_error(st, &b, 401, "unauthorized", "token");
    }
    let resp = s
        .client
        .post(s.url("/v1/push"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = s
        .client
        .post(s.url("/v1/push"))
        .bearer_auth("sekrit")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    // Reads stay open unless the registry says otherwise.
    let (st, _) = s.get("/v1/features/user/u1").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn reads_need_the_token_when_the_registry_says_so() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/serve.toml"),
    )
    .expect("registry")
    .replace(
        "max_batch = 10",
        "max_batch = 10\nread_requires_token = true",
    );
    let s = common::embedded(
        common::registry_from(&text),
        common::Options {
            token: Some("sekrit".into()),
            ..Default::default()
        },
    )
    .await;
    let (st, b) = s.get("/v1/features/user/u1").await;
    assert_error(st, &b, 401, "unauthorized", "token");
    let (st, _) = s
        .post(
            "/get-online-features",
            &json!({"features": ["user_velocity:tx_count_1h"], "entities": {"user_id": ["u1"]}}),
        )
        .await;
    assert_eq!(st, 401);
    let resp = s
        .client
        .get(s.url("/v1/features/user/u1"))
        .bearer_auth("sekrit")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    // Health and metrics stay open for probes and scrapers.
    let (st, _) = s.get("/health").await;
    assert_eq!(st, 200);
}
