//! `riffle training-set` with the real binary: events ingested and a batch group loaded into
//! a real Redis and served; the training set at the instant of serving equals what serve
//! answered, value for value and status for status; at earlier instants every value equals
//! an independent oracle's from the events up to that instant only (no later event leaks),
//! batch groups by an as-of join written out plainly here; and bad input is refused with
//! the file, row and column named.

mod common;
mod ingest_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Serve, TestCommand};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ingest_support::{generate, oracle, write_parquet, Ev, Generated, Rng, HOUR, MINUTE, REGISTRY};
use riffle_core::{FeatureType, FeatureValue, Timestamp};
use riffle_testkit::RedisServer;
use serde_json::Value;

const USERS: u64 = 40;
const TX: [&str; 10] = [
    "n_30m",
    "n_1h",
    "n_24h",
    "sum_1h",
    "sum_24h",
    "mean_30m",
    "mean_24h",
    "max_1h",
    "last_merchant_1h",
    "merchants_24h",
];
const PROFILE: [(&str, FeatureType); 3] = [
    ("score", FeatureType::Int64),
    ("premium", FeatureType::Bool),
    ("tier", FeatureType::String),
];

/// One row of the batch group's history: (user, time ms, score, premium, tier or null).
#[derive(Debug, Clone)]
struct ProfileRow {
    user: String,
    time: i64,
    score: i64,
    premium: bool,
    tier: Option<String>,
}

/// Every user's profile history, relative to `now`: by user number mod 4, rows only 5 h old
/// (gone by the 2 h TTL), a newest row 30 min old (stale), 5 min old (fresh; some with a
/// null tier), or 70 min old (expired by the 1 h staleness limit, still within the TTL).
fn profile_history(now: i64) -> Vec<ProfileRow> {
    let mut rows = Vec::new();
    for i in 0..USERS as i64 {
        let ages: &[i64] = match i % 4 {
            0 => &[5 * HOUR],
            1 => &[5 * HOUR, 100 * MINUTE, 30 * MINUTE],
            2 => &[100 * MINUTE, 5 * MINUTE],
            _ => &[70 * MINUTE],
        };
        for (k, age) in ages.iter().enumerate() {
            rows.push(ProfileRow {
                user: format!("u{i}"),
                time: now - age,
                score: i * 10 + k as i64,
                premium: (i + k as i64) % 3 == 0,
                tier: (i % 8 != 2 || k == 0).then(|| format!("t{}", (i + k as i64) % 4)),
            });
        }
    }
    rows
}

fn csv(rows: &[&ProfileRow]) -> String {
    let mut out = String::from("user_id,event_timestamp,score,premium,tier\n");
    for r in rows {
        let ts = Timestamp::from_millis(r.time).unwrap().to_rfc3339();
        let tier = r.tier.clone().unwrap_or_default();
        writeln!(out, "{},{ts},{},{},{tier}", r.user, r.score, r.premium).unwrap();
    }
    out
}

/// The registry: the ingest tests' stream group `tx`, and batch group `profile` whose
/// history is declared in the registry.
fn registry(history: &Path) -> String {
    format!(
        r#"{REGISTRY}
[[feature_groups]]
name = "profile"
entity = "user"
ttl = "2h"
freshness_slo = "10m"
staleness_limit = "1h"
offline = "{}"
features = [
  {{ name = "score", type = "int64", default = -1 }},
  {{ name = "premium", type = "bool", default = false }},
  {{ name = "tier", type = "string", default = "none" }},
]
"#,
        history.display()
    )
}

/// What the test deployment holds.
struct Setup {
    redis: RedisServer,
    g: Generated,
    profile: Vec<ProfileRow>,
    dir: TestCommand,
    config: PathBuf,
    events: PathBuf,
}

