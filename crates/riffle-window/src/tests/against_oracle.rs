//! Property tests: the engine against the [`super::oracle`] on random event streams with
//! out-of-order arrival (minutes of disorder), repeated entities, bursts, late and future
//! events, read at many times including long after the last event. Values must be equal
//! exactly (distinct counts above the bound are also checked against the true count within
//! the stated error), and `advance` must return exactly the entities whose values changed.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use riffle_core::{EntityId, FeatureValue, Timestamp};

use super::oracle::Oracle;
use crate::{
    AggregationKind as K, AggregationSpec, EngineConfig, Event, WindowEngine, HLL_RELATIVE_ERROR,
};

pub(crate) const T0: i64 = 1_700_000_000_000;
const ENTITIES: u8 = 6;

pub(crate) fn config() -> EngineConfig {
    let s = Duration::from_secs;
    let spec = AggregationSpec::new;
    EngineConfig {
        specs: vec![
            spec("count_10s", K::Count, None, s(10)),
            spec("count_amount_1m", K::Count, Some("amount"), s(60)),
            spec("sum_1m", K::Sum, Some("amount"), s(60)).with_tile(s(5)),
            spec("mean_30s", K::Mean, Some("amount"), s(30)),
            spec("min_2m", K::Min, Some("amount"), s(120)),
            spec("max_2m", K::Max, Some("amount"), s(120)).with_tile(s(10)),
            spec("last_merchant_1m", K::Last, Some("merchant"), s(60)),
            spec("last_amount_45s", K::Last, Some("amount"), s(45)).with_tile(s(15)),
            spec("distinct_1m", K::DistinctCount, Some("merchant"), s(60)).with_tile(s(10)),
            spec("distinct_5m", K::DistinctCount, Some("merchant"), s(300)),
            // On the grids of count_10s and of count_amount_1m / last_merchant_1m: tiles
            // shared by specs of which only some took an event.
            spec("sum_10s", K::Sum, Some("amount"), s(10)),
            spec("max_1m", K::Max, Some("amount"), s(60)),
            spec(
                "distinct_amount_1m",
                K::DistinctCount,
                Some("amount"),
                s(60),
            ),
        ],
        allowed_lateness: Some(s(150)),
        max_future: s(30),
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Ingest {
        entity: u8,
        offset_ms: i64,
        amount: Option<FeatureValue>,
        merchant: Option<u32>,
    },
    /// Many events of one entity close together, each with a new merchant.
    Burst {
        entity: u8,
        offset_ms: i64,
        n: u16,
        first_merchant: u32,
    },
    Advance {
        ms: i64,
    },
}

fn amount() -> impl Strategy<Value = Option<FeatureValue>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(FeatureValue::Null)),
        3 => (-1_000i64..1_000).prop_map(|i| Some(FeatureValue::Int64(i))),
        3 => (-1.0e6f64..1.0e6).prop_map(|f| Some(FeatureValue::Float64(f))),
    ]
}

pub(crate) fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => (0..ENTITIES, -240_000i64..40_000, amount(), prop::option::of(0u32..20))
            .prop_map(|(entity, offset_ms, amount, merchant)| Step::Ingest {
                entity,
                offset_ms,
                amount,
                merchant,
            }),
        1 => (0..ENTITIES, -20_000i64..5_000, 10u16..150, 0u32..1_000_000).prop_map(
            |(entity, offset_ms, n, first_merchant)| Step::Burst {
                entity,
                offset_ms,
                n,
                first_merchant,
            }
        ),
        4 => prop_oneof![0i64..3_000, 0i64..40_000, 0i64..400_000]
            .prop_map(|ms| Step::Advance { ms }),
    ];
    prop::collection::vec(step, 1..120)
}

pub(crate) fn entity(i: u8) -> EntityId {
    EntityId::new(format!("user-{i}")).unwrap_or_else(|_| unreachable!())
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap_or_else(|_| unreachable!())
}

/// The events one step ingests at `now`.
pub(crate) fn events_of(step: &Step, now: i64) -> Vec<Event> {
    match step {
        Step::Ingest {
            entity: e,
            offset_ms,
            amount,
            merchant,
        } => {
            let mut ev = Event::new(entity(*e), ts(now + offset_ms));
            if let Some(a) = amount {
                ev = ev.with("amount", a.clone());
            }
            if let Some(m) = merchant {
                ev = ev.with("merchant", FeatureValue::String(format!("m{m}")));
            }
            vec![ev]
        }
        Step::Burst {
            entity: e,
            offset_ms,
            n,
            first_merchant,
        } => (0..i64::from(*n))
            .map(|i| {
                Event::new(entity(*e), ts(now + offset_ms + (i * 37) % 3_000))
                    .with("amount", FeatureValue::Int64(i))
                    .with(
                        "merchant",
                        FeatureValue::String(format!("m{}", i64::from(*first_merchant) + i)),
                    )
            })
            .collect(),
        Step::Advance { .. } => Vec::new(),
    }
}

