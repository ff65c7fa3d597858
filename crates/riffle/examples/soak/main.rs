//! The soak benchmark's workers (driven by `bench/soak.sh`; not a test: it reports).
//!
//! - `produce` ([`produce`]): the fraud example's traffic into a Kafka topic.
//! - `dump` ([`dump`]): every message of the topic, read back after the run.
//! - `compare` ([`compare`]): the same users' stream groups asked of two servers.
//!
//! Output lines are `key=value` so the script can pick them up; progress goes to stderr.

mod compare;
mod dump;
mod produce;

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use riffle_registry::{Registry, Source};

/// The soak benchmark's workers (driven by `bench/soak.sh`).
#[derive(Parser)]
#[command(name = "soak")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The fraud example's traffic into a Kafka topic for `--seconds`.
    Produce(produce::Args),
    /// Every partition of the topic from its start to its end, as one NDJSON file.
    Dump(dump::Args),
    /// Two servers' answers for the same users' stream groups, value by value.
    Compare(compare::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Produce(args) => produce::produce(&args),
        Command::Dump(args) => dump::dump(&args),
        Command::Compare(args) => compare::compare(&args),
    }
}

/// The registry, its source and the Kafka topic it reads: the flags `produce` and `dump`
/// share.
#[derive(clap::Args)]
struct Topic {
    /// The registry.
    #[arg(long)]
    config: PathBuf,
    /// The registry's source (default: its only source).
    #[arg(long)]
    source: Option<String>,
    /// Kafka's bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// The topic.
    #[arg(long)]
    topic: String,
}

impl Topic {
    /// The registry `--config` and its source `--source` (default: its only source).
    fn registry_source(&self) -> anyhow::Result<(Registry, Source)> {
        let registry = Registry::load(&self.config).map_err(|e| anyhow!("registry: {e}"))?;
        let source = match &self.source {
            Some(name) => registry.sources.iter().find(|s| &s.name == name),
            None => registry.sources.first(),
        };
        let source = source
            .cloned()
            .ok_or_else(|| anyhow!("no such source in the registry"))?;
        Ok((registry, source))
    }
}
