//! The stream room: everything that puts feature rows into the online store.
//!
//! Built so far:
//! - [`bulk_load`]: loads precomputed rows of one feature group from a CSV or NDJSON file
//!   (`riffle load`), validating every row against the registry, skipping (or, when strict,
//!   stopping at) bad rows with their line numbers, and writing pipelined batches.
//! - [`generator`]: a deterministic synthetic population for any registry (type-driven,
//!   with a power-law activity distribution), plus a "tick" that moves the fast groups of
//!   the most active entities, as `riffle demo` needs.
//! - [`writer`]: the pipelined batch writer both of them use: a few batches in flight, a
//!   later row of an entity never overtaken by an earlier one, and every batch's outcome
//!   reported with the input lines it carried.
//!
//! - [`source`]: event sources; so far the Kafka consumer-group source (explicit commits
//!   after the store is durable, rebalance hook, lag from librdkafka's statistics).
//!
//! Still to come here (not built yet): the file-tail and HTTP-push sources, event
//! decoding, window aggregation with durable state, lag tracking and the dead-letter sink.
#![forbid(unsafe_code)]

pub mod bulk_load;
pub mod dead_letter;
pub mod decode;
pub mod generator;
pub mod source;
pub mod window;
pub mod writer;
