//! The stream room: everything that puts feature rows into the online store.
//!
//! - [`bulk_load`]: loads precomputed rows of one feature group from a CSV or NDJSON file
//!   (`riffle load`), validating every row against the registry, skipping bad rows with
//!   their line numbers (a strict load writes nothing if any row is bad), and writing
//!   pipelined batches.
//! - [`writer`]: the pipelined batch writer: a few batches in flight, a later row of an
//!   entity never overtaken by an earlier one, every batch's outcome reported with the input
//!   lines it carried.
//! - [`generator`]: a deterministic synthetic population for any registry (type-driven,
//!   power-law activity), a "tick" that moves the fast groups of the most active entities,
//!   and synthetic *events* of any source's schema (power law, bursts, cold starts, paced by
//!   a token bucket) for `riffle ingest --generate` and `riffle demo`.
//! - [`source`]: event sources; so far the Kafka consumer-group source (explicit commits
//!   after the store is durable, rebalance hook, lag from librdkafka's statistics).
//! - [`decode`]: one event payload into a typed event by its source's schema, or a typed
//!   rejection.
//! - [`window`]: tiled sliding-window aggregation with expiry timers and per-entity
//!   snapshots (a pure library: no I/O, no clock).
//! - [`dead_letter`]: where rejected events go, with their reason.
//! - [`pipeline`]: `riffle ingest` from a file, stdin, Kafka, the generator or HTTP pushes:
//!   decoder, window engine and store joined, with exactly-once replay via per-entity
//!   positions stored beside the rows, the watermark published after each flush, and the
//!   ingest process's own `/metrics` and `/health`.
#![forbid(unsafe_code)]

pub mod bulk_load;
pub mod dead_letter;
pub mod decode;
pub mod pipeline;
pub mod source;
pub mod writer;
