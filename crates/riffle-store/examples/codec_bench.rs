//! Decode (and encode) work per row of the lesson's ten features, in every row encoding,
//! beside what the alternatives cost on the same values in the same run: parsing the
//! lesson's plain-hash text values (`str::parse`), and reading Feast's layout of one
//! protobuf `ValueProto` per feature (a minimal hand-written protobuf reader: a lower bound
//! on what a generated one does). Prints figures, asserts nothing.
//!
//!   cargo run --release -p riffle-store --example codec_bench [-- ROWS]

use std::hint::black_box;
use std::time::Instant;

use riffle_core::{FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::codec::{self, GroupRow, RowEncoding};

const REGISTRY: &str = r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "user_features"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
features = [
  { name = "tx_count_1h", type = "int64", default = 0 },
  { name = "tx_sum_1h", type = "float64", default = 0.0 },
  { name = "tx_count_24h", type = "int64", default = 0 },
  { name = "tx_sum_24h", type = "float64", default = 0.0 },
  { name = "account_age_days", type = "int64", default = 0 },
  { name = "avg_tx_90d", type = "float64", default = 0.0 },
  { name = "distinct_merchants_7d", type = "int64", default = 0 },
  { name = "credit_score_bucket", type = "int64", default = 0 },
  { name = "is_premium", type = "bool", default = false },
  { name = "last_login_ts", type = "int64", default = 0 },
]
"#;

/// The lesson's typical values, as the plain hash stores them (redis-py writes `str(v)`).
const TEXT: [&str; 10] = [
    "7",
    "123.45",
    "42",
    "1234.56",
    "1234",
    "56.78",
    "12",
    "7",
    "True",
    "1795700603000",
];

/// Which of the ten are float64 (the rest: int64, and one bool).
const FLOAT: [bool; 10] = [
    false, true, false, true, false, true, false, false, false, false,
];

fn values() -> Vec<FeatureValue> {
    TEXT.iter()
        .zip(FLOAT)
        .map(|(t, float)| match (*t, float) {
            ("True", _) => FeatureValue::Bool(true),
            (t, true) => FeatureValue::Float64(t.parse().unwrap_or(0.0)),
            (t, false) => FeatureValue::Int64(t.parse().unwrap_or(0)),
        })
        .collect()
}

/// The plain hash: ten strings parsed to typed values.
fn parse_text(text: &[&str; 10]) -> Vec<FeatureValue> {
    let mut out = Vec::with_capacity(10);
    for (t, float) in text.iter().zip(FLOAT) {
        out.push(if *t == "True" || *t == "False" {
            FeatureValue::Bool(*t == "True")
        } else if float {
            FeatureValue::Float64(t.parse().unwrap_or(f64::NAN))
        } else {
            FeatureValue::Int64(t.parse().unwrap_or(0))
        });
    }
    out
}

/// Feast's `ValueProto` of one value (int64_val = 4, double_val = 5, bool_val = 7).
fn proto(value: &FeatureValue) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        FeatureValue::Int64(v) => {
            out.push(4 << 3);
            let mut v = *v as u64;
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        FeatureValue::Float64(v) => {
            out.push((5 << 3) | 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        FeatureValue::Bool(v) => out.extend_from_slice(&[7 << 3, u8::from(*v)]),
        _ => {}
    }
    out
}

/// Reads one `ValueProto` onto `out`: field tags in a loop, the last `val` wins (as
/// protobuf says).
fn read_proto(bytes: &[u8], out: &mut Vec<FeatureValue>) {
    let mut at = 0;
    let mut value = FeatureValue::Null;
    let varint = |at: &mut usize| {
        let mut v = 0u64;
        let mut shift = 0;
        while let Some(&b) = bytes.get(*at) {
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift >= 64 {
                break;
            }
        }
        v
    };
    while at < bytes.len() {
        let key = varint(&mut at);
        match (key >> 3, key & 7) {
            (4, 0) => value = FeatureValue::Int64(varint(&mut at) as i64),
            (7, 0) => value = FeatureValue::Bool(varint(&mut at) != 0),
            (5, 1) => match bytes.get(at..at + 8) {
                Some(b) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    value = FeatureValue::Float64(f64::from_le_bytes(a));
                    at += 8;
                }
                None => break,
            },
            _ => break,
        }
    }
    out.push(value);
}

/// Best of five runs of `rows` calls of `f`, in ns per call.
fn time<T>(rows: u32, mut f: impl FnMut() -> T) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rows {
                black_box(f());
            }
            start.elapsed().as_nanos() as f64 / f64::from(rows)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let rows: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let registry = match Registry::from_toml(REGISTRY) {
        Ok(r) => r,
        Err(e) => return eprintln!("bad registry: {e}"),
    };
    let group = &registry.groups[0];
    let event = Timestamp::from_millis(1_795_700_603_123).unwrap_or(Timestamp::EPOCH);
    let row = GroupRow {
        event_ts: event,
        computed_at: event,
        values: values(),
        partition: None,
    };
    let (Ok(v1), Ok(v2)) = (
        codec::encode_as(RowEncoding::V1, group, &row),
        codec::encode_as(RowEncoding::V2, group, &row),
    ) else {
        return eprintln!("the row does not encode");
    };
    let protos: Vec<Vec<u8>> = row.values.iter().map(proto).collect();
    let text_bytes: usize = TEXT.iter().map(|t| t.len()).sum();
    let proto_bytes: usize = protos.iter().map(Vec::len).sum();

    let d1 = time(rows, || codec::decode(group, black_box(&v1)));
    let d2 = time(rows, || codec::decode(group, black_box(&v2)));
    let dt = time(rows, || parse_text(black_box(&TEXT)));
    let dp = time(rows, || {
        let mut out = Vec::with_capacity(10);
        for p in black_box(&protos) {
            read_proto(p, &mut out);
        }
        out
    });
    let e1 = time(rows, || {
        codec::encode_as(RowEncoding::V1, group, black_box(&row))
    });
    let e2 = time(rows, || {
        codec::encode_as(RowEncoding::V2, group, black_box(&row))
    });

    println!("the lesson's ten features, one row, {rows} rows per run, best of 5 runs");
    println!(
        "{:<44} {:>7} {:>8} {:>10} {:>9}",
        "decode", "bytes", "ns/row", "ns/value", "vs v1"
    );
    let line = |name: &str, bytes: usize, ns: f64| {
        println!(
            "{name:<44} {bytes:>7} {ns:>8.1} {:>10.1} {:>8.2}x",
            ns / 10.0,
            ns / d1
        );
    };
    line("row v1 (codec::decode)", v1.len(), d1);
    line("row v2 (codec::decode)", v2.len(), d2);
    line("plain hash text (str::parse of 10 values)", text_bytes, dt);
    line("Feast ValueProto x10 (minimal reader)", proto_bytes, dp);
    println!("{:<44} {:>7} {:>8}", "encode", "bytes", "ns/row");
    println!(
        "{:<44} {:>7} {e1:>8.1}",
        "row v1 (codec::encode_as)",
        v1.len()
    );
    println!(
        "{:<44} {:>7} {e2:>8.1}",
        "row v2 (codec::encode_as)",
        v2.len()
    );
}
