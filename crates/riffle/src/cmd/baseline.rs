//! `riffle baseline save --target URL --out FILE`: snapshots the served-value distributions
//! of a running server as the baseline `riffle serve --baseline FILE` measures drift against
//! ([`riffle_ops::drift`]). Exit 1 when the target cannot be read or has sampled nothing.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use riffle_ops::drift;
use riffle_registry::parse_duration;

use crate::config::ConfigArgs;
use crate::exit::{runtime, usage, CmdResult};

#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub action: BaselineAction,
}

#[derive(Debug, Subcommand)]
pub enum BaselineAction {
    /// Save the distributions a running server has sampled so far.
    Save(SaveArgs),
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Base URL of the running server.
    #[arg(long, env = "RIFFLE_TARGET", value_name = "URL")]
    pub target: String,
    /// Where to write the baseline.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Timeout of the request.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,
    /// PEM certificates to trust for an https target (a private CA or a self-signed server),
    /// beside the system's roots.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
}

pub async fn run(args: BaselineArgs) -> CmdResult {
    let BaselineAction::Save(args) = args.action;
    let timeout = parse_duration(&args.timeout).map_err(|e| usage(anyhow!("--timeout: {e}")))?;
    let saved = drift::save(&args.target, &args.out, timeout, args.cacert.as_deref())
        .await
        .map_err(|e| runtime(anyhow!("{e}")))?;
    crate::cmd::loadtest::emit(&format!(
        "saved the distributions of {} features ({} sampled values) to {}\n",
        saved.features,
        saved.samples,
        args.out.display()
    ));
    Ok(())
}
