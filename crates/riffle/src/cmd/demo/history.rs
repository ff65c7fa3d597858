//! The demo's past: before it goes live, `riffle demo` writes half an hour of synthetic
//! transactions to `DIR/history/transactions.ndjson` and backfills them through the real
//! pipeline (as `riffle ingest --from FILE` would), so the stream groups served at start
//! are the ones that history implies. With a spine of past instants and the registry beside
//! it, `riffle training-set` can be tried at once on the same events, by the command the
//! banner prints.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riffle_core::Timestamp;
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::process::{IngestProcess, Input, ProcessOptions, Quiet};
use riffle_registry::Registry;
use riffle_store::OnlineStore;
use riffle_synth::{Bursts, EventGenerator, EventPlan};

use crate::exit::{runtime, CmdResult};
use crate::progress;

/// How far back the history goes.
const SPAN: Duration = Duration::from_secs(30 * 60);

/// Users in the spine written beside the history.
const SPINE_USERS: u64 = 200;

/// Where the demo's history and spine are, for the banner.
pub struct History {
    pub registry: PathBuf,
    pub events: PathBuf,
    pub spine: PathBuf,
    pub out: PathBuf,
    pub count: u64,
}

/// Writes the history of `source` (about one event per user over `SPAN`, at least 1,000
/// and at most 100,000), backfills it into `store`, and writes a spine of past instants and
/// the registry beside it in `dir`.
pub async fn prepare(
    registry: &Arc<Registry>,
    registry_text: &str,
    source: usize,
    store: &Arc<OnlineStore>,
    dir: &Path,
    users: u64,
    seed: u64,
) -> Result<History, crate::exit::Failure> {
    let folder = dir.join("history");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))
        .map_err(runtime)?;
    let src = &registry.sources[source];
    let events = folder.join(format!("{}.ndjson", src.name));
    let end = Timestamp::now().millis();
    let start = end - SPAN.as_millis() as i64;
    let count = users.clamp(1_000, 100_000);
    let plan = EventPlan {
        bursts: Bursts::none(seed),
        ..EventPlan::new(count as f64 / SPAN.as_secs_f64(), users, seed ^ 0x4157_0a11)
    };
    let mut generator = EventGenerator::new(registry, src, &plan)
        .context("cannot generate the demo's history")
        .map_err(runtime)?;
    let mut text = Vec::with_capacity(count as usize * 160);
    let step = (end - start) as f64 / count as f64;
    for i in 0..count {
        let t = start + (i as f64 * step) as i64;
        text.extend_from_slice(&generator.next_event(t));
        text.push(b'\n');
    }
    write(&events, &text)?;

    let bar = progress::spinner();
    bar.set_message(format!("backfilling {count} events of history"));
    let process = IngestProcess::open(ProcessOptions {
        registry: registry.clone(),
        source,
        input: Input::File {
            path: events.clone(),
            follow: false,
        },
        dead_letter: DeadLetterTarget::File(dir.join(format!("dead-letter-{}.ndjson", src.name))),
        listener: None,
    })
    .map_err(runtime)?;
    let ingested = process.run(store.clone(), None, &mut Quiet).await;
    bar.finish_and_clear();
    ingested
        .context("backfilling the demo's history failed")
        .map_err(runtime)?;

    // The spine: the most active users at three past instants, with a made-up label to train on.
    let mut spine = String::from("user_id,event_timestamp,is_fraud\n");
    for offset in [SPAN / 3, SPAN * 2 / 3, SPAN] {
        let at = Timestamp::from_millis(start + offset.as_millis() as i64)
            .map_err(|e| runtime(anyhow::anyhow!("{e}")))?
            .to_rfc3339();
        for u in 0..users.min(SPINE_USERS) {
            let _ = writeln!(spine, "u{u},{at},{}", (u * 7 + offset.as_secs()) % 5 == 0);
        }
    }
    let spine_path = dir.join("spine.csv");
    write(&spine_path, spine.as_bytes())?;
    let registry_path = dir.join("riffle.toml");
    write(&registry_path, registry_text.as_bytes())?;
    Ok(History {
        registry: registry_path,
        events,
        spine: spine_path,
        out: dir.join("training.parquet"),
        count,
    })
}

fn write(path: &Path, bytes: &[u8]) -> CmdResult {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(runtime)
}

impl History {
    /// The `riffle training-set` command over this history.
    pub fn command(&self) -> String {
        format!(
            "riffle training-set --config {} --spine {} --events transactions={} \\\n    --features user_velocity:tx_count_1h,user_velocity:tx_sum_1h,user_session:session_tx_count_30m \\\n    --with-status --out {}",
            self.registry.display(),
            self.spine.display(),
            self.events.display(),
            self.out.display()
        )
    }
}
