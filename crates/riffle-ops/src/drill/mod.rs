//! `riffle drill`: the lesson's "deliberately break Redis and verify", against a running
//! server and its store, in three phases of steady open-loop traffic (the load test's
//! [`Engine`]): **baseline**, **outage** (the store made unavailable), **recovery**.
//!
//! Breaking the store: by default `CLIENT PAUSE <outage ms> ALL` on the Redis at `--store`,
//! so every command of every client waits — the honest "Redis hangs" failure. Redis holds
//! even `CLIENT UNPAUSE` while an `ALL` pause is in force (checked on Redis 7.0), so the drill
//! pauses for exactly the outage and the pause's own expiry is the restore: if the drill dies
//! midway, Redis still comes back on time. With `--break-cmd`/`--restore-cmd` the operator's
//! shell commands do it instead (e.g. stop a container), each under a 30 s deadline.
//!
//! Traffic alternates between one request for every group allowed to serve defaults and one
//! request per group with `on_unsafe = "fail"`, for ids sampled from the store (`SCAN`) or
//! given. The verdict ([`Check`]s) is read from the server's answers and its `/metrics`:
//! zero errors for default-serving groups, exactly the training defaults with status
//! `unavailable` and degradation `degraded`, 503 `critical` for fail-closed groups, the
//! breaker opened, the fallback counters moved, p99 during the outage within the store
//! timeout plus the groups' p99 SLO, and the time until stored values were served again.
//! The result is written as JSON ([`DrillReport`]) for `riffle check` to read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use riffle_registry::{Registry, UnsafePolicy};
use serde::Serialize;
use tokio::time::{sleep, sleep_until, Instant};

use crate::loadtest::report::Percentiles;
use crate::loadtest::stats::{is_default_status, Defaults, Stats};
use crate::loadtest::{self, Engine, IdPicker, IdSource, LoadtestError, Schedule, Selection};
use crate::probe::keyspace::{self, entity_pattern, id_of_key, Keyspace, KeyspaceError};
use crate::probe::prom;

/// Why a drill could not be run (a failed check is not an error: see
/// [`DrillReport::passed`]).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Target(#[from] LoadtestError),
    #[error(transparent)]
    Store(#[from] KeyspaceError),
    #[error("no entity ids to drive: {0}")]
    NoIds(String),
    #[error("the break command failed, the drill did not start: {0}")]
    BreakFailed(String),
    #[error("cannot write the drill record {path}: {reason}")]
    Record { path: String, reason: String },
}

impl DrillError {
    pub fn is_usage(&self) -> bool {
        match self {
            DrillError::Usage(_) => true,
            DrillError::Target(e) => e.is_usage(),
            DrillError::Store(KeyspaceError::BadUrl { .. }) => true,
            _ => false,
        }
    }
}

/// How the store is made unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakMethod {
    /// `CLIENT PAUSE <outage ms> ALL` on the Redis at `--store`; ends by itself.
    ClientPause,
    /// The operator's shell commands.
    Commands {
        break_cmd: String,
        restore_cmd: String,
    },
}

#[derive(Debug, Clone)]
pub struct DrillConfig {
    pub target: String,
    pub token: Option<String>,
    pub store: String,
    pub method: BreakMethod,
    pub baseline: Duration,
    pub outage: Duration,
    /// How long to wait after the restore for stored values to come back.
    pub recovery_timeout: Duration,
    /// Requests per second, open loop.
    pub rate: f64,
    pub entity: Option<String>,
    /// Ids to drive; sampled from the store when `None`.
    pub ids: Option<Vec<String>>,
    /// Per request and per store call.
    pub timeout: Duration,
    pub progress: bool,
}

/// One verdict line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    /// `observed`, for readers that want one line (`riffle check`).
    pub detail: String,
}

fn check(name: &str, expected: String, observed: String, passed: bool) -> Check {
    Check {
        name: name.to_owned(),
        expected,
        detail: observed.clone(),
        observed,
        passed,
    }
}

/// What one phase looked like.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub degradation: BTreeMap<String, u64>,
    pub values: BTreeMap<String, BTreeMap<String, u64>>,
    pub latency_ms: Percentiles,
}

