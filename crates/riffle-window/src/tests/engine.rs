//! Unit tests of the engine's contract: decay without new events, rejections with reasons,
//! atomic events, ties in `last`, future events entering later, dirty tracking, and specs
//! added or removed across a restore.

use std::time::Duration;

use riffle_core::FeatureValue;

use super::against_oracle::{entity, ts};
use crate::{
    AggregationKind as K, AggregationSpec, EngineConfig, Event, LateCause, Rejected, WindowEngine,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// A minute boundary.
const T: i64 = 1_800_000_000_000 - 1_800_000_000_000 % MIN;

fn one_hour(specs: &[(&str, K, Option<&str>)]) -> EngineConfig {
    EngineConfig::new(
        specs
            .iter()
            .map(|(n, k, f)| AggregationSpec::new(*n, *k, *f, Duration::from_secs(3_600)))
            .collect(),
    )
}

fn ev(at: i64) -> Event {
    Event::new(entity(1), ts(at))
}

#[test]
fn a_one_hour_count_returns_to_zero_an_hour_later_without_new_events() {
    let mut engine = WindowEngine::new(one_hour(&[("n", K::Count, None)])).unwrap();
    engine.advance(ts(T));
    for s in [0, 10_000, 59_999] {
        engine.ingest(&ev(T + s), ts(T + s)).unwrap();
    }
    assert_eq!(engine.take_dirty(), vec![entity(1)]);
    assert_eq!(
        engine.values(&entity(1), ts(T + 30 * MIN)),
        vec![FeatureValue::Int64(3)]
    );
    // 1 min tiles: the events' tile [T, T+1min) leaves the window read at T + 1h.
    assert_eq!(engine.next_expiry(), Some(ts(T + HOUR)));
    for m in 1..60 {
        assert!(engine.advance(ts(T + m * MIN)).is_empty(), "minute {m}");
    }
    assert!(engine.advance(ts(T + HOUR - 1)).is_empty());
    assert_eq!(
        engine.values(&entity(1), ts(T + HOUR - 1)),
        vec![FeatureValue::Int64(3)]
    );
    assert_eq!(engine.advance(ts(T + HOUR)), vec![entity(1)]);
    assert_eq!(
        engine.values(&entity(1), ts(T + HOUR)),
        vec![FeatureValue::Int64(0)]
    );
    assert_eq!(engine.entity_count(), 0, "expired state is dropped");
    assert_eq!(engine.next_expiry(), None);
}

#[test]
fn rejections_carry_their_reasons() {
    let mut config = one_hour(&[("n", K::Count, None), ("s", K::Sum, Some("amount"))]);
    config.allowed_lateness = Some(Duration::from_secs(600));
    let mut engine = WindowEngine::new(config).unwrap();
    engine.advance(ts(T + 2 * HOUR));
    let now = ts(T + 2 * HOUR);

    // The window read at T+2h starts at T+1h+1min (the tile holding T+1h has left it)...
    let err = engine.ingest(&ev(T + HOUR + 30_000), now).unwrap_err();
    assert_eq!(
        err,
        Rejected::TooLate {
            event_time: ts(T + HOUR + 30_000),
            limit: ts(T + HOUR + MIN),
            cause: LateCause::OutsideEveryWindow,
        }
    );
    assert_eq!(err.reason(), "too_late");
    let err = engine.ingest(&ev(T + 2 * HOUR + 301_000), now).unwrap_err();
    assert!(
        matches!(
            err,
            Rejected::FromFuture {
                max_future_ms: 300_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.reason(), "from_future");
    engine.ingest(&ev(T + 2 * HOUR + 300_000), now).unwrap();

    // ...and the largest event time seen (T+2h+5min) minus 10 min is a later limit.
    let err = engine.ingest(&ev(T + 2 * HOUR - 6 * MIN), now).unwrap_err();
    assert!(
        matches!(err, Rejected::TooLate { cause: LateCause::BeyondAllowedLateness, limit, .. } if limit == ts(T + 2 * HOUR - 5 * MIN)),
        "{err}"
    );
    engine.ingest(&ev(T + 2 * HOUR - 5 * MIN), now).unwrap();

    // A bad field rejects the whole event: the count does not move either.
    let before = engine.values(&entity(1), ts(T + 3 * HOUR));
    let bad = ev(T + 2 * HOUR).with("amount", FeatureValue::String("12".into()));
    let err = engine.ingest(&bad, now).unwrap_err();
    assert_eq!(err.reason(), "not_numeric");
    assert!(err.to_string().contains("a string"), "{err}");
    let nan = ev(T + 2 * HOUR).with("amount", FeatureValue::Float64(f64::NAN));
    assert_eq!(engine.ingest(&nan, now).unwrap_err().reason(), "not_finite");
    assert_eq!(engine.values(&entity(1), ts(T + 3 * HOUR)), before);
}

#[test]
fn last_is_by_event_time_then_arrival() {
    let mut engine = WindowEngine::new(one_hour(&[
        ("last", K::Last, Some("v")),
        ("min", K::Min, Some("v")),
    ]))
    .unwrap();
    engine.advance(ts(T));
    let e = |at: i64, v: i64| ev(at).with("v", FeatureValue::Int64(v));
    engine.ingest(&e(T + 5_000, 1), ts(T + 9_000)).unwrap();
    engine.ingest(&e(T + 1_000, 2), ts(T + 9_000)).unwrap(); // older: not last
    assert_eq!(
        engine.values(&entity(1), ts(T + 9_000))[0],
        FeatureValue::Int64(1)
    );
    engine.ingest(&e(T + 5_000, 3), ts(T + 9_000)).unwrap(); // tie: later arrival wins
    let v = engine.values(&entity(1), ts(T + 9_000));
    assert_eq!(v, vec![FeatureValue::Int64(3), FeatureValue::Float64(1.0)]);
    let empty = engine.values(&entity(2), ts(T));
    assert_eq!(empty, vec![FeatureValue::Null, FeatureValue::Null]);
}

#[test]
fn an_event_ahead_of_the_clock_counts_once_its_tile_is_reached() {
    let mut engine = WindowEngine::new(one_hour(&[("n", K::Count, None)])).unwrap();
    engine.advance(ts(T));
    engine.ingest(&ev(T + 3 * MIN + 5), ts(T)).unwrap();
    assert_eq!(
        engine.values(&entity(1), ts(T)),
        vec![FeatureValue::Int64(0)]
    );
    assert_eq!(engine.next_expiry(), Some(ts(T + 3 * MIN)));
    assert!(engine.advance(ts(T + 3 * MIN - 1)).is_empty());
    assert_eq!(engine.advance(ts(T + 3 * MIN)), vec![entity(1)]);
    assert_eq!(
        engine.values(&entity(1), ts(T + 3 * MIN)),
        vec![FeatureValue::Int64(1)]
    );
    assert_eq!(engine.next_expiry(), Some(ts(T + 3 * MIN + HOUR)));
}

#[test]
fn events_that_touch_no_spec_create_no_state() {
    let mut engine = WindowEngine::new(one_hour(&[("s", K::Sum, Some("amount"))])).unwrap();
    engine.advance(ts(T));
    engine.ingest(&ev(T), ts(T)).unwrap();
    assert_eq!(engine.entity_count(), 0);
    assert!(engine.take_dirty().is_empty());
}

#[test]
fn restore_keeps_the_state_of_specs_still_configured() {
    let mut engine = WindowEngine::new(one_hour(&[
        ("n", K::Count, None),
        ("s", K::Sum, Some("amount")),
    ]))
    .unwrap();
    engine.advance(ts(T));
    engine
        .ingest(&ev(T).with("amount", FeatureValue::Float64(2.5)), ts(T))
        .unwrap();
    let bytes = engine.snapshot_entity(&entity(1)).unwrap();
    let mut changed = WindowEngine::resume(
        one_hour(&[
            ("s", K::Sum, Some("amount")),
            ("d", K::DistinctCount, Some("amount")),
        ]),
        engine.watermarks(),
    )
    .unwrap();
    changed.restore_entity(entity(1), &bytes).unwrap();
    assert_eq!(
        changed.values(&entity(1), ts(T)),
        vec![FeatureValue::Float64(2.5), FeatureValue::Int64(0)]
    );
    assert_eq!(changed.next_expiry(), Some(ts(T + HOUR)));
}

/// The pipeline encodes every written entity's snapshot into one reused buffer: appending
/// must give exactly the entity's own snapshot after whatever the buffer held, and an entity
/// without state must append nothing (so a cleared buffer never carries another's bytes).
#[test]
fn snapshot_into_a_reused_buffer_appends_only_the_entitys_own() {
    let mut engine = WindowEngine::new(one_hour(&[
        ("s", K::Sum, Some("amount")),
        ("d", K::DistinctCount, Some("amount")),
    ]))
    .unwrap();
    engine.advance(ts(T));
    for i in 0..100 {
        engine
            .ingest(
                &ev(T).with("amount", FeatureValue::Float64(f64::from(i))),
                ts(T),
            )
            .unwrap();
    }
    let own = engine.snapshot_entity(&entity(1)).unwrap();
    let mut buf = vec![7u8; 5];
    assert!(engine.snapshot_entity_into(&entity(1), &mut buf));
    assert_eq!(&buf[..5], &[7u8; 5]);
    assert_eq!(&buf[5..], &own[..]);
    buf.clear();
    assert!(!engine.snapshot_entity_into(&entity(2), &mut buf));
    assert!(buf.is_empty());
}

/// Drives an engine like the pipeline does: a largest event time per input stream.
struct Streams {
    engine: WindowEngine,
    oracle: super::oracle::Oracle,
    latest: std::collections::HashMap<u64, i64>,
    now: riffle_core::Timestamp,
}

impl Streams {
    /// Ingests into both; checks they agree; returns whether the event was applied.
    fn feed(&mut self, stream: u64, at: i64, entity_n: u8) -> bool {
        let event = Event::new(entity(entity_n), ts(at));
        let latest = self.latest.get(&stream).copied().map(ts);
        let got = self
            .engine
            .ingest_in_stream(&event, self.now, latest)
            .map_err(|r| r.reason());
        let want = self.oracle.ingest_in_stream(&event, self.now, stream);
        assert_eq!(got, want, "stream {stream}, event at {at}");
        if got.is_ok() {
            let m = self.latest.entry(stream).or_insert(at);
            *m = (*m).max(at);
        }
        got.is_ok()
    }
}

/// Two input streams interleaved, one an hour behind the other, `allowed_lateness` 10 min:
/// each stream's events are judged against its own largest event time, so every event of
/// the slow stream within 10 min of its own latest is applied, and events more than 10 min
/// behind their own stream are still rejected. Every verdict and value matches the oracle.
#[test]
fn lateness_is_judged_per_stream() {
    let mut config = EngineConfig::new(vec![
        AggregationSpec::new("n_1h", K::Count, None, Duration::from_secs(3_600)),
        AggregationSpec::new("n_24h", K::Count, None, Duration::from_secs(86_400)),
    ]);
    config.allowed_lateness = Some(Duration::from_secs(600));
    let now = ts(T);
    let mut s = Streams {
        engine: WindowEngine::new(config.clone()).unwrap(),
        oracle: super::oracle::Oracle::new(config),
        latest: Default::default(),
        now,
    };
    s.engine.advance(now);
    s.oracle.advance(now);
    let (fast, slow) = (1u64, 2u64);
    // Interleaved, each stream up to 8 min out of order with itself.
    for i in 0..120i64 {
        let jitter = (i * 7_919 % 9) * MIN;
        let n = 1 + (i % 4) as u8;
        assert!(s.feed(fast, T - 20 * MIN + i * 10_000 - jitter, n));
        assert!(
            s.feed(slow, T - 80 * MIN + i * 10_000 - jitter, n),
            "a valid event of the slow stream is applied"
        );
    }
    // Genuinely late: more than 10 min behind their own stream's latest.
    let (fast_latest, slow_latest) = (s.latest[&fast], s.latest[&slow]);
    assert!(!s.feed(slow, slow_latest - 10 * MIN - 1, 9));
    assert!(!s.feed(fast, fast_latest - 10 * MIN - 1, 9));
    assert!(s.feed(slow, slow_latest - 10 * MIN, 9));
    // A new stream's first event sets no lateness limit (the window reach still does).
    assert!(s.feed(3, T - 23 * HOUR, 9));
    assert!(!s.feed(3, T - 25 * HOUR, 9));
    for at in [T, T + 30 * MIN, T + HOUR, T + 3 * HOUR] {
        s.engine.advance(ts(at));
        s.oracle.advance(ts(at));
        for n in 1..=9 {
            assert_eq!(
                s.engine.values(&entity(n), ts(at)),
                s.oracle.values(&entity(n), ts(at)),
                "entity {n} at {at}"
            );
        }
    }
}
