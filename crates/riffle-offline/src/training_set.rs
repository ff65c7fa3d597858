//! `riffle training-set`: the spine read, every requested group answered at every spine
//! row's instant (stream groups by [`crate::replay`], the others by [`crate::as_of`]), and
//! the result written as Parquet ([`crate::output`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, Timestamp};
use riffle_ingest::pipeline::SpecMap;
use riffle_registry::{GroupId, Registry};

use crate::as_of::{as_of, GroupHistory};
use crate::error::OfflineError;
use crate::events::{BadRows, SourceHistory};
use crate::output::{self, OutputColumn};
use crate::point::Point;
use crate::replay::replay_entity;
use crate::request::{self, Selection};
use crate::spine::Spine;

/// Everything `riffle training-set` is asked.
#[derive(Debug, Clone)]
pub struct TrainingSetRequest {
    /// The spine: a file, folder or glob (CSV, NDJSON or Parquet), path or URL.
    pub spine: String,
    /// The Parquet file written.
    pub out: PathBuf,
    pub selection: Selection,
    pub timestamp_column: String,
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

/// Told how far a build is, for a progress bar.
pub trait Progress {
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
/// be later).
pub async fn build(
    registry: &Registry,
    request: &TrainingSetRequest,
    now: Timestamp,
    progress: &dyn Progress,
) -> Result<TrainingSetSummary, OfflineError> {
    let started = Instant::now();
    let columns = request::columns(registry, &request.selection, request.full_feature_names)?;
    check_overrides(registry, request)?;
    let ctx = SessionContext::new();
    progress.phase("reading the spine", 0, "rows");
    let mut spine = Spine::read(&ctx, &request.spine, &request.timestamp_column, now).await?;
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
    let mut points: HashMap<GroupId, Vec<Point>> = HashMap::new();
    let mut summary = TrainingSetSummary {
        out: request.out.display().to_string(),
        rows,
        features: columns.len(),
        sources: BTreeMap::new(),
        groups: BTreeMap::new(),
        elapsed_ms: 0,
    };

    // Stream groups, one source at a time.
    let mut sources: Vec<usize> = groups
        .iter()
        .filter_map(|&g| registry.groups[g].source)
        .collect();
    sources.dedup();
    sources.sort_unstable();
    sources.dedup();
    for source_index in sources {
        let source = &registry.sources[source_index];
        let location = history_of(request.events.get(&source.name), source.offline.as_ref())
            .ok_or_else(|| no_history(registry, &groups, source_index))?;
        let map = SpecMap::new(registry, source_index);
        progress.phase(&format!("reading {}'s events", source.name), 0, "bytes");
        let history = SourceHistory::read(&ctx, registry, source, &map.config, &location, &|n| {
            progress.advance(n)
        })
        .await?;
        let entity = &registry.entities[source.entity];
        let ids = spine.keys(&entity.join_key, entity.key_type)?;
        let instants = by_entity(&ids, &spine.times);
        progress.phase(
            &format!("replaying {}'s windows", source.name),
            rows as u64,
            "rows",
        );
        let mut answered: Vec<Vec<Point>> = vec![vec![Point::MISSING; rows]; map.groups.len()];
        for (id, at) in &instants {
            replay_entity(
                registry,
                &map,
                id,
                history.of(id),
                at,
                &mut |g, row, point| {
                    answered[g][row] = point;
                },
            )?;
            progress.advance(at.len() as u64);
        }
        for ((gid, _), answers) in map.groups.iter().zip(answered) {
            if groups.contains(gid) {
                points.insert(*gid, answers);
            }
        }
        summary.sources.insert(
            source.name.clone(),
            HistoryRead {
                location,
                files: history.files,
                used: history.events.len(),
                bad: history.bad,
            },
        );
    }

    // Groups without a source: as-of joins.
    for &gid in &groups {
        let group = &registry.groups[gid];
        if group.source.is_some() {
            continue;
        }
        let location = history_of(request.history.get(&group.name), group.offline.as_ref())
            .ok_or_else(|| OfflineError::NoHistory {
                group: group.name.clone(),
                declare: format!("[[feature_groups]] {:?}", group.name),
                flag: format!("--history {}=URL", group.name),
            })?;
        progress.phase(&format!("reading {}'s rows", group.name), 0, "bytes");
        let history =
            GroupHistory::read(&ctx, registry, group, &location, &|n| progress.advance(n)).await?;
        let entity = registry.entity_of(group);
        let ids = spine.keys(&entity.join_key, entity.key_type)?;
        progress.phase(&format!("joining {}", group.name), rows as u64, "rows");
        let answers: Vec<Point> = ids
            .iter()
            .zip(&spine.times)
            .map(|(id, &t)| as_of(group, history.of(id), t))
            .collect();
        progress.advance(rows as u64);
        points.insert(gid, answers);
        summary.groups.insert(
            group.name.clone(),
            HistoryRead {
                location,
                files: history.files,
                used: history.rows.len(),
                bad: history.bad,
            },
        );
    }

    progress.phase("writing", 0, "rows");
    let outputs: Vec<OutputColumn> = columns
        .iter()
        .map(|c| {
            let group = &registry.groups[c.feature.group];
            let answers = &points[&c.feature.group];
            let served: Vec<_> = answers
                .iter()
                .map(|p| p.served(group, c.feature.feature))
                .collect();
            OutputColumn {
                name: c.name.clone(),
                ty: group.features[c.feature.feature].ty,
                values: served.iter().map(|(v, _)| (*v).clone()).collect(),
                statuses: request
                    .with_status
                    .then(|| served.iter().map(|(_, s)| *s).collect()),
            }
        })
        .collect();
    let batch = output::batch(&spine.batch, &outputs)?;
    output::write_parquet(&request.out, &batch)?;
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// The history to read: the command line's, else the registry's.
fn history_of(flag: Option<&String>, declared: Option<&String>) -> Option<String> {
    flag.or(declared).cloned()
}

fn no_history(registry: &Registry, groups: &[GroupId], source: usize) -> OfflineError {
    let name = &registry.sources[source].name;
    let group = groups
        .iter()
        .map(|&g| &registry.groups[g])
        .find(|g| g.source == Some(source))
        .map(|g| g.name.clone())
        .unwrap_or_default();
    OfflineError::NoHistory {
        group,
        declare: format!("its source [[sources]] {name:?}"),
        flag: format!("--events {name}=URL"),
    }
}

/// `--events`/`--history` must name a source or a group without a source.
fn check_overrides(registry: &Registry, request: &TrainingSetRequest) -> Result<(), OfflineError> {
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

/// The spine's instants grouped by entity: per entity, `(time, row)` sorted by time.
fn by_entity(ids: &[EntityId], times: &[Timestamp]) -> Vec<(EntityId, Vec<(Timestamp, usize)>)> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
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
