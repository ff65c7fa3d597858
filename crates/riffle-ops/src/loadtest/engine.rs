//! The load generator: an HTTP client with a pool sized to the concurrency and a timeout on
//! every request, and two ways of pacing it.
//!
//! - **Open loop** ([`Engine::run_open`]): request *i* has an intended send time from the
//!   [`Schedule`]; one dispatcher sleeps until it, then hands the request to its own task.
//!   Latency is measured from the **intended** time, not from when the request actually left,
//!   so when the server (or the generator) falls behind, the queueing delay is counted in
//!   every request that waited instead of silently thinning the sample — no coordinated
//!   omission. In-flight requests are capped (`max_in_flight`); a request waiting for a slot
//!   keeps its intended time. How late requests left is recorded separately as the dispatch
//!   lag, so a generator that cannot keep up is visible (tokio's timer is 1 ms, so lags up to
//!   ~1 ms are the timer, not the load).
//! - **Closed loop** ([`Engine::run_closed`]): `N` workers, each sending its next request
//!   when the previous one answered; latency from the actual send.
//!
//! Every outcome goes to the [`Stats`] of the current phase (`riffle drill` flips phases:
//! baseline, outage, recovery) and selection (which groups the request asked for).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, Instant};

use super::error::LoadtestError;
use super::plan::{IdPicker, Schedule, Selection};
use super::stats::{new_histogram, Defaults, ErrorKind, Outcome, Stats};

/// Percent-encodes one path segment (ids from a replay file can hold anything).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Makes a client: pool sized to `pool`, `timeout` on connect and on every request,
/// trusting `cacert`'s certificates for https.
pub fn client(
    pool: usize,
    timeout: Duration,
    cacert: Option<&std::path::Path>,
) -> Result<reqwest::Client, LoadtestError> {
    crate::http_client::builder(cacert)
        .map_err(LoadtestError::Client)?
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| LoadtestError::Client(e.to_string()))
}

/// What the progress line shows, per second.
struct Window {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
}

struct Book {
    /// `[phase][selection]`.
    phases: Vec<Vec<Stats>>,
    window: Window,
}

