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
//! Each entity gets an engine of its own, so the clock only ever moves forward and memory is
//! one entity's tiles at a time.

use riffle_core::{EntityId, Timestamp, ValueStatus};
use riffle_ingest::pipeline::SpecMap;
use riffle_registry::Registry;
use riffle_window::WindowEngine;

use crate::error::OfflineError;
use crate::events::Arrived;
use crate::point::Point;

/// One entity's instants to answer at, sorted by time: `(time, spine row)`.
pub type Instants<'a> = &'a [(Timestamp, usize)];

/// Replays `events` (one entity's, sorted by time then arrival) and answers every instant, for every
/// group of `map`: `answer(group index in map, spine row, point)`.
pub fn replay_entity(
    registry: &Registry,
    map: &SpecMap,
    entity: &EntityId,
    events: &[Arrived],
    instants: Instants<'_>,
    answer: &mut dyn FnMut(usize, usize, Point),
) -> Result<(), OfflineError> {
    let mut engine = WindowEngine::new(map.config.clone())
        .map_err(|e| OfflineError::Request(format!("the window specs: {e}")))?;
    let mut next_event = 0;
    // When the entity's row was last rewritten (None: never written).
    let mut written: Option<Timestamp> = None;
    let mut due: Vec<&Arrived> = Vec::new();
    for &(t, row) in instants {
        let first = next_event;
        next_event += events[first..].partition_point(|a| a.event.time <= t);
        due.clear();
        due.extend(&events[first..next_event]);
        due.sort_by_key(|a| a.seq);
        for arrived in &due {
            let event = &arrived.event;
            step_to(&mut engine, entity, event.time, &mut written);
            // A history event arrives at its own time: never from the future. A field a spec
            // cannot read rejects the event, as ingest would.
            if engine.ingest(event, event.time).is_ok() && !engine.take_dirty().is_empty() {
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

/// At most this many events that arrived while a pipeline's watermark stood at a cut-off
/// are tried one more at a time ([`replay_behind`]); past it, all of them are one last try.
pub const MAX_PENDING_TRIED: usize = 16;

/// Answers spine row `row` at `t` as a pipeline *behind* served it, one whose watermark
/// was `until`: every event it surely had applied ([`Arrived::settled_at`]), then also the
/// first 1, 2, … of those it may have ([`Arrived::pending_at`], in arrival order), as
/// history cannot say where its last flush fell among them. `answer(try, group index in
/// map, point)`: try 0 takes none of them, and is the row's answer; the others are the
/// values such a pipeline may also have had.
pub fn replay_behind(
    registry: &Registry,
    map: &SpecMap,
    entity: &EntityId,
    events: &[Arrived],
    until: Timestamp,
    (t, row): (Timestamp, usize),
    answer: &mut dyn FnMut(usize, usize, Point),
) -> Result<(), OfflineError> {
    let settled: Vec<&Arrived> = events.iter().filter(|a| a.settled_at(until)).collect();
    let mut pending: Vec<&Arrived> = events.iter().filter(|a| a.pending_at(until)).collect();
    pending.sort_by_key(|a| a.seq);
    let tries: Vec<usize> = (0..=pending.len().min(MAX_PENDING_TRIED))
        .chain((pending.len() > MAX_PENDING_TRIED).then_some(pending.len()))
        .collect();
    for (n, &taken) in tries.iter().enumerate() {
        let mut applied: Vec<Arrived> = settled
            .iter()
            .chain(&pending[..taken])
            .map(|a| (*a).clone())
            .collect();
        applied.sort_by(|a, b| a.event.time.cmp(&b.event.time).then(a.seq.cmp(&b.seq)));
        replay_entity(
            registry,
            map,
            entity,
            &applied,
            &[(t, row)],
            &mut |g, _, point| answer(n, g, point),
        )?;
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
