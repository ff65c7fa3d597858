//! `riffle lag`: how far each source's ingest is behind, from two sides that fail
//! differently, joined per Kafka partition.
//!
//! - **The store** (`riffle_store::watermark`): the event-time watermarks the workers
//!   publish after each durable flush, per worker and per Kafka partition. A source read
//!   from Kafka is as far as its slowest partition, whatever its live workers say.
//! - **The broker** ([`BrokerView`], read by the binary from the consumer group, as Burrow
//!   or `kafka-consumer-groups` do): per partition the end offset, the group's committed
//!   offset, the lag in messages and in time (the age of the oldest message not committed),
//!   and the member that owns it. This side sees what the store cannot: a partition that
//!   nobody commits on shows growing lag even when no Riffle worker is alive, or when a
//!   member that does not progress (a stuck worker, another application under the same
//!   group id) holds it.
//!
//! Who owns a partition comes from the members' assignments when the broker reports them
//! (Kafka does); a broker that does not (tansu 0.6 describes members without their
//! assignments) leaves the partition marks to tell: a live worker marks every partition it
//! owns after each flush, so a partition not marked for 10 s has no live Riffle worker.
//!
//! A source fails the check ([`LagReport::ok`] false, exit 3) when its watermark or one of
//! its partitions is more than the threshold behind, when no worker publishes, when a
//! partition of its topic was never published, when the broker puts a partition's oldest
//! uncommitted message more than the threshold in the past, or when a partition is owned by
//! no member of a group that is not rebalancing. [`table`] and [`to_json`] print it.
//!
//! - `broker.rs`: the broker's side ([`BrokerView`]); `report.rs`: the report's model
//!   ([`LagReport`], [`Status`], one [`SourceLag`] per source); `judge.rs`: how a source is
//!   judged ([`LagReport::build`] from one [`SourceInput`] per source); `render.rs`: JSON
//!   and the table.

mod broker;
mod judge;
mod render;
mod report;

pub use broker::{BrokerMember, BrokerPartition, BrokerView};
pub use judge::SourceInput;
pub use render::{table, to_json};
pub use report::{
    BrokerSummary, GroupLag, LagReport, PartitionLag, PublisherLag, SourceLag, Status,
};

#[cfg(test)]
mod tests;
