//! Where events come from: one folder per input, each sending the [`Feed`] the pipeline
//! reads through a bounded channel ([`Record`]s, each at a `(stream, offset)` position,
//! rebalance marks and the caught-up mark), and the stable stream ids that make replays
//! of an input recognisable.
//!
//! - [`file`](mod@file): numbered NDJSON lines of a file or stdin, on a thread of its own, optionally
//!   following the file as it grows and saying when it reached the end.
//! - [`kafka`]: a member of a consumer group (the consumer-group source, its commits and
//!   rebalances, and the watch over the whole group).
//! - [`http`]: events `POST`ed to `/v1/events`, each request answered once durable
//!   ([`ack`]).
//! - [`generator`]: synthetic events of the source's schema, paced.
//! - [`archive`]: events kept as history (Parquet, object stores), read by another crate and
//!   handed over as NDJSON objects, numbered as lines are.
//!
//! What they all send is defined once (`item.rs`: [`Feed`], [`Record`]), and so are the
//! stream ids (`stream_id.rs`). Adding an input is a folder here that sends [`Feed`]s, a
//! variant of [`Input`](crate::process::Input) that opens it, and a flag of `riffle ingest`.
//!
//! A file's stream id is a 64-bit FNV-1a hash of its canonical absolute path, device and
//! inode, so a re-run over the same file is recognised and deduplicated. Stdin has no such
//! identity: its stream id hashes the process start time, so stdin replays are **not**
//! deduplicated across runs.

pub mod ack;
pub mod archive;
pub mod file;
pub mod generator;
pub mod http;
pub(crate) mod item;
pub mod kafka;
pub(crate) mod stream_id;

pub use ack::{Ack, AckOutcome};
pub use archive::{spawn_archive_reader, ArchiveRecords};
pub use file::spawn_reader;
pub use generator::{generator_stream_id, GeneratorFeed};
pub use item::{Feed, Record};
pub use kafka::KafkaFeed;
pub use stream_id::{archive_stream_id, file_stream_id, kafka_stream_id, stdin_stream_id};
