//! What can go wrong talking to Kafka, and whether trying again can help.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// An error of the Kafka source. [`retryable`](SourceError::retryable) tells the caller
/// whether to back off and call again (broker lost, coordinator moving) or to stop.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The client could not be built from the configuration (bad setting, bad value).
    #[error("kafka source configuration: {0}")]
    Config(String),
    /// A broker or the group coordinator cannot be reached or answered "not now"
    /// (transport failure, timeout, coordinator moving, leader election). librdkafka
    /// reconnects by itself, with its own back-off; the caller polls (or commits) again.
    #[error("kafka {op}: broker unavailable: {reason}")]
    Unavailable { op: &'static str, reason: String },
    /// A commit was refused because the group moved on (a rebalance gave the partitions
    /// to another member). Retrying the same commit cannot succeed; the new owner replays
    /// from the last committed offset, which the pipeline's idempotent writes absorb.
    #[error("kafka commit rejected by the group: {reason}")]
    CommitRejected { reason: String },
    /// Anything else (authorization, unknown topic, fatal client error): stop and report.
    #[error("kafka {op}: {reason}")]
    Fatal { op: &'static str, reason: String },
}

impl SourceError {
    /// True when the same call may succeed later without any change on our side.
    pub fn retryable(&self) -> bool {
        matches!(self, SourceError::Unavailable { .. })
    }

    /// Classifies an rdkafka error raised by operation `op` (`"poll"`, `"commit"`, …).
    pub(crate) fn from_kafka(op: &'static str, err: KafkaError) -> Self {
        let reason = err.to_string();
        let Some(code) = err.rdkafka_error_code() else {
            return match err {
                KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..) => {
                    SourceError::Config(reason)
                }
                _ => SourceError::Fatal { op, reason },
            };
        };
        if is_transient(code) {
            SourceError::Unavailable { op, reason }
        } else if op == "commit" && is_group_moved(code) {
            SourceError::CommitRejected { reason }
        } else {
            SourceError::Fatal { op, reason }
        }
    }
}

/// Codes librdkafka recovers from by itself (reconnect, coordinator or leader lookup).
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        BrokerTransportFailure
            | AllBrokersDown
            | OperationTimedOut
            | RequestTimedOut
            | NetworkException
            | Resolve
            | CoordinatorNotAvailable
            | NotCoordinator
            | CoordinatorLoadInProgress
            | LeaderNotAvailable
            | NotLeaderForPartition
            | WaitingForCoordinator
            | InProgress
            | Retry
            | QueueFull
    )
}

/// Codes saying the group generation changed under a commit.
fn is_group_moved(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        RebalanceInProgress | IllegalGeneration | UnknownMemberId | FencedInstanceId | State
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_retryable_and_fatal_ones_are_not() {
        let lost = SourceError::from_kafka(
            "poll",
            KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure),
        );
        assert!(lost.retryable(), "{lost}");
        let moved = SourceError::from_kafka(
            "commit",
            KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress),
        );
        assert!(matches!(moved, SourceError::CommitRejected { .. }));
        assert!(!moved.retryable());
        let denied = SourceError::from_kafka(
            "poll",
            KafkaError::MessageConsumption(RDKafkaErrorCode::TopicAuthorizationFailed),
        );
        assert!(!denied.retryable());
    }
}
