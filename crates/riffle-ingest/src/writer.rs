//! The pipelined batch writer: batches of rows go to [`OnlineStore::write`] with a few in
//! flight, and every batch comes back as a [`BatchOutcome`] naming the input lines it carried,
//! so a caller can always say exactly what was and was not written.
//!
//! Ordering: two rows of the same (group, entity) are never in flight at once. When a new
//! batch holds a row whose (group, entity) is still being written by an earlier batch, the
//! writer first waits for everything in flight, so the later row always lands last and "last
//! line wins" holds however many batches are in flight.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_store::{OnlineStore, RowWrite, StoreError};
use tokio::task::{Id, JoinSet};

/// Rows to write in one store call, with the span of input they came from.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Position of the batch in the input, from 0.
    pub index: u64,
    /// First and last input position held (line numbers for files, entity numbers for
    /// generated rows).
    pub first_line: u64,
    pub last_line: u64,
    pub rows: Vec<RowWrite>,
}

/// What happened to one batch.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub index: u64,
    pub first_line: u64,
    pub last_line: u64,
    pub rows: usize,
    pub elapsed: Duration,
    pub result: Result<(), StoreError>,
}

struct InFlight {
    index: u64,
    first_line: u64,
    last_line: u64,
    rows: usize,
    keys: Vec<u64>,
    started: Instant,
}

/// Writes batches with up to `max_in_flight` store calls at once.
pub struct PipelinedWriter {
    store: Arc<OnlineStore>,
    max_in_flight: usize,
    tasks: JoinSet<Result<(), StoreError>>,
    in_flight: HashMap<Id, InFlight>,
    /// (group, entity) hashes in flight, with the number of batches holding each.
    busy_keys: HashMap<u64, usize>,
    done: Vec<BatchOutcome>,
}

fn row_key(row: &RowWrite) -> u64 {
    let mut h = DefaultHasher::new();
    row.group.hash(&mut h);
    row.id.as_str().hash(&mut h);
    h.finish()
}

impl PipelinedWriter {
    pub fn new(store: Arc<OnlineStore>, max_in_flight: usize) -> Self {
        Self {
            store,
            max_in_flight: max_in_flight.max(1),
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            busy_keys: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// Starts writing `batch`, first waiting for room (and for any earlier batch holding
    /// one of its rows' entities). Empty batches are reported as written at once.
    pub async fn submit(&mut self, batch: Batch) {
        if batch.rows.is_empty() {
            self.done.push(BatchOutcome {
                index: batch.index,
                first_line: batch.first_line,
                last_line: batch.last_line,
                rows: 0,
                elapsed: Duration::ZERO,
                result: Ok(()),
            });
            return;
        }
        let keys: Vec<u64> = batch.rows.iter().map(row_key).collect();
        if keys.iter().any(|k| self.busy_keys.contains_key(k)) {
            while self.join_one().await {}
        }
        while self.tasks.len() >= self.max_in_flight {
            self.join_one().await;
        }
        for &k in &keys {
            *self.busy_keys.entry(k).or_insert(0) += 1;
        }
        let store = self.store.clone();
        let rows = batch.rows;
        let count = rows.len();
        let handle = self.tasks.spawn(async move { store.write(&rows).await });
        self.in_flight.insert(
            handle.id(),
            InFlight {
                index: batch.index,
                first_line: batch.first_line,
                last_line: batch.last_line,
                rows: count,
                keys,
                started: Instant::now(),
            },
        );
    }

    /// Outcomes of batches finished since the last call, in completion order.
    pub fn take_completed(&mut self) -> Vec<BatchOutcome> {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            self.record(joined);
        }
        std::mem::take(&mut self.done)
    }

    /// Batches being written now.
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Waits for every batch in flight; returns the outcomes not yet taken.
    pub async fn finish(mut self) -> Vec<BatchOutcome> {
        while self.join_one().await {}
        self.done
    }

    /// Waits for one batch; false when none was in flight.
    async fn join_one(&mut self) -> bool {
        match self.tasks.join_next_with_id().await {
            Some(joined) => {
                self.record(joined);
                true
            }
            None => false,
        }
    }

    fn record(&mut self, joined: Result<(Id, Result<(), StoreError>), tokio::task::JoinError>) {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => (
                e.id(),
                Err(StoreError::Unavailable(format!("write task failed: {e}"))),
            ),
        };
        let Some(meta) = self.in_flight.remove(&id) else {
            return;
        };
        for k in &meta.keys {
            if let Some(n) = self.busy_keys.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    self.busy_keys.remove(k);
                }
            }
        }
        self.done.push(BatchOutcome {
            index: meta.index,
            first_line: meta.first_line,
            last_line: meta.last_line,
            rows: meta.rows,
            elapsed: meta.started.elapsed(),
            result,
        });
    }
}
