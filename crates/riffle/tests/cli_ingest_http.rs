//! `riffle ingest --http-events` end to end with the real binary and a real Redis: batches
//! `POST`ed as NDJSON, as a JSON array and as single objects, malformed lines among them;
//! every `200` comes only once its events are durable — the store is read right after each
//! answer and every value of every user in the batch equals the independent oracle — with
//! the dead letters counted; then 400, 413, `/metrics` and `/health`. Also `riffle ingest
//! --generate` writes rows and exits after `--max-events`.

mod common;
mod ingest_support;

use std::collections::BTreeSet;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Running, TestCommand};
use ingest_support::{generate, oracle, Ev, HOUR, REGISTRY};
use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::{GroupRow, OnlineStore, StoreLimits, StoreUrl};
use riffle_testkit::RedisServer;
use serde_json::Value;

fn read_rows(
    rt: &tokio::runtime::Runtime,
    store: &OnlineStore,
    users: &[String],
) -> Vec<Option<GroupRow>> {
    let rows = rt.block_on(ingest_support::group_rows(store, 0, users));
    rows.into_iter().map(ingest_support::found).collect()
}

fn wait_healthy(client: &reqwest::blocking::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(resp) = client.get(format!("{base}/health")).send() {
            if resp.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("riffle ingest exited early: {status}");
        }
        assert!(Instant::now() < deadline, "ingest never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_start} not in\n{text}"))
}

