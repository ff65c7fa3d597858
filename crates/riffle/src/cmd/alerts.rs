//! `riffle alerts --config PATH [--dashboard] [--runbook-url URL] [--out FILE]`: prints the
//! Prometheus alerting rules generated from the registry (`riffle_ops::alerts`), or with
//! `--dashboard` a Grafana dashboard (`riffle_ops::dashboard`). `--out` writes the file
//! instead of printing it. Exit 0, or 2 for an invalid registry, 1 when the file cannot be
//! written.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, CmdResult};

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print a Grafana dashboard (JSON) instead of the alert rules.
    #[arg(long)]
    pub dashboard: bool,
    /// Where the runbook written by `riffle runbook` is published; each rule's runbook_url
    /// is this plus `#<scenario anchor>`.
    #[arg(long, value_name = "URL", default_value = "RUNBOOK.md")]
    pub runbook_url: String,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(args: AlertsArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let text = if args.dashboard {
        let mut json = serde_json::to_string_pretty(&riffle_ops::dashboard::dashboard(&registry))
            .map_err(runtime)?;
        json.push('\n');
        json
    } else {
        let groups = riffle_ops::alerts::rules(&registry);
        riffle_ops::alerts::to_yaml(&registry, &groups, &args.runbook_url)
    };
    write_out(args.out.as_ref(), &text)
}

/// Prints `text`, or writes it to `out`.
pub fn write_out(out: Option<&PathBuf>, text: &str) -> CmdResult {
    match out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(runtime),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
