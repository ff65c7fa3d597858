//! What every input sends the pipeline through its bounded channel: [`Feed`] items —
//! [`Record`]s, each at a `(stream, offset)` position, the rebalance marks, the caught-up
//! mark, and pushed records whose sender waits for their outcome.

use super::ack::Ack;

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
    /// ([`spawn_reader`](super::file::spawn_reader) with `follow`) and by the Kafka feed once per catch-up of each
    /// partition; a feed that never sends it keeps the largest event time as watermark.
    CaughtUp(Vec<u64>),
    /// Pushed records (HTTP) whose sender waits: the pipeline applies them on their own and
    /// answers the [`Ack`] with their outcome once a flush made them durable.
    Acked(Vec<Record>, Ack),
}