/// Engine values == oracle values for every entity at `at`, and distinct estimates within
/// five standard errors of the true count.
pub(crate) fn assert_values(engine: &WindowEngine, oracle: &Oracle, at: i64) {
    for id in oracle.entities() {
        let got = engine.values(&id, ts(at));
        let want = oracle.values(&id, ts(at));
        assert_eq!(got, want, "{id} at T0{:+} ms", at - T0);
        for (i, spec) in engine.specs().iter().enumerate() {
            if spec.kind != K::DistinctCount {
                continue;
            }
            let truth = oracle.true_distinct(&id, i, ts(at)) as f64;
            let FeatureValue::Int64(est) = got[i] else {
                panic!("distinct_count is not an int64: {:?}", got[i]);
            };
            let tolerance = (5.0 * HLL_RELATIVE_ERROR * truth).max(1.0);
            assert!(
                (est as f64 - truth).abs() <= tolerance,
                "{id} {}: estimate {est}, true {truth}",
                spec.name
            );
        }
    }
}

/// Runs `steps` on both, checking every ingest outcome, every advance's changed set, and
/// values at and after every new clock. Returns the final clock.
pub(crate) fn drive(
    engine: &mut WindowEngine,
    oracle: &mut Oracle,
    start: i64,
    steps: &[Step],
) -> i64 {
    let mut now = start;
    for step in steps {
        if let Step::Advance { ms } = step {
            let next = now + ms;
            let want: Vec<EntityId> = oracle
                .entities()
                .into_iter()
                .filter(|id| oracle.values(id, ts(now)) != oracle.values(id, ts(next)))
                .collect();
            let got = engine.advance(ts(next));
            oracle.advance(ts(next));
            assert_eq!(got, want, "changed set at T0{:+} ms", next - T0);
            now = next;
            for later in [0, 7_000, 65_000, 400_000] {
                assert_values(engine, oracle, now + later);
            }
            continue;
        }
        for event in events_of(step, now) {
            let got = engine.ingest(&event, ts(now)).map_err(|r| r.reason());
            let want = oracle.ingest(&event, ts(now));
            assert_eq!(got, want, "ingest {event:?} at T0{:+} ms", now - T0);
        }
    }
    now
}

/// What a run produced: each ingest's outcome and each advance's changed set, in order.
pub(crate) type Outputs = Vec<Result<Vec<EntityId>, &'static str>>;

/// Runs `steps` on the engine alone (no oracle), recording its outputs. Returns the final
/// clock.
pub(crate) fn run(engine: &mut WindowEngine, start: i64, steps: &[Step], out: &mut Outputs) -> i64 {
    let mut now = start;
    for step in steps {
        if let Step::Advance { ms } = step {
            now += ms;
            out.push(Ok(engine.advance(ts(now))));
            continue;
        }
        for event in events_of(step, now) {
            out.push(
                engine
                    .ingest(&event, ts(now))
                    .map(|()| Vec::new())
                    .map_err(|r| r.reason()),
            );
        }
    }
    now
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn engine_matches_oracle(steps in steps()) {
        let mut engine = WindowEngine::new(config()).unwrap();
        let mut oracle = Oracle::new(config());
        assert!(engine.advance(ts(T0)).is_empty());
        oracle.advance(ts(T0));
        let end = drive(&mut engine, &mut oracle, T0, &steps);
        assert_values(&engine, &oracle, end);

        // Long after the last event every value decays, and every tile is gone.
        let later = end + 600_000;
        let want: BTreeSet<EntityId> = oracle
            .entities()
            .into_iter()
            .filter(|id| oracle.values(id, ts(end)) != oracle.values(id, ts(later)))
            .collect();
        let got: BTreeSet<EntityId> = engine.advance(ts(later)).into_iter().collect();
        prop_assert_eq!(got, want);
        engine.take_dirty();
        prop_assert_eq!(engine.entity_count(), 0);
        for id in oracle.entities() {
            let v = engine.values(&id, ts(later));
            prop_assert_eq!(&v[0], &FeatureValue::Int64(0));
            prop_assert_eq!(&v[2], &FeatureValue::Float64(0.0));
            prop_assert_eq!(&v[3], &FeatureValue::Null);
            prop_assert_eq!(&v[9], &FeatureValue::Int64(0));
        }
    }
}
