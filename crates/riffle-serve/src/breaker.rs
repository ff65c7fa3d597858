//! The circuit breaker in front of the online store.
//!
//! Closed → open when `failure_threshold` failures fall within the sliding `window`; open →
//! half-open after `reset_timeout`; in half-open one trial call at a time goes through,
//! `success_threshold` successes close it and any failure reopens it. Only failures that
//! say the store is unhealthy ([`StoreError::counts_against_store`]) are counted; the
//! caller decides that and reports [`Outcome`].
//!
//! Hand-written rather than taken from a crate: the state machine is ~100 lines, the
//! crates on offer either count failures by call count instead of in a time window, read
//! `std::time::Instant` (so tests could not pause time), or wrap the call as a `Service`
//! when we need the decision before building the batched store call. Time comes from
//! `tokio::time::Instant`, so the unit tests below run under a paused clock.
//!
//! Every transition is logged and handed to an observer (which counts it in metrics).
//!
//! [`StoreError::counts_against_store`]: riffle_store::StoreError::counts_against_store

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use riffle_registry::BreakerSettings;
use tokio::time::Instant;

/// The breaker's state, as reported to `/health` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// Value of the `riffle_breaker_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// What came of a call the breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A failure that says the store is unhealthy.
    Failure,
    /// A failure that says nothing of the store's health (our own in-flight bound).
    Neutral,
}

/// Permission to call the store, returned by [`Breaker::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The single half-open trial call.
    Trial,
    Rejected,
}

enum Inner {
    Closed {
        failures: VecDeque<Instant>,
    },
    Open {
        since: Instant,
    },
    HalfOpen {
        successes: u32,
        trial_started: Option<Instant>,
    },
}

impl Inner {
    fn state(&self) -> BreakerState {
        match self {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

type Observer = Box<dyn Fn(BreakerState, BreakerState) + Send + Sync>;

pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    observer: Observer,
}

impl Breaker {
    /// A closed breaker; `observer(from, to)` is called on every transition.
    pub fn new(
        settings: BreakerSettings,
        observer: impl Fn(BreakerState, BreakerState) + Send + Sync + 'static,
    ) -> Self {
        Self {
            settings,
            inner: Mutex::new(Inner::Closed {
                failures: VecDeque::new(),
            }),
            observer: Box::new(observer),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state machine half-updated in
        // a way that matters: recover the guard rather than poison every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.tick(&mut inner, Instant::now());
        inner.state()
    }

    /// Moves open → half-open once the reset timeout has passed.
    fn tick(&self, inner: &mut Inner, now: Instant) {
        if let Inner::Open { since } = inner {
            if now.duration_since(*since) >= self.settings.reset_timeout {
                self.transition(
                    inner,
                    Inner::HalfOpen {
                        successes: 0,
                        trial_started: None,
                    },
                );
            }
        }
    }

    fn transition(&self, inner: &mut Inner, next: Inner) {
        let from = inner.state();
        let to = next.state();
        *inner = next;
        if from != to {
            tracing::warn!(
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker transition"
            );
            (self.observer)(from, to);
        }
    }

    /// Asks whether a store call may go out now.
    pub fn admit(&self) -> Admission {
        let now = Instant::now();
        let mut inner = self.lock();
        self.tick(&mut inner, now);
        match &mut *inner {
            Inner::Closed { .. } => Admission::Allowed,
            Inner::Open { .. } => Admission::Rejected,
            Inner::HalfOpen { trial_started, .. } => {
                // A trial whose caller vanished (request dropped) must not wedge the
                // breaker: after a reset timeout another trial may go.
                let free = match trial_started {
                    None => true,
                    Some(at) => now.duration_since(*at) >= self.settings.reset_timeout,
                };
                if free {
                    *trial_started = Some(now);
                    Admission::Trial
                } else {
                    Admission::Rejected
                }
            }
        }
    }

    /// Reports what came of an admitted call.
    pub fn record(&self, admission: Admission, outcome: Outcome) {
        let now = Instant::now();
        let mut inner = self.lock();
        match (&mut *inner, outcome) {
            (_, Outcome::Neutral) => {
                if let Inner::HalfOpen { trial_started, .. } = &mut *inner {
                    if admission == Admission::Trial {
                        *trial_started = None;
                    }
                }
            }
            (Inner::Closed { failures }, Outcome::Failure) => {
                failures.push_back(now);
                let window = self.settings.window;
                while failures
                    .front()
                    .is_some_and(|&t| now.duration_since(t) > window)
                {
                    failures.pop_front();
                }
                if failures.len() >= self.settings.failure_threshold.max(1) as usize {
                    self.transition(&mut inner, Inner::Open { since: now });
                }
            }
            (Inner::Closed { .. }, Outcome::Success) => {}
            (Inner::HalfOpen { .. }, Outcome::Failure) => {
                self.transition(&mut inner, Inner::Open { since: now });
            }
            (
                Inner::HalfOpen {
                    successes,
                    trial_started,
                },
                Outcome::Success,
            ) => {
                if admission == Admission::Trial {
                    *trial_started = None;
                }
                *successes += 1;
                if *successes >= self.settings.success_threshold.max(1) {
                    self.transition(
                        &mut inner,
                        Inner::Closed {
                            failures: VecDeque::new(),
                        },
                    );
                }
            }
            // A call admitted while closed that finished after the breaker opened: the
            // breaker already knows the store is down; one late answer changes nothing.
            (Inner::Open { .. }, _) => {}
        }
    }

    /// Time the breaker has left open, for `/health` (zero unless open).
    pub fn open_for(&self) -> Duration {
        let inner = self.lock();
        match &*inner {
            Inner::Open { since } => self
                .settings
                .reset_timeout
                .saturating_sub(Instant::now().duration_since(*since)),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            reset_timeout: Duration::from_secs(5),
            success_threshold: 2,
        }
    }

    type Seen = Arc<Mutex<Vec<(BreakerState, BreakerState)>>>;

    fn breaker() -> (Breaker, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let b = Breaker::new(settings(), move |from, to| {
            log.lock().unwrap().push((from, to))
        });
        (b, seen)
    }

    fn fail(b: &Breaker) {
        let a = b.admit();
        assert_ne!(a, Admission::Rejected);
        b.record(a, Outcome::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_failures_within_the_window() {
        let (b, seen) = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admission::Rejected);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(BreakerState::Closed, BreakerState::Open)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_are_forgotten() {
        let (b, _) = breaker();
        fail(&b);
        fail(&b);
        tokio::time::advance(Duration::from_secs(11)).await;
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn neutral_outcomes_do_not_count() {
        let (b, _) = breaker();
        for _ in 0..10 {
            let a = b.admit();
            b.record(a, Outcome::Neutral);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_reset_timeout_then_closes_on_successes() {
        let (b, seen) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert_eq!(b.admit(), Admission::Rejected);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.admit();
        assert_eq!(trial, Admission::Trial);
        // Only one trial at a time.
        assert_eq!(b.admit(), Admission::Rejected);
        b.record(trial, Outcome::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.admit();
        assert_eq!(trial, Admission::Trial);
        b.record(trial, Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (BreakerState::Closed, BreakerState::Open),
                (BreakerState::Open, BreakerState::HalfOpen),
                (BreakerState::HalfOpen, BreakerState::Closed),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_open_failure_reopens() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let trial = b.admit();
        assert_eq!(trial, Admission::Trial);
        b.record(trial, Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.open_for() > Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_does_not_wedge_half_open() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Trial);
        // The caller never reports back.
        assert_eq!(b.admit(), Admission::Rejected);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(), Admission::Trial);
    }
}
