//! `riffle load --config PATH [--store URL] --group NAME FILE [--format csv|ndjson]
//! [--strict] [--batch N] [--json]`: bulk-loads one group's rows with a progress bar, then
//! always prints the summary (a table, or JSON with `--json`). Exit 0 when every valid row
//! was written (invalid rows skipped and listed), 1 when a store write failed, the file
//! could not be read to its end or a `--strict` load found an invalid row, 2 when the load
//! could not start (unknown group, header that does not fit, missing file).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use riffle_ingest::bulk_load::{self, Format, LoadOptions, LoadSummary};

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};
use crate::progress::LoadBar;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Csv,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The feature group the file holds.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// CSV (header: join key, then feature names) or NDJSON.
    pub file: PathBuf,
    /// Input format (default: from the extension: .csv, .ndjson, .jsonl, .json).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// All or nothing: check every row first; if any is invalid, write nothing, list them
    /// and exit non-zero.
    #[arg(long)]
    pub strict: bool,
    /// Rows per store write.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch: usize,
    /// Store writes in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub in_flight: usize,
    /// Invalid rows listed in the summary (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_errors: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: LoadArgs) -> CmdResult {
    if args.batch == 0 || args.in_flight == 0 {
        return Err(usage(anyhow!("--batch and --in-flight must be at least 1")));
    }
    let registry = config::load_registry(&args.config.config)?;
    let store = config::open_store(&registry, args.store.as_deref()).await?;
    let mut options = LoadOptions::new(&args.group);
    options.format = args.format.map(|f| match f {
        FormatArg::Csv => Format::Csv,
        FormatArg::Ndjson => Format::Ndjson,
    });
    options.strict = args.strict;
    options.batch_size = args.batch;
    options.max_in_flight = args.in_flight;
    options.max_errors = args.max_errors;

    let bar = LoadBar::new();
    let summary = match bulk_load::load_file(store, &args.file, &options, &bar).await {
        Ok(summary) => summary,
        // Nothing was written: the load could not start (group, format, file, header).
        Err(e) => return Err(usage(anyhow::Error::new(e).context("nothing was loaded"))),
    };
    if args.json {
        let text = serde_json::to_string_pretty(&summary).map_err(runtime)?;
        println!("{text}");
    } else {
        print_table(&args.file, &summary);
    }
    match summary.failure() {
        None => Ok(()),
        Some(reason) => Err(runtime(anyhow!(reason))),
    }
}

fn print_table(file: &std::path::Path, s: &LoadSummary) {
    println!(
        "riffle load: {} -> group {} ({}{})",
        file.display(),
        s.group,
        s.format.as_str(),
        if s.strict { ", strict" } else { "" }
    );
    let rows = [
        ("rows read", s.rows_read.to_string()),
        ("rows written", s.rows_written.to_string()),
        ("rows skipped (invalid)", s.rows_skipped.to_string()),
        ("rows not written", s.rows_not_written.to_string()),
        ("batches written", s.batches_written.to_string()),
        (
            "time",
            format!(
                "{:.2} s ({:.0} rows/s)",
                s.elapsed.as_secs_f64(),
                s.rows_per_sec()
            ),
        ),
    ];
    for (name, value) in rows {
        println!("  {name:<24}{value:>12}");
    }
    if !s.errors.is_empty() {
        println!(
            "invalid rows (skipped{}):",
            if s.errors.len() as u64 == s.rows_skipped {
                String::new()
            } else {
                format!("; first {} of {}", s.errors.len(), s.rows_skipped)
            }
        );
        for e in &s.errors {
            println!("  {e}");
        }
    }
    if let Some(line) = s.stopped_at_line {
        println!("strict: stopped at line {line}; rows before it were written, nothing from it on");
    }
    if !s.failed_batches.is_empty() {
        println!("not written:");
        for b in &s.failed_batches {
            println!("  {b}");
        }
    }
    if let Some(line) = s.unread_after_line {
        println!("reading stopped after line {line}: later lines were not loaded");
    }
    if let Some(e) = &s.read_error {
        println!("read error: {e}");
    }
}
