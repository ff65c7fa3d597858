//! A source's event history (`[[sources]] offline`), decoded by the very decoder `riffle
//! ingest` uses on the stream ([`riffle_ingest::decode::Decoder`]), so a history event
//! means exactly what the same stream event means. NDJSON lines are decoded as they are,
//! a block of lines at a time on every core ([`crate::ndjson`]); a Parquet or CSV row
//! becomes the JSON object of the fields the source declares. Events are kept packed
//! ([`crate::packed`]).
//!
//! Lateness is judged as `riffle ingest --from FILE` judges it: each file is one input
//! stream read in order, and an event more than the source's `allowed_lateness` behind the
//! largest event time accepted from its file is too late
//! ([`riffle_window::EngineConfig::lateness_floor`]). Past that, events are applied in
//! event-time order. Lateness is judged after decoding, line after line in file order, so
//! decoding on threads changes nothing of it.
//!
//! Rows that do not decode are counted by reason and the first [`LISTED_BAD_ROWS`] are
//! listed with their file and line or row: never silently used, never silently dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use riffle_core::Timestamp;
use riffle_ingest::decode::{Decoder, Rejection};
use riffle_registry::{Registry, Source};
use riffle_window::EngineConfig;
use serde_json::Value;

use crate::cells;
use crate::cores;
use crate::error::OfflineError;
use crate::location::{self, Format, HistoryFile};
use crate::ndjson;
use crate::packed::{self, Packed};
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

/// One source's history: its events, sorted by entity, then event time, then arrival.
pub struct SourceHistory {
    pub events: Packed,
    pub files: usize,
    pub bad: BadRows,
}

impl SourceHistory {
    /// Reads and decodes every file at `location` as events of `source`. `progress` is told
    /// the bytes read as they are.
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
        // the vector is not regrown and copied as it fills.
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let mut events = Packed::new(names, (bytes / 100) as usize);
        let mut bad = BadRows::default();
        let threads = cores::count();
        for file in &files {
            let mut stream = Lateness::new(config);
            match file.format {
                Format::Ndjson => {
                    let mut each = |parts: Vec<ndjson::Part>, read: u64| {
                        for part in parts {
                            let block = events.add_block(part.packed)?;
                            for line in part.lines {
                                match line {
                                    ndjson::Line::Event {
                                        number,
                                        entity,
                                        time,
                                        at,
                                    } => match stream.admit(time) {
                                        Ok(before) => {
                                            events.push(&entity, time, before, block, at)?
                                        }
                                        Err(r) => bad.add(|| format!("{}:{number}", file.url), r),
                                    },
                                    ndjson::Line::Bad { number, rejection } => {
                                        bad.add(|| format!("{}:{number}", file.url), rejection)
                                    }
                                }
                            }
                        }
                        progress(read);
                        Ok(())
                    };
                    ndjson::read(store.as_ref(), file, &decoder, threads, &mut each).await?;
                }
                Format::Parquet | Format::Csv => {
                    let table = Table {
                        source,
                        decoder: &decoder,
                    };
                    table
                        .read(ctx, file, &mut stream, &mut events, &mut bad)
                        .await?;
                    progress(file.size);
                }
            }
        }
        events.seal(threads);
        Ok(SourceHistory {
            events,
            files: files.len(),
            bad,
        })
    }
}

/// How one source's rows are decoded from a Parquet or CSV file.
struct Table<'a> {
    source: &'a Source,
    decoder: &'a Decoder,
}

impl Table<'_> {
    /// Decodes the rows of a Parquet or CSV file: each row as the JSON object of the source's
    /// key, time and fields (absent columns are absent members).
    async fn read(
        &self,
        ctx: &SessionContext,
        file: &HistoryFile,
        stream: &mut Lateness<'_>,
        events: &mut Packed,
        bad: &mut BadRows,
    ) -> Result<(), OfflineError> {
        let (source, decoder) = (self.source, self.decoder);
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
            let mut block = Vec::new();
            let mut kept = Vec::new();
            for row in 0..batch.num_rows() {
                row_number += 1;
                let (object, unreadable) = cells::row_object(&batch, row, &columns);
                let decoded = match unreadable.first() {
                    Some(message) => Err(Rejection::SchemaMismatch(message.clone())),
                    None => decoder
                        .decode_value(&Value::Object(object), None)
                        .and_then(|e| stream.admit(e.time).map(|before| (e, before))),
                };
                match decoded {
                    Ok((e, before)) => {
                        let at = packed::offset(&block)?;
                        packed::pack(&e.fields, &mut block);
                        kept.push((e.entity, e.time, before, at));
                    }
                    Err(r) => bad.add(|| format!("{} row {row_number}", file.url), r),
                }
            }
            let block = events.add_block(block)?;
            for (entity, time, before, at) in kept {
                events.push(&entity, time, before, block, at)?;
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

    /// Admits an event at `time`, unless it is too late for its stream; the stream's
    /// watermark before it is returned ([`crate::packed::EntityEvents::settled_at`]).
    fn admit(&mut self, time: Timestamp) -> Result<Option<Timestamp>, Rejection> {
        if let Some(floor) = self.config.lateness_floor(self.latest) {
            if time.millis() < floor {
                return Err(Rejection::TooLate(format!(
                    "event time {} is more than the allowed lateness behind {} in its file",
                    time.to_rfc3339(),
                    self.latest.map(Timestamp::to_rfc3339).unwrap_or_default()
                )));
            }
        }
        let before = self.latest;
        self.latest = Some(before.map_or(time, |l| l.max(time)));
        Ok(before)
    }
}
