//! `riffle runbook --config PATH [--out FILE]`: the seed lesson's ten failure scenarios as
//! Markdown for this deployment (`riffle_ops::runbook`), printed or written to `--out`.
//! Exit 0, or 2 for an invalid registry, 1 when the file cannot be written.

use std::path::PathBuf;

use clap::Args;
use riffle_ops::runbook::{runbook, RunbookInput};

use crate::cmd::alerts::write_out;
use crate::config::{self, ConfigArgs};
use crate::exit::CmdResult;

#[derive(Debug, Args)]
pub struct RunbookArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(args: RunbookArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let path = args.config.config.display().to_string();
    let text = runbook(&RunbookInput {
        registry: &registry,
        config_path: &path,
    });
    write_out(args.out.as_ref(), &text)
}
