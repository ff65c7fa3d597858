//! Support for the `cli_ingest*` tests: the test registry, a seeded event generator, a
//! deliberately simple oracle that computes every window value from the raw events with the
//! tile definition documented in `riffle_window` (no code shared with the engine),
//! and the Kafka side of the Kafka tests ([`kafka`]).
#![allow(dead_code)]

pub mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use std::sync::Arc;
use std::time::Duration;

use riffle_core::FeatureValue;
use riffle_registry::Registry;
use riffle_store::{EntityRead, GroupRow, OnlineStore, RowRead, StoreLimits, StoreUrl};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;

/// The registry: source `transactions`, one stream group with every kind over 30m/1h/24h.
pub const REGISTRY: &str = r#"
[project]
name = "itest"

[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "transactions"
entity = "user"
kind = "file"
path = "events.ndjson"
time_field = "event_time"
fields = [{ name = "amount", type = "float64" }, { name = "merchant_id", type = "string" }]

[[feature_groups]]
name = "tx"
entity = "user"
source = "transactions"
ttl = "48h"
freshness_slo = "1m"
features = [
  { name = "n_30m", type = "int64", default = 0, aggregation = "count", window = "30m" },
  { name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" },
  { name = "n_24h", type = "int64", default = 0, aggregation = "count", window = "24h" },
  { name = "sum_1h", type = "float64", default = 0.0, aggregation = "sum", field = "amount", window = "1h" },
  { name = "sum_24h", type = "float64", default = 0.0, aggregation = "sum", field = "amount", window = "24h" },
  { name = "mean_30m", type = "float64", default = -1.0, aggregation = "mean", field = "amount", window = "30m" },
  { name = "mean_24h", type = "float64", default = -1.0, aggregation = "mean", field = "amount", window = "24h" },
  { name = "max_1h", type = "float64", default = -2.0, aggregation = "max", field = "amount", window = "1h" },
  { name = "last_merchant_1h", type = "string", default = "none", aggregation = "last", field = "merchant_id", window = "1h" },
  { name = "merchants_24h", type = "int64", default = 0, aggregation = "distinct_count", field = "merchant_id", window = "24h" },
]
"#;

/// The rows of group `group` of `ids` (entity 0), in order, one store read per 500 ids.
pub async fn group_rows(store: &OnlineStore, group: usize, ids: &[String]) -> Vec<RowRead> {
    let groups = [group];
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let reads: Vec<EntityRead> = chunk
            .iter()
            .map(|id| EntityRead {
                entity: 0,
                id,
                groups: &groups,
            })
            .collect();
        for mut rows in store.read(&reads).await.expect("store read") {
            out.push(rows.remove(0));
        }
    }
    out
}

/// A row read: the row, or `None` where missing; a corrupt row or an unavailable node
/// fails the test.
pub fn found(read: RowRead) -> Option<GroupRow> {
    match read {
        RowRead::Found(row) => Some(row),
        RowRead::Missing => None,
        RowRead::Corrupt(e) => panic!("corrupt row: {e}"),
        RowRead::Unavailable => panic!("store node unavailable"),
    }
}

/// Reads the `tx` rows of `users` (None where missing) from the store at `url`.
pub fn read_rows(url: &StoreUrl, users: &[String]) -> Vec<Option<GroupRow>> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let registry = Arc::new(Registry::from_toml(REGISTRY).expect("registry"));
        let mut limits = StoreLimits::from_settings(&registry.store);
        limits.timeout = Duration::from_secs(10);
        let store = OnlineStore::open(url, registry, limits)
            .await
            .expect("store");
        let rows = group_rows(&store, 0, users).await;
        rows.into_iter().map(found).collect()
    })
}

#[derive(Clone, Copy)]
pub enum Kind {
    Count,
    Sum,
    Mean,
    Max,
    Last,
    Distinct,
}

/// (kind, window ms, default tile ms as documented: 30m → 30s, 1h → 1min, 24h → 15min).
pub const FEATURES: [(Kind, i64); 10] = [
    (Kind::Count, 30 * MINUTE),
    (Kind::Count, HOUR),
    (Kind::Count, 24 * HOUR),
    (Kind::Sum, HOUR),
    (Kind::Sum, 24 * HOUR),
    (Kind::Mean, 30 * MINUTE),
    (Kind::Mean, 24 * HOUR),
    (Kind::Max, HOUR),
    (Kind::Last, HOUR),
    (Kind::Distinct, 24 * HOUR),
];
const DEFAULTS: [FeatureValue; 10] = [
    FeatureValue::Int64(0),
    FeatureValue::Int64(0),
    FeatureValue::Int64(0),
    FeatureValue::Float64(0.0),
    FeatureValue::Float64(0.0),
    FeatureValue::Float64(-1.0),
    FeatureValue::Float64(-1.0),
    FeatureValue::Float64(-2.0),
    FeatureValue::Null, // "none", built below
    FeatureValue::Int64(0),
];

fn tile_ms(window: i64) -> i64 {
    match window {
        w if w == 30 * MINUTE => 30_000,
        w if w == HOUR => MINUTE,
        _ => 15 * MINUTE,
    }
}

/// One accepted event, in file (arrival) order.
#[derive(Debug, Clone)]
pub struct Ev {
    pub user: String,
    pub time: i64,
    pub amount: f64,
    pub merchant: String,
}

/// A generated file: its text, the events that must be applied, and the line numbers of
/// the lines that must be dead-lettered with their reason.
pub struct Generated {
    pub text: String,
    pub accepted: Vec<Ev>,
    pub rejected: BTreeMap<u64, &'static str>,
}

