//! `riffle lag --config PATH [--store URL] [--threshold DURATION] [--json]`: how far each
//! source's ingest is behind, from the event-time watermarks the ingest workers publish
//! (`riffle_store::meta`), and the staleness that implies for every feature group it feeds.
//!
//! Lag = now − the source's watermark (MIN over workers that published in the last 30 s).
//! Exit 0 when every source feeding a group is publishing with lag ≤ the threshold
//! (`--threshold`, else the registry's `ingest.lag_threshold`, 5 min by default); exit 3
//! (a failed check, DESIGN §6) when one is behind or no worker is publishing; 1 when the
//! store cannot be read; 2 for bad usage.

use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use riffle_core::Timestamp;
use riffle_registry::{format_duration, parse_duration, FeatureGroup, Registry};
use riffle_store::meta::{watermark_name, SourceWatermark, WatermarkRecord};
use serde_json::{json, Value};

use crate::config::{self, ConfigArgs};
use crate::exit::{check_failed, runtime, usage, CmdResult};

#[derive(Debug, Args)]
pub struct LagArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Lag above which the check fails (default: the registry's ingest.lag_threshold).
    #[arg(long, value_name = "DURATION")]
    pub threshold: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug)]
struct LagReport {
    threshold_ms: u64,
    /// True when every source is publishing and within the threshold.
    ok: bool,
    sources: Vec<SourceLag>,
}

#[derive(Debug)]
struct SourceLag {
    source: String,
    /// `ok`, `behind` (lag above the threshold) or `not_publishing` (no live worker).
    status: &'static str,
    /// The live watermark (MIN over live workers), ms since epoch.
    watermark_ms: Option<i64>,
    /// now − live watermark.
    lag_ms: Option<u64>,
    /// The newest watermark ever published (also when no worker is live).
    last_watermark_ms: Option<i64>,
    publishers_alive: usize,
    publishers: Vec<PublisherLag>,
    groups: Vec<GroupLag>,
}

#[derive(Debug)]
struct PublisherLag {
    publisher: String,
    alive: bool,
    watermark_ms: i64,
    lag_ms: u64,
    published_ms_ago: u64,
    events_applied_total: u64,
}

#[derive(Debug)]
struct GroupLag {
    group: String,
    freshness_slo_ms: u64,
    staleness_limit_ms: u64,
    /// The age `riffle serve` gives this group's values now (null: nothing published).
    implied_staleness_ms: Option<u64>,
    /// `fresh`, `stale` or `expired` for that age, or `unknown`.
    freshness: &'static str,
}

fn since(now: Timestamp, ms: i64) -> u64 {
    (now.millis() - ms).max(0) as u64
}

fn group_lag(group: &FeatureGroup, age: Option<u64>) -> GroupLag {
    let slo = group.freshness_slo.as_millis() as u64;
    let limit = group.staleness_limit.as_millis() as u64;
    GroupLag {
        group: group.name.clone(),
        freshness_slo_ms: slo,
        staleness_limit_ms: limit,
        implied_staleness_ms: age,
        freshness: match age {
            None => "unknown",
            Some(a) if a <= slo => "fresh",
            Some(a) if a <= limit => "stale",
            Some(_) => "expired",
        },
    }
}

fn source_lag(
    registry: &Registry,
    source: usize,
    w: SourceWatermark,
    threshold: Duration,
    now: Timestamp,
) -> SourceLag {
    let lag_ms = w.live_ms.map(|ms| since(now, ms));
    let implied = w.basis_ms().map(|ms| since(now, ms));
    let status = match lag_ms {
        None => "not_publishing",
        Some(l) if l > threshold.as_millis() as u64 => "behind",
        Some(_) => "ok",
    };
    let publishers = w
        .records
        .iter()
        .map(|r: &WatermarkRecord| PublisherLag {
            publisher: r.publisher.clone(),
            alive: r.is_alive(now),
            watermark_ms: r.watermark_ms,
            lag_ms: since(now, r.watermark_ms),
            published_ms_ago: since(now, r.published_at_ms),
            events_applied_total: r.events_applied_total,
        })
        .collect();
    SourceLag {
        source: registry.sources[source].name.clone(),
        status,
        watermark_ms: w.live_ms,
        lag_ms,
        last_watermark_ms: w.last_ms,
        publishers_alive: w.alive,
        publishers,
        groups: registry
            .groups
            .iter()
            .filter(|g| g.source == Some(source))
            .map(|g| group_lag(g, implied))
            .collect(),
    }
}

