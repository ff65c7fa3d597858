//! `riffle loadtest`: drives a running `riffle serve` with the lesson's realistic traffic —
//! a power law over entity ids (top 1% get 20% by default) or a replay of recorded ids,
//! cold-start ids, scheduled bursts, single lookups or batches — open loop at a rate (no
//! coordinated omission, see [`engine`]) or closed loop at a concurrency, and judges the
//! result against the registry: every requested group's `p99_slo` and `availability_slo`,
//! and the server's contract (a value served with a default status is exactly the
//! training default; a response's degradation is the worst of its values).
//!
//! - [`plan`]: pacing, bursts (`10x@30s+10s`), ids, what each request asks for;
//! - [`engine`]: the HTTP client and the two loops;
//! - [`stats`]: what is counted per request;
//! - [`report`]: the final [`Report`] (table and JSON);
//! - `config.rs`: the resolved [`LoadtestConfig`]; `error.rs`: [`LoadtestError`];
//! - this module checks the target answers like `riffle serve` ([`probe`]) and runs the
//!   test ([`run`]).

mod config;
pub mod engine;
mod error;
pub mod plan;
pub mod report;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use riffle_registry::Registry;

pub use config::LoadtestConfig;
pub use engine::Engine;
pub use error::LoadtestError;
pub use plan::{Burst, IdPicker, IdSource, Mode, Schedule, Selection};
pub use report::Report;
pub use stats::{Defaults, Stats};

/// Checks that `target` answers `/health` like `riffle serve` (JSON), within `timeout`.
pub async fn probe(
    client: &reqwest::Client,
    target: &str,
    timeout: Duration,
) -> Result<(), LoadtestError> {
    let url = format!("{}/health", target.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| LoadtestError::Unreachable {
            target: target.to_owned(),
            reason: describe(&e),
        })?;
    let bytes = resp.bytes().await.map_err(|e| LoadtestError::Unreachable {
        target: target.to_owned(),
        reason: describe(&e),
    })?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(()),
        _ => Err(LoadtestError::NotRiffle {
            target: target.to_owned(),
            reason: "GET /health did not return a JSON object".into(),
        }),
    }
}

/// A short description of a client error, with its cause.
pub fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Runs the load test and judges it against the registry.
pub async fn run(registry: &Registry, cfg: &LoadtestConfig) -> Result<Report, LoadtestError> {
    if cfg.batch == 0 {
        return Err(LoadtestError::Usage("--batch must be at least 1".into()));
    }
    if cfg.duration.is_zero() {
        return Err(LoadtestError::Usage("--duration must be above 0".into()));
    }
    let schedule = match cfg.mode {
        Mode::Open { rate } if !(rate.is_finite() && rate > 0.0) => {
            return Err(LoadtestError::Usage("--rate must be above 0".into()))
        }
        Mode::Open { rate } => Some(Schedule {
            base_rate: rate,
            bursts: cfg.bursts.clone(),
        }),
        Mode::Closed { concurrency: 0 } => {
            return Err(LoadtestError::Usage(
                "--concurrency must be at least 1".into(),
            ))
        }
        Mode::Closed { .. } if !cfg.bursts.is_empty() => {
            return Err(LoadtestError::Usage(
                "--burst needs an open-loop --rate (a closed loop has no rate to multiply)".into(),
            ))
        }
        Mode::Closed { .. } => None,
    };
    let pool = match cfg.mode {
        Mode::Open { .. } => cfg.max_in_flight,
        Mode::Closed { concurrency } => concurrency,
    };
    let key_type = registry.entities[cfg.selection.entity].key_type;
    let ids = IdPicker::new(
        cfg.ids.clone(),
        key_type,
        cfg.hot_fraction,
        cfg.hot_share,
        cfg.cold_share,
    )?;
    let client = engine::client(pool, cfg.timeout, cfg.cacert.as_deref())?;
    probe(
        &client,
        &cfg.target,
        cfg.timeout.max(Duration::from_secs(2)),
    )
    .await?;

    let entity = registry.entities[cfg.selection.entity].name.clone();
    let engine = Arc::new(Engine::new(
        client,
        &cfg.target,
        cfg.token.clone(),
        vec![(cfg.selection.clone(), entity)],
        cfg.batch,
        ids,
        Defaults::from_registry(registry),
        1,
    ));
    let progress = cfg.progress.then(|| engine.spawn_progress());
    let began = tokio::time::Instant::now();
    match (&schedule, cfg.mode) {
        (Some(s), _) => {
            engine
                .run_open(s, cfg.duration, cfg.max_in_flight, cfg.timeout)
                .await
        }
        (None, Mode::Closed { concurrency }) => engine.run_closed(concurrency, cfg.duration).await,
        (None, Mode::Open { .. }) => {}
    }
    // Open loop: the schedule's span, or longer when the generator fell behind.
    let elapsed = began.elapsed().max(cfg.duration);
    if let Some(p) = progress {
        p.abort();
    }
    let stats = engine.phase_stats(0).into_iter().next().unwrap_or_default();
    if stats.sent > 0
        && stats.ok == 0
        && stats
            .errors
            .keys()
            .all(|k| matches!(*k, "timeout" | "connect" | "transport"))
    {
        let kinds: Vec<String> = stats
            .errors
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        return Err(LoadtestError::NoAnswers(kinds.join(", ")));
    }
    let intended = schedule.as_ref().map(|s| s.intended_count(cfg.duration));
    Ok(Report::build(registry, cfg, &stats, elapsed, intended))
}
