//! Read replicas of a Redis primary: where serving reads go, how far behind each replica is,
//! and the fallback to the primary when a replica fails.
//!
//! Writes, metadata and the pipelines' batch reads always go to the primary; only
//! [`OnlineStore::read_routed`](crate::OnlineStore::read_routed) (the serving read) goes to
//! a replica, and only when `store.read_from = "replica"`.
//!
//! - **Monitor.** One background task per store ([`MONITOR_EVERY`]; it ends when the store
//!   is dropped) probes every replica in one pipeline, `PING` + `INFO replication` + `HGET`
//!   of the heartbeat, and then writes the heartbeat on the primary: field `<host>:<pid>` of
//!   `<project>:~meta:heartbeat` ([`HEARTBEAT`]) = now in ms since epoch (decimal ASCII),
//!   with a TTL ([`HEARTBEAT_TTL`]). The probe's round trip is the replica's distance
//!   (smoothed); `master_link_status` says whether it still follows the primary.
//! - **Lag.** A replica's lag is how far its copy of our heartbeat is behind the last one we
//!   wrote before the probe: `max(0, written − held)`. Probing *before* writing leaves a
//!   heartbeat one interval to replicate, so a replica that keeps up reads 0, and one whose
//!   stream stopped at time H reads ≈ now − H − one interval. Each process compares only its
//!   own field, so clocks of different hosts never mix. Lag is unknown (the replica is
//!   unhealthy) when the link is down, the replica holds none of our heartbeats, or none
//!   could be written for longer than the lag bound.
//! - **Choice.** A replica is healthy when it answered the last probe, its link is up and
//!   its lag is within `store.replica_max_lag`. Reads go to the healthy replica with the
//!   smallest round trip, else to the primary.
//! - **Failover.** A read that fails or takes more than half the per-call budget on a
//!   replica is retried once on the primary within what is left of the same budget (the
//!   store's timeout still bounds the whole call, so no budget left means the caller's
//!   usual "unavailable"), and the replica is marked unhealthy until a probe that *started
//!   after* the failure finds it healthy again.
//! - **Freshness.** A value read from a replica lagging L ms is L ms older than it looks:
//!   [`ReadAnswer::replica_lag_ms`] says so, and `riffle serve` adds it to the value's age.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use riffle_core::Timestamp;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::key_ops::{KeyRead, KeyWrite};
use crate::limits::StoreLimits;
use crate::meta::meta_key;
use crate::redis_backend::RedisStore;
use crate::rows::RowRead;
use crate::url::StoreUrl;

/// How often the monitor probes the replicas and writes the heartbeat.
pub const MONITOR_EVERY: Duration = Duration::from_millis(250);

/// The meta name of the heartbeat hash: `<project>:~meta:heartbeat`.
pub const HEARTBEAT: &str = "heartbeat";

/// TTL of the heartbeat key, refreshed by every write (no key without a TTL).
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(60);

/// Marks an atomic that holds no measurement.
const UNKNOWN: u64 = u64::MAX;

/// Which node answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadNode {
    Primary,
    /// The replica at this index of `store.replicas`.
    Replica(usize),
}

/// Which node answered a read, how far behind it was, and which replica failed it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub node: ReadNode,
    pub replica_lag_ms: Option<u64>,
    pub failed_over_from: Option<usize>,
}

impl Route {
    pub(crate) const PRIMARY: Route = Route {
        node: ReadNode::Primary,
        replica_lag_ms: None,
        failed_over_from: None,
    };
}

/// A serving read's answer: the rows, which node gave them and how far behind it was.
#[derive(Debug, Clone)]
pub struct ReadAnswer {
    /// One entry per `EntityRead`, holding one [`RowRead`] per requested group.
    pub rows: Vec<Vec<RowRead>>,
    pub node: ReadNode,
    /// The answering replica's lag as last measured (`None` from the primary): its values
    /// are this much older than they look.
    pub replica_lag_ms: Option<u64>,
    /// The replica that failed this read before the primary answered it.
    pub failed_over_from: Option<usize>,
}

