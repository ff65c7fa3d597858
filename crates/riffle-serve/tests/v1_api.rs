//! Riffle's own `/v1` API, `/health`, `/metrics` and `/openapi.json` over a real embedded
//! store: values with statuses, degradation levels, stale and expired rows, batches,
//! the unsafe policy for expired values, the cache seeing pushed rows.

mod common;

use riffle_core::Timestamp;
use serde_json::{json, Value};

async fn server() -> common::Server {
    common::embedded(common::registry("serve.toml"), Default::default()).await
}

fn ago(ms: i64) -> String {
    Timestamp::from_millis(Timestamp::now().millis() - ms)
        .expect("in range")
        .to_rfc3339()
}

async fn push(s: &common::Server, group: &str, rows: Value) {
    let (status, body) = s
        .post("/v1/push", &json!({"group": group, "rows": rows}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn single_entity_get_with_statuses_and_degradation() {
    let s = server().await;
    // Read once before the push: the negative answer must not hide the pushed row.
    let (status, body) = s.get("/v1/features/user/u1?groups=user_velocity").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degradation"], "degraded");
    assert_eq!(body["results"][0]["groups"][0]["status"], "missing");
    assert_eq!(
        body["results"][0]["groups"][0]["features"]["tx_count_1h"],
        json!({"value": 0, "status": "missing"})
    );

    push(
        &s,
        "user_velocity",
        json!([{"id": "u1", "features": {"tx_count_1h": 3, "tx_sum_1h": 42.5}}]),
    )
    .await;
    let (status, body) = s.get("/v1/features/user/u1?groups=user_velocity").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entity"], "user");
    assert_eq!(body["degradation"], "healthy");
    let r = &body["results"][0];
    assert_eq!(r["id"], "u1");
    assert_eq!(r["degradation"], "healthy");
    let g = &r["groups"][0];
    assert_eq!(g["group"], "user_velocity");
    assert_eq!(g["status"], "fresh");
    assert!(g["event_timestamp"].is_string());
    assert!(g["age_ms"].as_u64().is_some());
    assert_eq!(
        g["features"]["tx_count_1h"],
        json!({"value": 3, "status": "fresh"})
    );
    assert_eq!(
        g["features"]["tx_sum_1h"],
        json!({"value": 42.5, "status": "fresh"})
    );

    // Chosen features only.
    let (_, body) = s
        .get("/v1/features/user/u1?features=user_velocity:tx_sum_1h")
        .await;
    let features = body["results"][0]["groups"][0]["features"]
        .as_object()
        .expect("features");
    assert_eq!(features.len(), 1);
    assert!(features.contains_key("tx_sum_1h"));
}

#[tokio::test]
async fn batch_post_reads_every_group_when_none_chosen() {
    let s = server().await;
    push(
        &s,
        "user_velocity",
        json!([
            {"id": "fresh", "features": {"tx_count_1h": 1, "tx_sum_1h": 1.0}},
            {"id": "stale", "event_timestamp": ago(5 * 60_000), "features": {"tx_count_1h": 2, "tx_sum_1h": 2.0}},
            {"id": "nulls", "features": {"tx_count_1h": null, "tx_sum_1h": 3.0}}
        ]),
    )
    .await;
    push(
        &s,
        "user_embeddings",
        json!([
            {"id": "fresh", "features": {"user_embedding": [0.5, 0.25]}},
            {"id": "stale", "features": {"user_embedding": [1.0, 1.0]}},
            {"id": "nulls", "features": {"user_embedding": [1.0, 1.0]}}
        ]),
    )
    .await;
    let (status, body) = s
        .post(
            "/v1/features",
            &json!({"entity": "user", "ids": ["fresh", "stale", "nulls"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degradation"], "degraded");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["degradation"], "healthy");
    assert_eq!(results[0]["groups"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        results[0]["groups"][1]["features"]["user_embedding"]["value"],
        json!([0.5, 0.25])
    );
    assert_eq!(results[1]["degradation"], "stale");
    assert_eq!(results[1]["groups"][0]["status"], "stale");
    assert_eq!(
        results[1]["groups"][0]["features"]["tx_count_1h"],
        json!({"value": 2, "status": "stale"})
    );
    // A stored null serves the training default with status null.
    assert_eq!(results[2]["degradation"], "degraded");
    assert_eq!(
        results[2]["groups"][0]["features"]["tx_count_1h"],
        json!({"value": 0, "status": "null"})
    );
    assert_eq!(
        results[2]["groups"][0]["features"]["tx_sum_1h"],
        json!({"value": 3.0, "status": "fresh"})
    );
}

#[tokio::test]
async fn expired_values_serve_defaults_or_fail_for_unsafe_groups() {
    let s = server().await;
    push(
        &s,
        "user_velocity",
        json!([{"id": "old", "event_timestamp": ago(20 * 60_000),
        "features": {"tx_count_1h": 9, "tx_sum_1h": 9.0}}]),
    )
    .await;
    let (status, body) = s.get("/v1/features/user/old?groups=user_velocity").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["groups"][0]["features"]["tx_count_1h"],
        json!({"value": 0, "status": "expired"})
    );
    assert_eq!(body["degradation"], "degraded");

    push(
        &s,
        "user_embeddings",
        json!([{"id": "old", "event_timestamp": ago(20 * 60_000),
        "features": {"user_embedding": [1.0, 2.0]}}]),
    )
    .await;
    let (status, body) = s.get("/v1/features/user/old").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unsafe_to_serve");
    assert_eq!(body["error"]["group"], "user_embeddings");
    assert_eq!(body["degradation"], "critical");

    // A missing row of an unsafe group is the store's answer, not an outage: defaults.
    let (status, body) = s
        .get("/v1/features/user/newcomer?groups=user_embeddings")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["groups"][0]["status"], "missing");
}

#[tokio::test]
async fn int64_keys_accept_numbers() {
    let s = server().await;
    push(
        &s,
        "account_limits",
        json!([{"id": 42, "features": {"limit": 5.5}}]),
    )
    .await;
    let (status, body) = s
        .post(
            "/v1/features",
            &json!({"entity": "account", "ids": [42, "42"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["groups"][0]["features"]["limit"]["value"],
        5.5
    );
    assert_eq!(
        body["results"][1]["groups"][0]["features"]["limit"]["value"],
        5.5
    );
    let (status, _) = s.get("/v1/features/account/42").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let s = server().await;
    push(
        &s,
        "user_velocity",
        json!([{"id": "u1", "features": {"tx_count_1h": 1, "tx_sum_1h": 1.0}}]),
    )
    .await;
    for _ in 0..3 {
        let (status, _) = s.get("/v1/features/user/u1?groups=user_velocity").await;
        assert_eq!(status, 200);
    }
    let (status, health) = s.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["store"]["kind"], "embedded");
    assert_eq!(health["store"]["reachable"], true);
    assert_eq!(health["breaker"]["state"], "closed");
    assert_eq!(health["cache"]["enabled"], true);
    assert!(
        health["cache"]["hit_rate"].as_f64().expect("hit rate") > 0.0,
        "{health}"
    );
    let velocity = health["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == "user_velocity")
        .expect("group");
    assert_eq!(velocity["freshness"], "fresh");

    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "riffle_http_requests_total{endpoint=\"/v1/features/{entity}/{id}\",method=\"GET\",status_class=\"2xx\"} 3",
        "riffle_values_served_total{group=\"user_velocity\",status=\"fresh\"}",
        "riffle_responses_total{endpoint=\"/v1/features/{entity}/{id}\",degradation=\"healthy\"} 3",
        "riffle_cache_hits_total",
        "riffle_breaker_state",
        "riffle_value_age_seconds_bucket",
        "riffle_store_call_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains("u1"), "an entity id leaked into metrics");

    // Every documented path answers (not 404) on the method the document gives.
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{entity}", "user").replace("{id}", "u1");
        for method in ops.as_object().expect("ops").keys() {
            let resp = match method.as_str() {
                "get" => s.client.get(s.url(&concrete)).send().await,
                "post" => s.client.post(s.url(&concrete)).body("{}").send().await,
                other => panic!("unexpected method {other}"),
            }
            .expect("request");
            assert_ne!(resp.status().as_u16(), 404, "{method} {path}");
            assert_ne!(resp.status().as_u16(), 405, "{method} {path}");
        }
    }
}

fn read_calls(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("riffle_store_call_duration_seconds_count{op=\"read\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_batch_is_one_store_call_and_the_cache_answers_repeats() {
    let s = common::embedded(common::registry("serve.toml"), Default::default()).await;
    let metrics = || async {
        s.client
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = read_calls(&metrics().await);
    let ids: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    let (status, _) = s
        .post("/v1/features", &json!({"entity": "user", "ids": ids}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        read_calls(&metrics().await),
        before + 1,
        "8 entities × 2 groups in one call"
    );
    // Negative caching: the same batch again is answered from the cache.
    let (status, body) = s
        .post("/v1/features", &json!({"entity": "user", "ids": ids}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][7]["groups"][0]["status"], "missing");
    assert_eq!(
        read_calls(&metrics().await),
        before + 1,
        "repeat served from the cache"
    );
}