fn setup(seed: u64) -> Setup {
    let redis = RedisServer::start().unwrap();
    let now = Timestamp::now().millis();
    let g = generate(seed, now, USERS, 2500, 3 * HOUR, false);
    let dir = TestCommand::new();
    // One malformed line at the end: ingest dead-letters it, the training set lists it.
    let events = dir.write("events.ndjson", &format!("{}this is not json\n", g.text));
    let profile = profile_history(now);
    let history = dir.write(
        "profile-history.csv",
        &csv(&profile.iter().collect::<Vec<_>>()),
    );
    let config = dir.write("riffle.toml", &registry(&history));
    Setup {
        redis,
        g,
        profile,
        dir,
        config,
        events,
    }
}

impl Setup {
    /// Loads each user's newest profile row that the TTL has not removed by `now`, as a
    /// deployment loading every row at its time would hold.
    fn load_profiles(&self, now: i64) {
        let mut newest: BTreeMap<&str, &ProfileRow> = BTreeMap::new();
        for r in self.profile.iter().filter(|r| r.time <= now) {
            newest.insert(&r.user, r);
        }
        let rows: Vec<&ProfileRow> = newest
            .into_values()
            .filter(|r| now - r.time <= 2 * HOUR)
            .collect();
        let file = self.dir.write("profile-latest.csv", &csv(&rows));
        let mut cmd = TestCommand::new();
        cmd.arg("load")
            .arg("--config")
            .arg(&self.config)
            .args(["--store", &self.redis.url(), "--group", "profile"])
            .arg(file);
        cmd.expect_code(0);
    }

    fn ingest(&self) {
        let mut cmd = TestCommand::new();
        cmd.arg("ingest")
            .arg("--config")
            .arg(&self.config)
            .args(["--store", &self.redis.url(), "--json", "--from"])
            .arg(&self.events);
        cmd.expect_code(0);
    }

