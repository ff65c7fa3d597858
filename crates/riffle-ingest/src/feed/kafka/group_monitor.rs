//! Ingest's watch over its whole consumer group, not only its own partitions: every
//! [`SAMPLE_EVERY`] a task samples the group from outside it ([`GroupProbe`]: per
//! partition the lag in messages and in time) and reads the source's partition marks, and
//! judges who owns what: by the members' assignments when the broker reports them, else
//! (tansu 0.6 does not) by the marks, since a live worker marks every partition it owns
//! after each flush. The latest judgement feeds ingest's `/metrics` and `/health`, so every
//! live worker reports a partition that nobody processes, or that a member holds without
//! committing.
//!
//! And a remedy: when partitions stay unowned in a settled group for `ingest.rejoin_after`
//! (15 s by default, counted from when they are first seen unowned: for a dead owner its
//! marks are 10 s old by then, past the 10 s session timeout, so the dead member has been
//! dropped; a broker that kept its assignment, as tansu does), the worker is asked to rejoin
//! the group ([`FeedControl::request_rejoin`]), a membership change that makes the
//! coordinator hand the partitions out again; if they are still unowned
//! `REJOIN_COOLDOWN` (60 s) later, a short-lived extra member joins and leaves
//! ([`group::nudge`]: tansu can keep a group forming under a dead leader, which only a new
//! member's join clears), and so on, one remedy per cooldown, alternating. When ownership
//! is only known from the marks, the worker acts only if every member of the group is a
//! Riffle worker: another application's member may hold those partitions legitimately, and
//! is reported (its partitions' lag grows), not disturbed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riffle_core::Timestamp;
use riffle_store::watermark;
use riffle_store::OnlineStore;

use super::FeedControl;
use crate::feed::kafka::source::group::{self, GroupProbe, GroupSample};
use crate::feed::kafka::source::KafkaConfig;

/// How often the group is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long one sample may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(4);
/// The least time between two remedies of this worker.
const REJOIN_COOLDOWN: Duration = Duration::from_secs(60);
/// How long the nudging member waits to be handed partitions before it leaves.
const NUDGE_WITHIN: Duration = Duration::from_secs(10);

/// The latest judgement of the group.
#[derive(Default)]
pub struct GroupWatch {
    latest: Mutex<Option<Sampled>>,
}

/// One sample and what was made of it.
#[derive(Clone)]
pub struct Sampled {
    /// The group, or why it could not be read.
    pub sample: Result<GroupSample, String>,
    /// Partitions owned by nobody (see the module docs for how that is told).
    pub unowned: Vec<i32>,
    /// Since when some partition has been unowned in a settled group.
    pub unowned_since: Option<Instant>,
}

impl GroupWatch {
    /// The latest sample, if one was taken.
    pub fn latest(&self) -> Option<Sampled> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, sampled: Sampled) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(sampled);
    }
}

/// The sampling task; stops when dropped.
pub struct GroupMonitor {
    watch: Arc<GroupWatch>,
    stop: Arc<AtomicBool>,
}