pub async fn run(args: LagArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let threshold = match &args.threshold {
        Some(text) => parse_duration(text).map_err(|e| usage(anyhow!("--threshold: {e}")))?,
        None => registry.ingest.lag_threshold,
    };
    let store = config::open_store(&registry, args.store.as_deref()).await?;
    let mut sources = Vec::new();
    for (i, source) in registry.sources.iter().enumerate() {
        if !registry.groups.iter().any(|g| g.source == Some(i)) {
            continue;
        }
        let raw = store
            .get_meta(&watermark_name(&source.name))
            .await
            .map_err(|e| runtime(anyhow!("reading the watermark of {}: {e}", source.name)))?;
        let now = Timestamp::now();
        let records = raw
            .iter()
            .filter_map(|(_, bytes)| WatermarkRecord::decode(bytes))
            .collect();
        let w = SourceWatermark::from_records(records, now);
        sources.push(source_lag(&registry, i, w, threshold, now));
    }
    let report = LagReport {
        threshold_ms: threshold.as_millis() as u64,
        ok: sources.iter().all(|s| s.status == "ok"),
        sources,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&to_json(&report)).map_err(runtime)?;
        println!("{text}");
    } else {
        print!("{}", table(&report));
    }
    if report.ok {
        Ok(())
    } else {
        let bad: Vec<String> = report
            .sources
            .iter()
            .filter(|s| s.status != "ok")
            .map(|s| format!("{} {}", s.source, s.status.replace('_', " ")))
            .collect();
        Err(check_failed(anyhow!(
            "ingest lag check failed (threshold {}): {}",
            format_duration(threshold),
            bad.join(", ")
        )))
    }
}

/// The report as JSON, field for field.
fn to_json(r: &LagReport) -> Value {
    let sources: Vec<Value> = r
        .sources
        .iter()
        .map(|s| {
            let publishers: Vec<Value> = s
                .publishers
                .iter()
                .map(|p| {
                    json!({
                        "publisher": p.publisher, "alive": p.alive,
                        "watermark_ms": p.watermark_ms, "lag_ms": p.lag_ms,
                        "published_ms_ago": p.published_ms_ago,
                        "events_applied_total": p.events_applied_total,
                    })
                })
                .collect();
            let groups: Vec<Value> = s
                .groups
                .iter()
                .map(|g| {
                    json!({
                        "group": g.group, "freshness_slo_ms": g.freshness_slo_ms,
                        "staleness_limit_ms": g.staleness_limit_ms,
                        "implied_staleness_ms": g.implied_staleness_ms,
                        "freshness": g.freshness,
                    })
                })
                .collect();
            json!({
                "source": s.source, "status": s.status, "watermark_ms": s.watermark_ms,
                "lag_ms": s.lag_ms, "last_watermark_ms": s.last_watermark_ms,
                "publishers_alive": s.publishers_alive, "publishers": publishers,
                "groups": groups,
            })
        })
        .collect();
    json!({ "threshold_ms": r.threshold_ms, "ok": r.ok, "sources": sources })
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |m| format_duration(Duration::from_millis(m)))
}

/// The human table: one line per source, one indented line per group it feeds.
fn table(report: &LagReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let threshold = format_duration(Duration::from_millis(report.threshold_ms));
    let _ = writeln!(out, "threshold {threshold}");
    if report.sources.is_empty() {
        let _ = writeln!(out, "no feature group is fed by a source: nothing to check");
    }
    let _ = writeln!(
        out,
        "{:<20} {:<15} {:>12} {:<26} {:>10}",
        "SOURCE", "STATUS", "LAG", "WATERMARK", "PUBLISHERS"
    );
    for s in &report.sources {
        let watermark = s
            .watermark_ms
            .or(s.last_watermark_ms)
            .and_then(|m| Timestamp::from_millis(m).ok())
            .map_or_else(|| "-".into(), Timestamp::to_rfc3339);
        let _ = writeln!(
            out,
            "{:<20} {:<15} {:>12} {:<26} {:>10}",
            s.source,
            s.status,
            ms(s.lag_ms),
            watermark,
            format!("{}/{}", s.publishers_alive, s.publishers.len())
        );
        for g in &s.groups {
            let _ = writeln!(
                out,
                "  group {:<14} staleness {:>12} ({}; slo {}, limit {})",
                g.group,
                ms(g.implied_staleness_ms),
                g.freshness,
                ms(Some(g.freshness_slo_ms)),
                ms(Some(g.staleness_limit_ms)),
            );
        }
    }
    out
}