/// One replica as last measured, for `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaStatus {
    /// The URL without its password.
    pub url: String,
    pub healthy: bool,
    /// It answered the last probe.
    pub reachable: bool,
    /// `INFO replication` said `master_link_status:up`.
    pub link_up: bool,
    pub lag_ms: Option<u64>,
    /// Smoothed probe round trip.
    pub rtt_ms: Option<f64>,
    /// Why it is not healthy, when it is not.
    pub error: Option<String>,
}

/// A replica's connection and its last measurements.
struct Replica {
    url: String,
    conn: RedisStore,
    healthy: AtomicBool,
    reachable: AtomicBool,
    link_up: AtomicBool,
    lag_ms: AtomicU64,
    /// Smoothed round trip in µs.
    rtt_us: AtomicU64,
    /// When a read last failed on it (ms since epoch, 0: never).
    failed_at_ms: AtomicI64,
    error: Mutex<Option<String>>,
}

impl Replica {
    fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn lag(&self) -> Option<u64> {
        let lag = self.lag_ms.load(Ordering::Relaxed);
        (lag != UNKNOWN).then_some(lag)
    }
}

/// The replicas of one store and the heartbeat written on its primary.
pub(crate) struct ReplicaSet {
    replicas: Vec<Replica>,
    primary: RedisStore,
    /// Route serving reads to replicas (`read_from = "replica"`); else they are only watched.
    route: bool,
    heartbeat_key: String,
    member: String,
    max_lag_ms: u64,
    probe_timeout: Duration,
    /// Our last heartbeat the primary acknowledged (ms since epoch, 0: none yet).
    written_ms: AtomicI64,
}

/// Checks one replica URL: a standalone Redis (`redis://` or `rediss://`) the `redis` crate
/// can connect to. The error says what is wrong, without the password.
pub fn check_replica_url(url: &str) -> Result<(), String> {
    match StoreUrl::parse(url) {
        Ok(StoreUrl::Redis(u)) => redis::Client::open(u.as_str())
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", StoreUrl::Redis(u.clone()).redacted())),
        _ => Err(format!(
            "{:?} is not a Redis URL: use redis://host:port",
            StoreUrl::Redis(url.to_owned()).redacted()
        )),
    }
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// `<host>:<pid>` of this process: the heartbeat field it writes and reads.
fn member() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{host}:{}", std::process::id())
}

