//! `riffle loadtest --config PATH --target URL [--rate RPS | --concurrency N | --peak RPS
//! --factor 10] [--duration 30s] [--batch N] [--json]`: flags to a
//! [`riffle_ops::loadtest::LoadtestConfig`], the report to stdout (table or JSON), progress
//! to stderr. Exit 0 when every requested group met its p99 and availability SLOs, 3 when
//! one did not (or the server broke its contract), 1 when the target cannot be reached or
//! never answers, 2 for bad usage.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use riffle_ops::check::records_dir;
use riffle_ops::loadtest::report::write_record;
use riffle_ops::loadtest::{
    self, plan, Burst, IdSource, LoadtestConfig, LoadtestError, Mode, Selection,
};
use riffle_registry::parse_duration;

use crate::config::{self, ConfigArgs};
use crate::exit::{check_failed, runtime, usage, CmdResult, Failure};

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Base URL of the running server.
    #[arg(long, env = "RIFFLE_TARGET", value_name = "URL")]
    pub target: String,
    /// Open loop at this many requests per second (latency from each intended send time).
    #[arg(long, value_name = "RPS", conflicts_with_all = ["concurrency", "factor", "peak"])]
    pub rate: Option<f64>,
    /// Closed loop with this many connections (the default, 16, when no rate is given).
    #[arg(long, value_name = "N", conflicts_with_all = ["factor", "peak"])]
    pub concurrency: Option<usize>,
    /// Expected peak requests per second (default: the registry's project.peak_rps).
    #[arg(long, value_name = "RPS")]
    pub peak: Option<f64>,
    /// Open loop at peak × factor (the lesson: test at 10× the expected peak).
    #[arg(long, value_name = "F")]
    pub factor: Option<f64>,
    /// How long to send.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub duration: String,
    /// Entities per request (1: GET one entity; more: POST /v1/features batches).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub batch: usize,
    /// Groups to read, comma-separated (default: every group of the entity).
    #[arg(long, value_delimiter = ',', value_name = "GROUP,...")]
    pub groups: Vec<String>,
    /// Read the features of this feature service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The entity to read (default: the one of --groups/--service, else the first).
    #[arg(long, value_name = "NAME")]
    pub entity: Option<String>,
    /// Population size: ids u0 … u(N-1) as `riffle demo` and `riffle load` benches make them.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub users: u64,
    /// Replay recorded entity ids from FILE (one per line), in order (shadow traffic).
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// Share of the population that is "hot"…
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    pub hot_fraction: f64,
    /// …and the share of requests it gets (power law; 0 for uniform).
    #[arg(long, default_value_t = 0.2, value_name = "SHARE")]
    pub hot_share: f64,
    /// Share of requests for cold-start ids that exist nowhere.
    #[arg(long, default_value_t = 0.05, value_name = "SHARE")]
    pub cold_share: f64,
    /// Scheduled burst FACTORx@START+LENGTH (e.g. 10x@30s+10s); repeatable; open loop only.
    #[arg(long, value_name = "SPEC")]
    pub burst: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub timeout: String,
    /// Open loop: the most requests in flight at once.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_in_flight: usize,
    /// Bearer token, when the server requires one for reads.
    #[arg(
        long,
        env = "RIFFLE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// PEM certificates to trust for an https target (a private CA or a self-signed server),
    /// beside the system's roots.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// Where to write the report for `riffle check` (default: .riffle/last-loadtest.json
    /// beside the registry).
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Writes a report to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|e| usage(anyhow!("{flag}: {e}")))
}

fn ops_error(e: LoadtestError) -> Failure {
    if e.is_usage() {
        usage(anyhow!("{e}"))
    } else {
        runtime(anyhow!("{e}"))
    }
}

pub async fn run(args: LoadtestArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let mode = match (args.rate, args.concurrency, args.peak, args.factor) {
        (Some(rate), _, _, _) => Mode::Open { rate },
        (None, Some(concurrency), _, _) => Mode::Closed { concurrency },
        (None, None, None, None) => Mode::Closed { concurrency: 16 },
        (None, None, peak, factor) => {
            let peak = peak
                .or(registry.peak_rps.map(|p| p as f64))
                .ok_or_else(|| {
                    usage(anyhow!(
                        "--factor needs --peak RPS or project.peak_rps in the registry"
                    ))
                })?;
            Mode::Open {
                rate: peak * factor.unwrap_or(10.0),
            }
        }
    };
    let bursts = args
        .burst
        .iter()
        .map(|b| b.parse::<Burst>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ops_error)?;
    let selection = Selection::resolve(
        &registry,
        args.entity.as_deref(),
        &args.groups,
        args.service.as_deref(),
    )
    .map_err(ops_error)?;
    let ids = match &args.ids {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(anyhow!("--ids {}: {e}", path.display())))?;
            IdSource::Replay(plan::read_ids(&text))
        }
        None => IdSource::Population {
            count: args.users,
            prefix: plan::population_prefix(&registry, selection.entity),
        },
    };
    let target = args.target.trim_end_matches('/').to_owned();
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(usage(anyhow!(
            "--target {target:?} must be an http:// URL (e.g. http://127.0.0.1:6566)"
        )));
    }
    let cfg = LoadtestConfig {
        target,
        token: args.token.clone(),
        cacert: args.cacert.clone(),
        mode,
        peak: match mode {
            Mode::Open { .. } if args.rate.is_none() => {
                args.peak.or(registry.peak_rps.map(|p| p as f64))
            }
            _ => None,
        },
        factor: match mode {
            Mode::Open { .. } if args.rate.is_none() => Some(args.factor.unwrap_or(10.0)),
            _ => None,
        },
        bursts,
        duration: duration("--duration", &args.duration)?,
        batch: args.batch,
        selection,
        ids,
        hot_fraction: args.hot_fraction,
        hot_share: args.hot_share,
        cold_share: args.cold_share,
        timeout: duration("--timeout", &args.timeout)?,
        max_in_flight: args.max_in_flight,
        progress: !args.quiet,
    };
    let report = loadtest::run(&registry, &cfg).await.map_err(ops_error)?;
    let record = args
        .record
        .clone()
        .unwrap_or_else(|| records_dir(&args.config.config).join("last-loadtest.json"));
    write_record(&report, &record).map_err(|e| runtime(anyhow!("cannot write the record: {e}")))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(runtime)?;
        emit(&format!("{text}\n"));
    } else {
        emit(&report.table());
    }
    if report.passed {
        Ok(())
    } else {
        let missed: Vec<String> = report
            .groups
            .iter()
            .filter(|g| !g.passed)
            .map(|g| {
                format!(
                    "{} (p99 {:.3} ms vs {:.3} ms, availability {:.3}% vs {:.3}%)",
                    g.group,
                    g.p99_ms,
                    g.p99_slo_ms,
                    g.availability * 100.0,
                    g.availability_slo * 100.0
                )
            })
            .collect();
        let mut why = Vec::new();
        if !missed.is_empty() {
            why.push(format!("SLO missed by {}", missed.join(", ")));
        }
        why.extend(report.warnings.iter().cloned());
        Err(check_failed(anyhow!(
            "load test failed: {}",
            why.join("; ")
        )))
    }
}
