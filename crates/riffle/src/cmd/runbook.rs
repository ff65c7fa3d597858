//! `riffle runbook`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct RunbookArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: RunbookArgs) -> CmdResult {
    Err(usage(anyhow!("riffle runbook is not built yet")))
}
