//! `riffle ingest --config PATH [--store URL] [--source NAME] --from FILE|- [--json]`:
//! replays NDJSON events of one source through the window pipeline
//! (`riffle_stream::pipeline`) and exits once every event is durable, with a progress line
//! on stderr and a summary on stdout. Exit 0 when done (bad events are dead-lettered, not
//! failures), 1 on a runtime failure (store, input, dead-letter file), 2 on bad usage or an
//! invalid registry (no such source, no `--from`, a missing file).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use riffle_registry::Registry;
use riffle_store::StoreUrl;
use riffle_stream::pipeline::{self, IngestSummary, PipelineOptions};

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult, Failure};
use crate::progress;

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The source whose events these are (default: the registry's only source).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// NDJSON events to replay: a file, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub from: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: IngestArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let source = pick_source(&registry, args.source.as_deref())?;
    let url =
        StoreUrl::parse(args.store.as_deref().unwrap_or(&registry.store.url)).map_err(usage)?;
    let dead_letter = dead_letter_path(&registry, source, &url)?;
    let stdin = args.from.as_os_str() == "-";
    let (stream_id, input): (u64, Box<dyn std::io::Read + Send>) = if stdin {
        (pipeline::stdin_stream_id(), Box::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.from)
            .map_err(|e| usage(anyhow!("cannot open {}: {e}", args.from.display())))?;
        let id = pipeline::file_stream_id(&args.from)
            .map_err(|e| usage(anyhow!("cannot identify {}: {e}", args.from.display())))?;
        (id, Box::new(file))
    };
    let store = config::open_url(&registry, &url).await?;
    let settings = &registry.ingest;
    let lines = pipeline::spawn_reader(input, 256, settings.queue_capacity.div_ceil(256))
        .map_err(runtime)?;
    let options = PipelineOptions {
        source,
        stream_id,
        dead_letter,
        flush_interval: settings.flush_interval,
        flush_max_events: settings.flush_max_events,
    };
    let bar = progress::spinner();
    let mut report = |s: &IngestSummary| {
        bar.set_message(format!(
            "events: {} read, {} applied, {} already applied, {} dead-lettered; {} rows written",
            s.events_read,
            s.applied,
            s.already_applied,
            s.dead_lettered_total(),
            s.rows_written
        ));
    };
    let result = pipeline::run(registry.clone(), store, options, lines, &mut report).await;
    bar.finish_and_clear();
    let summary = result.map_err(|e| match e {
        pipeline::PipelineError::NoFeatures(_) | pipeline::PipelineError::Specs(_) => usage(e),
        other => runtime(other),
    })?;
    if args.json {
        let mut value = serde_json::to_value(&summary).map_err(runtime)?;
        value["events_per_sec"] = serde_json::json!(summary.events_per_sec().round());
        value["dead_lettered_total"] = serde_json::json!(summary.dead_lettered_total());
        let text = serde_json::to_string_pretty(&value).map_err(runtime)?;
        println!("{text}");
    } else {
        print_table(&args.from, &summary);
    }
    Ok(())
}

/// `--source`, or the registry's only source.
fn pick_source(registry: &Registry, name: Option<&str>) -> Result<usize, Failure> {
    let names = || {
        registry
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => registry
            .sources
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| usage(anyhow!("no source {name:?} (sources: {})", names()))),
        None => match registry.sources.len() {
            1 => Ok(0),
            0 => Err(usage(anyhow!("the registry declares no source"))),
            _ => Err(usage(anyhow!(
                "the registry has several sources ({}): choose one with --source",
                names()
            ))),
        },
    }
}

/// The source's `dead_letter = "file:PATH"`, else a file beside the embedded store, else
/// `./dead-letter-<source>.ndjson`.
fn dead_letter_path(
    registry: &Registry,
    source: usize,
    url: &StoreUrl,
) -> Result<PathBuf, Failure> {
    let src = &registry.sources[source];
    match src.dead_letter.as_deref() {
        Some(sink) => match sink.strip_prefix("file:") {
            Some(path) => Ok(PathBuf::from(path)),
            None => Err(usage(anyhow!(
                "source {}: dead-letter sink {sink:?} is not supported by `ingest --from` yet; use file:PATH",
                src.name
            ))),
        },
        None => {
            let name = format!("dead-letter-{}.ndjson", src.name);
            Ok(match url {
                StoreUrl::Embedded(dir) => dir.join(name),
                _ => Path::new(".").join(name),
            })
        }
    }
}

fn print_table(from: &Path, s: &IngestSummary) {
    println!("riffle ingest: {} -> source {}", from.display(), s.source);
    let mut rows = vec![
        ("events read", s.events_read.to_string()),
        ("applied", s.applied.to_string()),
        ("already applied (skipped)", s.already_applied.to_string()),
        ("dead-lettered", s.dead_lettered_total().to_string()),
    ];
    for (reason, n) in &s.dead_lettered {
        rows.push((reason, n.to_string()));
    }
    rows.extend([
        ("rows written", s.rows_written.to_string()),
        ("entities written", s.entities_written.to_string()),
        (
            "time",
            format!(
                "{:.2} s ({:.0} events/s)",
                s.elapsed.as_secs_f64(),
                s.events_per_sec()
            ),
        ),
    ]);
    for (name, value) in rows {
        println!("  {name:<28}{value:>12}");
    }
    if s.dead_lettered_total() > 0 {
        println!("dead letters: {}", s.dead_letter_path);
    }
}
