//! Stream groups at past instants: each entity's history replayed through the window engine
//! ingest runs ([`riffle_window::WindowEngine`]), with the same specs
//! ([`riffle_ingest::pipeline::SpecMap`]), read at every spine time of that entity.
//!
//! At spine time `t` the answer is the row a caught-up pipeline would have left in the store:
//! - every event with event time ≤ `t` applied, none after; the engine clock moved to `t`, so
//!   windows have expired exactly as ingest's timers expire them;
//! - in the order they arrived, as far as the spine allows: the events that became due
//!   since the entity's previous spine time are applied in arrival order. Arrival order is
//!   what makes a float sum bit-for-bit what ingest summed (sums are added per tile in
//!   arrival order); an event held back because it lies after a spine time, then applied
//!   after a later-arriving earlier one, is the only way the orders differ;
//! - the row was last rewritten at the last change of the entity's values at or before `t`
//!   (an event, or a window moving): a row older than the group's `ttl` is gone (`missing`);
//! - a caught-up pipeline's watermark is `t`, so a row that exists is `fresh`;
//! - values as ingest writes them (a `Null` aggregate as the training default).
//!
//! A row with a history cut-off is answered as a pipeline *behind* served it
//! ([`replay_behind`]).
//!
//! Each entity gets an engine of its own, so the clock only ever moves forward and memory is
//! one entity's tiles at a time; entities are independent, so [`replay_all`] replays them on
//! every core.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use riffle_core::{EntityId, Timestamp, ValueStatus};
use riffle_ingest::pipeline::SpecMap;
use riffle_registry::Registry;
use riffle_window::WindowEngine;

use crate::cores;
use crate::error::OfflineError;
use crate::packed::{EntityEvents, Packed};
use crate::point::Point;

/// The spine rows of one source's groups to answer.
pub struct Asked<'a> {
    /// Per entity, its instants (caught-up rows).
    pub caught_up: &'a [(EntityId, Vec<(Timestamp, usize)>)],
    /// Rows answered as a pipeline behind served them: `(row, entity, time, history
    /// cut-off)`: a pipeline whose watermark was the cut-off ([`replay_behind`]), the clock
    /// at the row's time.
    pub behind: &'a [(usize, EntityId, Timestamp, Timestamp)],
    /// How many rows the spine has.
    pub rows: usize,
}

/// Entities taken at a time by a thread: enough to make the shared counter cheap, few
/// enough that the threads finish together.
const ENTITIES_PER_TAKE: usize = 64;

/// What [`replay_all`] answers, per group of the map.
pub struct Replayed {
    /// The point of every spine row (`missing` where not asked).
    pub answered: Vec<Vec<Point>>,
    /// For the rows behind: the other points such a pipeline may have served.
    pub alternatives: Vec<BTreeMap<usize, Vec<Point>>>,
}

/// Answers every row `asked` names for every group of `map` from `history`, on `threads`
/// threads. `progress` is told the rows answered as they are.
pub fn replay_all(
    registry: &Registry,
    map: &SpecMap,
    history: &Packed,
    asked: &Asked<'_>,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Replayed, OfflineError> {
    let jobs = asked.caught_up.len() + asked.behind.len();
    let next = AtomicUsize::new(0);
    // Each answer is `(try, group, row, point)`: try 0 is the row's point.
    let work = || -> Result<Vec<(usize, usize, usize, Point)>, OfflineError> {
        let mut out = Vec::new();
        loop {
            let start = next.fetch_add(ENTITIES_PER_TAKE, Ordering::Relaxed);
            if start >= jobs {
                break;
            }
            let mut done = 0;
            for job in start..(start + ENTITIES_PER_TAKE).min(jobs) {
                if let Some((id, at)) = asked.caught_up.get(job) {
                    let mut answer = |g, row, point| out.push((0, g, row, point));
                    replay_entity(registry, map, &history.of(id), at, &mut answer)?;
                    done += at.len();
                } else {
                    let (row, id, t, until) = &asked.behind[job - asked.caught_up.len()];
                    let mut answer = |tried, g, point| out.push((tried, g, *row, point));
                    let events = history.of(id);
                    replay_behind(registry, map, &events, *until, (*t, *row), &mut answer)?;
                    done += 1;
                }
            }
            progress(done as u64);
        }
        Ok(out)
    };
    let outs = cores::in_order((0..threads.max(1)).collect(), |_| work());
    let mut replayed = Replayed {
        answered: vec![vec![Point::MISSING; asked.rows]; map.groups.len()],
        alternatives: vec![BTreeMap::new(); map.groups.len()],
    };
    for out in outs {
        for (tried, g, row, point) in out? {
            match tried {
                0 => replayed.answered[g][row] = point,
                _ => replayed.alternatives[g].entry(row).or_default().push(point),
            }
        }
    }
    Ok(replayed)
}

