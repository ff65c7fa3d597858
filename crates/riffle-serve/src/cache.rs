//! The hot cache: decoded rows by (group, entity id), in process, bounded and expiring.
//!
//! Built on `moka::sync::Cache`: bounded by `serve.cache.max_entries`; each entry lives for
//! its group's `cache_ttl` (or the serve-wide `cache.ttl`), and a "the store has no row"
//! answer lives for `cache.negative_ttl` (negative caching: cold-start entities do not
//! hammer the store). Store *failures* are never cached: the next request asks again
//! (through the breaker). Freshness is evaluated on every serve from the row's event time,
//! so a cached row ages correctly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;
use riffle_registry::{GroupId, Registry};
use riffle_store::GroupRow;

/// Key: (group, entity id). The id is shared by all groups of one entity in a request.
pub type CacheKey = (GroupId, Arc<str>);

/// What the cache remembers of the store's answer.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The row, and the replication lag (ms) of the replica it was read from (0: the
    /// primary), which freshness adds to its age on every serve.
    Found(Arc<GroupRow>, u64),
    Missing,
}

struct TtlPolicy {
    /// TTL of found rows, by group.
    ttl: Vec<Duration>,
    negative_ttl: Duration,
}

impl Expiry<CacheKey, Cached> for TtlPolicy {
    fn expire_after_create(&self, key: &CacheKey, value: &Cached, _: Instant) -> Option<Duration> {
        Some(match value {
            Cached::Found(..) => self.ttl.get(key.0).copied().unwrap_or(self.negative_ttl),
            Cached::Missing => self.negative_ttl,
        })
    }

    fn expire_after_update(
        &self,
        key: &CacheKey,
        value: &Cached,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, at)
    }
}

/// The hot cache (or a disabled one that never holds anything).
pub struct HotCache {
    inner: Option<Cache<CacheKey, Cached>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HotCache {
    pub fn new(registry: &Registry, enabled: bool) -> Self {
        let settings = &registry.serve.cache;
        let inner = (enabled && settings.enabled && settings.max_entries > 0).then(|| {
            let policy = TtlPolicy {
                ttl: registry
                    .groups
                    .iter()
                    .map(|g| g.cache_ttl.unwrap_or(settings.ttl))
                    .collect(),
                negative_ttl: settings.negative_ttl,
            };
            Cache::builder()
                .max_capacity(settings.max_entries)
                .expire_after(policy)
                .build()
        });
        Self {
            inner,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        let cache = self.inner.as_ref()?;
        let found = cache.get(key);
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
            cache.insert(key, value);
        }
    }

    pub fn invalidate(&self, key: &CacheKey) {
        if let Some(cache) = &self.inner {
            cache.invalidate(key);
        }
    }

    pub fn entries(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
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
        Cached::Found(
            Arc::new(GroupRow {
                event_ts: Timestamp::now(),
                computed_at: Timestamp::now(),
                values: vec![FeatureValue::Int64(1)],
            }),
            0,
        )
    }

    #[test]
    fn per_group_ttl_and_negative_ttl_expire_entries() {
        let cache = HotCache::new(&registry("80ms"), true);
        let found: CacheKey = (0, Arc::from("u1"));
        let missing: CacheKey = (0, Arc::from("u2"));
        cache.insert(found.clone(), row());
        cache.insert(missing.clone(), Cached::Missing);
        assert!(matches!(cache.get(&found), Some(Cached::Found(..))));
        assert!(matches!(cache.get(&missing), Some(Cached::Missing)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            cache.get(&missing).is_none(),
            "negative entry outlived negative_ttl"
        );
        assert!(cache.get(&found).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            cache.get(&found).is_none(),
            "row outlived the group's cache_ttl"
        );
        assert_eq!(cache.counts(), (3, 2));
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let cache = HotCache::new(&registry("1s"), false);
        cache.insert((0, Arc::from("u1")), row());
        assert!(cache.get(&(0, Arc::from("u1"))).is_none());
        assert!(!cache.enabled());
    }
}
