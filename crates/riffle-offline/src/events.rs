//! A source's event history (`[[sources]] offline`), decoded by the very decoder `riffle
//! ingest` uses on the stream ([`riffle_ingest::decode::Decoder`]), so a history event
//! means exactly what the same stream event means. NDJSON lines are decoded as they are;
//! a Parquet or CSV row becomes the JSON object of the fields the source declares.
//!
//! Lateness is judged as `riffle ingest --from FILE` judges it: each file is one input
//! stream read in order, and an event more than the source's `allowed_lateness` behind the
//! largest event time accepted from its file is too late
//! ([`riffle_window::EngineConfig::lateness_floor`]). Past that, events are applied in
//! event-time order.
//!
//! Rows that do not decode are counted by reason and the first [`LISTED_BAD_ROWS`] are
//! listed with their file and line or row: never silently used, never silently dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, Timestamp};
use riffle_ingest::decode::{self, Decoder, Rejection};
use riffle_ingest::pipeline::specs::named_event;
use riffle_registry::{Registry, Source};
use riffle_window::{EngineConfig, Event};
use serde_json::Value;

use crate::cells;
use crate::error::OfflineError;
use crate::location::{self, Format, HistoryFile};
use crate::read;

/// At most this many bad rows are listed (all are counted).
pub const LISTED_BAD_ROWS: usize = 20;

/// A row of history that was not used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadRow {
    /// `FILE:LINE` for NDJSON, `FILE row N` otherwise (both counting from 1).
    pub at: String,
    pub reason: &'static str,
    pub message: String,
}

/// The rows of history not used: counted per reason, the first few listed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BadRows {
    pub counts: BTreeMap<&'static str, u64>,
    pub listed: Vec<BadRow>,
}

impl BadRows {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub(crate) fn add(&mut self, at: impl FnOnce() -> String, rejection: Rejection) {
        *self.counts.entry(rejection.reason()).or_default() += 1;
        if self.listed.len() < LISTED_BAD_ROWS {
            self.listed.push(BadRow {
                at: at(),
                reason: rejection.reason(),
                message: rejection.to_string(),
            });
        }
    }
}

/// One event of history and when it arrived: its place in the order read (files by name,
/// then lines or rows), the order a stream would have delivered it in, and the watermark
/// its stream had once it arrived.
#[derive(Debug, Clone)]
pub struct Arrived {
    pub seq: u64,
    /// The largest event time accepted from its file before this event (`None`: the
    /// first): the watermark of a pipeline reading the file when this event reached it.
    pub watermark_before: Option<Timestamp>,
    pub event: Event,
}

impl Arrived {
    /// Whether a pipeline whose watermark was `until` had surely applied this event: it
    /// arrived before the watermark reached `until` (or is the event that reached it), and
    /// is no later (applying a later one would have moved the watermark past `until`).
    pub fn settled_at(&self, until: Timestamp) -> bool {
        self.watermark_before.is_none_or(|w| w < until) && self.event.time <= until
    }

    /// Whether such a pipeline may or may not have applied it: it arrived while the
    /// watermark stood at `until`, being no later itself. Which of these a pipeline had
    /// applied depends on where its last flush fell, which history does not say.
    pub fn pending_at(&self, until: Timestamp) -> bool {
        self.watermark_before == Some(until) && self.event.time <= until
    }
}

/// One source's history: its events sorted by entity, then event time, then arrival.
pub struct SourceHistory {
    pub events: Vec<Arrived>,
    pub files: usize,
    pub bad: BadRows,
}

impl SourceHistory {
    /// Reads and decodes every file at `location` as events of `source`. `progress` is told
    /// the bytes of each file read.
    pub async fn read(
        ctx: &SessionContext,
        registry: &Registry,
        source: &Source,
        config: &EngineConfig,
        location: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<SourceHistory, OfflineError> {
        let (store, files) = location::list(ctx, location).await?;
        let decoder = Decoder::new(registry, source);
        let names: Vec<Arc<str>> = source
            .fields
            .iter()
            .map(|f| f.name.as_str().into())
            .collect();
        // Sized from the bytes to read (an event takes at least ~100 of them in NDJSON), so
        // the vector is not regrown and copied as it fills: growth was 40% of a build's time.
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let mut events: Vec<Arrived> = Vec::with_capacity((bytes / 100) as usize);
        let mut bad = BadRows::default();
        for file in &files {
            let mut stream = Lateness::new(config);
            match file.format {
                Format::Ndjson => {
                    let text = read::bytes(store.as_ref(), file).await?;
                    for (number, line) in read::lines(&text) {
                        match decoder.decode(line, None).and_then(|e| stream.admit(e)) {
                            Ok((e, before)) => arrive(&mut events, named_event(&names, e), before),
                            Err(r) => bad.add(|| format!("{}:{number}", file.url), r),
                        }
                    }
                }
                Format::Parquet | Format::Csv => {
                    let table = Table {
                        source,
                        decoder: &decoder,
                        names: &names,
                    };
                    table
                        .read(ctx, file, &mut stream, &mut events, &mut bad)
                        .await?
                }
            }
            progress(file.size);
        }
        // Events of one entity at one time keep the order they arrived in: `seq` makes the
        // order total, so an unstable sort (no buffer of half the events) gives the same.
        events.sort_unstable_by(|a, b| {
            (a.event.entity.cmp(&b.event.entity))
                .then(a.event.time.cmp(&b.event.time))
                .then(a.seq.cmp(&b.seq))
        });
        Ok(SourceHistory {
            events,
            files: files.len(),
            bad,
        })
    }

    /// The events of `entity` (sorted by time), found by binary search.
    pub fn of(&self, entity: &EntityId) -> &[Arrived] {
        let start = self.events.partition_point(|a| a.event.entity < *entity);
        let end = start + self.events[start..].partition_point(|a| a.event.entity == *entity);
        &self.events[start..end]
    }
}

/// Appends `event` as the next to arrive, its stream's watermark then `watermark_before`.
fn arrive(events: &mut Vec<Arrived>, event: Event, watermark_before: Option<Timestamp>) {
    let seq = events.len() as u64;
    events.push(Arrived {
        seq,
        watermark_before,
        event,
    });
}

/// How one source's rows are decoded from a Parquet or CSV file.
struct Table<'a> {
    source: &'a Source,
    decoder: &'a Decoder,
    names: &'a [Arc<str>],
}

