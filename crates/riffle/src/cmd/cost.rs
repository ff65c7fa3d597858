//! `riffle cost --config PATH --store URL [--sample 1000] [--price-per-gb-month 10]
//! [--replicas 1] [--json]`: flags to a [`riffle_ops::cost::CostConfig`], the report to
//! stdout. Redis only: an embedded store is refused with exit 2 (its file size says
//! nothing about what a Redis deployment costs). Exit 1 when Redis cannot be read.

use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use riffle_ops::check::records_dir;
use riffle_ops::cost::{self, CostConfig};
use riffle_ops::loadtest::report::write_record;
use riffle_registry::parse_duration;
use riffle_store::StoreUrl;

use crate::cmd::loadtest::emit;
use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};

#[derive(Debug, Args)]
pub struct CostArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The Redis to measure (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Keys to sample per entity.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sample: usize,
    /// Price of one GiB of Redis memory for a month.
    #[arg(long, default_value_t = 10.0, value_name = "PRICE")]
    pub price_per_gb_month: f64,
    /// Replicas per primary (memory is paid 1 + replicas times).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub replicas: u32,
    /// Warn for keys above this many bytes (default: 10x the median sampled key).
    #[arg(long, value_name = "BYTES")]
    pub bigkey_bytes: Option<u64>,
    /// How many of the largest keys to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Timeout of every Redis call.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,
    /// Where to write the report for `riffle check` (default: .riffle/last-cost.json
    /// beside the registry).
    #[arg(long, value_name = "PATH")]
    pub record: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CostArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let text = args.store.as_deref().unwrap_or(&registry.store.url).trim();
    match StoreUrl::parse(text).map_err(usage)? {
        StoreUrl::Redis(_) => {}
        StoreUrl::RedisCluster(_) => {
            return Err(usage(anyhow!(
                "riffle cost samples one Redis: give one master's redis://host:port (its share of the keys scales to the cluster)"
            )))
        }
        StoreUrl::Embedded(path) => {
            return Err(usage(anyhow!(
                "riffle cost models Redis memory; {} is the embedded store, whose file size says nothing about a Redis deployment. Load the data into Redis and give --store redis://…",
                path.display()
            )))
        }
    }
    let timeout: Duration =
        parse_duration(&args.timeout).map_err(|e| usage(anyhow!("--timeout: {e}")))?;
    let cfg = CostConfig {
        store: text.to_owned(),
        sample: args.sample,
        price_per_gb_month: args.price_per_gb_month,
        replicas: args.replicas,
        bigkey_bytes: args.bigkey_bytes,
        top: args.top,
        timeout,
    };
    let report = cost::run(&registry, &cfg).await.map_err(|e| {
        if e.is_usage() {
            usage(anyhow!("{e}"))
        } else {
            runtime(anyhow!("{e}"))
        }
    })?;
    let record = args
        .record
        .clone()
        .unwrap_or_else(|| records_dir(&args.config.config).join("last-cost.json"));
    write_record(&report, &record).map_err(|e| runtime(anyhow!("cannot write the record: {e}")))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(runtime)?;
        emit(&format!("{text}\n"));
    } else {
        emit(&report.table());
    }
    Ok(())
}
