//! `riffle drill --config PATH --target URL --store URL [--duration 20s] [--rate RPS]
//! [--break-cmd CMD --restore-cmd CMD] [--record PATH] [--json]`: flags to a
//! [`riffle_ops::drill::DrillConfig`]; prints the verdict table (or JSON) and writes the
//! record `riffle check` reads (default `.riffle/last-drill.json` beside the registry).
//! Exit 0 when every check passed, 3 when one failed, 1 when the drill could not run
//! (target or store unreachable, break command failed), 2 for bad usage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use riffle_ops::drill::{self, BreakMethod, DrillConfig, DrillError};
use riffle_ops::loadtest::plan;
use riffle_registry::parse_duration;

use crate::cmd::loadtest::emit;
use crate::config::{self, ConfigArgs};
use crate::exit::{check_failed, runtime, usage, CmdResult, Failure};

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Base URL of the running server.
    #[arg(long, env = "RIFFLE_TARGET", value_name = "URL")]
    pub target: String,
    /// The server's Redis (paused with CLIENT PAUSE unless --break-cmd is given).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: String,
    /// How long the store stays unavailable.
    #[arg(long, default_value = "20s", value_name = "DURATION")]
    pub duration: String,
    /// Traffic before the outage, to compare against.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub baseline: String,
    /// How long to wait after the restore for stored values to come back.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub recovery_timeout: String,
    /// Requests per second during the drill (open loop).
    #[arg(long, default_value_t = 100.0, value_name = "RPS")]
    pub rate: f64,
    /// Shell command that makes the store unavailable (instead of CLIENT PAUSE).
    #[arg(long, value_name = "CMD", requires = "restore_cmd")]
    pub break_cmd: Option<String>,
    /// Shell command that brings it back.
    #[arg(long, value_name = "CMD", requires = "break_cmd")]
    pub restore_cmd: Option<String>,
    /// The entity to drive (default: the first with feature groups).
    #[arg(long, value_name = "NAME")]
    pub entity: Option<String>,
    /// Entity ids to drive, one per line (default: sampled from the store).
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// Per-request and per-store-call timeout.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub timeout: String,
    /// Where to write the result (default: .riffle/last-drill.json beside the registry).
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
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
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|e| usage(anyhow!("{flag}: {e}")))
}

/// `.riffle/last-drill.json` in the registry file's folder.
pub fn default_record(config: &Path) -> PathBuf {
    riffle_ops::check::records_dir(config).join("last-drill.json")
}

pub async fn run(args: DrillArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let method = match (&args.break_cmd, &args.restore_cmd) {
        (Some(b), Some(r)) => BreakMethod::Commands {
            break_cmd: b.clone(),
            restore_cmd: r.clone(),
        },
        _ => BreakMethod::ClientPause,
    };
    let ids = match &args.ids {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(anyhow!("--ids {}: {e}", path.display())))?;
            Some(plan::read_ids(&text))
        }
        None => None,
    };
    let target = args.target.trim_end_matches('/').to_owned();
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(usage(anyhow!(
            "--target {target:?} must be an http:// URL (e.g. http://127.0.0.1:6566)"
        )));
    }
    let cfg = DrillConfig {
        target,
        token: args.token.clone(),
        cacert: args.cacert.clone(),
        store: args.store.trim().to_owned(),
        method,
        baseline: duration("--baseline", &args.baseline)?,
        outage: duration("--duration", &args.duration)?,
        recovery_timeout: duration("--recovery-timeout", &args.recovery_timeout)?,
        rate: args.rate,
        entity: args.entity.clone(),
        ids,
        timeout: duration("--timeout", &args.timeout)?,
        progress: !args.quiet,
    };
    let report = drill::run(&registry, &cfg).await.map_err(|e: DrillError| {
        if e.is_usage() {
            usage(anyhow!("{e}"))
        } else {
            runtime(anyhow!("{e}"))
        }
    })?;
    let record = args
        .record
        .clone()
        .unwrap_or_else(|| default_record(&args.config.config));
    drill::write_record(&report, &record).map_err(|e| runtime(anyhow!("{e}")))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(runtime)?;
        emit(&format!("{text}\n"));
    } else {
        emit(&report.table());
        emit(&format!("record written to {}\n", record.display()));
    }
    if report.passed {
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        Err(check_failed(anyhow!("drill failed: {}", failed.join(", "))))
    }
}
