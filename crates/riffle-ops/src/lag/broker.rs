//! The consumer group of a Kafka source as the broker sees it ([`BrokerView`]): its
//! members, and per partition the end offset, the committed offset, the lag and the owner.
//! The binary reads it from Kafka; the operator toolkit only judges it.

use std::time::Duration;

/// The consumer group of a Kafka source as the broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    pub topic: String,
    pub group: String,
    /// The group's state as the coordinator names it (`Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Empty`, `Dead`), empty when it did not say.
    pub state: String,
    pub members: Vec<BrokerMember>,
    /// Every partition of the topic, in order.
    pub partitions: Vec<BrokerPartition>,
}

impl BrokerView {
    /// Whether the group is between rebalances (partitions may be briefly unowned while
    /// one runs).
    pub fn rebalancing(&self) -> bool {
        self.state.contains("Rebalance")
    }

    /// Whether the broker reported the members' assignments (a member holds something);
    /// when it did not, ownership is judged from the partition marks.
    pub fn assignments_known(&self) -> bool {
        self.members.iter().any(|m| !m.partitions.is_empty())
    }
}

/// A member of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerMember {
    /// `client.id@host` as the member reported them (a Riffle worker's client id is
    /// `riffle-ingest-<pid>`).
    pub name: String,
    pub partitions: Vec<u32>,
}

/// One partition as the broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerPartition {
    pub partition: u32,
    /// The offset the next message will get, when known.
    pub end_offset: Option<i64>,
    /// The group's committed offset (the next message it will read), when it has one.
    pub committed: Option<i64>,
    /// Messages not committed (`end − committed`, or `end − start` before any commit).
    pub lag_messages: Option<i64>,
    /// How old the oldest message not committed is (0 when none is pending).
    pub lag: Option<Duration>,
    /// The member holding it, by [`BrokerMember::name`]; `None`: no member does.
    pub owner: Option<String>,
}
