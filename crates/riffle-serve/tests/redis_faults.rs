//! Fault tests against a real `redis-server`: SIGKILL under load, SIGSTOP (hang), restart
//! and recovery, and an unsafe group failing during the outage. No mocks.
//!
//! Timing assertions are deliberately generous (the box is a noisy 2-core machine): a
//! request must answer within 1 s while the store timeout is 100 ms; recovery is polled
//! against a deadline.

mod common;

use std::time::{Duration, Instant};

use riffle_store::StoreUrl;
use riffle_testkit::RedisServer;
use serde_json::{json, Value};

async fn start(redis: &RedisServer) -> common::Server {
    let url = StoreUrl::parse(&redis.url()).expect("redis url");
    // The cache off, so every request meets the store (and the breaker).
    common::start(
        common::registry("serve.toml"),
        &url,
        common::Options {
            cache: false,
            token: None,
        },
    )
    .await
}

async fn seed(s: &common::Server) {
    let (status, body) = s
        .post(
            "/v1/push",
            &json!({"group": "user_velocity", "rows": [
                {"id": "u1", "features": {"tx_count_1h": 3, "tx_sum_1h": 42.5}},
                {"id": "u2", "features": {"tx_count_1h": 5, "tx_sum_1h": 7.0}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .post(
            "/v1/push",
            &json!({"group": "user_embeddings", "rows": [
                {"id": "u1", "features": {"user_embedding": [0.5, 0.5]}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn velocity_read() -> Value {
    json!({"entity": "user", "ids": ["u1", "u2"], "groups": ["user_velocity"]})
}

/// Polls `/v1/features` until the velocity group is healthy again, or the deadline passes.
async fn wait_healthy(s: &common::Server, deadline: Duration) -> Value {
    let until = Instant::now() + deadline;
    loop {
        let (status, body) = s.post("/v1/features", &velocity_read()).await;
        if status == 200 && body["degradation"] == "healthy" {
            return body;
        }
        assert!(
            Instant::now() < until,
            "not healthy again in time: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_serves_defaults_opens_the_breaker_and_recovers() {
    let mut redis = RedisServer::start().expect("redis starts");
    let s = start(&redis).await;
    seed(&s).await;
    let body = wait_healthy(&s, Duration::from_secs(2)).await;
    assert_eq!(
        body["results"][0]["groups"][0]["features"]["tx_count_1h"]["value"],
        3
    );

    // Load: concurrent readers in a loop while Redis dies.
    let client = s.client.clone();
    let url = s.url("/v1/features");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let stop = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < stop {
                    let resp = client
                        .post(&url)
                        .json(&velocity_read())
                        .send()
                        .await
                        .expect("answer");
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().await.expect("JSON");
                    seen.push((status, body));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.kill();
    let mut after_kill = 0;
    for task in load {
        for (status, body) in task.await.expect("load task") {
            assert_eq!(status, 200, "every request answers 200: {body}");
            let level = body["degradation"].as_str().expect("level");
            assert!(level == "healthy" || level == "degraded", "{body}");
            if level == "degraded" {
                after_kill += 1;
                for r in body["results"].as_array().expect("results") {
                    let f = &r["groups"][0]["features"];
                    assert_eq!(
                        f["tx_count_1h"],
                        json!({"value": 0, "status": "unavailable"})
                    );
                    assert_eq!(
                        f["tx_sum_1h"],
                        json!({"value": 0.0, "status": "unavailable"})
                    );
                }
            }
        }
    }
    assert!(after_kill > 0, "some requests ran after the kill");

    let (_, health) = s.get("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["reachable"], false, "{health}");
    assert_ne!(health["breaker"]["state"], "closed", "{health}");
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("riffle_breaker_transitions_total{from=\"closed\",to=\"open\"}"),
        "{metrics}"
    );
    assert!(metrics
        .contains("riffle_values_served_total{group=\"user_velocity\",status=\"unavailable\"}"));

    // Restart (data lost, as after a real crash): rewrite, then healthy within the reset
    // timeout plus slack.
    redis.restart().expect("redis restarts");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = s
            .post(
                "/v1/push",
                &json!({"group": "user_velocity", "rows": [
                {"id": "u1", "features": {"tx_count_1h": 4, "tx_sum_1h": 1.0}},
                {"id": "u2", "features": {"tx_count_1h": 6, "tx_sum_1h": 2.0}}]}),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < until, "writes never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = wait_healthy(&s, Duration::from_secs(5)).await;
    assert_eq!(
        body["results"][0]["groups"][0]["features"]["tx_count_1h"]["value"],
        4
    );
    let (_, health) = s.get("/health").await;
    assert_eq!(health["breaker"]["state"], "closed", "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_answers_within_the_timeout_and_resume_recovers() {
    let mut redis = RedisServer::start().expect("redis starts");
    let s = start(&redis).await;
    seed(&s).await;
    wait_healthy(&s, Duration::from_secs(2)).await;

    redis.pause();
    for _ in 0..8 {
        let started = Instant::now();
        let (status, body) = s.post("/v1/features", &velocity_read()).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["degradation"], "degraded", "{body}");
        assert_eq!(
            body["results"][0]["groups"][0]["features"]["tx_count_1h"]["status"],
            "unavailable"
        );
        assert!(
            took < Duration::from_secs(1),
            "request took {took:?} with Redis hung"
        );
    }
    let (_, health) = s.get("/health").await;
    assert_eq!(health["breaker"]["state"], "open", "{health}");

    redis.resume();
    // The data survived the pause: healthy values come back within the reset timeout.
    let body = wait_healthy(&s, Duration::from_secs(5)).await;
    assert_eq!(
        body["results"][1]["groups"][0]["features"]["tx_count_1h"]["value"],
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_group_fails_with_503_during_the_outage() {
    let mut redis = RedisServer::start().expect("redis starts");
    let s = start(&redis).await;
    seed(&s).await;
    let (status, body) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degradation"], "healthy", "{body}");

    redis.kill();
    let (status, body) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unsafe_to_serve");
    assert_eq!(body["error"]["group"], "user_embeddings");
    assert_eq!(body["degradation"], "critical");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("unavailable"));
    // The same through the Feast API.
    let (status, body) = s
        .post("/get-online-features", &json!({"features": ["user_embeddings:user_embedding"], "entities": {"user_id": ["u1"]}}))
        .await;
    assert_eq!(status, 503, "{body}");
    // Groups that may serve defaults still answer 200.
    let (status, body) = s.get("/v1/features/user/u1?groups=user_velocity").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degradation"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_sheds_with_503() {
    let mut redis = RedisServer::start().expect("redis starts");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/serve.toml"),
    )
    .expect("registry")
    .replace(
        "max_concurrent_requests = 64",
        "max_concurrent_requests = 1",
    );
    let url = StoreUrl::parse(&redis.url()).expect("redis url");
    let s = common::start(
        common::registry_from(&text),
        &url,
        common::Options {
            cache: false,
            token: None,
        },
    )
    .await;
    // A hung store holds each request for the store timeout, so concurrent ones overlap.
    redis.pause();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let client = s.client.clone();
            let url = s.url("/v1/features");
            tokio::spawn(async move {
                let resp = client
                    .post(&url)
                    .json(&velocity_read())
                    .send()
                    .await
                    .expect("answer");
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.expect("JSON"))
            })
        })
        .collect();
    let mut shed = 0;
    for r in requests {
        let (status, body) = r.await.expect("task");
        match status {
            200 => {}
            503 => {
                assert_eq!(body["error"]["code"], "overloaded", "{body}");
                shed += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(shed > 0, "at least one request was shed");
    // Probes are never shed.
    let (status, _) = s.get("/health").await;
    assert_eq!(status, 200);
    redis.resume();
}