impl GroupMonitor {
    /// Starts sampling the group of `config` (and the marks of `source` in `store`) on the
    /// current Tokio runtime; partitions unowned for `rejoin_after` make `feed` rejoin
    /// (zero: never).
    pub fn start(
        config: &KafkaConfig,
        feed: Arc<FeedControl>,
        store: Arc<OnlineStore>,
        source: &str,
        rejoin_after: Duration,
    ) -> Self {
        let watch = Arc::new(GroupWatch::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = Watcher {
            rejoin_after,
            config: config.clone(),
            source: source.to_owned(),
            store,
            feed,
            watch: watch.clone(),
            stop: stop.clone(),
        };
        tokio::spawn(task.run());
        Self { watch, stop }
    }

    /// What `/metrics` and `/health` read.
    pub fn watch(&self) -> Arc<GroupWatch> {
        self.watch.clone()
    }
}

impl Drop for GroupMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Watcher {
    rejoin_after: Duration,
    config: KafkaConfig,
    source: String,
    store: Arc<OnlineStore>,
    feed: Arc<FeedControl>,
    watch: Arc<GroupWatch>,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    async fn run(self) {
        let mut probe: Option<GroupProbe> = None;
        let mut unowned_since: Option<Instant> = None;
        let mut last_rejoin: Option<Instant> = None;
        // Remedies tried since the group was last fine: rejoin first, then alternate.
        let mut remedies = 0u32;
        // Two workers seeing the same stuck group should not rejoin in the same instant.
        let jitter = Duration::from_millis(u64::from(std::process::id() % 5_000));
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let (back, sample) = self.sample(probe.take()).await;
            probe = back;
            let unowned = match &sample {
                Ok(s) => self.unowned(s).await,
                Err(_) => Vec::new(),
            };
            let settled = sample
                .as_ref()
                .is_ok_and(|s| !s.rebalancing() && !s.members.is_empty());
            if settled && !unowned.is_empty() {
                let since = *unowned_since.get_or_insert_with(Instant::now);
                let may = !self.rejoin_after.is_zero()
                    && sample
                        .as_ref()
                        .is_ok_and(|s| s.assignments_known() || s.only_riffle_members());
                let due = since.elapsed() >= self.rejoin_after + jitter;
                let cooled = last_rejoin.is_none_or(|t| t.elapsed() >= REJOIN_COOLDOWN);
                if may && due && cooled {
                    let for_s = since.elapsed().as_secs();
                    if remedies.is_multiple_of(2) {
                        tracing::warn!(group = %self.config.group_id, ?unowned, "partitions owned by no member for {for_s} s: rejoining the group");
                        self.feed.request_rejoin();
                    } else {
                        tracing::warn!(group = %self.config.group_id, ?unowned, "partitions still owned by no member after a rejoin ({for_s} s): a short-lived member joins and leaves");
                        self.nudge().await;
                    }
                    remedies += 1;
                    last_rejoin = Some(Instant::now());
                }
            } else if sample.is_ok() {
                unowned_since = None;
                remedies = 0;
            }
            self.watch.set(Sampled {
                sample,
                unowned,
                unowned_since,
            });
        }
    }

    /// A short-lived member joins the group and leaves ([`group::nudge`]), off the
    /// runtime's threads.
    async fn nudge(&self) {
        let config = self.config.clone();
        let done = tokio::task::spawn_blocking(move || group::nudge(&config, NUDGE_WITHIN)).await;
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "the nudging member could not join the group");
        }
        self.feed.count_nudge();
    }

    /// One sample of the group, off the runtime's threads (the client blocks); the probe
    /// comes back for the next one.
    async fn sample(
        &self,
        probe: Option<GroupProbe>,
    ) -> (Option<GroupProbe>, Result<GroupSample, String>) {
        let config = self.config.clone();
        let done = tokio::task::spawn_blocking(move || {
            let probe = match probe {
                Some(p) => p,
                None => match GroupProbe::connect(&config) {
                    Ok(p) => p,
                    Err(e) => return (None, Err(e.to_string())),
                },
            };
            let sample = probe.sample(SAMPLE_TIMEOUT).map_err(|e| e.to_string());
            (Some(probe), sample)
        })
        .await;
        done.unwrap_or_else(|e| (None, Err(format!("the group sampler failed: {e}"))))
    }

    /// The partitions nobody owns: by the broker's assignments when it reports them, else
    /// those no live worker has marked lately (a store that cannot be read tells nothing).
    async fn unowned(&self, sample: &GroupSample) -> Vec<i32> {
        if sample.assignments_known() {
            return sample.unowned();
        }
        let now = Timestamp::now();
        let Ok(w) = watermark::read_source(&self.store, &self.source, now).await else {
            return Vec::new();
        };
        let Some(marks) = w.partitions.filter(|m| m.topic == sample.topic) else {
            return Vec::new();
        };
        sample
            .partitions
            .iter()
            .map(|p| p.partition)
            .filter(|&p| u32::try_from(p).is_ok_and(|p| marks.live_owner(p, now).is_none()))
            .collect()
    }
}
