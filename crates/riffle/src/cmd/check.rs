//! `riffle check`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: CheckArgs) -> CmdResult {
    Err(usage(anyhow!("riffle check is not built yet")))
}