/// The generator and what it has counted so far.
pub struct Engine {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Each selection with its entity's name; requests take them in turn.
    selections: Vec<(Selection, String)>,
    batch: usize,
    ids: IdPicker,
    defaults: Defaults,
    book: Mutex<Book>,
    phase: AtomicUsize,
    stopped: AtomicBool,
    start: Instant,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: reqwest::Client,
        base: &str,
        token: Option<String>,
        selections: Vec<(Selection, String)>,
        batch: usize,
        ids: IdPicker,
        defaults: Defaults,
        phases: usize,
    ) -> Self {
        let per_phase = vec![Stats::default(); selections.len().max(1)];
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
            selections,
            batch: batch.max(1),
            ids,
            defaults,
            book: Mutex::new(Book {
                phases: vec![per_phase; phases.max(1)],
                window: Window {
                    latency: new_histogram(),
                    ok: 0,
                    errors: 0,
                },
            }),
            phase: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            start: Instant::now(),
        }
    }

    /// Requests sent from now on count in `phase`.
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Ends the running loop early: no request starts after this.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Milliseconds since the engine was made.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The counts of `phase`, one per selection.
    pub fn phase_stats(&self, phase: usize) -> Vec<Stats> {
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.phases.get(phase).cloned().unwrap_or_default()
    }

    fn record(&self, phase: usize, sel: usize, latency: Duration, lag: Duration, out: &Outcome) {
        let done_ms = self.elapsed_ms();
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = book.phases.get_mut(phase).and_then(|p| p.get_mut(sel)) {
            s.record(latency, lag, out, &self.defaults, done_ms);
        }
        let w = &mut book.window;
        let _ = w
            .latency
            .record((latency.as_micros() as u64).clamp(1, 600_000_000));
        match out {
            Outcome::Ok(_) => w.ok += 1,
            Outcome::Failed { .. } => w.errors += 1,
        }
    }

    /// Sends one request of selection `sel` for `ids` and reads the answer.
    async fn send(&self, sel: usize, ids: Vec<String>) -> Outcome {
        let (selection, entity) = &self.selections[sel];
        let mut req = if ids.len() == 1 {
            let mut url = format!(
                "{}/v1/features/{}/{}",
                self.base,
                encode_segment(entity),
                encode_segment(&ids[0])
            );
            let mut sep = '?';
            if !selection.groups.is_empty() {
                url.push_str(&format!("{sep}groups={}", selection.groups.join(",")));
                sep = '&';
            }
            if !selection.features.is_empty() {
                url.push_str(&format!("{sep}features={}", selection.features.join(",")));
            }
            self.client.get(url)
        } else {
            let mut body = json!({"entity": entity, "ids": ids});
            if !selection.groups.is_empty() {
                body["groups"] = json!(selection.groups);
            }
            if !selection.features.is_empty() {
                body["features"] = json!(selection.features);
            }
            self.client
                .post(format!("{}/v1/features", self.base))
                .json(&body)
        };
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(classify(&e), None),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return failed(classify(&e), None),
        };
        if status.is_success() {
            match serde_json::from_slice(&bytes) {
                Ok(r) => Outcome::Ok(r),
                Err(_) => failed(ErrorKind::BadBody, None),
            }
        } else {
            let kind = if status.is_client_error() {
                ErrorKind::Http4xx
            } else {
                ErrorKind::Http5xx
            };
            failed(kind, serde_json::from_slice(&bytes).ok())
        }
    }

    fn next_ids(&self, rng: &mut SmallRng) -> Vec<String> {
        (0..self.batch).map(|_| self.ids.pick(rng)).collect()
    }

    /// Open loop for `duration` at `schedule`, at most `max_in_flight` requests at once;
    /// then waits (at most `grace`) for the requests still in flight. The schedule is kept
    /// by a thread of its own (a current-thread runtime), so a busy main runtime answering
    /// responses does not delay the sends; requests run on the main runtime.
    pub async fn run_open(
        self: &Arc<Self>,
        schedule: &Schedule,
        duration: Duration,
        max_in_flight: usize,
        grace: Duration,
    ) {
        let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let main = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let (me, schedule, slots, main) =
                (self.clone(), schedule.clone(), slots.clone(), main.clone());
            std::thread::Builder::new()
                .name("loadtest-dispatch".into())
                .spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                    {
                        rt.block_on(me.dispatch(&schedule, duration, slots, main));
                    }
                    let _ = done_tx.send(());
                })
        };
        match thread {
            Ok(_) => {
                let _ = done_rx.await;
            }
            // No thread to spare: keep the schedule on this runtime.
            Err(_) => self.dispatch(schedule, duration, slots.clone(), main).await,
        }
        let all = u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    }

    /// Sends request *i* at its intended time, each as a task on `main`.
    async fn dispatch(
        self: &Arc<Self>,
        schedule: &Schedule,
        duration: Duration,
        slots: Arc<Semaphore>,
        main: tokio::runtime::Handle,
    ) {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let begin = Instant::now();
        let end = duration.as_secs_f64();
        let mut i = 0usize;
        loop {
            let t = schedule.time_of(i as u64);
            if t >= end || self.stopped() {
                break;
            }
            let at = begin + Duration::from_secs_f64(t);
            if at > Instant::now() {
                sleep_until(at).await;
            }
            let sel = i % self.selections.len().max(1);
            let ids = self.next_ids(&mut rng);
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let phase = self.phase.load(Ordering::SeqCst);
            let me = self.clone();
            main.spawn(async move {
                let sent = Instant::now();
                let out = me.send(sel, ids).await;
                let latency = Instant::now().saturating_duration_since(at);
                me.record(
                    phase,
                    sel,
                    latency,
                    sent.saturating_duration_since(at),
                    &out,
                );
                drop(permit);
            });
            i += 1;
        }
    }

    /// Closed loop: `concurrency` workers until `duration` has passed.
    pub async fn run_closed(self: &Arc<Self>, concurrency: usize, duration: Duration) {
        let end = Instant::now() + duration;
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..concurrency.max(1) {
            let me = self.clone();
            workers.spawn(async move {
                let mut rng = SmallRng::from_rng(&mut rand::rng());
                let mut i = w;
                while Instant::now() < end && !me.stopped() {
                    let sel = i % me.selections.len().max(1);
                    let ids = me.next_ids(&mut rng);
                    let phase = me.phase.load(Ordering::SeqCst);
                    let sent = Instant::now();
                    let out = me.send(sel, ids).await;
                    me.record(phase, sel, sent.elapsed(), Duration::ZERO, &out);
                    i += 1;
                }
            });
        }
        while workers.join_next().await.is_some() {}
    }

    /// Prints one progress line to stderr every second until `stop` is dropped.
    pub fn spawn_progress(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut ok_total, mut err_total) = (0u64, 0u64);
            loop {
                tick.tick().await;
                let (ok, errors, p50, p99) = {
                    let mut book = me.book.lock().unwrap_or_else(|p| p.into_inner());
                    let w = &mut book.window;
                    let out = (
                        w.ok,
                        w.errors,
                        w.latency.value_at_quantile(0.5),
                        w.latency.value_at_quantile(0.99),
                    );
                    w.latency.reset();
                    w.ok = 0;
                    w.errors = 0;
                    out
                };
                ok_total += ok;
                err_total += errors;
                eprintln!(
                    "[{:>4}s] {:>7} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {:>5}  (total ok {ok_total}, errors {err_total})",
                    me.start.elapsed().as_secs(),
                    ok + errors,
                    p50 as f64 / 1000.0,
                    p99 as f64 / 1000.0,
                    errors,
                );
            }
        })
    }
}

fn failed(kind: ErrorKind, body: Option<super::stats::ErrorBody>) -> Outcome {
    Outcome::Failed { kind, body }
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Transport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("u42"), "u42");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
