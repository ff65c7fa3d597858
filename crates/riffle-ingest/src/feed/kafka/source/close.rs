//! Closing a consumer within a deadline.
//!
//! rdkafka's `Drop` for a consumer with a group id asks librdkafka to close it and then
//! polls until it says it has, with no deadline. librdkafka waits for the commits in flight,
//! the revocation and the LeaveGroup on the group's coordinator; when that broker is gone
//! the wait can last forever (seen in `tests/kafka_source.rs`: the drop of a source whose
//! broker was killed with a commit pending, about 1 run in 10 on a loaded machine; and once
//! a rebalance callback's unassign that was never answered). A worker shutting down while
//! its broker is away would then never exit. So every consumer here is a
//! [`DeadlineConsumer`]: dropping it closes it on a thread of its own and waits at most its
//! deadline; past it the close is left to finish there, or to the process's exit, and a
//! warning says so. The group moves the partitions after the session timeout either way.

use std::ops::Deref;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};

/// A consumer that is closed within `wait` when dropped (see the module docs).
pub struct DeadlineConsumer<C: ConsumerContext + 'static> {
    /// Always `Some` until the drop takes it.
    consumer: Option<BaseConsumer<C>>,
    wait: Duration,
    /// What the warning calls it.
    name: &'static str,
}

impl<C: ConsumerContext + 'static> DeadlineConsumer<C> {
    pub fn new(consumer: BaseConsumer<C>, wait: Duration, name: &'static str) -> Self {
        Self {
            consumer: Some(consumer),
            wait,
            name,
        }
    }
}

impl<C: ConsumerContext + 'static> Deref for DeadlineConsumer<C> {
    type Target = BaseConsumer<C>;

    fn deref(&self) -> &BaseConsumer<C> {
        self.consumer
            .as_ref()
            .expect("the consumer is taken only by the drop")
    }
}

impl<C: ConsumerContext + 'static> Drop for DeadlineConsumer<C> {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            close_within(consumer, self.wait, self.name);
        }
    }
}

/// Drops `consumer` (librdkafka closes it) on a thread of its own and waits at most `wait`
/// for it; `true` when it closed in time.
fn close_within<C: ConsumerContext + 'static>(
    consumer: BaseConsumer<C>,
    wait: Duration,
    name: &'static str,
) -> bool {
    let started = Instant::now();
    let (done, closed) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("riffle-kafka-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        // The consumer went down with the closure: it was dropped on this thread.
        tracing::warn!(error = %e, "cannot start a thread to close the kafka {name}: closed in place");
        return true;
    }
    match closed.recv_timeout(wait) {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(
                waited_ms = started.elapsed().as_millis() as u64,
                "the kafka {name} did not close in time (its group's coordinator does not answer): left to close in the background; the group moves its partitions after the session timeout"
            );
            false
        }
    }
}
