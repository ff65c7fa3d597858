//! Applying a batch of records: each is decoded by the source's schema; the state of the
//! entities not seen yet this run, and the largest event time of the streams not met yet,
//! are read in one batched call; then each event is applied unless its entity already holds
//! its position. Rejected events (undecodable, wrong schema, too late, from the future,
//! non-numeric) go to the dead-letter sink, counted per reason; a bad event never stops the
//! run. Nothing applied is durable before the next flush ([`super::flush`]).

use std::sync::Arc;
use std::time::Instant;

use foldhash::HashSet as FastSet;
use riffle_core::{EntityId, Timestamp};
use riffle_registry::Source;
use riffle_store::OnlineStore;
use riffle_window::Rejected;

use super::entities::{Entities, Outcome};
use super::error::PipelineError;
use super::expiry_index::ExpiryIndex;
use super::streams::StreamProgress;
use super::summary::IngestSummary;
use crate::dead_letter::{DeadLetter, DeadLetterSink, DeadLetterTarget};
use crate::decode::{Decoder, Rejection};
use crate::feed::item::Record;

/// Decodes and applies records of one source, and dead-letters what it cannot apply.
pub(super) struct Applier {
    decoder: Decoder,
    /// The source's name, for dead letters.
    source: String,
    /// The source's field names, shared by every event's engine form.
    field_names: Vec<Arc<str>>,
    sink: DeadLetterSink,
    /// The sink as configured, for its errors.
    sink_name: String,
}

impl Applier {
    /// Events of `source` (of `registry`), dead-lettered to `dead_letter` (opened now).
    pub(super) fn new(
        registry: &riffle_registry::Registry,
        source: &Source,
        dead_letter: &DeadLetterTarget,
    ) -> Result<Self, PipelineError> {
        let sink_name = dead_letter.to_string();
        let sink =
            DeadLetterSink::open(dead_letter).map_err(|error| PipelineError::DeadLetter {
                sink: sink_name.clone(),
                error,
            })?;
        Ok(Self {
            decoder: Decoder::new(registry, source),
            source: source.name.clone(),
            field_names: source
                .fields
                .iter()
                .map(|f| f.name.as_str().into())
                .collect(),
            sink,
            sink_name,
        })
    }

    /// Decodes and applies a batch of records (not yet durable: see the module docs).
    pub(super) async fn apply(
        &mut self,
        batch: Vec<Record>,
        store: &OnlineStore,
        entities: &mut Entities,
        streams: &mut StreamProgress,
        index: &mut ExpiryIndex,
        summary: &mut IngestSummary,
    ) -> Result<(), PipelineError> {
        let applying = Instant::now();
        let loading_before = summary.loop_time.loading_state;
        summary.events_read += batch.len() as u64;
        let mut events = Vec::with_capacity(batch.len());
        for record in batch {
            streams.handled(record.partition, record.offset);
            match self.decoder.decode(&record.payload, None) {
                Ok(event) => events.push((record, event)),
                Err(rejection) => {
                    self.dead_letter(&rejection, &record, summary)?;
                }
            }
        }
        let mut unseen: Vec<EntityId> = Vec::new();
        let mut seen_now = FastSet::default();
        let mut unread = Vec::new();
        for (r, e) in &events {
            if !entities.is_known(&e.entity) && seen_now.insert(e.entity.clone()) {
                unseen.push(e.entity.clone());
            }
            if !streams.is_read(r.stream) && !unread.contains(&r.stream) {
                unread.push(r.stream);
            }
        }
        streams.read_latest(store, &unread).await?;
        entities.load(store, &unseen, None, index, summary).await?;
        let now = Timestamp::now();
        for (record, event) in events {
            let stream = record.stream;
            let latest = || streams.latest(stream);
            match entities.apply(stream, record.offset, event, &self.field_names, now, latest) {
                Outcome::Applied { time } => {
                    streams.applied(stream, time, now);
                    summary.applied += 1;
                }
                Outcome::AlreadyApplied => summary.already_applied += 1,
                Outcome::Rejected(rejected) => {
                    self.dead_letter(&to_rejection(&rejected), &record, summary)?;
                }
                Outcome::NotLoaded => {} // unreachable: `load` registered every unseen entity
            }
        }
        let time = &mut summary.loop_time;
        let loading = time.loading_state.saturating_sub(loading_before);
        time.applying += applying.elapsed().saturating_sub(loading);
        Ok(())
    }

    /// Makes the dead letters written so far durable (before any offset of theirs can be).
    pub(super) fn flush_dead_letters(&mut self) -> Result<(), PipelineError> {
        self.sink
            .flush()
            .map_err(|error| PipelineError::DeadLetter {
                sink: self.sink_name.clone(),
                error,
            })
    }

    fn dead_letter(
        &mut self,
        rejection: &Rejection,
        record: &Record,
        summary: &mut IngestSummary,
    ) -> Result<(), PipelineError> {
        *summary.dead_lettered.entry(rejection.reason()).or_default() += 1;
        let letter = DeadLetter::new(rejection, &self.source, record.origin(), &record.payload);
        self.sink
            .write(&letter)
            .map_err(|error| PipelineError::DeadLetter {
                sink: self.sink_name.clone(),
                error,
            })
    }
}

/// The engine's refusal as a dead-letter rejection.
fn to_rejection(rejected: &Rejected) -> Rejection {
    let detail = rejected.to_string();
    match rejected {
        Rejected::TooLate { .. } => Rejection::TooLate(detail),
        Rejected::FromFuture { .. } => Rejection::FromFuture(detail),
        Rejected::NotNumeric { .. } | Rejected::NotFinite { .. } => {
            Rejection::SchemaMismatch(detail)
        }
    }
}
