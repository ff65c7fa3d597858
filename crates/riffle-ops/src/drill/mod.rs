//! `riffle drill`: the lesson's "deliberately break Redis and verify", against a running
//! server and its store, in three phases of steady open-loop traffic (the load test's
//! [`Engine`]): **baseline**, **outage** (the store made unavailable), **recovery**.
//!
//! Traffic alternates between one request for every group allowed to serve defaults and one
//! request per group with `on_unsafe = "fail"`, for ids sampled from the store (`SCAN`) or
//! given. The result is written as JSON ([`DrillReport`]) for `riffle check` to read.
//!
//! - `config`: what the drill is asked to do ([`DrillConfig`], [`BreakMethod`]); `error`:
//!   why it could not run ([`DrillError`]).
//! - `outage`: how the store is broken (by default `CLIENT PAUSE`, which ends by itself)
//!   and brought back.
//! - `verdict`: the [`Check`]s, judged from the server's answers and its `/metrics`; pure,
//!   and unit-tested on fixed answer counts and a fixed scrape.
//! - `report`: the [`DrillReport`], its table and its record.
//! - This module runs the phases, and reads what they need: the ids to drive and serve's
//!   `/metrics`.

mod config;
mod error;
mod outage;
mod report;
mod verdict;

use std::sync::Arc;
use std::time::Duration;

use riffle_registry::Registry;
use tokio::time::{sleep, sleep_until, Instant};

use crate::loadtest::report::Percentiles;
use crate::loadtest::stats::{Defaults, Stats};
use crate::loadtest::{self, Engine, IdPicker, IdSource, Schedule, Selection};
use crate::probe::keyspace::{self, entity_pattern, id_of_key, Keyspace};
use crate::probe::prom::{self, Scrape};

pub use config::{BreakMethod, DrillConfig};
pub use error::DrillError;
pub use report::{write_record, DrillReport, PhaseSummary};
pub use verdict::Check;

use report::now_rfc3339;
use verdict::{check, verdict};

