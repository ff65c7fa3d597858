//! The codec's tests: round trips of every encoding (bit for bit), garbage, the documented
//! worked examples byte for byte, and the forms version 2 picks for the lesson's values.

use super::*;
use proptest::prelude::*;
use riffle_registry::Registry;

fn registry(features: &str) -> Registry {
    Registry::from_toml(&format!(
        r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
features = [{features}]
"#
    ))
    .unwrap()
}

/// Five types, 11 features (two bitmap bytes), five float64 (an odd number of tags).
fn group() -> FeatureGroup {
    registry(
        r#"
  { name = "i", type = "int64", default = 0 },
  { name = "f", type = "float64", default = 0.0 },
  { name = "f2", type = "float64", default = 0.0 },
  { name = "b", type = "bool", default = false },
  { name = "s", type = "string", default = "" },
  { name = "v", type = "float_vector", dimension = 2, default = [0.0, 0.0] },
  { name = "f3", type = "float64", default = 0.0 },
  { name = "i2", type = "int64", default = 0 },
  { name = "f4", type = "float64", default = 0.0 },
  { name = "b2", type = "bool", default = false },
  { name = "f5", type = "float64", default = 0.0 },
"#,
    )
    .groups[0]
        .clone()
}

/// The lesson's ten features as one group (the worked example of `docs/storage-layout.md`;
/// `bench/lesson-ten-features.toml` declares the same group).
const LESSON: &str = r#"
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
"#;