#[test]
fn http_events_are_acknowledged_only_once_durable_and_equal_the_oracle() {
    let redis = RedisServer::start().expect("redis-server starts");
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    let mut child = cmd
        .arg("ingest")
        .arg("--config")
        .arg(&config)
        .args(["--store", &redis.url(), "--http-events", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .spawn();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_healthy(&client, &base, &mut child);
    let mut running = Running(child);

    let now = Timestamp::now().millis();
    let g = generate(21, now, 25, 600, 2 * HOUR, true);
    let lines: Vec<&str> = g.text.lines().collect();
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async {
        let mut limits = StoreLimits::from_settings(&registry.store);
        limits.timeout = Duration::from_secs(10);
        OnlineStore::open(
            &StoreUrl::parse(&redis.url()).unwrap(),
            registry.clone(),
            limits,
        )
        .await
        .unwrap()
    });

    // Lines are numbered from 1 as in the file; `g.accepted` is in line order.
    let mut accepted_lines = Vec::new();
    for line in 1..=lines.len() as u64 {
        if !g.rejected.contains_key(&line) {
            accepted_lines.push(line);
        }
    }
    assert_eq!(accepted_lines.len(), g.accepted.len());
    let event_of = |l: u64| -> Option<&Ev> {
        accepted_lines
            .binary_search(&l)
            .ok()
            .map(|i| &g.accepted[i])
    };

    let mut applied: Vec<Ev> = Vec::new();
    let (mut total_accepted, mut total_dead) = (0u64, 0u64);
    let chunks: Vec<(usize, usize)> = (0..lines.len())
        .step_by(97)
        .map(|s| (s, (s + 97).min(lines.len())))
        .collect();
    for (i, &(from, to)) in chunks.iter().enumerate() {
        let batch = &lines[from..to];
        let numbers = (from as u64 + 1)..=(to as u64);
        let want_dead = numbers
            .clone()
            .filter(|l| g.rejected.contains_key(l))
            .count() as u64;
        let request = match i % 3 {
            // NDJSON, malformed lines and all.
            0 | 1 => client
                .post(format!("{base}/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(batch.join("\n")),
            // A JSON array of the lines that are JSON (the others as NDJSON would be).
            _ => {
                let items: Vec<Value> = batch
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::String((*l).to_owned())))
                    .collect();
                client
                    .post(format!("{base}/v1/events"))
                    .json(&Value::Array(items))
            }
        };
        let resp = request.send().expect("ingest answers");
        assert_eq!(resp.status().as_u16(), 200, "batch {i}");
        let body: Value = resp.json().unwrap();
        let accepted = body["accepted"].as_u64().unwrap();
        let dead = body["dead_lettered"].as_u64().unwrap();
        assert_eq!(dead, want_dead, "batch {i}: {body}");
        assert_eq!(accepted + dead, batch.len() as u64, "batch {i}: {body}");
        total_accepted += accepted;
        total_dead += dead;
        applied.extend(numbers.filter_map(event_of).cloned());

        // Durable already: every user of the batch equals the oracle over what was posted.
        let users: Vec<String> = batch
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["user_id"].as_str().map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|u| applied.iter().any(|e| &e.user == u))
            .collect();
        for (user, row) in users.iter().zip(read_rows(&rt, &store, &users)) {
            let row = row.unwrap_or_else(|| panic!("batch {i}: no row for {user} right after 200"));
            let want = oracle(&applied, user, row.computed_at.millis());
            assert_eq!(row.values, want, "batch {i}: {user} at {}", row.computed_at);
        }
    }
    assert_eq!(total_accepted, g.accepted.len() as u64);
    assert_eq!(total_dead, g.rejected.len() as u64);

    // One object on its own.
    let single = format!(
        "{{\"user_id\":\"solo\",\"event_time\":{},\"amount\":2.5,\"merchant_id\":\"m1\"}}",
        now - 1_000
    );
    let resp = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body(single)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["accepted"], 1, "{body}");
    let solo = read_rows(&rt, &store, &["solo".to_owned()]).remove(0);
    assert!(solo.is_some(), "the single event is durable when answered");

    // An unparseable body: 400 with the reason; nothing queued.
    let resp = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body("{\"user_id\": ")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );

    // Too large: 413, answered from the declared length before any of the body is read.
    // (Raw TCP: a client still writing a body the server refused could see a broken pipe
    // instead of the answer.)
    {
        use std::io::{Read as _, Write as _};
        let addr = base.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            tcp,
            "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            5 << 20
        )
        .unwrap();
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    }

    // The counters on /metrics, and /health.
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let src = "{source=\"transactions\"}";
    assert_eq!(
        metric(&text, &format!("riffle_ingest_events_applied_total{src}")),
        (total_accepted + 1) as f64
    );
    assert_eq!(
        metric(&text, &format!("riffle_ingest_events_read_total{src}")),
        (lines.len() + 1) as f64
    );
    for reason in ["undecodable", "schema_mismatch", "too_late"] {
        let want = g.rejected.values().filter(|r| **r == reason).count() as f64;
        let got = metric(
            &text,
            &format!(
                "riffle_ingest_dead_letters_total{{source=\"transactions\",reason=\"{reason}\"}}"
            ),
        );
        assert_eq!(got, want, "{reason}");
    }
    assert_eq!(
        metric(&text, "riffle_ingest_http_requests_total{code=\"200\"}"),
        (chunks.len() + 1) as f64
    );
    assert_eq!(
        metric(&text, "riffle_ingest_http_requests_total{code=\"400\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "riffle_ingest_http_requests_total{code=\"413\"}"),
        1.0
    );
    assert!(metric(&text, &format!("riffle_ingest_flushes_total{src}")) >= 1.0);
    assert!(metric(&text, &format!("riffle_ingest_lag_seconds{src}")) < 300.0);
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["reasons"], Value::Array(vec![]), "{health}");

    // SIGTERM: a clean exit with the summary.
    let pid = running.0.id();
    riffle_testkit::signal(pid, "TERM").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "ingest exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "ingest did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ingest_generate_writes_rows_then_exits_after_max_events() {
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    let data = cmd.dir().join("data");
    let port = riffle_testkit::free_port();
    cmd.arg("ingest")
        .arg("--config")
        .arg(&config)
        .arg("--store")
        .arg(format!("embedded:{}", data.display()))
        .args([
            "--generate",
            "50000",
            "--entities",
            "500",
            "--max-events",
            "3000",
        ])
        .args(["--seed", "9", "--json", "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    let (stdout, _) = cmd.expect_code(0);
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["events_read"], 3000, "{summary}");
    assert_eq!(summary["applied"], 3000, "{summary}");
    let written = summary["entities_written"].as_u64().unwrap();
    assert!(written > 50, "{summary}");

    // The most active user (u0) has rows with a count that the power law made large.
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async {
        let limits = StoreLimits::from_settings(&registry.store);
        OnlineStore::open(&StoreUrl::Embedded(data.clone()), registry.clone(), limits)
            .await
            .unwrap()
    });
    let rows = read_rows(&rt, &store, &["u0".to_owned(), "u499".to_owned()]);
    let n_1h = |row: &Option<GroupRow>| match row.as_ref().map(|r| &r.values[1]) {
        Some(riffle_core::FeatureValue::Int64(n)) => *n,
        _ => 0,
    };
    assert!(
        n_1h(&rows[0]) > 5 * n_1h(&rows[1]).max(1),
        "u0 {} vs u499 {}",
        n_1h(&rows[0]),
        n_1h(&rows[1])
    );
}
