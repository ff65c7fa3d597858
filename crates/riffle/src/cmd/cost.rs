//! `riffle cost`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct CostArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: CostArgs) -> CmdResult {
    Err(usage(anyhow!("riffle cost is not built yet")))
}