    /// `riffle training-set` over `spine` with every feature and their statuses; the
    /// summary and the output read back.
    fn training_set(&self, spine: &Path, extra: &[&str]) -> (Value, RecordBatch) {
        let out = self.dir.dir().join(format!(
            "{}.parquet",
            spine.file_stem().unwrap().to_string_lossy()
        ));
        let features: Vec<String> = TX
            .iter()
            .map(|f| format!("tx:{f}"))
            .chain(PROFILE.iter().map(|(f, _)| format!("profile:{f}")))
            .collect();
        let mut cmd = TestCommand::new();
        cmd.arg("training-set")
            .arg("--config")
            .arg(&self.config)
            .arg("--spine")
            .arg(spine)
            .arg("--out")
            .arg(&out)
            .args(["--features", &features.join(","), "--with-status", "--json"])
            .arg("--events")
            .arg(format!("transactions={}", self.events.display()))
            .args(extra);
        let (stdout, _) = cmd.expect_code(0);
        let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (summary, read_parquet(&out))
    }
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Column `name` of `batch` as served values, typed by `ty` (the column's Arrow type is
/// checked to be that type's).
fn values(batch: &RecordBatch, name: &str, ty: FeatureType) -> Vec<FeatureValue> {
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let want = match ty {
        FeatureType::Int64 => DataType::Int64,
        FeatureType::Float64 => DataType::Float64,
        FeatureType::Bool => DataType::Boolean,
        _ => DataType::Utf8,
    };
    assert_eq!(column.data_type(), &want, "{name}");
    (0..column.len())
        .map(|i| {
            assert!(
                !column.is_null(i),
                "{name} row {i} is null: a default is served instead"
            );
            let json = riffle_offline::cells::to_json(column.as_ref(), i).unwrap();
            FeatureValue::from_json(ty, &json).unwrap()
        })
        .collect()
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    values(batch, name, FeatureType::String)
        .into_iter()
        .map(|v| match v {
            FeatureValue::String(s) => s,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn tx_type(feature: &str) -> FeatureType {
    match feature {
        "n_30m" | "n_1h" | "n_24h" | "merchants_24h" => FeatureType::Int64,
        "last_merchant_1h" => FeatureType::String,
        _ => FeatureType::Float64,
    }
}

/// Feature `feature`'s served value as a typed value, from the answer's text: a float is
/// parsed from its digits by `str::parse` (correctly rounded), because serde_json's default
/// float parser may land one unit in the last place away, and the comparison is exact.
fn served(body: &str, v: &Value, feature: &str, ty: FeatureType) -> FeatureValue {
    if ty == FeatureType::Float64 {
        let key = format!("\"{feature}\":{{\"value\":");
        let start = body.find(&key).unwrap_or_else(|| panic!("{key} in {body}")) + key.len();
        let digits: String = body[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || "+-.eE".contains(*c))
            .collect();
        return FeatureValue::Float64(digits.parse().unwrap_or_else(|e| panic!("{digits}: {e}")));
    }
    FeatureValue::from_json(ty, v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn the_training_set_at_the_instant_served_equals_what_serve_answered() {
    let mut users: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    users.extend(["old".to_string(), "nobody".to_string()]);

    // Windows move at tile edges (30 s for 30 min windows): events are generated, ingested
    // and loaded, and every answer read, within one 30 s tile, so the rows ingest wrote are
    // still right when read, and its watermark (the newest event) is seconds old.
    let mut attempt = 0;
    let (s, answers, at) = loop {
        attempt += 1;
        assert!(
            attempt <= 4,
            "could not ingest and read within one 30 s tile"
        );
        while Timestamp::now().millis() % 30_000 > 3_000 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let start = Timestamp::now().millis();
        let s = setup(7);
        let serve = Serve::start(&s.config, &s.redis.url());
        s.load_profiles(start);
        s.ingest();
        // Serve reads the published watermarks every second: let it see ingest's.
        std::thread::sleep(Duration::from_millis(2_000));
        let answers: Vec<String> = users.iter().map(|u| serve.user_body(u, "")).collect();
        let end = Timestamp::now().millis();
        if start / 30_000 == end / 30_000 {
            break (s, answers, end);
        }
    };

    // The spine: every user at the instant of serving, shuffled, with a label.
    let mut order: Vec<usize> = (0..users.len()).collect();
    let mut rng = Rng::new(11);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut spine = String::from("user_id,event_timestamp,label\n");
    let ts = Timestamp::from_millis(at).unwrap().to_rfc3339();
    for &i in &order {
        writeln!(spine, "{},{ts},{}", users[i], i * 7).unwrap();
    }
    let spine = s.dir.write("spine-now.csv", &spine);
    let (summary, out) = s.training_set(&spine, &[]);
    assert_eq!(out.num_rows(), users.len());
    assert_eq!(
        summary["sources"]["transactions"]["used"],
        s.g.accepted.len()
    );
    assert_eq!(
        summary["sources"]["transactions"]["bad"]["counts"]["undecodable"],
        1
    );
    let listed = summary["sources"]["transactions"]["bad"]["listed"][0]["at"]
        .as_str()
        .unwrap();
    assert!(
        listed.ends_with(&format!(":{}", s.g.text.lines().count() + 1)),
        "{listed}"
    );

    // Spine columns pass through, in spine order.
    assert_eq!(
        strings(&out, "user_id"),
        order.iter().map(|&i| users[i].clone()).collect::<Vec<_>>()
    );
    let labels = out.column_by_name("label").unwrap();
    for (row, &i) in order.iter().enumerate() {
        let label = riffle_offline::cells::to_json(labels.as_ref(), row).unwrap();
        assert_eq!(label, Value::from(i * 7));
    }

    let mut checked = BTreeMap::<String, usize>::new();
    for (row, &i) in order.iter().enumerate() {
        let body = &answers[i];
        let answer: Value = serde_json::from_str(body).unwrap();
        for group in answer["results"][0]["groups"].as_array().unwrap() {
            let name = group["group"].as_str().unwrap();
            for (feature, v) in group["features"].as_object().unwrap() {
                let ty = if name == "tx" {
                    tx_type(feature)
                } else {
                    PROFILE.iter().find(|(f, _)| f == feature).unwrap().1
                };
                let got = &values(&out, feature, ty)[row];
                assert_eq!(
                    got,
                    &served(body, &v["value"], feature, ty),
                    "{} {name}:{feature}",
                    users[i]
                );
                let status = &strings(&out, &format!("{feature}__status"))[row];
                assert_eq!(
                    status,
                    v["status"].as_str().unwrap(),
                    "{} {name}:{feature} {body}",
                    users[i]
                );
                *checked
                    .entry(v["status"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    // Every status the groups' rules give appeared, so each rule was compared.
    for status in ["fresh", "stale", "expired", "missing", "null"] {
        assert!(
            checked.contains_key(status),
            "no {status} value compared: {checked:?}"
        );
    }
}

/// The oracle's status and values of `tx` for `user` at `t`, from the events up to `t`.
fn tx_at(events: &[Ev], user: &str, t: i64) -> (&'static str, Vec<FeatureValue>) {
    let upto: Vec<Ev> = events.iter().filter(|e| e.time <= t).cloned().collect();
    let status = if upto.iter().any(|e| e.user == user) {
        "fresh"
    } else {
        "missing"
    };
    (status, oracle(&upto, user, t))
}

/// The as-of join written plainly: the newest row at or before `t` (the last of equal
/// times), gone past the 2 h TTL, else fresh up to 10 min, stale up to 1 h, then expired.
fn profile_at(rows: &[ProfileRow], user: &str, t: i64) -> (&'static str, Vec<FeatureValue>) {
    let defaults = vec![
        FeatureValue::Int64(-1),
        FeatureValue::Bool(false),
        FeatureValue::String("none".into()),
    ];
    let newest = rows
        .iter()
        .filter(|r| r.user == user && r.time <= t)
        .max_by_key(|r| r.time);
    let Some(r) = newest else {
        return ("missing", defaults);
    };
    let age = t - r.time;
    let status = match age {
        a if a > 2 * HOUR => return ("missing", defaults),
        a if a > HOUR => return ("expired", defaults),
        a if a > 10 * MINUTE => "stale",
        _ => "fresh",
    };
    let tier = match &r.tier {
        Some(t) => FeatureValue::String(t.clone()),
        None => FeatureValue::String("none".into()),
    };
    (
        status,
        vec![
            FeatureValue::Int64(r.score),
            FeatureValue::Bool(r.premium),
            tier,
        ],
    )
}

#[test]
fn earlier_instants_get_the_oracles_values_from_the_events_up_to_then() {
    let s = setup(23);
    let now = Timestamp::now().millis();
    // Minute ends (events arrive minute by minute, shuffled within a minute, so every
    // instant's events arrived before any later one's: sums add in the same order).
    let minute_end = now.div_euclid(MINUTE) * MINUTE - 1;
    let ages = [0, 3, 17, 31, 45, 70, 95, 130, 175, 200, 320];
    let mut users: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    users.extend(["old".to_string(), "nobody".to_string()]);
    let mut spine = String::new();
    let mut rows = Vec::new();
    let mut rng = Rng::new(5);
    for user in &users {
        for age in ages {
            let t = minute_end - age * MINUTE;
            rows.push((user.clone(), t));
        }
    }
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (user, t) in &rows {
        // Epoch milliseconds and RFC 3339 both read.
        let ts = if t % 2 == 0 {
            Value::from(*t)
        } else {
            Value::from(Timestamp::from_millis(*t).unwrap().to_rfc3339())
        };
        writeln!(spine, "{}", serde_json::json!({"user_id": user, "at": ts})).unwrap();
    }
    let spine = s.dir.write("spine-history.ndjson", &spine);
    // The same events as a Parquet archive of two files (a later --events wins).
    let archive = s.dir.dir().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let (first, second) = s.g.accepted.split_at(s.g.accepted.len() / 3);
    write_parquet(&archive.join("a.parquet"), first, true);
    write_parquet(&archive.join("b.parquet"), second, false);
    let events = format!("transactions={}/*.parquet", archive.display());
    let (summary, out) = s.training_set(&spine, &["--timestamp-column", "at", "--events", &events]);
    assert_eq!(summary["sources"]["transactions"]["files"], 2, "{summary}");
    assert_eq!(out.num_rows(), rows.len());

    let mut statuses = BTreeMap::<&str, usize>::new();
    let tx: Vec<Vec<FeatureValue>> = TX.iter().map(|f| values(&out, f, tx_type(f))).collect();
    let tx_status = strings(&out, "n_1h__status");
    let profile: Vec<Vec<FeatureValue>> =
        PROFILE.iter().map(|(f, ty)| values(&out, f, *ty)).collect();
    let profile_status: Vec<Vec<String>> = PROFILE
        .iter()
        .map(|(f, _)| strings(&out, &format!("{f}__status")))
        .collect();
    for (row, (user, t)) in rows.iter().enumerate() {
        let (status, want) = tx_at(&s.g.accepted, user, *t);
        let got: Vec<FeatureValue> = tx.iter().map(|c| c[row].clone()).collect();
        assert_eq!(
            got,
            want,
            "tx of {user} at {}",
            Timestamp::from_millis(*t).unwrap()
        );
        assert_eq!(tx_status[row], status, "tx of {user} at {t}");
        let (status, want) = profile_at(&s.profile, user, *t);
        let got: Vec<FeatureValue> = profile.iter().map(|c| c[row].clone()).collect();
        assert_eq!(got, want, "profile of {user} at {t}");
        // A null tier is served as the default with status null; the others keep the row's.
        let tier_status = if status != "missing"
            && status != "expired"
            && want[2] == FeatureValue::String("none".into())
        {
            "null"
        } else {
            status
        };
        assert_eq!(profile_status[0][row], status, "profile of {user} at {t}");
        assert_eq!(
            profile_status[2][row], tier_status,
            "profile tier of {user} at {t}"
        );
        *statuses.entry(status).or_default() += 1;
    }
    for status in ["fresh", "stale", "expired", "missing"] {
        assert!(
            statuses.contains_key(status),
            "no {status} profile compared: {statuses:?}"
        );
    }
}

#[test]
fn a_spine_or_request_that_cannot_be_used_is_refused_naming_what_to_fix() {
    let s = setup(3);
    let future = Timestamp::from_millis(Timestamp::now().millis() + HOUR)
        .unwrap()
        .to_rfc3339();
    let cases: [(&str, String, &[&str], &[&str]); 4] = [
        (
            "no-key.csv",
            "customer,event_timestamp\nu1,2026-01-01T00:00:00Z\n".into(),
            &[],
            &["no column \"user_id\"", "customer"],
        ),
        (
            "future.csv",
            format!("user_id,event_timestamp\nu1,2026-01-01T00:00:00Z\nu2,{future}\n"),
            &[],
            &["row 2", "\"event_timestamp\"", "in the future"],
        ),
        (
            "bad-time.csv",
            "user_id,event_timestamp\nu1,yesterday\n".into(),
            &[],
            &["row 1", "\"event_timestamp\""],
        ),
        (
            "ok.csv",
            "user_id,event_timestamp\nu1,2026-01-01T00:00:00Z\n".into(),
            &["--features", "tx:nope"],
            &["no feature \"nope\"", "n_30m"],
        ),
    ];
    for (name, text, flags, want) in cases {
        let spine = s.dir.write(name, &text);
        let mut cmd = TestCommand::new();
        cmd.arg("training-set")
            .arg("--config")
            .arg(&s.config)
            .arg("--spine")
            .arg(&spine)
            .arg("--out")
            .arg(s.dir.dir().join("out.parquet"))
            .arg("--events")
            .arg(format!("transactions={}", s.events.display()));
        if flags.is_empty() {
            cmd.args(["--features", "tx:n_1h"]);
        } else {
            cmd.args(flags);
        }
        let (_, stderr) = cmd.expect_code(2);
        for w in want {
            assert!(stderr.contains(w), "{name}: {w:?} not in:\n{stderr}");
        }
        assert!(
            !s.dir.dir().join("out.parquet").exists(),
            "{name}: nothing is written"
        );
    }
}
