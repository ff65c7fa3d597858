//! `riffle ingest --from FILE` end to end with the real binary: every value checked against
//! an independent oracle (embedded store and a real Redis), dead letters with their reasons,
//! idempotent re-runs, and SIGKILLs at random moments followed by a re-run that ends with
//! exactly the values of one clean run.

mod common;
mod ingest_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::TestCommand;
use ingest_support::{
    generate, oracle, read_rows, write_parquet, Ev, Generated, Rng, HOUR, MINUTE, REGISTRY,
};
use riffle_core::{FeatureValue, Timestamp};
use riffle_store::StoreUrl;
use riffle_testkit::RedisServer;
use serde_json::Value;

fn ingest(cmd: &mut TestCommand, store: &str, file: &Path) -> Value {
    ingest_with(cmd, REGISTRY, store, file)
}

/// [`ingest`] with another registry.
fn ingest_with(cmd: &mut TestCommand, registry: &str, store: &str, file: &Path) -> Value {
    let config = cmd.write("riffle.toml", registry);
    cmd.arg("ingest")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--json", "--from"])
        .arg(file);
    let (stdout, _) = cmd.expect_code(0);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn users_of(events: &[Ev]) -> Vec<String> {
    let set: BTreeSet<&str> = events.iter().map(|e| e.user.as_str()).collect();
    set.into_iter().map(str::to_owned).collect()
}

/// Every value of every user equals the oracle's read at the row's `computed_at`. Float
/// sums and means are compared exactly: the oracle adds in the documented order.
fn check_against_oracle(url: &StoreUrl, events: &[Ev]) {
    let users = users_of(events);
    let rows = read_rows(url, &users);
    for (user, row) in users.iter().zip(rows) {
        let row = row.unwrap_or_else(|| panic!("no row for {user}"));
        let want = oracle(events, user, row.computed_at.millis());
        assert_eq!(row.values, want, "{user} at {}", row.computed_at);
        assert!(row.event_ts <= row.computed_at);
    }
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {summary}"))
}

/// A backfill into a fresh Redis: `events` events of the last 10 minutes (none late)
/// over `users` users, replayed once with `registry`.
struct Backfill {
    redis: RedisServer,
    g: Generated,
    /// The events file, in `dir`'s directory (kept while the backfill lives).
    file: std::path::PathBuf,
    summary: Value,
    dir: TestCommand,
}

fn backfill(seed: u64, users: u64, events: usize, registry: &str) -> Backfill {
    let redis = RedisServer::start().unwrap();
    let g = generate(
        seed,
        Timestamp::now().millis(),
        users,
        events,
        10 * MINUTE,
        false,
    );
    let mut cmd = TestCommand::new();
    let file = cmd.write("events.ndjson", &g.text);
    let summary = ingest_with(&mut cmd, registry, &redis.url(), &file);
    Backfill {
        redis,
        g,
        file,
        summary,
        dir: cmd,
    }
}

#[test]
fn ingest_matches_the_oracle_dead_letters_bad_lines_and_reruns_idempotently() {
    let now = Timestamp::now().millis();
    let g = generate(7, now, 30, 400, 3 * HOUR, true);
    let mut cmd = TestCommand::new();
    let file = cmd.write("events.ndjson", &g.text);
    let data = cmd.dir().join("data");
    let store = format!("embedded:{}", data.display());
    let summary = ingest(&mut cmd, &store, &file);
    let bad = g.rejected.len() as u64;
    assert_eq!(
        count(&summary, "events_read"),
        g.accepted.len() as u64 + bad
    );
    assert_eq!(count(&summary, "applied"), g.accepted.len() as u64);
    assert_eq!(count(&summary, "already_applied"), 0);
    assert_eq!(count(&summary, "dead_lettered_total"), bad);
    for reason in ["undecodable", "schema_mismatch", "too_late"] {
        let want = g.rejected.values().filter(|r| **r == reason).count() as u64;
        assert!(want > 0, "the file has {reason} lines");
        assert_eq!(
            summary["dead_lettered"][reason].as_u64(),
            Some(want),
            "{summary}"
        );
    }
    let url = StoreUrl::Embedded(data.clone());
    check_against_oracle(&url, &g.accepted);

    // Decay: events 2+ hours old count in 24 h windows, not in 1 h ones.
    let old = read_rows(&url, &["old".to_owned()]).remove(0).unwrap();
    assert_eq!(old.values[1], FeatureValue::Int64(0), "n_1h of old");
    assert_eq!(old.values[2], FeatureValue::Int64(5), "n_24h of old");
    assert_eq!(
        old.values[5],
        FeatureValue::Float64(-1.0),
        "mean_30m of old: default"
    );

    // The dead-letter file: every bad line with its reason.
    let letters = std::fs::read_to_string(data.join("dead-letter-transactions.ndjson")).unwrap();
    // Within a batch, decode rejections are written before the engine's: compare sorted.
    let mut got: Vec<(u64, String)> = letters
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let line = v["position"].as_str().unwrap().trim_start_matches("line ");
            (
                line.parse().unwrap(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(u64, String)> = g
        .rejected
        .iter()
        .map(|(l, r)| (*l, (*r).to_owned()))
        .collect();
    assert_eq!(got, want);

    // The same file again: nothing applied twice, every value still the oracle's.
    let mut again = TestCommand::new();
    let summary = ingest(&mut again, &store, &file);
    assert_eq!(count(&summary, "applied"), 0, "{summary}");
    // A rejected line records no position: it is judged again, unless its entity applied a
    // later line (then it too counts as already applied).
    assert!(count(&summary, "already_applied") >= g.accepted.len() as u64);
    assert_eq!(
        count(&summary, "already_applied") + count(&summary, "dead_lettered_total"),
        count(&summary, "events_read")
    );
    check_against_oracle(&url, &g.accepted);
}

#[test]
fn ingest_into_redis_matches_the_oracle() {
    let redis = RedisServer::start().unwrap();
    let now = Timestamp::now().millis();
    let g = generate(11, now, 30, 300, 3 * HOUR, true);
    let mut cmd = TestCommand::new();
    let file = cmd.write("events.ndjson", &g.text);
    let summary = ingest(&mut cmd, &redis.url(), &file);
    assert_eq!(count(&summary, "applied"), g.accepted.len() as u64);
    check_against_oracle(&StoreUrl::parse(&redis.url()).unwrap(), &g.accepted);
    assert!(cmd.dir().join("dead-letter-transactions.ndjson").exists());
    let fields = redis.cli(&["HKEYS", "itest:{user:u1}"]).unwrap();
    assert!(
        fields.contains("~transactions") && fields.contains("tx@1"),
        "{fields}"
    );
}

/// Group commit: while a flush's write is in flight the next events are received, and are
/// written by the next flush together. A backfill into Redis with `flush_max_events = 100`
/// therefore takes far fewer flushes than events / 100 (a flush that waited for each write
/// before reading on would take exactly that many), writes each busy user fewer times, and
/// every value still equals the oracle's.
#[test]
fn a_backfill_coalesces_flushes_while_writes_are_in_flight() {
    let registry = format!("{REGISTRY}\n[ingest]\nflush_max_events = 100\n");
    let Backfill {
        redis, g, summary, ..
    } = backfill(5, 400, 20_000, &registry);
    assert_eq!(count(&summary, "applied"), g.accepted.len() as u64);
    let one_per_100 = g.accepted.len() as u64 / 100;
    assert!(
        count(&summary, "flushes") < one_per_100 / 2,
        "no coalescing: {} flushes for {} events: {summary}",
        count(&summary, "flushes"),
        g.accepted.len()
    );
    assert!(count(&summary, "entities_written") < one_per_100 * 100 / 2);
    check_against_oracle(&StoreUrl::parse(&redis.url()).unwrap(), &g.accepted);
}

/// One flush of 6,000 entities: its writes are built on several threads (from 4,000), and
/// every row and every entity's state (positions, so a rerun applies nothing) comes out as
/// a one-thread build would write it.
#[test]
fn a_flush_built_on_several_threads_writes_every_entity_right() {
    let registry =
        format!("{REGISTRY}\n[ingest]\nflush_max_events = 100000\nflush_interval = \"1h\"\n");
    let Backfill {
        redis,
        g,
        file,
        summary,
        dir: _dir,
    } = backfill(11, 6_000, 12_000, &registry);
    assert_eq!(count(&summary, "applied"), g.accepted.len() as u64);
    assert_eq!(count(&summary, "flushes"), 1, "{summary}");
    assert!(count(&summary, "entities_written") > 4_000, "{summary}");
    let mut again = TestCommand::new();
    let rerun = ingest_with(&mut again, &registry, &redis.url(), &file);
    assert_eq!(count(&rerun, "applied"), 0, "{rerun}");
    assert_eq!(
        count(&rerun, "already_applied"),
        g.accepted.len() as u64,
        "{rerun}"
    );
    check_against_oracle(&StoreUrl::parse(&redis.url()).unwrap(), &g.accepted);
}

#[test]
fn the_summary_says_where_the_loop_time_went() {
    let Backfill { summary, .. } = backfill(8, 300, 5_000, REGISTRY);
    let phases = &summary["loop_ms"];
    let ms = |phase: &str| {
        phases[phase]
            .as_u64()
            .unwrap_or_else(|| panic!("no loop_ms.{phase} in {summary}"))
    };
    let names = [
        "waiting_for_input",
        "applying",
        "loading_state",
        "preparing_flushes",
        "waiting_for_store",
    ];
    let total: u64 = names.iter().map(|p| ms(p)).sum();
    let elapsed = count(&summary, "elapsed_ms");
    assert!(ms("applying") > 0, "{summary}");
    // The phases never overlap (each is rounded down to a millisecond), and they cover
    // the run but for setting up.
    assert!(
        total <= elapsed,
        "{total} ms of phases in {elapsed} ms: {summary}"
    );
    assert!(
        total * 2 >= elapsed,
        "{total} ms of phases in {elapsed} ms: {summary}"
    );
}

/// Events of the last 10 minutes only: every window value stays the same for the whole
/// test, so runs at different times must agree exactly.
const CRASH_EVENTS: usize = 60_000;
const CRASH_USERS: u64 = 2_000;

#[test]
fn sigkill_at_random_moments_then_rerun_equals_one_clean_run() {
    let now = Timestamp::now().millis();
    let g = generate(23, now, CRASH_USERS, CRASH_EVENTS, 10 * MINUTE, false);
    let work = TestCommand::new();
    let file = work.write("events.ndjson", &g.text);
    let config = work.write("riffle.toml", REGISTRY);
    let crashed = work.dir().join("crashed");
    let clean = work.dir().join("clean");
    let crashed_url = format!("embedded:{}", crashed.display());

    let mut rng = Rng::new(now as u64);
    for _ in 0..3 {
        let mut cmd = TestCommand::new();
        cmd.arg("ingest")
            .arg("--config")
            .arg(&config)
            .args(["--store", &crashed_url, "--from"])
            .arg(&file);
        let mut child = cmd.spawn();
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }
    let mut finish = TestCommand::new();
    let resumed = ingest(&mut finish, &crashed_url, &file);
    assert!(
        count(&resumed, "already_applied") > 0,
        "the killed runs wrote nothing; kill later: {resumed}"
    );
    assert_eq!(
        count(&resumed, "applied") + count(&resumed, "already_applied"),
        g.accepted.len() as u64
    );
    let mut one = TestCommand::new();
    let summary = ingest(&mut one, &format!("embedded:{}", clean.display()), &file);
    assert_eq!(count(&summary, "applied"), g.accepted.len() as u64);

    let users = users_of(&g.accepted);
    let a = read_rows(&StoreUrl::Embedded(crashed), &users);
    let b = read_rows(&StoreUrl::Embedded(clean), &users);
    for ((user, a), b) in users.iter().zip(a).zip(b) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.values, b.values, "{user}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    let file = cmd.write("events.ndjson", "");
    cmd.arg("ingest")
        .arg("--config")
        .arg(&config)
        .args(["--source", "nope", "--from"])
        .arg(&file);
    let (_, stderr) = cmd.expect_code(2);
    assert!(stderr.contains("no source \"nope\""), "{stderr}");

    let mut cmd = TestCommand::new();
    cmd.arg("ingest")
        .arg("--config")
        .arg(&config)
        .args(["--from", "missing.ndjson"]);
    let (_, stderr) = cmd.expect_code(2);
    assert!(stderr.contains("cannot open missing.ndjson"), "{stderr}");
}

#[test]
fn an_archive_of_parquet_files_backfills_like_its_events_from_a_file_and_only_once() {
    let redis = RedisServer::start().unwrap();
    let g = generate(
        41,
        Timestamp::now().millis(),
        300,
        4_000,
        10 * MINUTE,
        false,
    );
    let mut cmd = TestCommand::new();
    // The archive: a folder of two files, read in name order (the events' order).
    let archive = cmd.dir().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let (first, second) = g.accepted.split_at(g.accepted.len() / 2);
    write_parquet(&archive.join("part-0.parquet"), first, true);
    write_parquet(&archive.join("part-1.parquet"), second, false);
    std::fs::write(archive.join("_SUCCESS"), "").unwrap();
    let summary = ingest(&mut cmd, &redis.url(), &archive);
    assert_eq!(
        count(&summary, "applied"),
        g.accepted.len() as u64,
        "{summary}"
    );
    assert_eq!(count(&summary, "dead_lettered_total"), 0, "{summary}");
    check_against_oracle(&StoreUrl::parse(&redis.url()).unwrap(), &g.accepted);

    // The same archive again: recognised, nothing applied twice.
    let mut again = TestCommand::new();
    let summary = ingest(&mut again, &redis.url(), &archive);
    assert_eq!(count(&summary, "applied"), 0, "{summary}");
    assert_eq!(
        count(&summary, "already_applied"),
        g.accepted.len() as u64,
        "{summary}"
    );
}
