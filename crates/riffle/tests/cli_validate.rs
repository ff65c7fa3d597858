//! `riffle validate` with the real binary: events ingested and a batch group loaded into a
//! real Redis, served by `riffle serve` with `[serve.logging]` on (every entity sampled),
//! serve stopped gracefully so its log is complete. The validator recomputes every logged
//! value from the declared history: honest traffic passes with values compared for both
//! groups; a value changed in the store behind the pipeline's back is caught (exit 3, the
//! feature and the entity named); a group without history is reported as not checked.

mod common;
mod ingest_support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Serve, TestCommand};
use ingest_support::{generate, HOUR, MINUTE, REGISTRY};
use riffle_core::Timestamp;
use riffle_testkit::RedisServer;
use serde_json::Value;

const USERS: u64 = 30;

/// The registry: the ingest tests' stream group `tx` (its source's history declared),
/// batch group `profile` with its row history, batch group `notes` without any, and the
/// feature log on for every entity.
fn registry(events: &Path, profile: &Path, log: &Path) -> String {
    let with_history = REGISTRY.replace(
        "time_field = \"event_time\"",
        &format!(
            "time_field = \"event_time\"\noffline = \"{}\"",
            events.display()
        ),
    );
    format!(
        r#"{with_history}
[[feature_groups]]
name = "profile"
entity = "user"
ttl = "2h"
freshness_slo = "10m"
staleness_limit = "1h"
offline = "{}"
features = [
  {{ name = "score", type = "int64", default = -1 }},
  {{ name = "tier", type = "string", default = "none" }},
]

[[feature_groups]]
name = "notes"
entity = "user"
ttl = "2h"
freshness_slo = "10m"
features = [{{ name = "flag", type = "bool", default = false }}]

[serve.logging]
sample_rate = 1.0
path = "{}"
"#,
        profile.display(),
        log.display()
    )
}

/// Each user's profile rows: one 90 minutes old, and for even users a newer one 20 minutes
/// old (the one served).
fn profile_csv(now: i64, newest_only: bool, score_of: impl Fn(u64) -> i64) -> String {
    let mut out = String::from("user_id,event_timestamp,score,tier\n");
    for i in 0..USERS {
        let rows: &[(i64, i64)] = if i % 2 == 0 {
            &[(90 * MINUTE, 0), (20 * MINUTE, 1)]
        } else {
            &[(90 * MINUTE, 0)]
        };
        let rows = if newest_only {
            &rows[rows.len() - 1..]
        } else {
            rows
        };
        for (age, k) in rows {
            let ts = Timestamp::from_millis(now - age).unwrap().to_rfc3339();
            writeln!(
                out,
                "u{i},{ts},{},t{}",
                score_of(i) + k,
                (i + *k as u64) % 3
            )
            .unwrap();
        }
    }
    out
}

struct Setup {
    redis: RedisServer,
    dir: TestCommand,
    config: PathBuf,
    events: PathBuf,
    log: PathBuf,
    now: i64,
}

impl Setup {
    fn new() -> Setup {
        let redis = RedisServer::start().unwrap();
        let now = Timestamp::now().millis();
        let g = generate(5, now, USERS, 1500, 3 * HOUR, false);
        let dir = TestCommand::new();
        let events = dir.write("events.ndjson", &g.text);
        let profile = dir.write(
            "profile-history.csv",
            &profile_csv(now, false, |i| i as i64 * 10),
        );
        let log = dir.dir().join("served");
        let config = dir.write("riffle.toml", &registry(&events, &profile, &log));
        Setup {
            redis,
            dir,
            config,
            events,
            log,
            now,
        }
    }

    fn run(&self, args: &[&str], code: i32) -> (String, String) {
        let mut cmd = TestCommand::new();
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .args(["--store", &self.redis.url()]);
        cmd.expect_code(code)
    }

    /// Loads `csv` into group `profile`.
    fn load_profile(&self, name: &str, csv: &str) {
        let file = self.dir.write(name, csv);
        self.run(&["load", "--group", "profile", file.to_str().unwrap()], 0);
    }

    fn validate(&self, code: i32) -> (Value, String) {
        let mut cmd = TestCommand::new();
        cmd.arg("validate")
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg(&self.log)
            .arg("--json");
        let (stdout, stderr) = cmd.expect_code(code);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (report, stderr)
    }
}

/// Runs `scenario` on a fresh [`Setup`] within one 30 s tile, retrying in the next tile
/// when it overran. Windows move at tile edges (30 s for 30 min windows), and ingest (which
/// moves them) has exited when serve reads: within one tile, every row ingest wrote is still
/// what a running ingest would hold when read.
fn within_one_tile(mut scenario: impl FnMut(&Setup)) -> Setup {
    for _ in 0..4 {
        while Timestamp::now().millis() % 30_000 > 3_000 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let s = Setup::new();
        scenario(&s);
        if s.now / 30_000 == Timestamp::now().millis() / 30_000 {
            return s;
        }
    }
    panic!("could not ingest and read within one 30 s tile");
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report:#}"))
}

