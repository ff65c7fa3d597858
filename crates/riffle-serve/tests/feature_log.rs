//! The feature log end to end over a real embedded store and real HTTP: values pushed at
//! chosen ages are read through `/v1` and Feast's API with `sample_rate = 1.0`, the server
//! is stopped gracefully, and the Parquet files read back hold exactly what the answers
//! said (values, statuses, ages, event times, the feature service). Then a log that cannot
//! keep up (a one-record queue) and cannot write (its folder is a file): every request
//! still answers 200, and `/metrics` counts the drops and the write errors. Stream groups'
//! watermarks: `feature_log_watermark.rs`.

mod common;
mod feature_log_support;

use std::collections::BTreeMap;
use std::time::Duration;

use feature_log_support::{read_log, Row};
use riffle_core::{Timestamp, ValueStatus};
use riffle_serve::api::feast::feast_status;
use serde_json::{json, Value};

fn registry_text(logging: &str) -> String {
    format!(
        r#"
[serve]
max_batch = 200

[serve.logging]
{logging}

[[entities]]
name = "user"
join_key = "user_id"

[[feature_groups]]
name = "profile"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
staleness_limit = "10m"
features = [
  {{ name = "age", type = "int64", default = 0 }},
  {{ name = "score", type = "float64", default = 0.5 }},
  {{ name = "tier", type = "string", default = "none" }},
]

[[feature_groups]]
name = "flags"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
staleness_limit = "10m"
features = [
  {{ name = "premium", type = "bool", default = false }},
  {{ name = "emb", type = "float_vector", dimension = 2, default = [0.0, 0.0] }},
]

[[feature_services]]
name = "svc"
features = ["profile:score", "flags"]
"#
    )
}

fn ago(ms: i64) -> String {
    Timestamp::from_millis(Timestamp::now().millis() - ms)
        .expect("in range")
        .to_rfc3339()
}
type Answer = BTreeMap<(String, String, String), (Value, String)>;

/// (id, group, feature) → (value, status) of a `/v1` answer; checks the group-level fields
/// of `logged` against it on the way.
fn v1_answer(body: &Value, logged: &[Row]) -> Answer {
    let mut out = Answer::new();
    for result in body["results"].as_array().expect("results") {
        let id = result["id"].as_str().expect("id");
        for g in result["groups"].as_array().expect("groups") {
            let group = g["group"].as_str().expect("group");
            for row in logged.iter().filter(|r| r.id == id && r.group == group) {
                assert_eq!(row.group_status, g["status"], "{row:?}");
                assert_eq!(
                    row.age_ms.map(|a| a as u64),
                    g["age_ms"].as_u64(),
                    "{row:?}"
                );
                let event_ts = g["event_timestamp"]
                    .as_str()
                    .map(|t| Timestamp::parse(t).expect("rfc3339").millis());
                assert_eq!(row.event_ts, event_ts, "{row:?}");
            }
            for (feature, v) in g["features"].as_object().expect("features") {
                out.insert(
                    (id.into(), group.into(), feature.clone()),
                    (
                        v["value"].clone(),
                        v["status"].as_str().expect("status").into(),
                    ),
                );
            }
        }
    }
    out
}

/// The same of a Feast answer, for features `refs` (`group:feature`, in request order);
/// statuses are Feast's.
fn feast_answer(body: &Value, refs: &[&str]) -> Answer {
    let results = body["results"].as_array().expect("results");
    let ids: Vec<&str> = results[0]["values"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("string id"))
        .collect();
    let mut out = Answer::new();
    for (column, r) in results[1..].iter().zip(refs) {
        let (group, feature) = r.split_once(':').expect("group:feature");
        for (e, id) in ids.iter().enumerate() {
            out.insert(
                ((*id).into(), group.into(), feature.into()),
                (
                    column["values"][e].clone(),
                    column["statuses"][e].as_str().expect("status").into(),
                ),
            );
        }
    }
    out
}