impl ReplicaSet {
    /// Prepares connections to `urls` (nothing is sent until the monitor's first probe).
    pub(crate) fn new(
        primary: &RedisStore,
        urls: &[String],
        route: bool,
        project: &str,
        limits: &StoreLimits,
        max_lag: Duration,
    ) -> Result<Self, StoreError> {
        let mut replicas = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            check_replica_url(url)
                .map_err(|e| StoreError::Config(format!("store.replicas[{i}]: {e}")))?;
            replicas.push(Replica {
                url: StoreUrl::Redis(url.clone()).redacted(),
                conn: RedisStore::connect(url, limits)?,
                healthy: AtomicBool::new(false),
                reachable: AtomicBool::new(false),
                link_up: AtomicBool::new(false),
                lag_ms: AtomicU64::new(UNKNOWN),
                rtt_us: AtomicU64::new(UNKNOWN),
                failed_at_ms: AtomicI64::new(0),
                error: Mutex::new(Some("not probed yet".into())),
            });
        }
        Ok(Self {
            replicas,
            primary: primary.clone(),
            route,
            heartbeat_key: meta_key(project, HEARTBEAT),
            member: member(),
            max_lag_ms: max_lag.as_millis() as u64,
            // A probe waits as long as a connection may take: a hung replica holds its
            // probe (not the others', which run beside it) this long at most.
            probe_timeout: limits.connect_timeout.max(limits.timeout),
            written_ms: AtomicI64::new(0),
        })
    }

    /// Where a serving read goes now: the healthy replica with the smallest round trip.
    pub(crate) fn target(&self) -> ReadNode {
        self.choose()
            .map_or(ReadNode::Primary, |(i, _)| ReadNode::Replica(i))
    }

    /// The replica to read from and its lag, taken together: the lag reported with a read
    /// is the one the choice was made on, so it is never above the bound.
    fn choose(&self) -> Option<(usize, u64)> {
        if !self.route {
            return None;
        }
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.healthy.load(Ordering::Relaxed))
            .filter_map(|(i, r)| {
                let lag = r.lag().filter(|&lag| lag <= self.max_lag_ms)?;
                Some((i, lag, r.rtt_us.load(Ordering::Relaxed)))
            })
            .min_by_key(|&(_, _, rtt)| rtt)
            .map(|(i, lag, _)| (i, lag))
    }

    pub(crate) fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|r| {
                let rtt = r.rtt_us.load(Ordering::Relaxed);
                ReplicaStatus {
                    url: r.url.clone(),
                    healthy: r.healthy.load(Ordering::Relaxed),
                    reachable: r.reachable.load(Ordering::Relaxed),
                    link_up: r.link_up.load(Ordering::Relaxed),
                    lag_ms: r.lag(),
                    rtt_ms: (rtt != UNKNOWN).then(|| rtt as f64 / 1000.0),
                    error: r.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                }
            })
            .collect()
    }

    /// Reads `keys` from the chosen replica, or from the primary (see the module docs).
    /// `budget` is the caller's per-call timeout, which also bounds this whole call.
    pub(crate) async fn read(
        &self,
        keys: &[KeyRead],
        budget: Duration,
    ) -> Result<(Vec<Vec<Option<Vec<u8>>>>, Route), StoreError> {
        let Some((i, lag)) = self.choose() else {
            return Ok((self.primary.read(keys).await?, Route::PRIMARY));
        };
        let replica = &self.replicas[i];
        // Half the budget: a hung replica must leave the primary time to answer.
        let error = match tokio::time::timeout(budget / 2, replica.conn.read(keys)).await {
            Ok(Ok(raw)) => {
                let route = Route {
                    node: ReadNode::Replica(i),
                    replica_lag_ms: Some(lag),
                    failed_over_from: None,
                };
                return Ok((raw, route));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("read took more than {} ms", (budget / 2).as_millis()),
        };
        replica.failed_at_ms.store(now_ms(), Ordering::Relaxed);
        replica.healthy.store(false, Ordering::Relaxed);
        replica.set_error(Some(format!("read failed: {error}")));
        tracing::warn!(replica = %replica.url, %error, "replica read failed; reading from the primary");
        let raw = self.primary.read(keys).await?;
        let route = Route {
            failed_over_from: Some(i),
            ..Route::PRIMARY
        };
        Ok((raw, route))
    }

    /// One monitor round: probe every replica (side by side), then write our heartbeat.
    async fn tick(&self) {
        let started = now_ms();
        let written = self.written_ms.load(Ordering::Relaxed);
        futures::future::join_all(
            self.replicas
                .iter()
                .map(|r| self.probe(r, started, written)),
        )
        .await;
        let now = now_ms();
        let beat = KeyWrite {
            key: self.heartbeat_key.clone(),
            fields: vec![(self.member.clone(), now.to_string().into_bytes())],
            ttl: HEARTBEAT_TTL,
        };
        match tokio::time::timeout(
            self.probe_timeout,
            self.primary.write(vec![beat], Vec::new()),
        )
        .await
        {
            Ok(Ok(())) => self.written_ms.store(now, Ordering::Relaxed),
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat write failed"),
            Err(_) => tracing::debug!("heartbeat write timed out"),
        }
    }

    /// Probes one replica: reachability and round trip, link status, lag.
    async fn probe(&self, r: &Replica, started: i64, written: i64) {
        let mut pipe = redis::pipe();
        pipe.cmd("PING")
            .cmd("INFO")
            .arg("replication")
            .cmd("HGET")
            .arg(&self.heartbeat_key)
            .arg(&self.member);
        let mut conn = r.conn.connection();
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            self.probe_timeout,
            pipe.query_async::<(String, String, Option<String>)>(&mut conn),
        )
        .await;
        let rtt = sent.elapsed();
        let (info, held) = match answer {
            Ok(Ok((_, info, held))) => (info, held),
            Ok(Err(e)) => return self.unreachable(r, e.to_string()),
            Err(_) => {
                return self.unreachable(
                    r,
                    format!("no answer within {} ms", self.probe_timeout.as_millis()),
                )
            }
        };
        r.reachable.store(true, Ordering::Relaxed);
        let rtt_us = rtt.as_micros() as u64;
        let old = r.rtt_us.load(Ordering::Relaxed);
        let smoothed = if old == UNKNOWN {
            rtt_us
        } else {
            (old * 4 + rtt_us) / 5
        };
        r.rtt_us.store(smoothed, Ordering::Relaxed);
        let link_up = info.lines().any(|l| l.trim() == "master_link_status:up");
        r.link_up.store(link_up, Ordering::Relaxed);
        let held = held.and_then(|h| h.parse::<i64>().ok());
        let (lag, why) = match held {
            _ if !link_up => (None, Some("replication link is down".to_owned())),
            None => (None, Some("holds no heartbeat of ours yet".to_owned())),
            Some(_) if written == 0 || started - written > self.max_lag_ms as i64 => (
                None,
                Some("no recent heartbeat written on the primary".to_owned()),
            ),
            Some(h) => (Some((written - h).max(0) as u64), None),
        };
        r.lag_ms.store(lag.unwrap_or(UNKNOWN), Ordering::Relaxed);
        let why = why.or_else(|| match lag {
            Some(l) if l > self.max_lag_ms => Some(format!(
                "lag {l} ms is above store.replica_max_lag ({} ms)",
                self.max_lag_ms
            )),
            _ => None,
        });
        // A read that failed after this probe started wins: the replica stays out until a
        // later probe vouches for it.
        let failed_since = r.failed_at_ms.load(Ordering::Relaxed) >= started;
        if failed_since {
            return;
        }
        let healthy = why.is_none();
        if healthy != r.healthy.swap(healthy, Ordering::Relaxed) {
            tracing::info!(replica = %r.url, healthy, lag_ms = ?lag, reason = ?why, "replica health changed");
        }
        r.set_error(why);
    }

    fn unreachable(&self, r: &Replica, error: String) {
        r.reachable.store(false, Ordering::Relaxed);
        r.link_up.store(false, Ordering::Relaxed);
        r.lag_ms.store(UNKNOWN, Ordering::Relaxed);
        if r.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %r.url, %error, "replica unreachable");
        }
        r.set_error(Some(format!("unreachable: {error}")));
    }
}

