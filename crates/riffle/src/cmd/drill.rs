//! `riffle drill`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: DrillArgs) -> CmdResult {
    Err(usage(anyhow!("riffle drill is not built yet")))
}
