//! A per-node circuit breaker: after [`FAILURES`] consecutive failures within [`WINDOW`], a
//! node is skipped for [`COOL_DOWN`] (its entities answered as unavailable at once), then
//! one trial call decides whether it closes again or stays open.
//!
//! The time comes from Tokio, so a test can pause it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failures that open the breaker.
pub(crate) const FAILURES: u32 = 3;
/// The failures must fall within this window (older ones are forgotten).
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// How long an open breaker skips its node before one trial.
pub(crate) const COOL_DOWN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: send.
    Call,
    /// Half-open: this call is the one trial.
    Trial,
    /// Open: do not send.
    Rejected,
}

/// A change of state worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened,
    Closed,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    first_failure: Option<Instant>,
    open_until: Option<Instant>,
    /// When the running trial was admitted. A trial whose call was dropped (its caller
    /// gave up) never records; after [`COOL_DOWN`] it no longer blocks the next one.
    trial_since: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct NodeBreaker {
    state: Mutex<State>,
}

impl NodeBreaker {
    pub(crate) fn admit(&self) -> Admission {
        let now = Instant::now();
        let mut s = self.lock();
        let trial_running = s
            .trial_since
            .is_some_and(|t| now.duration_since(t) < COOL_DOWN);
        match s.open_until {
            None => Admission::Call,
            Some(until) if now < until || trial_running => Admission::Rejected,
            Some(_) => {
                s.trial_since = Some(now);
                Admission::Trial
            }
        }
    }

    /// Records the outcome of an admitted call; `None` when the state did not change.
    pub(crate) fn record(&self, admission: Admission, ok: bool) -> Option<Transition> {
        let now = Instant::now();
        let mut s = self.lock();
        if admission == Admission::Trial {
            s.trial_since = None;
        }
        if ok {
            let was_open = s.open_until.is_some();
            *s = State::default();
            return was_open.then_some(Transition::Closed);
        }
        if admission == Admission::Trial {
            s.open_until = Some(now + COOL_DOWN);
            return None;
        }
        if s.open_until.is_some() {
            // A call admitted before the breaker opened, failing late: already counted.
            return None;
        }
        match s.first_failure {
            Some(first) if now.duration_since(first) <= WINDOW => s.failures += 1,
            _ => {
                s.first_failure = Some(now);
                s.failures = 1;
            }
        }
        if s.failures >= FAILURES {
            s.open_until = Some(now + COOL_DOWN);
            return Some(Transition::Opened);
        }
        None
    }

    /// `closed`, `open` or `half_open` (cool-down over, trial due or running).
    pub(crate) fn state_name(&self) -> &'static str {
        let s = self.lock();
        match s.open_until {
            None => "closed",
            Some(until) if Instant::now() < until && s.trial_since.is_none() => "open",
            Some(_) => "half_open",
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_trials_once() {
        let b = NodeBreaker::default();
        for _ in 0..FAILURES - 1 {
            assert_eq!(b.record(b.admit(), false), None);
        }
        assert_eq!(b.record(b.admit(), false), Some(Transition::Opened));
        assert_eq!(b.admit(), Admission::Rejected);
        assert_eq!(b.state_name(), "open");
        tokio::time::advance(COOL_DOWN).await;
        assert_eq!(b.admit(), Admission::Trial);
        assert_eq!(b.admit(), Admission::Rejected, "one trial at a time");
        assert_eq!(b.record(Admission::Trial, false), None);
        assert_eq!(b.admit(), Admission::Rejected, "a failed trial re-opens");
        tokio::time::advance(COOL_DOWN).await;
        let trial = b.admit();
        assert_eq!(trial, Admission::Trial);
        assert_eq!(b.record(trial, true), Some(Transition::Closed));
        assert_eq!(b.admit(), Admission::Call);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_whose_call_was_dropped_does_not_block_the_node_forever() {
        let b = NodeBreaker::default();
        for _ in 0..FAILURES {
            b.record(b.admit(), false);
        }
        tokio::time::advance(COOL_DOWN).await;
        assert_eq!(b.admit(), Admission::Trial);
        // The trial's caller gave up: nothing is recorded.
        assert_eq!(b.admit(), Admission::Rejected);
        tokio::time::advance(COOL_DOWN).await;
        let trial = b.admit();
        assert_eq!(trial, Admission::Trial);
        assert_eq!(b.record(trial, true), Some(Transition::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_beyond_the_window_or_broken_by_success_do_not_open() {
        let b = NodeBreaker::default();
        for _ in 0..FAILURES * 3 {
            b.record(b.admit(), false);
            tokio::time::advance(WINDOW / 2 + Duration::from_millis(1)).await;
            b.record(b.admit(), false);
            tokio::time::advance(WINDOW).await;
        }
        assert_eq!(b.admit(), Admission::Call);
        for _ in 0..FAILURES * 3 {
            b.record(b.admit(), false);
            b.record(b.admit(), true);
        }
        assert_eq!(b.state_name(), "closed");
    }
}
