//! `riffle check --config PATH [--connect URL] [--store URL] [--drill-record PATH] [--json]`:
//! the lesson's 20-item readiness checklist (`riffle_ops::check`), judged from the registry
//! and the records beside it (`.riffle/`), and with `--connect` from the live deployment
//! (serve's `/health` and `/metrics`, live keys and watermarks in the store given by
//! `--store`, else the registry's `store.url`, and each Kafka source's consumer group on its
//! brokers, or `--brokers/--topic/--group-id`).
//!
//! Exit 0 when no item fails (warnings and manual items included), 3 when one does — an
//! unreachable live target fails the items that needed it — and 2 for bad usage or an
//! invalid registry.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use clap::Args;
use riffle_ops::check::{self, CheckError, CheckInput, ProbeTargets, Record};

use crate::config::ConfigArgs;
use crate::exit::{check_failed, runtime, usage, CmdResult};
use crate::kafka::{self, KafkaArgs};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Base URL of a running `riffle serve` to check live (e.g. http://127.0.0.1:6566).
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
    /// PEM certificates to trust for an https target (a private CA or a self-signed server),
    /// beside the system's roots.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// Online store URL for the live checks (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The last `riffle drill` record (default: .riffle/last-drill.json beside the registry).
    #[arg(long, value_name = "PATH")]
    pub drill_record: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CheckArgs) -> CmdResult {
    let path = &args.config.config;
    let (registry, raw) = check::load(path).map_err(|e| match e {
        CheckError::Registry(riffle_registry::RegistryError::Invalid(problems)) => {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            usage(anyhow!(
                "registry {} has {} problem(s):\n{}",
                path.display(),
                problems.len(),
                list.join("\n")
            ))
        }
        other => usage(anyhow!("{other}")),
    })?;
    let registry = Arc::new(registry);
    let live = match &args.connect {
        Some(connect) => {
            // Each Kafka source's consumer group as the broker sees it, for the lag item.
            let mut brokers = Vec::new();
            for i in 0..registry.sources.len() {
                if registry.groups_of_source(i).next().is_none() {
                    continue;
                }
                if let Some(config) = args.kafka.config_for(&registry, i) {
                    brokers.push((i, kafka::sample(&config).await));
                }
            }
            let targets = ProbeTargets {
                connect: connect.clone(),
                cacert: args.cacert.clone(),
                store: args
                    .store
                    .clone()
                    .unwrap_or_else(|| registry.store.url.clone()),
                brokers,
            };
            Some(check::probe(registry.clone(), &targets).await)
        }
        None => None,
    };
    let records = check::records_dir(path);
    let input = CheckInput {
        registry: &registry,
        raw: &raw,
        config_path: path,
        drill: Record::read(
            &args
                .drill_record
                .clone()
                .unwrap_or_else(|| records.join("last-drill.json")),
        ),
        loadtest: Record::read(&records.join("last-loadtest.json")),
        cost: Record::read(&records.join("last-cost.json")),
        live: live.as_ref(),
        now: check::now(),
    };
    let report = check::evaluate(&input);
    if args.json {
        let text = serde_json::to_string_pretty(&check::to_json(&report)).map_err(runtime)?;
        println!("{text}");
    } else {
        print!("{}", check::table(&report));
    }
    if report.failed() {
        let failed: Vec<&str> = report
            .items
            .iter()
            .filter(|i| i.outcome == check::Outcome::Fail)
            .map(|i| i.id)
            .collect();
        Err(check_failed(anyhow!(
            "readiness check failed: {}",
            failed.join(", ")
        )))
    } else {
        Ok(())
    }
}