impl PhaseSummary {
    fn of(s: &Stats) -> Self {
        Self {
            requests: s.sent,
            ok: s.ok,
            errors: s.errors.clone(),
            degradation: s.degradation.clone(),
            values: s.values.clone(),
            latency_ms: Percentiles::of(&s.latency),
        }
    }
}

/// The drill's result; also the record `riffle check` reads (`finished_at`, `passed`).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub started_at: String,
    pub finished_at: String,
    pub passed: bool,
    pub target: String,
    pub store: String,
    /// `client_pause` or `commands`.
    pub method: &'static str,
    pub rate: f64,
    pub baseline_ms: u64,
    pub outage_ms: u64,
    pub checks: Vec<Check>,
    pub outage_p99_ms: f64,
    pub recovery_ms: Option<u64>,
    pub phases: BTreeMap<&'static str, PhaseSummary>,
}

fn merged(stats: &[Stats]) -> Stats {
    let mut all = Stats::default();
    for s in stats {
        all.merge(s);
    }
    all
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn scrape(
    client: &reqwest::Client,
    target: &str,
    timeout: Duration,
) -> Result<prom::Scrape, String> {
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

/// Runs `cmd` with `sh -c` under a 30 s deadline.
async fn shell(cmd: &str) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(30), child).await {
        Err(_) => Err(format!("{cmd:?} did not finish within 30 s")),
        Ok(Err(e)) => Err(format!("{cmd:?} could not start: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
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
    let client = loadtest::engine::client(1024, cfg.timeout)?;
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
    let mut restore_problem = None;
    let broke = match &cfg.method {
        BreakMethod::ClientPause => match redis.as_mut() {
            Some(r) => {
                let mut cmd = redis::cmd("CLIENT");
                cmd.arg("PAUSE")
                    .arg(cfg.outage.as_millis() as u64)
                    .arg("ALL");
                r.query::<()>("CLIENT PAUSE", &cmd)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => Err("no Redis connection".to_owned()),
        },
        BreakMethod::Commands { break_cmd, .. } => shell(break_cmd).await,
    };
    if let Err(reason) = broke {
        engine.stop();
        let _ = runner.await;
        if let Some(p) = progress {
            p.abort();
        }
        if let BreakMethod::Commands { restore_cmd, .. } = &cfg.method {
            let _ = shell(restore_cmd).await;
        }
        return Err(DrillError::BreakFailed(reason));
    }
    if cfg.progress {
        eprintln!("drill: store broken for {:?}", cfg.outage);
    }
    sleep(cfg.outage / 2).await;
    let mid = scrape(&client, &cfg.target, metrics_timeout).await;
    sleep_until(outage_start + cfg.outage).await;
    match &cfg.method {
        BreakMethod::ClientPause => {
            // The pause ends by itself now; check that Redis answers again.
            let ping = async {
                let mut r = Keyspace::connect(&cfg.store, Duration::from_secs(2)).await?;
                r.query::<String>("PING", &redis::cmd("PING")).await
            };
            if let Err(e) = ping.await {
                restore_problem = Some(format!("Redis does not answer after the pause: {e}"));
            }
        }
        BreakMethod::Commands { restore_cmd, .. } => {
            if let Err(e) = shell(restore_cmd).await {
                restore_problem = Some(e);
            }
        }
    }
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
        cfg,
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
    let outage_all = merged(&phases[1]);
    let summaries = ["baseline", "outage", "recovery"]
        .into_iter()
        .zip(&phases)
        .map(|(name, p)| (name, PhaseSummary::of(&merged(p))))
        .collect();
    Ok(DrillReport {
        started_at,
        finished_at: now_rfc3339(),
        passed: checks.iter().all(|c| c.passed),
        target: cfg.target.clone(),
        store: keyspace::redact(&cfg.store),
        method: match cfg.method {
            BreakMethod::ClientPause => "client_pause",
            BreakMethod::Commands { .. } => "commands",
        },
        rate: cfg.rate,
        baseline_ms: cfg.baseline.as_millis() as u64,
        outage_ms: cfg.outage.as_millis() as u64,
        checks,
        outage_p99_ms: Percentiles::of(&outage_all.latency).p99,
        recovery_ms,
        phases: summaries,
    })
}

type Scraped = Result<prom::Scrape, String>;

/// The checks, from the three phases' counts and the three scrapes.
fn verdict(
    registry: &Registry,
    cfg: &DrillConfig,
    policies: &[(Selection, UnsafePolicy)],
    phases: &[Vec<Stats>],
    (before, mid, after): (&Scraped, &Scraped, &Scraped),
    recovery_ms: Option<u64>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let [base, outage, recovery] = [&phases[0], &phases[1], &phases[2]].map(|p| merged(p));
    let all = {
        let mut a = base.clone();
        a.merge(&outage);
        a.merge(&recovery);
        a
    };

    let real = ["fresh", "stale"]
        .iter()
        .map(|s| base.values_total(s))
        .sum::<u64>();
    checks.push(check(
        "baseline",
        "stored values served before the outage, no errors".into(),
        format!(
            "{real} stored values, {} errors in {} requests",
            base.errors_total(),
            base.sent
        ),
        real > 0 && base.errors_total() == 0,
    ));

    let unavailable = outage.values_total("unavailable");
    let critical = outage.degradation.get("critical").copied().unwrap_or(0);
    checks.push(check(
        "outage_reached_server",
        "the server lost the store: values `unavailable` or 503 `critical`".into(),
        format!("{unavailable} unavailable values, {critical} critical answers"),
        unavailable + critical > 0,
    ));

    let safe: Vec<usize> = policies
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| *p == UnsafePolicy::ServeDefaults)
        .map(|(i, _)| i)
        .collect();
    if let Some(&s) = safe.first() {
        let label = &policies[s].0.label;
        let (errs, sent) = [&phases[1][s], &phases[2][s]]
            .iter()
            .fold((0, 0), |(e, n), st| (e + st.errors_total(), n + st.sent));
        checks.push(check(
            "no_errors_serve_defaults",
            format!("0 HTTP errors for {label} during the outage and recovery"),
            format!("{errs} errors in {sent} requests"),
            errs == 0 && sent > 0,
        ));
        let o = &phases[1][s];
        let degraded = o.degradation.get("degraded").copied().unwrap_or(0);
        let crit = o.degradation.get("critical").copied().unwrap_or(0);
        checks.push(check(
            "degraded_level",
            "answers carrying defaults say `degraded`, never `critical`".into(),
            format!(
                "{degraded} degraded answers, {crit} critical, {} level mismatches",
                all.level_violations
            ),
            degraded > 0 && crit == 0 && all.level_violations == 0,
        ));
    }

    let defaults_served: u64 = all
        .values
        .values()
        .flat_map(|m| m.iter())
        .filter(|(status, _)| is_default_status(status))
        .map(|(_, n)| n)
        .sum();
    let mut observed = format!(
        "{defaults_served} default values checked ({} unavailable), {} differ",
        all.values_total("unavailable"),
        all.default_mismatches
    );
    if let Some(e) = all.mismatch_examples.first() {
        observed.push_str(&format!(" (e.g. {e})"));
    }
    checks.push(check(
        "exact_training_defaults",
        "every value served as `unavailable`/`missing`/… is the registry's training default".into(),
        observed,
        all.default_mismatches == 0 && all.values_total("unavailable") > 0,
    ));

    for (i, (sel, policy)) in policies.iter().enumerate() {
        if *policy != UnsafePolicy::Fail {
            continue;
        }
        let group = &sel.groups[0];
        let o = &phases[1][i];
        let crit = o.critical_by_group.get(group).copied().unwrap_or(0);
        let served = o.values_with(group, "unavailable");
        checks.push(check(
            &format!("fail_closed:{group}"),
            format!("503 `critical` for {group} (on_unsafe = \"fail\"), never its defaults"),
            format!("{crit} critical 503s, {served} unavailable values served"),
            crit > 0 && served == 0,
        ));
    }

    let breaker = match (before, mid, after) {
        (Ok(b), Ok(m), Ok(a)) => {
            let opened = a.sum("riffle_breaker_transitions_total", &[("to", "open")])
                - b.sum("riffle_breaker_transitions_total", &[("to", "open")]);
            let state = m.sum("riffle_breaker_state", &[]);
            check(
                "breaker_opened",
                "the circuit breaker opened".into(),
                format!("transitions to open +{opened}, state mid-outage {state} (2 = open)"),
                opened >= 1.0 || state >= 2.0,
            )
        }
        (b, m, a) => check(
            "breaker_opened",
            "the circuit breaker opened".into(),
            [b, m, a]
                .iter()
                .find_map(|s| s.as_ref().err().cloned())
                .unwrap_or_default(),
            false,
        ),
    };
    checks.push(breaker);
    let fallback = match (before, after) {
        (Ok(b), Ok(a)) => {
            let d = |name: &str, f: &[(&str, &str)]| a.sum(name, f) - b.sum(name, f);
            let served = d("riffle_values_served_total", &[("status", "unavailable")]);
            let failed =
                d("riffle_store_errors_total", &[]) + d("riffle_breaker_rejections_total", &[]);
            check(
                "fallback_metrics",
                "riffle_values_served_total{status=\"unavailable\"} and store errors / breaker rejections grew".into(),
                format!("unavailable values +{served}, store errors + breaker rejections +{failed}"),
                served > 0.0 && failed > 0.0,
            )
        }
        (b, a) => check(
            "fallback_metrics",
            "the fallback counters grew".into(),
            [b, a]
                .iter()
                .find_map(|s| s.as_ref().err().cloned())
                .unwrap_or_default(),
            false,
        ),
    };
    checks.push(fallback);

    let slo = policies
        .iter()
        .flat_map(|(s, _)| s.touched.iter())
        .filter_map(|g| registry.group(g))
        .map(|g| g.p99_slo)
        .max()
        .unwrap_or(Duration::ZERO);
    let budget = registry.store.timeout + slo;
    let p99 = Percentiles::of(&outage.latency).p99;
    checks.push(check(
        "outage_p99",
        format!(
            "p99 ≤ {:.1} ms (store timeout + largest p99 SLO)",
            budget.as_secs_f64() * 1000.0
        ),
        format!("p99 {p99:.2} ms over {} requests", outage.sent),
        outage.sent > 0 && p99 <= budget.as_secs_f64() * 1000.0,
    ));

    checks.push(check(
        "recovery",
        format!(
            "stored values served again within {}",
            humantime::format_duration(cfg.recovery_timeout)
        ),
        match recovery_ms {
            Some(ms) => format!("after {ms} ms"),
            None => "no stored value served after the restore".into(),
        },
        recovery_ms.is_some(),
    ));
    checks
}

/// Writes `report` as JSON to `path`, creating its folder.
pub fn write_record(report: &DrillReport, path: &Path) -> Result<(), DrillError> {
    crate::loadtest::report::write_record(report, path).map_err(|reason| DrillError::Record {
        path: path.display().to_string(),
        reason,
    })
}

impl DrillReport {
    /// The verdict table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "drill of {} (store {}, {}): baseline {} ms, outage {} ms at {:.0} req/s",
            self.target, self.store, self.method, self.baseline_ms, self.outage_ms, self.rate
        );
        let _ = writeln!(out, "{:<30} {:<6} OBSERVED (expected)", "CHECK", "RESULT");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:<30} {:<6} {}",
                c.name,
                if c.passed { "pass" } else { "FAIL" },
                c.observed
            );
            let _ = writeln!(out, "{:<37} ({})", "", c.expected);
        }
        let _ = writeln!(
            out,
            "outage p99 {:.2} ms, recovery {}",
            self.outage_p99_ms,
            self.recovery_ms
                .map_or_else(|| "not seen".into(), |ms| format!("{ms} ms"))
        );
        let _ = writeln!(out, "{}", if self.passed { "PASS" } else { "FAIL" });
        out
    }
}