#[test]
fn honest_traffic_passes_and_a_value_changed_behind_its_back_is_caught() {
    let users: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();

    // Honest traffic: the newest profile row of each user loaded, the events ingested, every
    // user read.
    let s = within_one_tile(|s| {
        s.load_profile(
            "profile-now.csv",
            &profile_csv(s.now, true, |i| i as i64 * 10),
        );
        s.run(
            &["ingest", "--json", "--from", s.events.to_str().unwrap()],
            0,
        );
        let serve = Serve::start(&s.config, &s.redis.url());
        // Serve reads the published watermarks every second: let it see ingest's.
        std::thread::sleep(Duration::from_millis(2_000));
        for u in &users {
            serve.user_body(u, "");
        }
        serve.stop();
    });

    let (report, _) = s.validate(0);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["unusable"], 0, "{report:#}");
    for name in [
        "tx:n_1h",
        "tx:sum_24h",
        "tx:last_merchant_1h",
        "profile:score",
        "profile:tier",
    ] {
        let f = feature(&report, name);
        assert_eq!(f["compared"], USERS, "{name}: {f:#}");
        assert_eq!(f["mismatched"], 0, "{name}: {f:#}");
    }
    assert_eq!(feature(&report, "tx:n_1h")["matched"], USERS, "{report:#}");
    let profile = feature(&report, "profile:score");
    assert_eq!(profile["matched"], USERS, "{profile:#}");
    let notes = &report["not_checked"][0];
    assert_eq!(notes["group"], "notes", "{report:#}");
    assert_eq!(notes["values"], USERS);
    assert!(
        notes["reason"].as_str().unwrap().contains("no history"),
        "{notes}"
    );

    // Behind its back: u4's score is overwritten in the store with a value history never
    // had (its tier as history has it), and served again.
    let tampered = format!(
        "user_id,event_timestamp,score,tier\nu4,{},777,t2\n",
        Timestamp::from_millis(s.now - 19 * MINUTE)
            .unwrap()
            .to_rfc3339()
    );
    s.load_profile("tampered.csv", &tampered);
    let serve = Serve::start(&s.config, &s.redis.url());
    serve.user_body("u4", "");
    serve.stop();

    let (report, stderr) = s.validate(3);
    assert_eq!(report["passed"], false);
    let score = feature(&report, "profile:score");
    assert_eq!(score["mismatched"], 1, "{score:#}");
    assert_eq!(score["worst"][0]["entity_id"], "u4", "{score:#}");
    assert_eq!(score["worst"][0]["served"], 777);
    assert_eq!(score["worst"][0]["offline"], 41);
    assert_eq!(score["mean_abs_error"], 777.0 - 41.0);
    assert_eq!(feature(&report, "profile:tier")["mismatched"], 0);
    assert!(
        stderr.contains("profile:score") && stderr.contains("u4"),
        "the failure names the feature and the entity: {stderr}"
    );
    // The table says the same to a person.
    let mut cmd = TestCommand::new();
    cmd.arg("validate")
        .arg("--config")
        .arg(&s.config)
        .arg("--log")
        .arg(&s.log);
    let (table, _) = cmd.expect_code(3);
    eprintln!("{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("profile:score"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.ends_with("FAIL"), "{line}");
    assert!(
        table.contains("profile:score entity u4: 1 mismatch(es)"),
        "{table}"
    );
    assert!(table.contains("not checked: group notes"), "{table}");
}

#[test]
fn a_log_that_is_not_there_or_not_a_log_is_refused() {
    let s = Setup::new();
    let (_, stderr) = {
        let mut cmd = TestCommand::new();
        cmd.arg("validate")
            .arg("--config")
            .arg(&s.config)
            .arg("--log")
            .arg(s.dir.dir().join("nowhere"));
        cmd.expect_code(2)
    };
    assert!(stderr.contains("nowhere"), "{stderr}");
    let mut cmd = TestCommand::new();
    cmd.arg("validate")
        .arg("--config")
        .arg(&s.config)
        .arg("--log")
        .arg(&s.events);
    let (_, stderr) = cmd.expect_code(2);
    assert!(stderr.contains("not a Riffle feature log"), "{stderr}");
}

#[test]
fn values_served_while_ingest_was_behind_are_told_apart_as_lag() {
    // Ingest saw only the events that arrived before the first one later than 10 minutes
    // ago (events arrive out of order within a minute); history has them all. Serve ages
    // the rows from that watermark (stale, still served), and the values lack the rest:
    // different from history now, equal to history at the watermark.
    let s = within_one_tile(|s| {
        let cut = s.now - 10 * MINUTE;
        let behind: String = std::fs::read_to_string(&s.events)
            .unwrap()
            .lines()
            .take_while(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                Timestamp::from_json(&event["event_time"]).unwrap().millis() <= cut
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let behind = s.dir.write("behind.ndjson", &behind);
        s.load_profile(
            "profile-now.csv",
            &profile_csv(s.now, true, |i| i as i64 * 10),
        );
        s.run(&["ingest", "--json", "--from", behind.to_str().unwrap()], 0);
        let serve = Serve::start(&s.config, &s.redis.url());
        std::thread::sleep(Duration::from_millis(2_000));
        let statuses: Vec<String> = (0..USERS).map(|i| serve.status(&format!("u{i}"))).collect();
        serve.stop();
        assert!(
            statuses.iter().all(|st| st == "stale" || st == "missing"),
            "{statuses:?}"
        );
    });
    let (report, _) = s.validate(0);
    let n_1h = feature(&report, "tx:n_1h");
    assert_eq!(n_1h["mismatched"], 0, "{n_1h:#}");
    assert!(n_1h["lag_explained"].as_u64().unwrap() > 0, "{n_1h:#}");
    assert_eq!(
        n_1h["matched"].as_u64().unwrap() + n_1h["lag_explained"].as_u64().unwrap(),
        USERS
    );
}
