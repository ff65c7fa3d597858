//! `riffle ingest --follow` with the real binary over a real Redis, on a file that gets no
//! new line: a caught-up, idle source publishes a watermark near now (so `riffle lag` and
//! `riffle serve` do not call it behind), and a restarted ingest rewrites the rows of
//! entities it never sees again as their windows pass (the pending-expiry index), down to
//! the oracle's values. No timing asserts: every wait polls with a generous deadline.

mod common;
mod ingest_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Running, TestCommand};
use riffle_core::{FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::{GroupRow, OnlineStore, RowRead, StoreLimits, StoreUrl};
use riffle_testkit::fixtures::SHORT_WINDOWS_TOML;
use riffle_testkit::RedisServer;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

fn follow(cmd: &mut TestCommand, registry: &str, store: &str, file: &Path) -> Running {
    let config = cmd.write("riffle.toml", registry);
    cmd.arg("ingest")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--follow", "--from"])
        .arg(file);
    Running(cmd.spawn())
}

fn lag(registry: &str, store: &str) -> Value {
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", registry);
    cmd.arg("lag")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--json"]);
    let out = cmd.output();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// The last event is 20 minutes old, and the file gets nothing new: once ingest reached its
/// end, the published watermark is the flush time, so `riffle lag` reports seconds, not 20
/// minutes, and exits 0.
#[test]
fn an_idle_followed_file_publishes_a_watermark_near_now() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let old = now_ms() - 20 * 60_000;
    let lines: String = (0..5)
        .map(|i| {
            format!(
                "{{\"user_id\": \"u{i}\", \"amount\": 1.5, \"merchant_id\": \"m\", \"event_time\": {}}}\n",
                old + i
            )
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let mut cmd = TestCommand::new();
    let _ingest = follow(&mut cmd, ingest_support::REGISTRY, &redis.url(), &file);
    let started = Instant::now();
    loop {
        let report = lag(ingest_support::REGISTRY, &redis.url());
        let source = &report["sources"][0];
        if let Some(lag_ms) = source["lag_ms"].as_u64() {
            assert!(lag_ms < 60_000 || started.elapsed() < DEADLINE, "{source}");
            if lag_ms < 10_000 {
                assert_eq!(source["status"], "ok", "{source}");
                assert_eq!(report["ok"], true);
                break;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "watermark never near now: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

type Ev = (String, i64, f64);

/// The documented window definition over raw events (1 s tiles): `n_4s` counts the events
/// in the 4 tiles ending with the reader's, `sum_8s` sums whole amounts in the last 8.
fn oracle(events: &[Ev], user: &str, at: i64) -> Vec<FeatureValue> {
    let tile = |t: i64| t.div_euclid(1_000);
    let within = |t: i64, n: i64| tile(t) > tile(at) - n && tile(t) <= tile(at);
    let mine = events.iter().filter(|e| e.0 == user);
    let n = mine.clone().filter(|e| within(e.1, 4)).count() as i64;
    let sum: f64 = mine.filter(|e| within(e.1, 8)).map(|e| e.2).sum();
    vec![FeatureValue::Int64(n), FeatureValue::Float64(sum)]
}

fn read_rows(rt: &tokio::runtime::Runtime, url: &str, users: &[String]) -> Vec<GroupRow> {
    rt.block_on(async {
        let registry = Arc::new(Registry::from_toml(SHORT_WINDOWS_TOML).unwrap());
        let mut limits = StoreLimits::from_settings(&registry.store);
        limits.timeout = Duration::from_secs(10);
        let store = OnlineStore::open(&StoreUrl::parse(url).unwrap(), registry, limits)
            .await
            .unwrap();
        let rows = ingest_support::group_rows(&store, 0, users).await;
        rows.into_iter()
            .zip(users)
            .map(|(read, user)| match read {
                RowRead::Found(row) => row,
                other => panic!("{user}: {other:?}"),
            })
            .collect()
    })
}

/// `riffle ingest --from` applies events of the last two seconds and exits; a restarted
/// `--follow` over the same file applies nothing (all already applied) yet rewrites every
/// row as its windows pass, until each equals the oracle read now (zeros).
#[test]
fn a_restarted_ingest_lets_windows_of_untouched_entities_expire() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let now = now_ms();
    let events: Vec<Ev> = (0..30)
        .map(|i| (format!("u{}", i % 10), now - 2_000 + i * 60, (i % 4) as f64))
        .collect();
    let lines: String = events
        .iter()
        .map(|(u, t, a)| format!("{{\"user_id\": \"{u}\", \"ts\": {t}, \"amount\": {a}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", SHORT_WINDOWS_TOML);
    cmd.arg("ingest")
        .arg("--config")
        .arg(config)
        .args(["--store", &redis.url(), "--from"])
        .arg(&file);
    cmd.expect_code(0);

    let mut cmd = TestCommand::new();
    let _ingest = follow(&mut cmd, SHORT_WINDOWS_TOML, &redis.url(), &file);
    let mut users: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    users.sort();
    users.dedup();
    let last = events.iter().map(|e| e.1).max().unwrap();
    let settled = (last.div_euclid(1_000) + 8) * 1_000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    loop {
        let read_at = now_ms();
        let rows = read_rows(&rt, &redis.url(), &users);
        let mut pending = Vec::new();
        for (user, row) in users.iter().zip(&rows) {
            let at = row.computed_at.millis();
            assert_eq!(row.values, oracle(&events, user, at), "{user} at {at}");
            if read_at < settled || row.values != oracle(&events, user, read_at) {
                pending.push(user);
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "rows never decayed after the restart: {pending:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Redis crashes (SIGKILL) while events keep coming and comes back on the same port from
/// its last snapshot: ingest does not end, it retries its store calls until Redis is back,
/// then catches up, and every value equals the oracle.
#[test]
fn a_store_outage_pauses_ingest_and_loses_nothing() {
    let mut redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let g = ingest_support::generate(21, now_ms(), 30, 600, 10 * 60_000, true);
    let lines: Vec<&str> = g.text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    std::fs::write(&file, first.join("\n") + "\n").unwrap();
    let mut cmd = TestCommand::new();
    let mut ingest = follow(&mut cmd, ingest_support::REGISTRY, &redis.url(), &file);
    let applied = |redis: &RedisServer| -> u64 {
        let report = lag(ingest_support::REGISTRY, &redis.url());
        report["sources"][0]["publishers"][0]["events_applied_total"]
            .as_u64()
            .unwrap_or(0)
    };
    // The first half is applied once the count stops moving.
    let started = Instant::now();
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = applied(&redis);
        if now > 0 && now == last {
            break;
        }
        last = now;
        assert!(
            started.elapsed() < DEADLINE,
            "the first half was not applied"
        );
    }
    // A snapshot, then the crash: what ingest writes in between is rewritten from its
    // memory on the entity's next flush, and every stored row is its values as of its own
    // computed-at either way.
    assert_eq!(redis.cli(&["SAVE"]).unwrap(), "OK");
    redis.kill();
    {
        use std::io::Write as _;
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        out.write_all((second.join("\n") + "\n").as_bytes())
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        matches!(ingest.0.try_wait(), Ok(None)),
        "ingest ended during the store outage"
    );
    redis.restart().unwrap();
    let want = g.accepted.len() as u64;
    let started = Instant::now();
    while applied(&redis) < want {
        assert!(
            started.elapsed() < DEADLINE,
            "ingest did not catch up after the outage: {} of {want} applied",
            applied(&redis)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ingest_support::kafka::check_against_oracle(
        &StoreUrl::parse(&redis.url()).unwrap(),
        &g.accepted,
    );
}