/// Serve's `/metrics`, parsed; `Err` says why it could not be read.
async fn scrape(
    client: &reqwest::Client,
    target: &str,
    timeout: Duration,
) -> Result<Scrape, String> {
    let url = format!("{}/metrics", target.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET /metrics: {}", loadtest::describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("GET /metrics answered {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("GET /metrics: {}", loadtest::describe(&e)))?;
    let s = prom::parse(&text);
    if !s.has("riffle_breaker_state") {
        return Err("GET /metrics has no riffle_breaker_state: not riffle serve's metrics".into());
    }
    Ok(s)
}

/// Ids of `entity` sampled from the store, at most 1000.
async fn sample_ids(
    redis: &mut Keyspace,
    registry: &Registry,
    entity: &str,
) -> Result<Vec<String>, DrillError> {
    let (keys, _) = redis
        .sample_keys(&entity_pattern(&registry.project, entity), 1000, 1000)
        .await?;
    Ok(keys
        .iter()
        .filter_map(|k| id_of_key(&registry.project, entity, k).map(str::to_owned))
        .collect())
}

/// Runs the drill.
pub async fn run(registry: &Registry, cfg: &DrillConfig) -> Result<DrillReport, DrillError> {
    if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
        return Err(DrillError::Usage("--rate must be above 0".into()));
    }
    if cfg.outage.is_zero() || cfg.baseline.is_zero() {
        return Err(DrillError::Usage(
            "--duration and --baseline must be above 0".into(),
        ));
    }
    let client = loadtest::engine::client(1024, cfg.timeout, cfg.cacert.as_deref())?;
    loadtest::probe(
        &client,
        &cfg.target,
        cfg.timeout.max(Duration::from_secs(2)),
    )
    .await?;
    let entity = match &cfg.entity {
        Some(name) => registry
            .entities
            .iter()
            .position(|e| &e.name == name)
            .ok_or_else(|| DrillError::Usage(format!("--entity: no entity {name:?}")))?,
        None => (0..registry.entities.len())
            .find(|&e| registry.groups_of(e).next().is_some())
            .ok_or_else(|| DrillError::Usage("the registry has no feature groups".into()))?,
    };
    let entity_name = registry.entities[entity].name.clone();
    let redis_url = cfg.store.starts_with("redis://") || cfg.store.starts_with("rediss://");
    let mut redis = match (&cfg.method, redis_url) {
        (_, true) => Some(Keyspace::connect(&cfg.store, cfg.timeout.max(Duration::from_secs(1))).await?),
        (BreakMethod::ClientPause, false) => {
            return Err(DrillError::Usage(format!(
                "--store {} is not Redis: the default break (CLIENT PAUSE) needs a redis:// store; give --break-cmd and --restore-cmd for others",
                cfg.store
            )))
        }
        (BreakMethod::Commands { .. }, false) => None,
    };
    let ids = match (&cfg.ids, redis.as_mut()) {
        (Some(ids), _) => ids.clone(),
        (None, Some(r)) => sample_ids(r, registry, &entity_name).await?,
        (None, None) => Vec::new(),
    };
    if ids.is_empty() {
        return Err(DrillError::NoIds(format!(
            "the store holds no keys of entity {entity_name:?}; load some data or give --ids FILE"
        )));
    }
    let policies = Selection::by_policy(registry, entity);
    let selections: Vec<(Selection, String)> = policies
        .iter()
        .map(|(s, _)| (s.clone(), entity_name.clone()))
        .collect();
    let picker = IdPicker::new(
        IdSource::Replay(ids),
        registry.entities[entity].key_type,
        0.0,
        0.0,
        0.0,
    )?;
    let engine = Arc::new(Engine::new(
        client.clone(),
        &cfg.target,
        cfg.token.clone(),
        selections,
        1,
        picker,
        Defaults::from_registry(registry),
        3,
    ));

    let metrics_timeout = cfg.timeout.max(Duration::from_secs(2));
    let before = scrape(&client, &cfg.target, metrics_timeout).await;
    let started_at = now_rfc3339();
    let total = cfg.baseline + cfg.outage + cfg.recovery_timeout + Duration::from_secs(2);
    let schedule = Schedule {
        base_rate: cfg.rate,
        bursts: Vec::new(),
    };
    let runner = {
        let engine = engine.clone();
        let grace = cfg.timeout;
        tokio::spawn(async move { engine.run_open(&schedule, total, 1024, grace).await })
    };
    let progress = cfg.progress.then(|| engine.spawn_progress());

    sleep(cfg.baseline).await;
    engine.set_phase(1);
    let outage_start = Instant::now();
    let broke = outage::break_store(&cfg.method, redis.as_mut(), cfg.outage).await;
    if let Err(reason) = broke {
        engine.stop();
        let _ = runner.await;
        if let Some(p) = progress {
            p.abort();
        }
        outage::undo_failed_break(&cfg.method).await;
        return Err(DrillError::BreakFailed(reason));
    }
    if cfg.progress {
        eprintln!("drill: store broken for {:?}", cfg.outage);
    }
    sleep(cfg.outage / 2).await;
    let mid = scrape(&client, &cfg.target, metrics_timeout).await;
    sleep_until(outage_start + cfg.outage).await;
    // The outage's time is up: the pause has ended by itself, or the restore command runs.
    let restore_problem = outage::restore(&cfg.method, &cfg.store).await.err();
    engine.set_phase(2);
    let restore_ms = engine.elapsed_ms();
    if cfg.progress {
        eprintln!("drill: store restored, waiting for stored values");
    }
    let deadline = Instant::now() + cfg.recovery_timeout;
    let mut first_real = None;
    while Instant::now() < deadline {
        first_real = engine
            .phase_stats(2)
            .iter()
            .filter_map(|s| s.first_real_ms)
            .min();
        if first_real.is_some() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(1)).await;
    engine.stop();
    let _ = runner.await;
    if let Some(p) = progress {
        p.abort();
    }
    let after = scrape(&client, &cfg.target, metrics_timeout).await;

    let phases: Vec<Vec<Stats>> = (0..3).map(|p| engine.phase_stats(p)).collect();
    let recovery_ms = first_real.map(|f| f.saturating_sub(restore_ms));
    let mut checks = verdict(
        registry,
        cfg.recovery_timeout,
        &policies,
        &phases,
        (&before, &mid, &after),
        recovery_ms,
    );
    if let Some(problem) = restore_problem {
        checks.push(check(
            "restore",
            "the store answers again after the outage".into(),
            problem,
            false,
        ));
    }
    let outage_all = Stats::merged(&phases[1]);
    let summaries = ["baseline", "outage", "recovery"]
        .into_iter()
        .zip(&phases)
        .map(|(name, p)| (name, PhaseSummary::of(&Stats::merged(p))))
        .collect();
    Ok(DrillReport {
        started_at,
        finished_at: now_rfc3339(),
        passed: checks.iter().all(|c| c.passed),
        target: cfg.target.clone(),
        store: keyspace::redact(&cfg.store),
        method: cfg.method.as_str(),
        rate: cfg.rate,
        baseline_ms: cfg.baseline.as_millis() as u64,
        outage_ms: cfg.outage.as_millis() as u64,
        checks,
        outage_p99_ms: Percentiles::of(&outage_all.latency).p99,
        recovery_ms,
        phases: summaries,
    })
}
