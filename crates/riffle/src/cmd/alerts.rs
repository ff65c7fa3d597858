//! `riffle alerts`: not built yet.

use anyhow::anyhow;
use clap::Args;

use crate::config::ConfigArgs;
use crate::exit::{usage, CmdResult};

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub async fn run(_args: AlertsArgs) -> CmdResult {
    Err(usage(anyhow!("riffle alerts is not built yet")))
}
