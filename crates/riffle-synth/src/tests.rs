//! The population fills every fraud group with typed values, is deterministic, follows the
//! power law, and ticks move the fast groups.

use riffle_core::FeatureType;
use riffle_registry::Registry;

use super::*;

fn fraud() -> Registry {
    riffle_testkit::fixtures::fraud_registry()
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_694_400_000).unwrap()
}

#[test]
fn every_group_gets_typed_plausible_rows() {
    let registry = fraud();
    let pop = Population::new(&registry, "user", 1_000, 42).unwrap();
    assert_eq!(pop.id(0).as_str(), "u0");
    assert_eq!(pop.groups().count(), registry.groups.len());
    let fast: Vec<&str> = pop.fast_groups().map(|g| g.name.as_str()).collect();
    assert_eq!(fast, vec!["user_velocity", "user_session"]);
    for n in [0, 1, 500, 999] {
        let rows = pop.rows(n, now());
        assert_eq!(rows.len(), registry.groups.len());
        for w in &rows {
            let group = &registry.groups[w.group];
            assert!(w.row.event_ts <= now());
            assert!(w.row.event_ts.age_at(now()) <= group.freshness_slo.as_millis() as u64);
            for (value, feature) in w.row.values.iter().zip(&group.features) {
                assert!(value.fits(feature.ty), "{}: {value:?}", feature.name);
                assert!(!value.is_null(), "{}", feature.name);
                if let (FeatureType::FloatVector { dim }, FeatureValue::FloatVector(v)) =
                    (feature.ty, value)
                {
                    assert_eq!(v.len(), dim as usize);
                    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!((norm - 1.0).abs() < 0.01, "{norm}");
                }
                if let Some(x) = value.as_f64() {
                    assert!(x >= 0.0, "{}: {x}", feature.name);
                }
            }
        }
        let profile = &rows[registry.group("user_profile").unwrap().id].row.values;
        let FeatureValue::Int64(bucket) = profile[1] else {
            panic!("credit_score_bucket is an int")
        };
        assert!((1..=10).contains(&bucket));
        let session = &rows[registry.group("user_session").unwrap().id].row.values;
        let FeatureValue::Int64(last_login) = session[0] else {
            panic!("last_login_ts is an int")
        };
        assert!(last_login <= now().millis() && last_login > now().millis() - 31 * 86_400_000);
    }
}

#[test]
fn the_same_seed_gives_the_same_population() {
    let registry = fraud();
    let a = Population::new(&registry, "user", 100, 7).unwrap();
    let b = Population::new(&registry, "user", 100, 7).unwrap();
    let c = Population::new(&registry, "user", 100, 8).unwrap();
    assert_eq!(a.rows(3, now()), b.rows(3, now()));
    assert_ne!(a.rows(3, now()), c.rows(3, now()));
    let batches: Vec<EntityBatch> = a.batches(30, now()).collect();
    assert_eq!(batches.len(), 4);
    assert_eq!((batches[3].first, batches[3].last), (90, 99));
    assert_eq!(batches[3].rows.len(), 10 * registry.groups.len());
}

#[test]
fn the_top_percent_makes_about_a_fifth_of_the_transactions() {
    let registry = fraud();
    let users = 20_000u64;
    let pop = Population::new(&registry, "user", users, 1).unwrap();
    let gid = registry.group("user_historical").unwrap().id;
    let count = |n: u64| match pop.rows(n, now())[gid].row.values[0] {
        FeatureValue::Int64(c) => c as f64,
        _ => 0.0,
    };
    let total: f64 = (0..users).map(count).sum();
    let top: f64 = (0..users / 100).map(count).sum();
    let share = top / total;
    assert!(
        (0.15..0.27).contains(&share),
        "top 1% share of tx_count_24h: {share}"
    );

    let mut ticker = pop.ticker(9);
    let mut top_picks = 0usize;
    let rounds = 2_000;
    for _ in 0..rounds {
        let rows = ticker.tick(&pop, 1, now());
        let n: u64 = rows[0].id.as_str()[1..].parse().unwrap();
        if n < users / 100 {
            top_picks += 1;
        }
    }
    let share = top_picks as f64 / rounds as f64;
    assert!(
        (0.15..0.25).contains(&share),
        "top 1% share of ticks: {share}"
    );
}

#[test]
fn ticks_move_the_fast_groups() {
    let registry = fraud();
    let pop = Population::new(&registry, "user", 3, 5).unwrap();
    let velocity = registry.group("user_velocity").unwrap().id;
    let mut ticker = pop.ticker(1);
    let t0 = now();
    let first = ticker.tick(&pop, 50, t0);
    assert!(first
        .iter()
        .all(|w| pop.fast_groups().any(|g| g.id == w.group)));
    assert!(first.iter().all(|w| w.row.event_ts == t0));
    let count_of = |rows: &[RowWrite], id: &str| {
        rows.iter()
            .find(|w| w.group == velocity && w.id.as_str() == id)
            .map(|w| w.row.values[0].clone())
    };
    let before = count_of(&first, "u0").unwrap();
    // Ten seconds later, u0 makes more transactions: its 1 h count goes up.
    let later = t0.saturating_add_millis(10_000);
    let second = ticker.tick(&pop, 50, later);
    let after = count_of(&second, "u0").unwrap();
    assert!(
        after.as_f64().unwrap() > before.as_f64().unwrap(),
        "{before:?} -> {after:?}"
    );
    // Two hours of silence empty the 1 h window before the new transaction.
    let much_later = later.saturating_add_millis(2 * 3_600_000);
    let third = ticker.tick(&pop, 1, much_later);
    for w in third.iter().filter(|w| w.group == velocity) {
        assert_eq!(w.row.values[0], FeatureValue::Int64(1));
    }
}

#[test]
fn names_refine_type_driven_values() {
    let registry = fraud();
    let kinds: Vec<(String, Kind)> = registry
        .groups
        .iter()
        .flat_map(|g| g.features.iter().map(|f| (f.name.clone(), Kind::of(f))))
        .collect();
    let kind = |name: &str| kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
    assert_eq!(kind("tx_count_1h"), Some(Kind::Count { hours: 1.0 }));
    assert_eq!(kind("tx_sum_24h"), Some(Kind::Sum { hours: 24.0 }));
    assert_eq!(
        kind("session_tx_count_30m"),
        Some(Kind::Count { hours: 0.5 })
    );
    assert_eq!(
        kind("distinct_merchants_7d"),
        Some(Kind::Distinct { hours: 168.0 })
    );
    assert_eq!(kind("avg_tx_90d"), Some(Kind::Average));
    assert_eq!(kind("last_login_ts"), Some(Kind::EpochMillis));
    assert_eq!(kind("account_age_days"), Some(Kind::AgeDays));
    assert_eq!(kind("credit_score_bucket"), Some(Kind::Bucket));
    assert_eq!(kind("is_premium"), Some(Kind::Premium));
    assert_eq!(kind("user_embedding"), Some(Kind::Vector { dim: 8 }));
}

#[test]
fn unknown_entities_and_empty_populations_are_errors() {
    let registry = fraud();
    assert_eq!(
        Population::new(&registry, "merchant", 10, 1).unwrap_err(),
        GeneratorError::UnknownEntity("merchant".into())
    );
    assert_eq!(
        Population::new(&registry, "user", 0, 1).unwrap_err(),
        GeneratorError::Empty
    );
}
