//! `riffle serve --config PATH [--listen ADDR] [--store URL] [--no-cache]`: loads the
//! registry, opens the store, binds, prints the address and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Args;
use riffle_serve::ServeDeps;

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, CmdResult};
use crate::shutdown;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (default: the registry's serve.listen).
    #[arg(long, env = "RIFFLE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Turn the hot cache off (benchmarks, debugging).
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(args: ServeArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let store = config::open_store(&registry, args.store.as_deref()).await?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| registry.serve.listen.clone());
    let listener = config::bind(&listen, "riffle serve").await?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")
        .map_err(runtime)?;
    let write_token = std::env::var(&registry.serve.write_token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let cache_enabled = registry.serve.cache.enabled && !args.no_cache;
    println!(
        "riffle serve: project {} on http://{addr} (store {}, cache {}, writes {})",
        registry.project,
        store.info().url,
        if cache_enabled { "on" } else { "off" },
        if write_token.is_some() {
            "need a token"
        } else {
            "open"
        },
    );
    let deps = ServeDeps {
        registry,
        store,
        cache_enabled,
        write_token,
    };
    riffle_serve::run(listener, deps, shutdown::signal())
        .await
        .context("the server stopped with an error")
        .map_err(runtime)
}
