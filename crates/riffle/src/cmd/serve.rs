//! `riffle serve --config PATH [--listen ADDR] [--store URL] [--read-replica URL]… [--no-cache]
//! [--baseline FILE] [--psi-threshold 0.2] [--drift-sample-every 16]`: loads the registry (and
//! a drift baseline saved by `riffle baseline save`), opens the store, binds, prints the
//! address and serves until Ctrl-C or SIGTERM. `--read-replica` replaces the registry's
//! `store.replicas` and sets `store.read_from = "replica"`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use riffle_serve::drift::Baseline;
use riffle_serve::{AppState, ServeDeps};

use crate::access::{self, AccessArgs};
use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};
use crate::shutdown;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Address to listen on (default: the registry's serve.listen).
    #[arg(long, env = "RIFFLE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Read from this replica of the Redis primary (repeat for several: the nearest healthy
    /// one is read from); replaces `store.replicas` and implies `read_from = "replica"`.
    #[arg(long = "read-replica", value_name = "URL")]
    pub read_replica: Vec<String>,
    /// Turn the hot cache off (benchmarks, debugging).
    #[arg(long)]
    pub no_cache: bool,
    /// Served-value distributions to measure drift against (`riffle baseline save`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// PSI above which a feature counts as drifted (exported for alerting).
    #[arg(long, default_value_t = 0.2, value_name = "PSI")]
    pub psi_threshold: f64,
    /// Sample the values of one read request in N into the distributions.
    #[arg(long, default_value_t = riffle_serve::lookup::DEFAULT_SAMPLE_EVERY, value_name = "N")]
    pub drift_sample_every: u64,
}

pub async fn run(args: ServeArgs) -> CmdResult {
    let mut registry = config::load_registry(&args.config.config)?;
    if !args.read_replica.is_empty() {
        let primary = args.store.as_deref().unwrap_or(&registry.store.url);
        if !(primary.starts_with("redis://") || primary.starts_with("rediss://")) {
            return Err(usage(anyhow!(
                "--read-replica needs a redis:// primary (--store or store.url)"
            )));
        }
        for url in &args.read_replica {
            riffle_store::replicas::check_replica_url(url)
                .map_err(|e| usage(anyhow!("--read-replica: {e}")))?;
        }
        let mut with_replicas = (*registry).clone();
        with_replicas.store.replicas = args.read_replica.clone();
        with_replicas.store.read_from = riffle_registry::ReadFrom::Replica;
        registry = Arc::new(with_replicas);
    }
    let baseline = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(anyhow!("--baseline {}: {e}", path.display())))?;
            Some(
                Baseline::from_json(&registry, &text)
                    .map_err(|e| usage(anyhow!("--baseline {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    if !(args.psi_threshold.is_finite() && args.psi_threshold > 0.0) {
        return Err(usage(anyhow!("--psi-threshold must be above 0")));
    }
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
    let gate = access::gate(&registry, "serve", addr, &args.access).await?;
    let (listener, tls) = access::listener(listener, &registry.serve.listener, &args.access)?;
    let cache_enabled = registry.serve.cache.enabled && !args.no_cache;
    println!(
        "riffle serve: project {} on {}://{addr} (store {}, cache {}, auth {})",
        registry.project,
        if tls { "https" } else { "http" },
        store.info().url,
        if cache_enabled { "on" } else { "off" },
        gate.mode(),
    );
    let deps = ServeDeps {
        registry,
        store,
        cache_enabled,
        gate,
    };
    let state = AppState::new(deps);
    state.reader.drift.set_sample_every(args.drift_sample_every);
    if let Some(b) = baseline {
        state.reader.drift.set_baseline(b, args.psi_threshold);
    }
    riffle_serve::serve_state(listener, Arc::new(state), shutdown::signal())
        .await
        .context("the server stopped with an error")
        .map_err(runtime)
}
