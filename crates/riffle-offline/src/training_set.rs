//! `riffle training-set`: the spine read, every requested group answered at every spine
//! row's instant (stream groups by [`crate::replay`], the others by [`crate::as_of`]), and
//! the result written as Parquet ([`crate::output`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, Timestamp};
use riffle_ingest::pipeline::SpecMap;
use riffle_registry::{FeatureGroup, GroupId, Registry};

use crate::as_of::{GroupHistory, Joined};
use crate::cores;
use crate::error::OfflineError;
use crate::events::{BadRows, SourceHistory};
use crate::output::{self, OutputColumn};
use crate::point::{Answers, Point};
use crate::read;
use crate::replay::{replay_all, Asked};
use crate::request::{self, Selection};
use crate::spine::Spine;

/// Everything `riffle training-set` is asked: a spine to read, the features to answer it
/// with, and where to write the result.
#[derive(Debug, Clone)]
pub struct TrainingSetRequest {
    /// The spine: a file, folder or glob (CSV, NDJSON or Parquet), path or URL.
    pub spine: String,
    /// The Parquet file written.
    pub out: PathBuf,
    pub timestamp_column: String,
    pub features: FeatureRequest,
}

/// The features to answer every spine row with, how their columns are named, and where
/// their history is read from.
#[derive(Debug, Clone)]
pub struct FeatureRequest {
    pub selection: Selection,
    pub with_status: bool,
    pub full_feature_names: bool,
    /// Source name → its event history, overriding the registry's `offline`.
    pub events: HashMap<String, String>,
    /// Group name → its row history, overriding the registry's `offline`.
    pub history: HashMap<String, String>,
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainingSetSummary {
    /// Where the training set was written (empty for one [`answer`]ed in memory).
    pub out: String,
    pub rows: usize,
    pub features: usize,
    /// Per source: events used, and the rows that were not.
    pub sources: BTreeMap<String, HistoryRead>,
    /// Per group without a source: rows used, and the rows that were not.
    pub groups: BTreeMap<String, HistoryRead>,
    pub elapsed_ms: u64,
}

/// What was read of one history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRead {
    pub location: String,
    pub files: usize,
    pub used: usize,
    pub bad: BadRows,
}

/// Told how far a build is, for a progress bar; `Sync`, so a build is a future any thread
/// of a runtime may run.
pub trait Progress: Sync {
    /// A phase begins; `total` is its length in `unit`s.
    fn phase(&self, name: &str, total: u64, unit: &'static str);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: u64, _: &'static str) {}
    fn advance(&self, _: u64) {}
}

