//! `riffle lag --config PATH [--store URL] [--source NAME] [--brokers H:P,… --topic T
//! --group-id G] [--threshold DURATION] [--json]`: how far each source's ingest is behind,
//! from the watermarks its workers publish in the store and, for a Kafka source, from the
//! consumer group on the broker (`riffle_ops::lag` owns the report and the verdict).
//!
//! Exit 0 when every source feeding a group passes; 3 (a failed check, [`crate::exit`]) when
//! one is above the threshold (`--threshold`, else the registry's `ingest.lag_threshold`), has
//! a partition no member owns, or has no worker publishing; 1 when the store cannot be read; 2
//! for bad usage.

use anyhow::anyhow;
use clap::Args;
use riffle_core::Timestamp;
use riffle_ops::lag::{self, LagReport, SourceInput};
use riffle_registry::{format_duration, parse_duration};
use riffle_store::watermark;

use crate::config::{self, ConfigArgs};
use crate::exit::{check_failed, runtime, usage, CmdResult};
use crate::kafka::{self, KafkaArgs};

#[derive(Debug, Args)]
pub struct LagArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Check only this source (default: every source that feeds a group).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Lag above which the check fails (default: the registry's ingest.lag_threshold).
    #[arg(long, value_name = "DURATION")]
    pub threshold: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: LagArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let threshold = match &args.threshold {
        Some(text) => parse_duration(text).map_err(|e| usage(anyhow!("--threshold: {e}")))?,
        None => registry.ingest.lag_threshold,
    };
    let chosen = match &args.source {
        Some(name) => Some(
            registry
                .sources
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| usage(anyhow!("no source {name:?} in the registry")))?,
        ),
        None => None,
    };
    let store = config::open_store(&registry, args.store.as_deref()).await?;
    let mut inputs = Vec::new();
    for (i, source) in registry.sources.iter().enumerate() {
        if chosen.is_some_and(|c| c != i) || registry.groups_of_source(i).next().is_none() {
            continue;
        }
        let watermark = watermark::read_source(&store, &source.name, Timestamp::now())
            .await
            .map_err(|e| runtime(anyhow!("reading the watermark of {}: {e}", source.name)))?;
        let broker = match args.kafka.config_for(&registry, i) {
            Some(config) => Some(kafka::sample(&config).await),
            None => None,
        };
        inputs.push(SourceInput {
            source: i,
            watermark,
            broker,
        });
    }
    let report = LagReport::build(&registry, inputs, threshold, Timestamp::now());
    if args.json {
        let text = serde_json::to_string_pretty(&lag::to_json(&report)).map_err(runtime)?;
        println!("{text}");
    } else {
        print!("{}", lag::table(&report));
    }
    if report.ok {
        Ok(())
    } else {
        Err(check_failed(anyhow!(
            "ingest lag check failed (threshold {}): {}",
            format_duration(threshold),
            report.failures()
        )))
    }
}