impl Table<'_> {
    /// Decodes the rows of a Parquet or CSV file: each row as the JSON object of the source's
    /// key, time and fields (absent columns are absent members).
    async fn read(
        &self,
        ctx: &SessionContext,
        file: &HistoryFile,
        stream: &mut Lateness<'_>,
        events: &mut Vec<Arrived>,
        bad: &mut BadRows,
    ) -> Result<(), OfflineError> {
        let (source, decoder, names) = (self.source, self.decoder, self.names);
        let wanted: Vec<&str> = [source.key_field.as_str(), source.time_field.as_str()]
            .into_iter()
            .chain(source.fields.iter().map(|f| f.name.as_str()))
            .collect();
        let mut row_number = 0usize;
        for batch in read::batches(ctx, file).await? {
            let columns: Vec<usize> = wanted
                .iter()
                .filter_map(|name| batch.schema().index_of(name).ok())
                .collect();
            for row in 0..batch.num_rows() {
                row_number += 1;
                let (object, unreadable) = cells::row_object(&batch, row, &columns);
                let decoded = match unreadable.first() {
                    Some(message) => Err(Rejection::SchemaMismatch(message.clone())),
                    None => decoder
                        .decode_value(&Value::Object(object), None)
                        .and_then(|e| stream.admit(e)),
                };
                match decoded {
                    Ok((e, before)) => arrive(events, named_event(names, e), before),
                    Err(r) => bad.add(|| format!("{} row {row_number}", file.url), r),
                }
            }
        }
        Ok(())
    }
}

/// One input stream's lateness: the largest event time accepted from it so far.
struct Lateness<'a> {
    config: &'a EngineConfig,
    latest: Option<Timestamp>,
}

impl<'a> Lateness<'a> {
    fn new(config: &'a EngineConfig) -> Self {
        Self {
            config,
            latest: None,
        }
    }

    /// The event and the stream's watermark before it, unless it is too late for its
    /// stream.
    fn admit(
        &mut self,
        event: decode::Event,
    ) -> Result<(decode::Event, Option<Timestamp>), Rejection> {
        if let Some(floor) = self.config.lateness_floor(self.latest) {
            if event.time.millis() < floor {
                return Err(Rejection::TooLate(format!(
                    "event time {} is more than the allowed lateness behind {} in its file",
                    event.time.to_rfc3339(),
                    self.latest.map(Timestamp::to_rfc3339).unwrap_or_default()
                )));
            }
        }
        let before = self.latest;
        self.latest = Some(before.map_or(event.time, |l| l.max(event.time)));
        Ok((event, before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    /// Events of one stream in arrival order, `(event time, watermark before it)`.
    fn arrivals(times: &[i64]) -> Vec<Arrived> {
        let mut latest: Option<Timestamp> = None;
        let entity = riffle_core::EntityId::new("u1").unwrap();
        times
            .iter()
            .enumerate()
            .map(|(seq, &t)| {
                let before = latest;
                latest = Some(latest.map_or(at(t), |l| l.max(at(t))));
                Arrived {
                    seq: seq as u64,
                    watermark_before: before,
                    event: Event::new(entity.clone(), at(t)),
                }
            })
            .collect()
    }

    #[test]
    fn a_pipeline_at_a_watermark_had_what_arrived_before_it_and_perhaps_what_came_while_it_stood() {
        // Arrival order: 10, 20 (the watermark reaches 20), 15 and 19 (while it stands at
        // 20), 25 (it moves on), 18 (after it passed 20).
        let events = arrivals(&[10, 20, 15, 19, 25, 18]);
        let until = at(20);
        let settled: Vec<i64> = events
            .iter()
            .filter(|a| a.settled_at(until))
            .map(|a| a.event.time.millis())
            .collect();
        let pending: Vec<i64> = events
            .iter()
            .filter(|a| a.pending_at(until))
            .map(|a| a.event.time.millis())
            .collect();
        assert_eq!(settled, [10, 20]);
        assert_eq!(pending, [15, 19]);
        // Not "every event up to 20": 18 arrived after the watermark passed 20.
        assert!(!events[5].settled_at(until) && !events[5].pending_at(until));
        // A pipeline at 10 had not applied 20, which would have moved it past 10.
        assert!(events[0].settled_at(at(10)) && !events[1].settled_at(at(10)));
    }
}