/// xorshift64*: a seeded generator without dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` events over `users` users with event times in `[now - span, now)`, sorted by
/// minute and shuffled within each minute, with bursts; plus, when `bad` is set, malformed
/// and too-late lines. Entity `old` only has events 2–3 hours old.
pub fn generate(seed: u64, now: i64, users: u64, count: usize, span: i64, bad: bool) -> Generated {
    let mut rng = Rng::new(seed);
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let user = format!("u{}", rng.below(users));
        let time = now - 1 - rng.below(span as u64) as i64;
        let burst = if rng.below(20) == 0 {
            1 + rng.below(15)
        } else {
            1
        };
        for _ in 0..burst {
            events.push(Ev {
                user: user.clone(),
                time: (time + rng.below(20_000) as i64).min(now - 1),
                amount: rng.below(100_000) as f64 / 100.0,
                merchant: format!("m{}", rng.below(12)),
            });
        }
    }
    if span > 2 * HOUR {
        for _ in 0..5 {
            events.push(Ev {
                user: "old".into(),
                time: now - 2 * HOUR - 10 * MINUTE - rng.below(30 * MINUTE as u64) as i64,
                amount: 1.5,
                merchant: "m-old".into(),
            });
        }
    }
    // Sort by minute, shuffled within the minute (out of order by up to a minute).
    let mut keyed: Vec<(i64, u64, Ev)> = events
        .into_iter()
        .map(|e| (e.time.div_euclid(MINUTE), rng.next(), e))
        .collect();
    keyed.sort_by_key(|(m, r, _)| (*m, *r));
    let mut out = Generated {
        text: String::new(),
        accepted: Vec::new(),
        rejected: BTreeMap::new(),
    };
    let mut line = 0u64;
    for (i, (_, _, e)) in keyed.into_iter().enumerate() {
        if bad && i % 97 == 13 {
            line += 1;
            let (text, reason) = match (i / 97) % 4 {
                0 => ("this is not json".to_owned(), "undecodable"),
                1 => (format!("{{\"user_id\":\"{}\"}}", e.user), "schema_mismatch"),
                2 => (
                    format!(
                        "{{\"user_id\":\"{}\",\"event_time\":{},\"amount\":\"abc\"}}",
                        e.user, e.time
                    ),
                    "schema_mismatch",
                ),
                _ => (
                    format!(
                        "{{\"user_id\":\"{}\",\"event_time\":{},\"amount\":3.0,\"merchant_id\":\"m1\"}}",
                        e.user,
                        now - 30 * HOUR
                    ),
                    "too_late",
                ),
            };
            writeln!(out.text, "{text}").unwrap();
            out.rejected.insert(line, reason);
        }
        line += 1;
        writeln!(
            out.text,
            "{{\"user_id\":\"{}\",\"event_time\":{},\"amount\":{},\"merchant_id\":\"{}\"}}",
            e.user, e.time, e.amount, e.merchant
        )
        .unwrap();
        out.accepted.push(e);
    }
    out
}

/// Every feature's value for `user` read at `at`, from the raw events.
pub fn oracle(events: &[Ev], user: &str, at: i64) -> Vec<FeatureValue> {
    FEATURES
        .iter()
        .enumerate()
        .map(|(i, &(kind, window))| {
            let tile = tile_ms(window);
            let n = window / tile;
            let hi = at.div_euclid(tile);
            let lo = hi - n + 1;
            let evs: Vec<(usize, &Ev)> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.user == user)
                .filter(|(_, e)| (lo..=hi).contains(&e.time.div_euclid(tile)))
                .collect();
            let default = if i == 8 {
                FeatureValue::String("none".into())
            } else {
                DEFAULTS[i].clone()
            };
            // Sums: per tile in arrival order, then across tiles in tile order.
            let sum = || {
                let mut tiles: BTreeMap<i64, f64> = BTreeMap::new();
                for (_, e) in &evs {
                    *tiles.entry(e.time.div_euclid(tile)).or_insert(0.0) += e.amount;
                }
                tiles.values().fold(0.0, |a, s| a + s)
            };
            match kind {
                Kind::Count => FeatureValue::Int64(evs.len() as i64),
                Kind::Sum => FeatureValue::Float64(sum()),
                Kind::Mean if evs.is_empty() => default,
                Kind::Mean => FeatureValue::Float64(sum() / evs.len() as f64),
                Kind::Max => evs
                    .iter()
                    .map(|(_, e)| e.amount)
                    .reduce(f64::max)
                    .map_or(default, FeatureValue::Float64),
                Kind::Last => evs
                    .iter()
                    .max_by_key(|(i, e)| (e.time, *i))
                    .map_or(default, |(_, e)| FeatureValue::String(e.merchant.clone())),
                Kind::Distinct => FeatureValue::Int64(
                    evs.iter()
                        .map(|(_, e)| e.merchant.as_str())
                        .collect::<BTreeSet<_>>()
                        .len() as i64,
                ),
            }
        })
        .collect()
}

/// `events` as a Parquet file at `path`: event times as an Arrow timestamp when `typed`,
/// else as epoch milliseconds.
pub fn write_parquet(path: &std::path::Path, events: &[Ev], typed: bool) {
    use datafusion::arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let times: Vec<i64> = events.iter().map(|e| e.time).collect();
    let time: ArrayRef = if typed {
        Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC"))
    } else {
        Arc::new(Int64Array::from(times))
    };
    let batch = RecordBatch::try_from_iter([
        (
            "user_id",
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.user.as_str()),
            )) as ArrayRef,
        ),
        ("event_time", time),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.amount),
            )),
        ),
        (
            "merchant_id",
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.merchant.as_str()),
            )),
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}
