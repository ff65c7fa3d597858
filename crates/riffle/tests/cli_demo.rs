//! `riffle demo` smoke test: start it on a free port with a small population, wait for
//! `/health`, ask Feast's `/get-online-features` for a known and an unknown user (bulk-loaded
//! groups), watch the in-process generator → ingest pipeline move u0's stream-computed
//! velocity while its status stays `fresh`; run the `riffle training-set` and `riffle
//! validate` commands it offers over the history it kept and the values it logged (the
//! consistency validator passes on this honest live traffic, stream groups included);
//! then stop it with SIGTERM and expect a clean exit.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Running, TestCommand};
use serde_json::{json, Value};

async fn feast(client: &reqwest::Client, base: &str, ids: &[&str]) -> (u16, Value) {
    let body = json!({
        "features": ["user_historical:tx_count_24h", "user_profile:credit_score_bucket"],
        "entities": {"user_id": ids},
    });
    let resp = client
        .post(format!("{base}/get-online-features"))
        .json(&body)
        .send()
        .await
        .expect("the demo answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[test]
fn demo_serves_the_fraud_example_and_stops_cleanly() {
    let port = riffle_testkit::free_port();
    let mut cmd = TestCommand::new();
    let data = cmd.dir().join("data");
    let mut child = cmd
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--users",
            "2000",
            // A modest rate: the pipeline keeps up even on a busy debug build, so the
            // watermark stays within the velocity group's 30 s freshness SLO.
            "--rate",
            "300",
        ])
        .arg("--data")
        .arg(&data)
        .spawn();
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = Running(child);
    let printed = Arc::new(Mutex::new(String::new()));
    let sink = printed.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut all) = sink.lock() {
                all.push_str(&line);
                all.push('\n');
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(resp) = client.get(format!("{base}/health")).send().await {
                if resp.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no /health within 90 s; demo printed:\n{}",
                printed.lock().map(|s| s.clone()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let (status, body) = feast(&client, &base, &["u1", "u_new"]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["metadata"]["feature_names"],
            json!(["user_id", "tx_count_24h", "credit_score_bucket"])
        );
        let results = body["results"].as_array().expect("results is a list");
        assert_eq!(results.len(), 3, "{body}");
        assert_eq!(results[0]["values"], json!(["u1", "u_new"]));
        for column in &results[1..] {
            assert_eq!(column["statuses"][0], "PRESENT", "{body}");
            assert_eq!(column["statuses"][1], "NOT_FOUND", "{body}");
            assert!(column["values"][0].is_i64(), "{body}");
            assert_eq!(column["event_timestamps"].as_array().map(Vec::len), Some(2));
        }
        // u_new gets the training defaults.
        assert_eq!(results[1]["values"][1], 0);
        assert_eq!(results[2]["values"][1], 2);

        // The pipeline moves the most active user's velocity: tx_count_1h changes between
        // two reads a moment apart, and the value is fresh (the published watermark is
        // recent). No rate is asserted: only that it moves.
        let velocity = |body: &Value| {
            let g = &body["results"][0]["groups"][0];
            (
                g["status"].as_str().unwrap_or("").to_owned(),
                g["features"]["tx_count_1h"]["value"].as_i64(),
            )
        };
        let url = format!("{base}/v1/features/user/u0?groups=user_velocity");
        let mut seen: Option<i64> = None;
        let mut moved = None;
        for _ in 0..60 {
            let body: Value = client
                .get(&url)
                .send()
                .await
                .expect("the demo answers")
                .json()
                .await
                .expect("JSON");
            let (status, count) = velocity(&body);
            if status == "fresh" {
                match (seen, count) {
                    (Some(before), Some(now)) if now != before => {
                        moved = Some((before, now));
                        break;
                    }
                    (_, Some(now)) => seen = Some(now),
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (before, after) = moved.unwrap_or_else(|| {
            panic!("u0's tx_count_1h never moved while fresh (last seen {seen:?})")
        });
        assert!(after > 0 && before >= 0, "{before} -> {after}");

        // More values served (and logged): every group of a few users, active and not.
        for _ in 0..5 {
            let body = json!({"entity": "user", "ids": ["u0", "u1", "u2", "u7", "u1500", "u_new"]});
            let resp = client
                .post(format!("{base}/v1/features"))
                .json(&body)
                .send()
                .await
                .expect("the demo answers");
            assert_eq!(resp.status().as_u16(), 200);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        // The log completes a file every 10 s: the next one holds the reads above.
        let log = data.join("served-log");
        let before = completed_logs(&log);
        let deadline = Instant::now() + Duration::from_secs(30);
        while completed_logs(&log) <= before {
            assert!(
                Instant::now() < deadline,
                "no completed feature log in {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // The consistency validator the banner offers, on what was served: it passes.
    let printed_now = printed.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        printed_now.contains("riffle validate --config"),
        "{printed_now}"
    );
    let mut validate = TestCommand::new();
    validate
        .arg("validate")
        .arg("--config")
        .arg(data.join("riffle.toml"))
        .arg("--log")
        .arg(data.join("served-log"))
        .arg("--json");
    let (report, _) = validate.expect_code(0);
    let report: Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["not_checked"], json!([]), "{report:#}");
    let compared = |feature: &str| {
        report["features"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["feature"] == feature))
            .and_then(|f| f["compared"].as_u64())
            .unwrap_or(0)
    };
    for feature in [
        "user_velocity:tx_count_1h",
        "user_session:session_tx_count_30m",
        "user_profile:credit_score_bucket",
        "user_embeddings:user_embedding",
    ] {
        assert!(compared(feature) > 0, "{feature} not compared: {report:#}");
    }

    // The training set the banner offers, over the history the demo kept.
    assert!(
        printed_now.contains("riffle training-set --config"),
        "{printed_now}"
    );
    let out = data.join("training.parquet");
    let mut training = TestCommand::new();
    training
        .arg("training-set")
        .arg("--config")
        .arg(data.join("riffle.toml"))
        .arg("--spine")
        .arg(data.join("spine.csv"))
        .args([
            "--features",
            "user_velocity:tx_count_1h,user_session:session_tx_count_30m,user_profile:credit_score_bucket",
        ])
        .args(["--with-status", "--json", "--out"])
        .arg(&out);
    let (summary, _) = training.expect_code(0);
    let summary: Value = serde_json::from_str(&summary).expect("JSON");
    assert_eq!(summary["rows"], 600, "{summary}");
    assert_eq!(
        summary["sources"]["transactions"]["bad"]["counts"],
        json!({}),
        "{summary}"
    );
    let file = std::fs::File::open(&out).expect("the training set is written");
    let rows: usize =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .expect("Parquet")
            .map(|b| b.expect("a batch").num_rows())
            .sum();
    assert_eq!(rows, 600);

    let pid = running.0.id();
    riffle_testkit::signal(pid, "TERM").expect("the demo can be signalled");
    let mut running = running;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("the demo can be waited for") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let printed = printed.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(status.success(), "demo exited with {status}:\n{printed}");
    assert!(
        printed.contains(&format!("serving the fraud example on {base}")),
        "{printed}"
    );
    assert!(printed.contains("loaded 2000 users"), "{printed}");
    assert!(printed.contains("/get-online-features"), "{printed}");
    assert!(printed.contains("ingest metrics on http://"), "{printed}");
    assert!(printed.contains("riffle demo: ingested"), "{printed}");
    assert!(printed.contains("riffle demo: stopped"), "{printed}");
    assert!(data.join("riffle.redb").exists());
}

/// Completed feature-log files in `dir` (not the hidden `.partial` one being written).
fn completed_logs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_taken_port_is_reported_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_, stderr) = TestCommand::new()
        .args(["demo", "--users", "10", "--listen", &addr])
        .expect_code(1);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}
