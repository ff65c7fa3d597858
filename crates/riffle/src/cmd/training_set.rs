//! `riffle training-set --config PATH --spine FILE --out FILE.parquet [--features G:F,… |
//! --service NAME] [--timestamp-column event_timestamp] [--with-status]
//! [--full-feature-names] [--events SOURCE=URL]… [--history GROUP=URL]… [--json]`: every
//! spine row with the features `riffle serve` would have answered at its instant
//! (`riffle_offline`). Exit 0 when written, 2 for a request, spine or history that cannot
//! be used (nothing written), 1 when the output could not be written.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use riffle_core::Timestamp;
use riffle_offline::{
    FeatureRequest, OfflineError, Selection, TrainingSetRequest, TrainingSetSummary,
};

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};
use crate::progress::TrainingSetBar;

#[derive(Debug, Args)]
pub struct TrainingSetArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The spine: CSV, NDJSON or Parquet with the join key and timestamp columns (any other
    /// column is passed through); a path, folder, glob or URL.
    #[arg(long, value_name = "FILE")]
    pub spine: String,
    /// The Parquet file written: the spine's columns, then one per feature.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Features as GROUP:FEATURE, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "G:F,…",
        conflicts_with = "service"
    )]
    pub features: Vec<String>,
    /// A feature service's features.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The spine's time column: RFC 3339 text, epoch milliseconds or a timestamp type.
    #[arg(long, default_value = "event_timestamp", value_name = "NAME")]
    pub timestamp_column: String,
    /// Add a `FEATURE__status` column per feature (fresh, stale, expired, missing, null).
    #[arg(long)]
    pub with_status: bool,
    /// Name feature columns GROUP__FEATURE, as Feast does.
    #[arg(long)]
    pub full_feature_names: bool,
    /// A source's event history, instead of the registry's `offline` (repeatable).
    #[arg(long, value_name = "SOURCE=URL")]
    pub events: Vec<String>,
    /// A group's row history, instead of the registry's `offline` (repeatable).
    #[arg(long, value_name = "GROUP=URL")]
    pub history: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: TrainingSetArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let selection = match args.service {
        Some(name) => Selection::Service(name),
        None => Selection::Features(args.features),
    };
    let request = TrainingSetRequest {
        spine: args.spine,
        out: args.out,
        timestamp_column: args.timestamp_column,
        features: FeatureRequest {
            selection,
            with_status: args.with_status,
            full_feature_names: args.full_feature_names,
            events: pairs("--events", &args.events)?,
            history: pairs("--history", &args.history)?,
        },
    };
    let bar = TrainingSetBar::new();
    let built = riffle_offline::build(&registry, &request, Timestamp::now(), &bar).await;
    bar.finish();
    let summary = built.map_err(|e| offline_failure(e, "no training set was written"))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(runtime)?
        );
    } else {
        print_table(&summary);
    }
    Ok(())
}

/// An offline command's failure: exit 2 when the user's input is at fault (`what` says
/// what did not happen), 1 when the run failed.
pub(crate) fn offline_failure(e: OfflineError, what: &'static str) -> crate::exit::Failure {
    if e.is_usage() {
        usage(anyhow::Error::new(e).context(what))
    } else {
        runtime(e)
    }
}

/// `NAME=URL` flags into a map.
pub(crate) fn pairs(
    flag: &str,
    values: &[String],
) -> Result<HashMap<String, String>, crate::exit::Failure> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, u)| (k.to_string(), u.to_string()))
                .ok_or_else(|| usage(anyhow!("{flag} {v:?}: write it NAME=URL")))
        })
        .collect()
}

fn print_table(s: &TrainingSetSummary) {
    println!(
        "riffle training-set: {} rows x {} features -> {} ({:.2} s)",
        s.rows,
        s.features,
        s.out,
        s.elapsed_ms as f64 / 1000.0
    );
    let histories = s
        .sources
        .iter()
        .map(|(n, h)| ("source", n, h, "events"))
        .chain(s.groups.iter().map(|(n, h)| ("group", n, h, "rows")));
    for (kind, name, h, unit) in histories {
        println!(
            "  {kind} {name}: {} {unit} used from {} file(s) at {}; {} not used",
            h.used,
            h.files,
            h.location,
            h.bad.total()
        );
        for (reason, n) in &h.bad.counts {
            println!("    {reason}: {n}");
        }
        for bad in &h.bad.listed {
            println!("    {}: {}", bad.at, bad.message);
        }
    }
}
