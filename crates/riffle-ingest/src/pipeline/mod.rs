//! The ingest pipeline (`riffle ingest`: a file, stdin or Kafka): events of one source in,
//! window features out, **exactly-once in effect** across crashes and re-runs.
//!
//! # Flow
//!
//! Records come from one of the inputs under [`crate::feed`] (a file's lines are read on a thread: [`crate::feed::file`]) and decoded by the source's schema
//! ([`crate::decode`]). Every feature of every group fed by the source is one window spec
//! ([`specs`]). For each batch of events, the stored state of entities not seen yet this run
//! is read in one batched call and restored into the [`WindowEngine`](riffle_window::WindowEngine);
//! then each event is applied unless its entity already holds its position. Every
//! `ingest.flush_interval` or `ingest.flush_max_events` events (and at the end; while the
//! previous flush's write is in flight, as soon as it lands, with everything received
//! meanwhile: group commit, see [`run()`]) the engine
//! clock moves to the wall clock, and every entity with new events or moved windows gets
//! one row per group (its values read *now*; a `Null` aggregate as the feature's training
//! default; `event_ts` = the largest event time applied, capped at now; `computed_at` =
//! now) **and** its state, written together ([`run()`]). Rejected events (undecodable, wrong
//! schema, too late, from the future, non-numeric) go to the dead-letter file, counted per
//! reason; a bad event never stops the run.
//!
//! After every durable flush the pipeline publishes its event-time watermark ([`watermark`])
//! where `riffle serve` and `riffle lag` read it: the largest event time applied, or, while
//! the input is drained ([`Feed::CaughtUp`](crate::feed::Feed::CaughtUp) received and no record since), the flush time,
//! so an idle source is not reported behind. The follow reader ([`crate::feed::file::spawn_reader`]
//! with `follow`) sends `CaughtUp` each time it reaches the end of the file; the Kafka feed
//! ([`crate::feed::kafka`]) once a poll brings nothing while every owned partition's committed
//! offset is at its high watermark; a feed that never sends it (generator, HTTP, stdin)
//! keeps the largest event time.
//!
//! # Exactly-once in effect
//!
//! The state of an entity lives in its own store key, in the reserved field `~<source>`
//! ([`state`]): the last applied `(stream, offset)` for up to 4 streams, then the engine's
//! snapshot of the entity. Rows and state of one entity are one command to one key (one
//! `HSET` in Redis, one transaction in the embedded store), so after a crash at any moment an
//! entity's rows always match the events its state says were applied. A re-run applies an
//! event at `(stream, offset)` to entity `e` only if `e`'s state has no position for that
//! stream at or beyond `offset`: re-running a file applies nothing twice, and a run killed
//! with SIGKILL and re-run ends with the values of one clean run. Dedup needs a stable
//! stream identity: a file's is a hash of its canonical path, device and inode (offset = line
//! number); stdin's is a hash of the process start, so **stdin replays are not deduplicated
//! across runs**. Rejected events record no position, so a re-run dead-letters them again
//! (unless their entity has since applied a later line: then they count as already applied).
//! Lateness (`allowed_lateness`) is judged per input stream, against the largest event time
//! applied from the event's own stream; those are persisted after the rows of each flush
//! (meta `streams:<source>`) and read back on a stream's first record, so a restarted run
//! judges as a clean run did (a crash between the rows and that field makes the replay of
//! one flush more lenient, never stricter).
//!
//! The cost: one state field per active entity in the store, and one read of state per
//! entity the run has not seen yet (batched per batch of events).
//!
//! # Window expiry across restarts and rebalances
//!
//! Expiry timers live in the engine, in memory; the pending-expiry index makes them durable.
//! Per source and input stream the meta hash `timers:<source>:<stream>` maps each entity
//! with a pending window change to its next due time (stream: that of the entity's latest
//! position). Each flush writes it in the same store call as the rows: entries set before
//! the rows, removed after them, so whatever prefix a crash keeps, every entity with
//! something pending is indexed. When the pipeline takes a stream over — at start for its
//! one stream (`PipelineOptions::kafka_topic` is `None`), on each [`Feed::Assigned`](crate::feed::Feed::Assigned) for
//! the streams of the owned partitions — it loads the indexed entities it does not hold yet
//! with the same batched read as a first touch, so their timers fire with no new event.
//! It never loads an entity whose latest position is in a stream it does not own (that
//! entry is removed instead). The state field carries the time its rows were computed: an
//! entity whose window moved while no process held it is rewritten at the next flush. Cost:
//! one index field per entity with pending expiries; per flush, in the same round trip, an
//! `HSET` per stream for entities whose due time moved and an `HDEL` for those with nothing
//! left; per take-over, one `HGETALL` per stream and one state read per 1,000 entities.
//!
//! # Continuous runs and Kafka
//!
//! While the input stays open the loop flushes every `flush_interval` even when no event
//! arrives, so expiry timers fire while ingest runs (`--follow` tails a file; Kafka never
//! ends); a [`Control::stop`] future (Ctrl-C/SIGTERM) ends the run after a last flush.
//! From Kafka ([`crate::feed::kafka`]) a stream is a hash of (topic, partition) and an offset is the
//! Kafka offset. After each durable flush the pipeline reports `offset+1` of the highest
//! offset handled (applied, skipped as already applied, or dead-lettered) per partition;
//! the feed commits it for the partitions it still owns. The revoke hook answers only the
//! offsets already durable, from a shared map (it never flushes); the feed then passes a
//! [`Feed::Revoked`](crate::feed::Feed::Revoked) mark, on which the pipeline flushes and forgets all in-memory entity
//! state, since a partition it no longer owns may be written by another process (entities
//! reload from the store on next touch). What was not durable is replayed by the next owner
//! and deduplicated by the positions. After each assignment the feed passes
//! [`Feed::Assigned`](crate::feed::Feed::Assigned) with every partition the process now owns, after the `Revoked` of the
//! same rebalance; no batch of records spans a rebalance.
//!
//! # Generator and HTTP inputs, metrics and health
//!
//! [`crate::feed::generator`] runs synthetic events of the source's schema through the same bounded
//! channel (paced by a token bucket; a full queue blocks it). [`crate::feed::http`] takes events
//! `POST`ed to `/v1/events`: each request is one [`Feed::Acked`](crate::feed::Feed::Acked) item, applied on its own,
//! and its [`Ack`](crate::feed::Ack) is answered only after the flush that made it durable ([`crate::feed::ack`]), so a
//! `200` means nothing can be lost. Whatever the input, [`crate::server`] serves
//! `/metrics` ([`crate::server::metrics`], fed from the summary after every flush) and `/health`.
//!
//! # Layout
//!
//! One idea per file; each imports only files listed after it (and `state.rs`, `specs.rs`,
//! `summary.rs`, `watermark.rs`, which import none of these).
//!
//! - `run.rs`: the loop ([`run()`]): receiving, group commit, the flush's write in flight,
//!   and what a durable flush tells (acknowledgements, Kafka offsets, progress).
//! - `apply.rs`: a batch of records decoded, the entities and streams it meets first loaded,
//!   its events applied or dead-lettered.
//! - `flush.rs`: a flush built (rows, state and index changes per chunk of entities, on
//!   several threads when it is large) and written, then the watermarks published.
//! - `entities.rs`: what the run holds of its entities (the window engine, their positions,
//!   rows gone stale), loaded from the store on first sight and forgotten on a revocation.
//! - `streams.rs`: progress per input stream: lateness, ownership, drained streams, the
//!   offsets a flush makes durable, the marks it publishes.
//! - `expiry_index.rs`: the pending-expiry index as the run knows it, and which indexed
//!   entities a take-over loads.
//! - `store_retry.rs`: store calls repeated through an outage; `error.rs`:
//!   [`PipelineError`]; `options.rs`: [`PipelineOptions`] and [`Control`].
//! - [`watermark`]: the watermarks published; [`state`]: the state field's encoding;
//!   [`specs`]: the registry's features as window specs; [`summary`]: the run's account.

mod apply;
mod entities;
mod error;
mod expiry_index;
mod flush;
mod options;
mod run;
pub mod specs;
pub mod state;
mod store_retry;
mod streams;
pub mod summary;
pub mod watermark;

pub use error::PipelineError;
pub use options::{Control, OnDurable, PipelineOptions};
pub use run::run;
pub use specs::SpecMap;
pub use summary::{IngestSummary, LoopTime};
