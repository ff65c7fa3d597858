//! `riffle baseline`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: BaselineArgs) -> CmdResult {
    Err(usage(anyhow!("riffle baseline is not built yet")))
}
