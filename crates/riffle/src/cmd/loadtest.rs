//! `riffle loadtest`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: LoadtestArgs) -> CmdResult {
    Err(usage(anyhow!("riffle loadtest is not built yet")))
}