/// The replicas of a store and their monitor task, which ends when this is dropped.
pub(crate) struct Replicas {
    pub(crate) set: Arc<ReplicaSet>,
    task: Option<tokio::task::AbortHandle>,
}

impl Replicas {
    /// Starts the monitor on the current Tokio runtime (none outside one: nothing is then
    /// measured and every read goes to the primary).
    pub(crate) fn start(set: ReplicaSet) -> Self {
        let set = Arc::new(set);
        let weak: Weak<ReplicaSet> = Arc::downgrade(&set);
        let task = tokio::runtime::Handle::try_current().ok().map(|handle| {
            handle
                .spawn(async move {
                    let mut tick = tokio::time::interval(MONITOR_EVERY);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let Some(set) = weak.upgrade() else { return };
                        set.tick().await;
                    }
                })
                .abort_handle()
        });
        Self { set, task }
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_urls_are_standalone_redis_and_errors_hide_passwords() {
        assert_eq!(check_replica_url("redis://10.0.0.2:6379"), Ok(()));
        assert_eq!(check_replica_url("rediss://app:pw@r1:6380/0"), Ok(()));
        for bad in [
            "http://r1:6379",
            "embedded:./d",
            "redis-cluster://a:1,b:2",
            "r1:6379",
        ] {
            assert!(check_replica_url(bad).is_err(), "{bad}");
        }
        let err = check_replica_url("redis://app:s3cret@r1:notaport").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