fn lesson_values() -> Vec<FeatureValue> {
    use FeatureValue::*;
    vec![
        Int64(7),
        Float64(123.45),
        Int64(42),
        Float64(1234.56),
        Int64(1234),
        Float64(56.78),
        Int64(12),
        Int64(7),
        Bool(true),
        Int64(1_795_700_603_000),
    ]
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Values equal bit for bit (`==` on floats would let NaN fail and -0.0 pass).
fn same_bits(a: &GroupRow, b: &GroupRow) -> bool {
    use FeatureValue::*;
    a.event_ts == b.event_ts
        && a.computed_at == b.computed_at
        && a.values.len() == b.values.len()
        && a.values.iter().zip(&b.values).all(|pair| match pair {
            (Float64(x), Float64(y)) => x.to_bits() == y.to_bits(),
            (FloatVector(x), FloatVector(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (x, y) => x == y,
        })
}

const ENCODINGS: [RowEncoding; 3] = [RowEncoding::V1, RowEncoding::V2, RowEncoding::V3];

/// The partition a row of `encoding` keeps: only version 3 stores one.
fn kept(encoding: RowEncoding, partition: Option<u32>) -> Option<u32> {
    partition.filter(|_| encoding == RowEncoding::V3)
}

#[test]
fn round_trips_and_rejects_mismatches() {
    let g = group();
    use FeatureValue::*;
    let row = GroupRow {
        event_ts: ts(1_795_694_400_000),
        computed_at: ts(1_795_694_400_250),
        values: vec![
            Int64(-3),
            Float64(42.5),
            Float64(f64::NAN),
            Bool(true),
            Null,
            FloatVector(vec![0.25, -1.5]),
            Float64(-0.0),
            Null,
            Float64(0.1),
            Bool(false),
            Float64(f64::MIN_POSITIVE / 3.0),
        ],
        // Two varint bytes in version 3.
        partition: Some(300),
    };
    for encoding in ENCODINGS {
        let bytes = encode_as(encoding, &g, &row).unwrap();
        assert_eq!(bytes[0], encoding.version());
        let back = decode(&g, &bytes).unwrap();
        assert!(same_bits(&back, &row), "{encoding:?}");
        assert_eq!(
            back.partition,
            kept(encoding, row.partition),
            "{encoding:?}"
        );
        for cut in 0..bytes.len() {
            assert!(
                decode(&g, &bytes[..cut]).is_err(),
                "{encoding:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&g, &longer), Err(DecodeError::TrailingBytes(1)));
        let mut wrong = row.clone();
        wrong.values[0] = Bool(true);
        assert!(matches!(
            encode_as(encoding, &g, &wrong),
            Err(EncodeError::WrongType { .. })
        ));
        assert!(matches!(
            encode_as(
                encoding,
                &g,
                &GroupRow {
                    values: vec![],
                    ..row.clone()
                }
            ),
            Err(EncodeError::FeatureCount {
                got: 0,
                declared: 11
            })
        ));
    }
    assert_eq!(decode(&g, &[9]), Err(DecodeError::UnknownVersion(9)));
    assert_eq!(decode(&g, &[]), Err(DecodeError::Empty));
    // Without a partition, the default encoding writes version 2.
    let plain = GroupRow {
        partition: None,
        ..row.clone()
    };
    assert_eq!(encode(&g, &plain).unwrap()[0], v2::VERSION);
    // A partition beyond 32 bits is refused, never truncated.
    let mut wide = vec![v3::VERSION];
    put_varint(&mut wide, 1 << 32);
    wide.extend_from_slice(&encode(&g, &plain).unwrap()[1..]);
    assert_eq!(decode(&g, &wide), Err(DecodeError::BadPartition));
}

#[test]
fn version_2_checks_the_feature_count_and_its_own_fields() {
    let g = group();
    let ten = registry(LESSON).groups[0].clone();
    let row = GroupRow {
        event_ts: ts(1_795_700_603_000),
        computed_at: ts(1_795_700_603_000),
        values: lesson_values(),
        partition: None,
    };
    let bytes = encode(&ten, &row).unwrap();
    assert_eq!(
        decode(&g, &bytes),
        Err(DecodeError::FeatureCountCheck {
            stored: 10,
            declared: 11
        })
    );
    // The unused half of the two float-tag bytes of three floats must be zero.
    let tags_at = 2 + 4 + 1;
    let mut padded = bytes.clone();
    padded[tags_at + 1] |= 0x10;
    assert_eq!(decode(&ten, &padded), Err(DecodeError::BadFloatTags));
    // A mantissa beyond 2^53 would not convert exactly: rejected, never rounded.
    let f = registry(r#"{ name = "f", type = "float64", default = 0.0 }"#).groups[0].clone();
    let mut big = vec![2, 1 << 2, 0, 0, 0x02];
    put_varint(&mut big, zigzag((1 << 53) + 1));
    assert_eq!(decode(&f, &big), Err(DecodeError::BadMantissa(0)));
    let mut edge = vec![2, 1 << 2, 0, 0, 0x01];
    put_varint(&mut edge, zigzag(-(1 << 53)));
    assert_eq!(
        decode(&f, &edge).unwrap().values,
        vec![FeatureValue::Float64(-9_007_199_254_740_992.0)]
    );
}

/// The forms version 2 picks for the lesson's typical values, and the row they make.
#[test]
fn the_lesson_values_take_their_short_forms() {
    assert_eq!(v2::short_form(123.45), Some((3, 12345)));
    assert_eq!(v2::short_form(1234.56), Some((3, 123_456)));
    assert_eq!(v2::short_form(56.78), Some((3, 5678)));
    assert_eq!(v2::short_form(0.0), Some((1, 0)));
    assert_eq!(v2::short_form(-7.0), Some((1, -7)));
    assert_eq!(v2::short_form(0.1), Some((2, 1)));
    assert_eq!(v2::short_form(1e-14), Some((15, 1)));
    for raw in [
        -0.0,
        f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE / 4.0,
        1e-15,
        1e300,
        1.0 / 3.0,
        2.0f64.powi(48),
    ] {
        assert_eq!(v2::short_form(raw), None, "{raw:e}");
    }
    let ten = registry(LESSON).groups[0].clone();
    let ms_row = GroupRow {
        event_ts: ts(1_795_700_603_123),
        computed_at: ts(1_795_700_603_123),
        values: lesson_values(),
        partition: None,
    };
    let v1_len = encode_as(RowEncoding::V1, &ten, &ms_row).unwrap().len();
    let v2_len = encode(&ten, &ms_row).unwrap().len();
    // The ≤ 38-byte budget keeps one listpack-encoded field at 136 B of MEMORY USAGE.
    assert_eq!((v1_len, v2_len), (48, 32));
}

/// The version-2 worked example in docs/storage-layout.md, byte for byte.
#[test]
fn the_documented_v2_example_encodes_exactly() {
    let reg = registry(LESSON);
    let event = Timestamp::parse("2026-11-26T13:43:23Z").unwrap();
    let row = GroupRow {
        event_ts: event,
        computed_at: Timestamp::from_millis(event.millis() + 250).unwrap(),
        values: lesson_values(),
        partition: None,
    };
    let bytes = encode(&reg.groups[0], &row).unwrap();
    assert_eq!(
        hex(&bytes),
        "02 2a f6 c7 9d 39 f4 03 33 03 0e f2 c0 01 54 80 89 0f a4 13 \
         dc 58 18 0e 01 f0 e1 c5 81 c3 68"
    );
    assert!(same_bits(&decode(&reg.groups[0], &bytes).unwrap(), &row));
    // The example's comparison with version 1.
    let v1 = encode_as(RowEncoding::V1, &reg.groups[0], &row).unwrap();
    assert_eq!((bytes.len(), v1.len()), (31, 49));
    // The version-3 example: the same row from partition 2 of its topic.
    let from_two = GroupRow {
        partition: Some(2),
        ..row
    };
    let v3 = encode(&reg.groups[0], &from_two).unwrap();
    assert_eq!(hex(&v3[..2]), "03 02");
    assert_eq!(v3[2..], bytes[1..]);
    assert_eq!(decode(&reg.groups[0], &v3).unwrap(), from_two);
}

/// The version-1 worked example in docs/storage-layout.md, byte for byte.
#[test]
fn the_documented_v1_example_encodes_exactly() {
    let reg = registry(
        r#"
  { name = "tx_count_1h", type = "int64", default = 0 },
  { name = "tx_sum_1h", type = "float64", default = 0.0 },
"#,
    );
    let event = Timestamp::parse("2026-11-26T13:43:23Z").unwrap();
    let row = GroupRow {
        event_ts: event,
        computed_at: Timestamp::from_millis(event.millis() + 250).unwrap(),
        values: vec![FeatureValue::Int64(3), FeatureValue::Float64(42.5)],
        partition: None,
    };
    let bytes = encode_as(RowEncoding::V1, &reg.groups[0], &row).unwrap();
    assert_eq!(
        hex(&bytes),
        "01 f8 f0 e2 c0 a1 34 f4 03 02 00 06 00 00 00 00 00 40 45 40"
    );
    assert_eq!(decode(&reg.groups[0], &bytes).unwrap(), row);
}

#[test]
fn the_store_setting_chooses_the_encoding_written() {
    let with = |line: &str| {
        Registry::from_toml(&format!(
            "[store]\n{line}\n[[entities]]\nname = \"user\"\n[[feature_groups]]\nname = \"g\"\n\
             entity = \"user\"\nttl = \"1h\"\nfreshness_slo = \"1m\"\n\
             features = [{{ name = \"i\", type = \"int64\", default = 0 }}]\n"
        ))
    };
    assert_eq!(with("").unwrap().store.encoding, RowEncoding::V3);
    assert_eq!(
        with("encoding = 1").unwrap().store.encoding,
        RowEncoding::V1
    );
    assert_eq!(
        with("encoding = 2").unwrap().store.encoding,
        RowEncoding::V2
    );
    assert_eq!(
        with("encoding = 3").unwrap().store.encoding,
        RowEncoding::V3
    );
    let err = with("encoding = 4").unwrap_err().to_string();
    assert!(err.contains("store.encoding"), "{err}");
}

/// Any f64: ordinary bit patterns, short decimals, and the values that must stay raw.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (any::<i32>(), 0u32..16).prop_map(|(m, e)| f64::from(m) / 10f64.powi(e as i32)),
        (-1_000_000_000i64..1_000_000_000).prop_map(|m| m as f64 / 100.0),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            9_007_199_254_740_993.0,
        ]),
    ]
}

fn any_value(ty: FeatureType) -> BoxedStrategy<FeatureValue> {
    let value = match ty {
        FeatureType::Int64 => any::<i64>().prop_map(FeatureValue::Int64).boxed(),
        FeatureType::Float64 => any_f64().prop_map(FeatureValue::Float64).boxed(),
        FeatureType::Bool => any::<bool>().prop_map(FeatureValue::Bool).boxed(),
        FeatureType::String => ".{0,20}".prop_map(FeatureValue::String).boxed(),
        FeatureType::FloatVector { dim } => {
            proptest::collection::vec(any::<u32>().prop_map(f32::from_bits), dim as usize)
                .prop_map(FeatureValue::FloatVector)
                .boxed()
        }
    };
    prop_oneof![1 => Just(FeatureValue::Null), 6 => value].boxed()
}

fn any_row() -> impl Strategy<Value = GroupRow> {
    let max = 253_402_300_799_999i64;
    let time = prop_oneof![0..=max, (0..=max / 1000).prop_map(|s| s * 1000)];
    let values: Vec<_> = group().features.iter().map(|f| any_value(f.ty)).collect();
    (time.clone(), time, values).prop_map(|(event, computed, values)| GroupRow {
        event_ts: ts(event),
        computed_at: ts(computed),
        values,
        partition: None,
    })
}

/// [`any_row`] with or without a partition.
fn any_stream_row() -> impl Strategy<Value = GroupRow> {
    (any_row(), proptest::option::of(any::<u32>()))
        .prop_map(|(row, partition)| GroupRow { partition, ..row })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_row_round_trips_bit_for_bit(row in any_stream_row()) {
        let g = group();
        for encoding in ENCODINGS {
            let bytes = encode_as(encoding, &g, &row).unwrap();
            let back = decode(&g, &bytes).unwrap();
            prop_assert!(same_bits(&back, &row), "{:?}: {:?} != {:?}", encoding, back, row);
            prop_assert_eq!(back.partition, kept(encoding, row.partition));
        }
    }

    #[test]
    fn a_short_form_gives_back_the_same_bits(x in any_f64()) {
        if let Some((tag, m)) = v2::short_form(x) {
            prop_assert!((1..=15).contains(&tag));
            prop_assert!(m.unsigned_abs() < 1 << 48);
            prop_assert_eq!((m as f64 / 10f64.powi(i32::from(tag) - 1)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn a_short_decimal_is_found(m in -(1i64 << 40)..(1i64 << 40), e in 0u32..15) {
        let x = m as f64 / 10f64.powi(e as i32);
        let (tag, found) = v2::short_form(x).unwrap();
        prop_assert!(u32::from(tag) <= e + 1 && found.unsigned_abs() <= m.unsigned_abs());
    }

    #[test]
    fn decoding_garbage_never_panics(version in 0u8..4, bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let g = group();
        let _ = decode(&g, &bytes);
        let mut prefixed = vec![version];
        prefixed.extend_from_slice(&bytes);
        let _ = decode(&g, &prefixed);
    }

    #[test]
    fn a_damaged_row_never_panics(row in any_stream_row(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let g = group();
        for encoding in ENCODINGS {
            let mut bytes = encode_as(encoding, &g, &row).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&g, &bytes);
            prop_assert!(decode(&g, &bytes[..i]).is_err());
        }
    }
}