fn logged_answer(rows: &[Row], feast: bool) -> Answer {
    rows.iter()
        .map(|r| {
            let status = if feast {
                let s = ValueStatus::ALL
                    .into_iter()
                    .find(|s| s.as_str() == r.status)
                    .expect("a known status");
                feast_status(s).to_owned()
            } else {
                r.status.clone()
            };
            (
                (r.id.clone(), r.group.clone(), r.feature.clone()),
                (r.value.clone(), status),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_value_served_to_a_sampled_entity_is_logged_as_answered() {
    let log = tempfile::tempdir().expect("tempdir");
    let dir = log.path().join("served");
    let registry = common::registry_from(&registry_text(&format!(
        "sample_rate = 1.0\npath = {:?}\nrotate_rows = 7",
        dir.display().to_string()
    )));
    let s = common::embedded(registry, Default::default()).await;
    let started = Timestamp::now().millis();

    // u1 fresh, u2 stale (2 min > 1 min SLO), u3 expired (20 min > 10 min), u_new missing.
    let rows = json!([
        {"id": "u1", "event_timestamp": ago(1_000), "features": {"age": 31, "score": 0.25, "tier": "gold"}},
        {"id": "u2", "event_timestamp": ago(120_000), "features": {"age": 40, "score": 0.75, "tier": "silver"}},
        {"id": "u3", "event_timestamp": ago(1_200_000), "features": {"age": 50, "score": 0.125, "tier": "bronze"}},
    ]);
    let (status, body) = s
        .post("/v1/push", &json!({"group": "profile", "rows": rows}))
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = json!([{"id": "u1", "features": {"premium": true, "emb": [0.5, -1.5]}}]);
    let (status, body) = s
        .post("/v1/push", &json!({"group": "flags", "rows": rows}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Four answered reads: (endpoint, service, answer, rows it logs).
    let mut answers: Vec<(&str, Option<&str>, Answer, Value)> = Vec::new();
    let (status, get) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 200, "{get}");
    answers.push(("/v1/features/{entity}/{id}", None, Answer::new(), get));
    let (status, batch) = s
        .post(
            "/v1/features",
            &json!({"entity": "user", "ids": ["u1", "u2", "u3", "u_new"], "features": ["profile:score", "flags:premium"]}),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    answers.push(("/v1/features", None, Answer::new(), batch));
    let refs = ["profile:age", "profile:tier", "flags:emb"];
    let (status, feast) = s
        .post(
            "/get-online-features",
            &json!({"features": refs, "entities": {"user_id": ["u1", "u2", "u3", "u_new"]}}),
        )
        .await;
    assert_eq!(status, 200, "{feast}");
    answers.push((
        "/get-online-features",
        None,
        feast_answer(&feast, &refs),
        feast,
    ));
    let (status, svc) = s
        .post(
            "/get-online-features",
            &json!({"feature_service": "svc", "entities": {"user_id": ["u2", "u1"]}, "full_feature_names": true}),
        )
        .await;
    assert_eq!(status, 200, "{svc}");
    assert_eq!(
        svc["metadata"]["feature_names"],
        json!(["user_id", "profile__score", "flags__premium", "flags__emb"])
    );
    let svc_refs = ["profile:score", "flags:premium", "flags:emb"];
    answers.push((
        "/get-online-features",
        Some("svc"),
        feast_answer(&svc, &svc_refs),
        svc,
    ));

    // Graceful stop: the open file is completed; nothing partial is left.
    s.stop().await;
    let finished = Timestamp::now().millis();
    let (paths, logged) = read_log(&dir);
    for p in &paths {
        let name = p.file_name().expect("name").to_string_lossy();
        assert!(
            name.starts_with("served-") && name.ends_with(".parquet"),
            "{name}"
        );
    }
    // 5 + 4×2 + 4×3 + 2×3 rows, 7 to a file.
    assert_eq!(logged.len(), 31);
    assert_eq!(paths.len(), 5, "{paths:?}");

    // The log is in request order: each request's rows are the next ones.
    let sizes = [5, 8, 12, 6];
    let mut at = 0;
    for ((endpoint, service, feast_expected, body), n) in answers.into_iter().zip(sizes) {
        let rows = &logged[at..at + n];
        at += n;
        for r in rows {
            assert_eq!(r.endpoint, endpoint, "{r:?}");
            assert_eq!(r.service.as_deref(), service, "{r:?}");
            assert_eq!(
                r.request_time, rows[0].request_time,
                "one instant a request"
            );
            assert!((started..=finished).contains(&r.request_time), "{r:?}");
            // Groups without a source are aged by their rows' event time.
            assert_eq!(r.watermark, None);
            let expect_basis = r.event_ts.map(|_| "event_ts".to_owned());
            assert_eq!(r.basis, expect_basis, "{r:?}");
        }
        if endpoint.starts_with("/v1") {
            assert_eq!(
                logged_answer(rows, false),
                v1_answer(&body, rows),
                "{endpoint}"
            );
        } else {
            assert_eq!(logged_answer(rows, true), feast_expected, "{endpoint}");
        }
    }

    // What the rows say, beyond agreeing with the answers: every status was exercised.
    let status_of = |id: &str, feature: &str| {
        logged
            .iter()
            .find(|r| r.endpoint == "/v1/features" && r.id == id && r.feature == feature)
            .map(|r| (r.value.clone(), r.status.clone()))
            .expect("logged")
    };
    assert_eq!(status_of("u1", "score"), (json!(0.25), "fresh".into()));
    assert_eq!(status_of("u2", "score"), (json!(0.75), "stale".into()));
    assert_eq!(status_of("u3", "score"), (json!(0.5), "expired".into()));
    assert_eq!(
        status_of("u_new", "premium"),
        (json!(false), "missing".into())
    );
    let u2 = logged
        .iter()
        .find(|r| r.id == "u2" && r.group == "profile")
        .expect("u2");
    assert!(u2.age_ms.expect("aged") >= 120_000, "{u2:?}");
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn a_log_that_cannot_keep_up_or_write_never_fails_a_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The log's folder is a file: every write fails. A one-record queue: most are dropped.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"x").expect("write");
    let registry = common::registry_from(&registry_text(&format!(
        "sample_rate = 1.0\npath = {:?}\nqueue = 1",
        blocked.display().to_string()
    )));
    let s = common::embedded(registry, Default::default()).await;
    let ids: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    for _ in 0..5 {
        let (status, body) = s
            .post("/v1/features", &json!({"entity": "user", "ids": ids}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"].as_array().expect("results").len(), 200);
        let (status, body) = s
            .post(
                "/get-online-features",
                &json!({"feature_service": "svc", "entities": {"user_id": ids}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // The writer tries once a second; its failure is counted, not raised.
    let mut text = String::new();
    for _ in 0..50 {
        let resp = s
            .client
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        text = resp.text().await.expect("text");
        if metric(&text, "riffle_feature_log_write_errors_total") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metric(&text, "riffle_feature_log_write_errors_total") > 0,
        "{text}"
    );
    let queue_full = metric(
        &text,
        "riffle_feature_log_dropped_rows_total{reason=\"queue_full\"}",
    );
    let write_failed = metric(
        &text,
        "riffle_feature_log_dropped_rows_total{reason=\"write_failed\"}",
    );
    assert!(queue_full > 0, "{text}");
    assert!(write_failed > 0, "{text}");
    assert_eq!(metric(&text, "riffle_feature_log_files_total"), 0);
    assert_eq!(metric(&text, "riffle_feature_log_rows_total"), 0);
    // Every row offered is either dropped or still with the writer (≤ 5 × (200×5 + 200×3)).
    assert!(queue_full + write_failed <= 5 * (200 * 5 + 200 * 3));

    // Serving goes on, and a graceful stop still ends cleanly.
    let (status, _) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 200);
    s.stop().await;
    assert!(blocked.is_file(), "the file in the way is left alone");
}
