//! `riffle validate --config PATH --log DIR [--max-mismatch 0.001] [--events SOURCE=URL]…
//! [--history GROUP=URL]… [--json]`: the consistency validator (`riffle_offline::validate`).
//! Every value serve logged is recomputed from history at the instant it was served; per
//! feature the mismatch rate, what lag explains, and the worst entities. Exit 0 when every
//! checked feature is within `--max-mismatch`, 3 when one is not (or nothing could be
//! compared), 2 for a log or history that cannot be read.

use anyhow::anyhow;
use clap::Args;
use riffle_core::Timestamp;
use riffle_offline::validate::report::Report;
use riffle_offline::validate::{self, ValidateRequest};

use crate::cmd::training_set::{offline_failure, pairs};
use crate::config::{self, ConfigArgs};
use crate::exit::{check_failed, runtime, usage, CmdResult};
use crate::progress::TrainingSetBar;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The feature log serve wrote (`[serve.logging] path`): a folder, glob or URL.
    #[arg(long, value_name = "DIR")]
    pub log: String,
    /// The highest share of a feature's values that may mismatch (0.001 = 0.1%).
    #[arg(long, default_value_t = 0.001, value_name = "RATE")]
    pub max_mismatch: f64,
    /// A source's event history, instead of the registry's `offline` (repeatable).
    #[arg(long, value_name = "SOURCE=URL")]
    pub events: Vec<String>,
    /// A group's row history, instead of the registry's `offline` (repeatable).
    #[arg(long, value_name = "GROUP=URL")]
    pub history: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ValidateArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    if !(0.0..=1.0).contains(&args.max_mismatch) {
        return Err(usage(anyhow!(
            "--max-mismatch {} is not a share: write it between 0 and 1",
            args.max_mismatch
        )));
    }
    let request = ValidateRequest {
        log: args.log,
        max_mismatch: args.max_mismatch,
        events: pairs("--events", &args.events)?,
        history: pairs("--history", &args.history)?,
    };
    let bar = TrainingSetBar::new();
    let done = validate::validate(&registry, &request, Timestamp::now(), &bar).await;
    bar.finish();
    let report = done.map_err(|e| offline_failure(e, "nothing was validated"))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(runtime)?
        );
    } else {
        print_table(&report);
    }
    if report.passed {
        Ok(())
    } else {
        Err(check_failed(verdict(&report)))
    }
}

/// Why the validation failed, in a sentence.
fn verdict(r: &Report) -> anyhow::Error {
    let failing: Vec<String> = r
        .features
        .iter()
        .filter(|f| !f.passed)
        .map(|f| {
            let who = f
                .worst
                .first()
                .map(|w| {
                    format!(
                        ", worst entity {} ({} mismatches)",
                        w.entity_id, w.mismatches
                    )
                })
                .unwrap_or_default();
            format!("{} {:.3}%{who}", f.feature, 100.0 * f.mismatch_rate)
        })
        .collect();
    if failing.is_empty() {
        anyhow!("no served value could be compared with its history: nothing is validated")
    } else {
        anyhow!(
            "served values differ from their recomputation above {:.3}%: {}",
            100.0 * r.max_mismatch,
            failing.join("; ")
        )
    }
}

fn print_table(r: &Report) {
    println!(
        "riffle validate: {} served values from {} file(s) of {}; a feature passes at {:.3}% mismatches or fewer",
        r.values,
        r.files,
        r.log,
        100.0 * r.max_mismatch
    );
    println!(
        "{:<32} {:>9} {:>9} {:>7} {:>8} {:>10} {:>7} {:>6} {:>9} {:>10} {:>10}",
        "feature",
        "compared",
        "matched",
        "lag",
        "degraded",
        "mismatched",
        "missing",
        "extra",
        "rate",
        "mean abs",
        "mean rel"
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    for f in &r.features {
        println!(
            "{:<32} {:>9} {:>9} {:>7} {:>8} {:>10} {:>7} {:>6} {:>8.3}% {:>10} {:>10}{}",
            f.feature,
            f.compared,
            f.matched,
            f.lag_explained,
            f.degraded,
            f.mismatched,
            f.missing,
            f.extra,
            100.0 * f.mismatch_rate,
            opt(f.mean_abs_error),
            opt(f.mean_rel_error),
            if f.passed { "" } else { "  FAIL" }
        );
    }
    for f in r.features.iter().filter(|f| !f.worst.is_empty()) {
        for w in &f.worst {
            println!(
                "  {} entity {}: {} mismatch(es); first at {}: served {}, history gives {} ({})",
                f.feature, w.entity_id, w.mismatches, w.at, w.served, w.offline, w.kind
            );
        }
    }
    for n in &r.not_checked {
        println!(
            "  not checked: group {} ({} values): {}",
            n.group, n.values, n.reason
        );
    }
    if r.unusable > 0 {
        println!(
            "  {} log row(s) not usable; first: {}",
            r.unusable,
            r.first_unusable.as_deref().unwrap_or("")
        );
    }
    println!(
        "lag: different now, equal to what history gives a pipeline behind at the row's basis \
         (the watermark it was read at, or the flush that wrote it): the pipeline was behind, \
         and the status said so. degraded: served as expired or unavailable. missing/extra: \
         serve had no row where history has one, or the reverse."
    );
}
