//! The ingest room: everything that puts feature rows into the online store.
//!
//! - [`feed`]: the inputs, one folder each: [`feed::file`] (a file or stdin, optionally
//!   followed), [`feed::kafka`] (a consumer-group member, the consumer-group source
//!   included), [`feed::http`] (`POST /v1/events`, answered once durable) and
//!   [`feed::generator`] (synthetic events, paced). Each sends the same [`feed::Feed`].
//! - [`decode`]: one event payload into a typed event by its source's schema, or a typed
//!   rejection.
//! - [`pipeline`]: `riffle ingest`'s loop: decoder, window engine (`riffle-window`) and
//!   store joined, with exactly-once replay via per-entity positions stored beside the rows,
//!   per-stream lateness, the pending-expiry index and the watermarks published after each
//!   flush.
//! - [`dead_letter`]: where rejected events go, with their reason.
//! - [`server`]: the ingest process's own `/metrics` and `/health`.
//! - [`process`]: the ingest process wired together (input, status and server, pipeline,
//!   and their orderly stop), for every command that runs one.
//! - [`bulk_load`]: loads precomputed rows of one feature group from a CSV or NDJSON file
//!   (`riffle load`), validating every row against the registry, skipping bad rows with
//!   their line numbers (a strict load writes nothing if any row is bad), and writing
//!   pipelined batches.
//! - [`writer`]: the pipelined batch writer: a few batches in flight, a later row of an
//!   entity never overtaken by an earlier one, every batch's outcome reported with the input
//!   lines it carried.
#![forbid(unsafe_code)]

pub mod bulk_load;
pub mod dead_letter;
pub mod decode;
pub mod feed;
pub mod pipeline;
pub mod process;
pub mod server;
pub mod writer;
