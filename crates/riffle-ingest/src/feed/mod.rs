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
//!
//! Adding an input is a folder here that sends [`Feed`]s, and a line in `riffle ingest`.
//!
//! A file's stream id is a 64-bit FNV-1a hash of its canonical absolute path, device and
//! inode, so a re-run over the same file is recognised and deduplicated. Stdin has no such
//! identity: its stream id hashes the process start time, so stdin replays are **not**
//! deduplicated across runs.

pub mod ack;
pub mod file;
pub mod generator;
pub mod http;
pub mod kafka;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use ack::{Ack, AckOutcome};
pub use file::spawn_reader;
pub use generator::{generator_stream_id, GeneratorFeed};
pub use kafka::KafkaFeed;

/// One event to apply, at its position: `offset` is a line number (from 1) or a Kafka
/// offset; `partition` is the Kafka partition the record came from, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: u64,
    pub offset: u64,
    pub partition: Option<i32>,
    pub payload: Vec<u8>,
}

impl Record {
    /// Where the record came from, for dead letters.
    pub fn origin(&self) -> String {
        match self.partition {
            Some(p) => format!("partition {p} offset {}", self.offset),
            None => format!("line {}", self.offset),
        }
    }
}

/// What the pipeline receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    Records(Vec<Record>),
    /// Kafka partitions were taken from this process: the pipeline flushes, then forgets all
    /// in-memory entity state (it is reloaded from the store when next touched).
    Revoked,
    /// Kafka partitions were given to this process (after a rebalance, the whole set it now
    /// owns), so the pipeline can take over what belongs to them (e.g. pending expiries) and
    /// publish their watermarks; `partition_count` is how many the topic has, when the
    /// broker said.
    Assigned {
        partitions: Vec<i32>,
        partition_count: Option<u32>,
    },
    /// These input streams are drained: every record of theirs available now was sent (a
    /// followed file at its end; a Kafka partition at its high watermark). Until a record
    /// of one comes again the pipeline publishes the flush time as its watermark, so an
    /// idle partition or file is not judged behind. Sent by the follow reader
    /// ([`file::spawn_reader`] with `follow`) and by the Kafka feed once per catch-up of each
    /// partition; a feed that never sends it keeps the largest event time as watermark.
    CaughtUp(Vec<u64>),
    /// Pushed records (HTTP) whose sender waits: the pipeline applies them on their own and
    /// answers the [`Ack`] with their outcome once a flush made them durable.
    Acked(Vec<Record>, Ack),
}

/// The stream id of one partition of a Kafka topic.
pub fn kafka_stream_id(topic: &str, partition: i32) -> u64 {
    let mut h = Fnv::new();
    h.write(b"kafka\0");
    h.write(topic.as_bytes());
    h.write(b"\0");
    h.write(&partition.to_le_bytes());
    h.0
}

/// The stream id of a file.
pub fn file_stream_id(path: &Path) -> std::io::Result<u64> {
    let canonical = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&canonical)?;
    let mut h = Fnv::new();
    h.write(canonical.as_os_str().as_encoded_bytes());
    h.write(&meta.dev().to_le_bytes());
    h.write(&meta.ino().to_le_bytes());
    Ok(h.0)
}

/// The stream id of this process's stdin: a hash of the start time (not deduplicated
/// across runs).
pub fn stdin_stream_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Fnv::new();
    h.write(b"stdin");
    h.write(&nanos.to_le_bytes());
    h.write(&std::process::id().to_le_bytes());
    h.0
}

/// FNV-1a, 64 bits: stable across builds and platforms (stream ids are stored beside every
/// entity's positions, so the hash must never change; std's hashers promise no such thing).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
