//! The hot cache: decoded rows by (group, entity id), in process, bounded and expiring.
//!
//! Built on `quick_cache::sync::Cache` (sharded, S3-FIFO eviction): bounded by
//! `serve.cache.max_entries`; each entry lives for its group's `cache_ttl` (or the
//! serve-wide `cache.ttl`), and a "the store has no row" answer lives for
//! `cache.negative_ttl` (negative caching: cold-start entities do not hammer the store).
//! Expiry is checked on read against the deadline stored with the entry, so an expired
//! entry is never served. Store *failures* are never cached: the next request asks again
//! (through the breaker). Freshness is evaluated on every serve from the row's event time,
//! so a cached row ages correctly: from the watermark it was read at, or the present one
//! if that is older.
//!
//! Why not `moka`: profiling the hot-cache path (perf, `wrk -c32`, four groups a request)
//! put `moka`'s reads at ~15% of the server's user time, a third of it the read-log
//! housekeeping that it runs inline on reads to keep its access order exact. A sharded
//! table with a per-entry deadline does the same job for a fraction of that.
//!
//! **Clock.** Deadlines are `tokio::time::Instant`s (control time comes from Tokio, as in
//! `STYLE.md`), so the tests pause the clock and advance it instead of sleeping. It costs
//! the read path nothing: without Tokio's `test-util` feature (the `riffle` binary's build)
//! `tokio::time::Instant::now()` *is* `std::time::Instant::now()` in a newtype; with it, a
//! clock never paused adds one atomic load. Measured with tokio 1.54 in release (a `now()`
//! compared with a deadline, best of 7 runs of 20 M calls, on a 2-core VM): std 42.6–46.9
//! ns, Tokio 42.4–45.6 ns a call, with and without `test-util`, inside and outside a
//! runtime: the same within noise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::Cache;
use riffle_registry::{GroupId, Registry};
use riffle_store::GroupRow;
use tokio::time::Instant;

use crate::watermarks::Basis;

/// Key: (group, entity id). The id is shared by all groups of one entity in a request.
pub type CacheKey = (GroupId, Arc<str>);

/// What the cache remembers of the store's answer.
#[derive(Debug, Clone)]
pub enum Cached {
    /// A row as read from the store.
    Found {
        row: Arc<GroupRow>,
        /// The replication lag (ms) of the replica it was read from (0: the primary),
        /// which freshness adds to its age on every serve.
        lag_ms: u64,
        /// What its freshness was measured from when it was read: a copy kept in the cache
        /// is only as new as the pipeline was then, however far the watermark has moved.
        read_at: Basis,
    },
    /// The store had no row; `read_at` as for a row (a pipeline behind may not have
    /// written it yet).
    Missing { read_at: Basis },
}

/// A cached answer and the moment it stops being served.
#[derive(Debug, Clone)]
struct Entry {
    cached: Cached,
    expires_at: Instant,
}

/// The hot cache (or a disabled one that never holds anything).
pub struct HotCache {
    inner: Option<Cache<CacheKey, Entry>>,
    /// TTL of found rows, by group.
    ttl: Vec<Duration>,
    negative_ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HotCache {
    pub fn new(registry: &Registry, enabled: bool) -> Self {
        let settings = &registry.serve.cache;
        let inner = (enabled && settings.enabled && settings.max_entries > 0)
            .then(|| Cache::new(usize::try_from(settings.max_entries).unwrap_or(usize::MAX)));
        Self {
            inner,
            ttl: registry
                .groups
                .iter()
                .map(|g| g.cache_ttl.unwrap_or(settings.ttl))
                .collect(),
            negative_ttl: settings.negative_ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        let cache = self.inner.as_ref()?;
        let found = match cache.get(key) {
            Some(entry) if entry.expires_at > Instant::now() => Some(entry.cached),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: CacheKey, value: Cached) {
        if let Some(cache) = &self.inner {
            let ttl = match value {
                Cached::Found { .. } => self.ttl.get(key.0).copied().unwrap_or(self.negative_ttl),
                Cached::Missing { .. } => self.negative_ttl,
            };
            let expires_at = Instant::now() + ttl;
            cache.insert(
                key,
                Entry {
                    cached: value,
                    expires_at,
                },
            );
        }
    }

    pub fn invalidate(&self, key: &CacheKey) {
        if let Some(cache) = &self.inner {
            cache.remove(key);
        }
    }

    pub fn entries(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.len() as u64)
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_core::{FeatureValue, Timestamp};

    fn registry(cache_ttl: &str) -> Registry {
        Registry::from_toml(&format!(
            r#"
[serve.cache]
ttl = "10s"
negative_ttl = "50ms"
max_entries = 100
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
staleness_limit = "10m"
cache_ttl = "{cache_ttl}"
[[feature_groups.features]]
name = "f"
type = "int64"
default = 0
"#
        ))
        .unwrap()
    }

    fn row() -> Cached {
        Cached::Found {
            row: Arc::new(GroupRow {
                event_ts: Timestamp::now(),
                computed_at: Timestamp::now(),
                values: vec![FeatureValue::Int64(1)],
                partition: None,
            }),
            lag_ms: 0,
            read_at: Basis::EventTime,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_group_ttl_and_negative_ttl_expire_entries() {
        let cache = HotCache::new(&registry("80ms"), true);
        let found: CacheKey = (0, Arc::from("u1"));
        let missing: CacheKey = (0, Arc::from("u2"));
        cache.insert(found.clone(), row());
        cache.insert(
            missing.clone(),
            Cached::Missing {
                read_at: Basis::EventTime,
            },
        );
        assert!(matches!(cache.get(&found), Some(Cached::Found { .. })));
        assert!(matches!(cache.get(&missing), Some(Cached::Missing { .. })));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(
            cache.get(&missing).is_none(),
            "negative entry outlived negative_ttl"
        );
        assert!(cache.get(&found).is_some());
        tokio::time::advance(Duration::from_millis(40)).await;
        assert!(
            cache.get(&found).is_none(),
            "row outlived the group's cache_ttl"
        );
        assert_eq!(cache.counts(), (3, 2));
    }

    #[test]
    fn the_cache_stays_within_max_entries() {
        let cache = HotCache::new(&registry("1h"), true);
        for i in 0..1000 {
            cache.insert((0, Arc::from(format!("u{i}"))), row());
        }
        // max_entries = 100 in the test registry.
        assert!(cache.entries() <= 100, "{} entries", cache.entries());
        assert!(cache.entries() > 0);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let cache = HotCache::new(&registry("1s"), false);
        cache.insert((0, Arc::from("u1")), row());
        assert!(cache.get(&(0, Arc::from("u1"))).is_none());
        assert!(!cache.enabled());
    }
}