/// Builds the training set `request` asks for from `registry`, at `now` (no spine time may
/// be later), and writes it.
pub async fn build(
    registry: &Registry,
    request: &TrainingSetRequest,
    now: Timestamp,
    progress: &dyn Progress,
) -> Result<TrainingSetSummary, OfflineError> {
    let started = Instant::now();
    // The request is checked before the spine is read.
    request::columns(
        registry,
        &request.features.selection,
        request.features.full_feature_names,
    )?;
    check_overrides(registry, &request.features)?;
    progress.phase("reading the spine", 0, "rows");
    let ctx = read::ordered_context();
    let spine = Spine::read(&ctx, &request.spine, &request.timestamp_column, now).await?;
    let (batch, mut summary) = answer(registry, &request.features, spine, progress).await?;
    progress.phase("writing", 0, "rows");
    output::write_parquet(&request.out, &batch)?;
    summary.out = request.out.display().to_string();
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// Answers every row of `spine` with the features `request` asks for: the spine's columns
/// followed by one typed column per feature (and its status, on request), row for row.
pub async fn answer(
    registry: &Registry,
    request: &FeatureRequest,
    spine: Spine,
    progress: &dyn Progress,
) -> Result<(RecordBatch, TrainingSetSummary), OfflineError> {
    let answered = compute(registry, request, spine, progress).await?;
    let batch = output::batch(&answered.spine.batch, &answered.columns)?;
    Ok((batch, answered.summary))
}

/// A spine answered: one column of values (and statuses, on request) per feature asked
/// for, row `i` of each answering spine row `i`.
pub struct Answered {
    pub spine: Spine,
    pub columns: Vec<OutputColumn>,
    pub summary: TrainingSetSummary,
}

/// [`answer`], the values kept typed rather than made a record batch.
pub async fn compute(
    registry: &Registry,
    request: &FeatureRequest,
    mut spine: Spine,
    progress: &dyn Progress,
) -> Result<Answered, OfflineError> {
    let started = Instant::now();
    let columns = request::columns(registry, &request.selection, request.full_feature_names)?;
    check_overrides(registry, request)?;
    let ctx = read::ordered_context();
    let rows = spine.len();

    // The groups asked for, each answered once at every spine row.
    let mut groups: Vec<GroupId> = Vec::new();
    for c in &columns {
        if !groups.contains(&c.feature.group) {
            groups.push(c.feature.group);
        }
    }
    // Every group's join key is read (and checked) before any history is.
    for &g in &groups {
        let entity = registry.entity_of(&registry.groups[g]);
        spine.keys(&entity.join_key, entity.key_type)?;
    }
    // Every history is located before any is read: a source's once, for its first group.
    let mut source_history: Vec<(usize, String)> = Vec::new();
    let mut group_history: Vec<(GroupId, String)> = Vec::new();
    for &g in &groups {
        let group = &registry.groups[g];
        match group.source {
            Some(s) if source_history.iter().any(|(seen, _)| *seen == s) => {}
            Some(s) => source_history.push((s, history_location(registry, request, group)?)),
            None => group_history.push((g, history_location(registry, request, group)?)),
        }
    }
    source_history.sort_unstable_by_key(|(s, _)| *s);

    let mut build = Build {
        ctx,
        registry,
        spine: &mut spine,
        progress,
        points: HashMap::new(),
        alternatives: HashMap::new(),
        summary: TrainingSetSummary {
            out: String::new(),
            rows,
            features: columns.len(),
            sources: BTreeMap::new(),
            groups: BTreeMap::new(),
            elapsed_ms: 0,
        },
    };
    for (source, location) in source_history {
        build.replay_source(source, location, &groups).await?;
    }
    for (group, location) in group_history {
        build.join_group(group, location).await?;
    }
    let Build {
        points,
        alternatives,
        mut summary,
        ..
    } = build;

    let outputs: Vec<OutputColumn> = columns
        .iter()
        .map(|c| {
            let group = &registry.groups[c.feature.group];
            let answers = &points[&c.feature.group];
            let served: Vec<_> = (0..rows)
                .map(|row| answers.served(group, row, c.feature.feature))
                .collect();
            OutputColumn {
                name: c.name.clone(),
                ty: group.features[c.feature.feature].ty,
                values: served.iter().map(|(v, _)| (*v).clone()).collect(),
                statuses: request
                    .with_status
                    .then(|| served.iter().map(|(_, s)| *s).collect()),
                alternatives: alternatives
                    .get(&c.feature.group)
                    .map(|rows| {
                        rows.iter()
                            .map(|(&row, others)| {
                                let values = others
                                    .iter()
                                    .map(|p| p.served(group, c.feature.feature).0.clone())
                                    .collect();
                                (row, values)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Answered {
        spine,
        columns: outputs,
        summary,
    })
}

/// Spine row → the other rows a pipeline behind may have served there.
type Alternatives = BTreeMap<usize, Vec<Point>>;

/// One build under way: what it reads with, and the answers so far.
struct Build<'a> {
    ctx: SessionContext,
    registry: &'a Registry,
    spine: &'a mut Spine,
    progress: &'a dyn Progress,
    /// Per group asked for: its row at every spine row.
    points: HashMap<GroupId, Answers>,
    /// Per group: the other rows a pipeline behind may have served, by spine row.
    alternatives: HashMap<GroupId, Alternatives>,
    summary: TrainingSetSummary,
}

impl Build<'_> {
    /// Answers every group of `source` asked for (`groups`) by replaying its history.
    async fn replay_source(
        &mut self,
        source: usize,
        location: String,
        groups: &[GroupId],
    ) -> Result<(), OfflineError> {
        let (registry, progress) = (self.registry, self.progress);
        let src = &registry.sources[source];
        let map = SpecMap::new(registry, source);
        progress.phase(&format!("reading {}'s events", src.name), 0, "bytes");
        let history = SourceHistory::read(&self.ctx, registry, src, &map.config, &location, &|n| {
            progress.advance(n)
        })
        .await?;
        let entity = &registry.entities[src.entity];
        let ids = self.spine.keys(&entity.join_key, entity.key_type)?;
        let rows = self.spine.len();
        let caught_up = by_entity(&ids, &self.spine.times, |row| {
            self.spine.cut_off(row).is_none()
        });
        let behind: Vec<_> = (0..rows)
            .filter_map(|row| {
                let until = self.spine.cut_off(row)?;
                Some((row, ids[row].clone(), self.spine.times[row], until))
            })
            .collect();
        progress.phase(
            &format!("replaying {}'s windows", src.name),
            rows as u64,
            "rows",
        );
        let asked = Asked {
            caught_up: &caught_up,
            behind: &behind,
            rows,
        };
        let threads = cores::count();
        let replayed = replay_all(registry, &map, &history.events, &asked, threads, &|n| {
            progress.advance(n)
        })?;
        let answers = replayed.answered.into_iter().zip(replayed.alternatives);
        for ((gid, _), (answers, others)) in map.groups.iter().zip(answers) {
            if groups.contains(gid) {
                self.points.insert(*gid, Answers::Points(answers));
                if !others.is_empty() {
                    self.alternatives.insert(*gid, others);
                }
            }
        }
        self.summary.sources.insert(
            src.name.clone(),
            HistoryRead {
                location,
                files: history.files,
                used: history.events.len(),
                bad: history.bad,
            },
        );
        Ok(())
    }

    /// Answers group `gid` (without a source) by an as-of join on its row history.
    async fn join_group(&mut self, gid: GroupId, location: String) -> Result<(), OfflineError> {
        let (registry, progress) = (self.registry, self.progress);
        let group = &registry.groups[gid];
        progress.phase(&format!("reading {}'s rows", group.name), 0, "bytes");
        let mut history = GroupHistory::read(&self.ctx, registry, group, &location, &|n| {
            progress.advance(n)
        })
        .await?;
        let entity = registry.entity_of(group);
        let ids = self.spine.keys(&entity.join_key, entity.key_type)?;
        let rows = self.spine.len();
        progress.phase(&format!("joining {}", group.name), rows as u64, "rows");
        let spine = &*self.spine;
        let joined: Vec<Joined> = cores::in_order(cores::runs(rows, cores::count()), |run| {
            run.map(|row| history.as_of(group, &ids[row], spine.times[row], spine.cut_off(row)))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        progress.advance(rows as u64);
        let (files, used) = (history.files, history.len());
        let bad = std::mem::take(&mut history.bad);
        self.points.insert(
            gid,
            Answers::Joined {
                history,
                rows: joined,
            },
        );
        self.summary.groups.insert(
            group.name.clone(),
            HistoryRead {
                location,
                files,
                used,
                bad,
            },
        );
        Ok(())
    }
}

/// The history to read: the command line's, else the registry's.
/// Where `group` is recomputed from: its source's events, or (without a source) its own
/// rows; the request's `--events`/`--history` first, then the registry's `offline`.
pub(crate) fn history_location(
    registry: &Registry,
    request: &FeatureRequest,
    group: &FeatureGroup,
) -> Result<String, OfflineError> {
    let (flag, declared, declare, flag_hint) = match group.source {
        Some(s) => {
            let source = &registry.sources[s];
            (
                request.events.get(&source.name),
                source.offline.as_ref(),
                format!("its source [[sources]] {:?}", source.name),
                format!("--events {}=URL", source.name),
            )
        }
        None => (
            request.history.get(&group.name),
            group.offline.as_ref(),
            format!("[[feature_groups]] {:?}", group.name),
            format!("--history {}=URL", group.name),
        ),
    };
    flag.or(declared)
        .cloned()
        .ok_or_else(|| OfflineError::NoHistory {
            group: group.name.clone(),
            declare,
            flag: flag_hint,
        })
}

/// `--events`/`--history` must name a source or a group without a source.
fn check_overrides(registry: &Registry, request: &FeatureRequest) -> Result<(), OfflineError> {
    for name in request.events.keys() {
        if registry.source(name).is_none() {
            return Err(OfflineError::Request(format!(
                "--events {name}=…: no source {name:?}"
            )));
        }
    }
    for name in request.history.keys() {
        match registry.group(name) {
            None => return Err(OfflineError::Request(format!("--history {name}=…: no group {name:?}"))),
            Some(g) if g.source.is_some() => {
                return Err(OfflineError::Request(format!(
                    "--history {name}=…: group {name:?} is computed from a source: pass --events SOURCE=URL"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The spine's instants grouped by entity: per entity, `(time, row)` sorted by time, for
/// the rows `keep` keeps.
fn by_entity(
    ids: &[EntityId],
    times: &[Timestamp],
    keep: impl Fn(usize) -> bool,
) -> Vec<(EntityId, Vec<(Timestamp, usize)>)> {
    let mut order: Vec<usize> = (0..ids.len()).filter(|&row| keep(row)).collect();
    order.sort_by(|&a, &b| {
        ids[a]
            .cmp(&ids[b])
            .then(times[a].cmp(&times[b]))
            .then(a.cmp(&b))
    });
    let mut out: Vec<(EntityId, Vec<(Timestamp, usize)>)> = Vec::new();
    for row in order {
        match out.last_mut() {
            Some((id, at)) if *id == ids[row] => at.push((times[row], row)),
            _ => out.push((ids[row].clone(), vec![(times[row], row)])),
        }
    }
    out
}
