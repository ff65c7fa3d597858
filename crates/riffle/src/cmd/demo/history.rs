//! The demo's past. Before it goes live, `riffle demo` writes half an hour of synthetic
//! transactions to the source's history file and backfills them through the real pipeline
//! (as `riffle ingest --from FILE` would), so the stream groups served at start are the
//! ones that history implies; the live generator then appends to the same file, as a
//! topic's archive would. The batch groups' rows are kept as they are loaded
//! ([`GroupRows`]). With a spine of past instants and the registry beside it, `riffle
//! training-set` can be tried at once on the same events, and `riffle validate` on what
//! was served, by the commands the banner prints.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riffle_auth::Gate;
use riffle_core::Timestamp;
use riffle_ingest::bulk_load::EVENT_TIMESTAMP;
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::process::{IngestProcess, Input, ProcessOptions, Quiet};
use riffle_registry::{GroupId, Registry};
use riffle_store::{OnlineStore, RowWrite};
use riffle_synth::{Bursts, EventGenerator, EventPlan};

use super::registry::{history_file, DemoRegistry};
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
    pub log: PathBuf,
    pub count: u64,
}

/// The batch groups' rows as they are loaded, one NDJSON file per group (what `riffle
/// load` takes, with the `event_timestamp` each row is true from): their history.
pub struct GroupRows {
    files: HashMap<GroupId, GroupFile>,
    join_key: String,
}

/// One group's history file.
struct GroupFile {
    path: PathBuf,
    out: BufWriter<File>,
    features: Vec<String>,
}

impl GroupRows {
    /// A history file for every group of `registry` with an `offline` declared and no
    /// source (the demo's registry declares one for each).
    pub fn create(registry: &Registry) -> Result<Self, crate::exit::Failure> {
        let mut files = HashMap::new();
        let mut join_key = String::new();
        for group in registry.groups.iter().filter(|g| g.source.is_none()) {
            let Some(path) = group.offline.as_ref().map(PathBuf::from) else {
                continue;
            };
            join_key.clone_from(&registry.entity_of(group).join_key);
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("cannot create {}", folder.display()))
                    .map_err(runtime)?;
            }
            let file = File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(runtime)?;
            let features = group.features.iter().map(|f| f.name.clone()).collect();
            files.insert(
                group.id,
                GroupFile {
                    path,
                    out: BufWriter::new(file),
                    features,
                },
            );
        }
        Ok(Self { files, join_key })
    }

    /// Appends the rows of the groups kept (the others are skipped).
    pub fn keep(&mut self, rows: &[RowWrite]) -> CmdResult {
        for write in rows {
            let Some(GroupFile {
                path,
                out,
                features,
            }) = self.files.get_mut(&write.group)
            else {
                continue;
            };
            let mut object = serde_json::Map::new();
            object.insert(self.join_key.clone(), write.id.as_str().into());
            object.insert(
                EVENT_TIMESTAMP.into(),
                write.row.event_ts.to_rfc3339().into(),
            );
            for (feature, value) in features.iter().zip(&write.row.values) {
                let value = serde_json::to_value(value).map_err(runtime)?;
                object.insert(feature.clone(), value);
            }
            serde_json::to_writer(&mut *out, &object)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(runtime)?;
        }
        Ok(())
    }

    /// Flushes every file.
    pub fn finish(self) -> CmdResult {
        for GroupFile { path, mut out, .. } in self.files.into_values() {
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(runtime)?;
        }
        Ok(())
    }
}

/// Writes the history of `source` (about one event per user over `SPAN`, at least 1,000
/// and at most 100,000), backfills it into `store`, and writes a spine of past instants and
/// the registry beside it in `dir`.
pub async fn prepare(
    demo: &DemoRegistry,
    registry: &Arc<Registry>,
    source: usize,
    store: &Arc<OnlineStore>,
    dir: &Path,
    users: u64,
    seed: u64,
) -> Result<History, crate::exit::Failure> {
    let src = &registry.sources[source];
    let events = history_file(dir, &src.name);
    if let Some(folder) = events.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))
            .map_err(runtime)?;
    }
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
        gate: Arc::new(Gate::new(registry.clone(), None, "ingest")),
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
    write(&registry_path, demo.text.as_bytes())?;
    Ok(History {
        registry: registry_path,
        events,
        spine: spine_path,
        out: dir.join("training.parquet"),
        log: demo.log.clone(),
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
    pub fn training_set_command(&self) -> String {
        format!(
            "riffle training-set --config {} --spine {} \\\n    --features user_velocity:tx_count_1h,user_velocity:tx_sum_1h,user_session:session_tx_count_30m,user_profile:credit_score_bucket \\\n    --with-status --out {}",
            self.registry.display(),
            self.spine.display(),
            self.out.display()
        )
    }

    /// The `riffle validate` command over what this demo serves.
    pub fn validate_command(&self) -> String {
        format!(
            "riffle validate --config {} --log {}",
            self.registry.display(),
            self.log.display()
        )
    }
}
