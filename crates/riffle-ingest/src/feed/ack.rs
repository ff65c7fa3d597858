//! Acknowledgements of pushed records: a sender that hands the pipeline records as
//! [`Feed::Acked`](super::Feed::Acked) gets, once they are durable (rows, state and dead
//! letters written by a flush), how many were applied, already applied or dead-lettered.
//! If the pipeline stops first the [`Ack`] is dropped and the receiver sees the channel
//! closed: nothing may be assumed durable then.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::pipeline::summary::IngestSummary;

/// What became of one acknowledged chunk of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AckOutcome {
    pub applied: u64,
    pub already_applied: u64,
    pub dead_lettered: u64,
}

impl AckOutcome {
    /// The running totals of a summary.
    pub fn totals(summary: &IngestSummary) -> Self {
        Self {
            applied: summary.applied,
            already_applied: summary.already_applied,
            dead_lettered: summary.dead_lettered_total(),
        }
    }

    /// What happened between `before` and `self` (both running totals).
    pub fn since(self, before: Self) -> Self {
        Self {
            applied: self.applied.saturating_sub(before.applied),
            already_applied: self.already_applied.saturating_sub(before.already_applied),
            dead_lettered: self.dead_lettered.saturating_sub(before.dead_lettered),
        }
    }
}

/// The pipeline's side of one acknowledgement (answered at most once).
#[derive(Clone)]
pub struct Ack(Arc<Mutex<Option<oneshot::Sender<AckOutcome>>>>);

impl Ack {
    /// An acknowledgement and the receiver its sender awaits.
    pub fn new() -> (Self, oneshot::Receiver<AckOutcome>) {
        let (tx, rx) = oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Tells the sender its records are durable.
    pub fn send(&self, outcome: AckOutcome) {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            // The sender may have given up waiting: nothing to tell then.
            let _ = sender.send(outcome);
        }
    }
}

impl PartialEq for Ack {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Ack {}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}