/// At most this many events that arrived while a pipeline's watermark stood at a cut-off
/// are tried one more at a time ([`replay_behind`]); past it, all of them are one last try.
pub const MAX_PENDING_TRIED: usize = 16;

/// Answers spine row `row` at `t` as a pipeline *behind* served it, one whose watermark
/// was `until`: every event it surely had applied ([`EntityEvents::settled_at`]), then also
/// the first 1, 2, … of those it may have ([`EntityEvents::pending_at`], in arrival order),
/// as history cannot say where its last flush fell among them. `answer(try, group index in
/// map, point)`: try 0 takes none of them, and is the row's answer; the others are the
/// values such a pipeline may also have had.
pub fn replay_behind(
    registry: &Registry,
    map: &SpecMap,
    events: &EntityEvents<'_>,
    until: Timestamp,
    (t, row): (Timestamp, usize),
    answer: &mut dyn FnMut(usize, usize, Point),
) -> Result<(), OfflineError> {
    let mut pending: Vec<usize> = (0..events.len())
        .filter(|&i| events.pending_at(i, until))
        .collect();
    pending.sort_by_key(|&i| events.seq(i));
    let tries: Vec<usize> = (0..=pending.len().min(MAX_PENDING_TRIED))
        .chain((pending.len() > MAX_PENDING_TRIED).then_some(pending.len()))
        .collect();
    for (n, &taken) in tries.iter().enumerate() {
        let taken = &pending[..taken];
        let applied = events.only(|i| events.settled_at(i, until) || taken.contains(&i));
        replay_entity(registry, map, &applied, &[(t, row)], &mut |g, _, point| {
            answer(n, g, point)
        })?;
    }
    Ok(())
}

/// One entity's instants to answer at, sorted by time: `(time, spine row)`.
pub type Instants<'a> = &'a [(Timestamp, usize)];

/// Replays `events` (one entity's, sorted by time then arrival) and answers every instant, for every
/// group of `map`: `answer(group index in map, spine row, point)`.
pub fn replay_entity(
    registry: &Registry,
    map: &SpecMap,
    events: &EntityEvents<'_>,
    instants: Instants<'_>,
    answer: &mut dyn FnMut(usize, usize, Point),
) -> Result<(), OfflineError> {
    let mut engine = WindowEngine::new(map.config.clone())
        .map_err(|e| OfflineError::Request(format!("the window specs: {e}")))?;
    let entity = events.entity();
    let mut next_event = 0;
    // When the entity's row was last rewritten (None: never written).
    let mut written: Option<Timestamp> = None;
    let mut due: Vec<usize> = Vec::new();
    for &(t, row) in instants {
        let first = next_event;
        next_event = events.count_until(t).max(first);
        due.clear();
        due.extend(first..next_event);
        due.sort_by_key(|&i| events.seq(i));
        for &i in &due {
            let event = events.event(i)?;
            step_to(&mut engine, entity, event.time, &mut written);
            // A history event arrives at its own time: never from the future. A field a spec
            // cannot read rejects the event, as ingest would.
            if engine.ingest(&event, event.time).is_ok() && !engine.take_dirty().is_empty() {
                written = written.max(Some(event.time));
            }
        }
        step_to(&mut engine, entity, t, &mut written);
        let alive = written.filter(|w| any_row_alive(registry, map, w.age_at(t)));
        let values = alive.map(|_| engine.values(entity, t));
        for (g, (gid, _)) in map.groups.iter().enumerate() {
            let group = &registry.groups[*gid];
            let point = match (&values, written) {
                (Some(values), Some(w)) if group.row_alive(w.age_at(t)) => {
                    Point::row(ValueStatus::Fresh, map.row_values(registry, g, values))
                }
                _ => Point::MISSING,
            };
            answer(g, row, point);
        }
    }
    Ok(())
}

/// Whether any group of the source still has the row (values are read only then).
fn any_row_alive(registry: &Registry, map: &SpecMap, age_ms: u64) -> bool {
    map.groups
        .iter()
        .any(|(gid, _)| registry.groups[*gid].row_alive(age_ms))
}

/// Moves the engine clock to `to`, timer by timer, so `written` learns the exact time each
/// window move changed the entity's values (ingest rewrites its row then).
fn step_to(
    engine: &mut WindowEngine,
    entity: &EntityId,
    to: Timestamp,
    written: &mut Option<Timestamp>,
) {
    while let Some(due) = engine.next_expiry().filter(|&due| due <= to) {
        if engine.advance(due).iter().any(|e| e == entity) {
            *written = (*written).max(Some(due));
        }
        if engine.clock() >= due && engine.next_expiry() == Some(due) {
            break; // a timer the engine keeps at its own clock: nothing more moves before `to`
        }
    }
    engine.advance(to);
}
