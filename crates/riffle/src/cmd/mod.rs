//! The subcommands, one file each, and the flags they share.
//!
//! - [`serve`]: the HTTP feature server.
//! - [`load`]: bulk-load precomputed rows of one group from CSV or NDJSON.
//! - [`ingest`]: replay NDJSON events of a source through the window pipeline.
//! - [`lag`]: how far each source's ingest is behind, from its published watermarks.
//! - [`training_set`]: the features serve would have answered at each row of a spine.
//! - [`serve_offline`]: the same, for Feast's SDK (its remote offline store, Arrow Flight).
//! - [`validate`]: what serve logged, recomputed from history at its instant and compared.
//! - [`demo`]: the fraud example, self-contained: synthetic users, a server, moving values.
//! - [`token`]: a fresh bearer token for a new principal, and its registry entry.
//! - [`loadtest`], [`check`], [`drill`], [`cost`], [`alerts`], [`runbook`], [`baseline`]: the
//!   operator toolkit (`riffle_ops`).

pub mod alerts;
pub mod baseline;
pub mod check;
pub mod cost;
pub mod demo;
pub mod drill;
pub mod ingest;
pub mod lag;
pub mod load;
pub mod loadtest;
pub mod runbook;
pub mod serve;
pub mod serve_offline;
pub mod token;
pub mod training_set;
pub mod validate;

use clap::{Parser, Subcommand};

use crate::exit::CmdResult;

/// Riffle: a real-time ML feature server.
#[derive(Debug, Parser)]
#[command(name = "riffle", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve features over HTTP (Riffle's /v1 API and Feast's feature-server API).
    Serve(serve::ServeArgs),
    /// Bulk-load precomputed feature rows of one group from a CSV or NDJSON file.
    Load(load::LoadArgs),
    /// Replay NDJSON events of one source into window features, exactly-once in effect.
    Ingest(ingest::IngestArgs),
    /// How far ingest is behind per source, and the staleness it implies per group (exit 3 above the threshold).
    Lag(lag::LagArgs),
    /// The features serve would have answered at each row of a spine, recomputed from history (Parquet out).
    TrainingSet(training_set::TrainingSetArgs),
    /// Feast's remote offline store (Arrow Flight): get_historical_features answered like training-set.
    ServeOffline(serve_offline::ServeOfflineArgs),
    /// Recompute the values serve logged from history at their instants; mismatches per feature (exit 3 above the bound).
    Validate(validate::ValidateArgs),
    /// Run the fraud example end to end: synthetic users on the embedded store, served.
    Demo(demo::DemoArgs),
    /// Drive load at a running server (open or closed loop) and judge it against the p99 SLOs.
    Loadtest(loadtest::LoadtestArgs),
    /// The lesson's 20-item readiness checklist, from files and (with --connect) the live deployment.
    Check(check::CheckArgs),
    /// Break the store on purpose under traffic and verify the fallback path, then recovery.
    Drill(drill::DrillArgs),
    /// Memory per entity and group from live keys, extrapolated to the declared entities and 2x.
    Cost(cost::CostArgs),
    /// Prometheus alerting rules (or a Grafana dashboard) generated from the registry's SLOs.
    Alerts(alerts::AlertsArgs),
    /// The lesson's ten failure scenarios, written for this deployment (Markdown).
    Runbook(runbook::RunbookArgs),
    /// Snapshot served feature distributions as the baseline that drift is measured against.
    Baseline(baseline::BaselineArgs),
    /// Bearer tokens for principals: `token new NAME --scope S…` prints one and its registry entry.
    Token(token::TokenArgs),
}

pub async fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Ingest(args) => {
            crate::allocator::tune_for_ingest();
            ingest::run(args).await
        }
        Command::Lag(args) => lag::run(args).await,
        Command::TrainingSet(args) => training_set::run(args).await,
        Command::ServeOffline(args) => serve_offline::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Demo(args) => {
            crate::allocator::tune_for_ingest();
            demo::run(args).await
        }
        Command::Loadtest(args) => loadtest::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Drill(args) => drill::run(args).await,
        Command::Cost(args) => cost::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Runbook(args) => runbook::run(args).await,
        Command::Baseline(args) => baseline::run(args).await,
        Command::Token(args) => token::run(args).await,
    }
}
