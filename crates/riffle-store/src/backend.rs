//! The dispatch from [`OnlineStore`](crate::OnlineStore) to its backends: which backend a
//! store URL opens, and each backend-neutral call ([`crate::key_ops`]) sent to the backend
//! in use with the arguments that backend takes.
//!
//! An enum rather than a `dyn` trait (`STYLE.md`): async functions in traits are not
//! object-safe without boxing every call's future, and the set of backends is ours and
//! small. Each call is one `match` and a direct, inlinable call: no allocation and no
//! dynamic dispatch on the serving path.

use std::time::Duration;

use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};
use crate::limits::StoreLimits;
use crate::redis_backend::RedisStore;
use crate::redis_cluster::{NodeStatus, RedisClusterStore};
use crate::url::StoreUrl;

/// The fields of each key of a read, in order (`None`: the field or the key is absent).
pub(crate) type KeyFields = Vec<Option<Vec<u8>>>;

/// The backend a store runs on.
pub(crate) enum Backend {
    Embedded(EmbeddedStore),
    Redis(RedisStore),
    RedisCluster(RedisClusterStore),
}

impl Backend {
    /// Opens the backend `url` names. A Redis backend connects lazily.
    pub(crate) fn open(url: &StoreUrl, limits: &StoreLimits) -> Result<Self, StoreError> {
        Ok(match url {
            StoreUrl::Embedded(dir) => Backend::Embedded(EmbeddedStore::open(dir)?),
            StoreUrl::Redis(u) => Backend::Redis(RedisStore::connect(u, limits)?),
            StoreUrl::RedisCluster(u) => {
                Backend::RedisCluster(RedisClusterStore::connect(u, limits)?)
            }
        })
    }

    /// What kind of store this is, for `/health` and logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(_) => "redis",
            Backend::RedisCluster(_) => "redis-cluster",
        }
    }

    /// Reads `keys` for serving: one answer per key, `None` for a key whose node could not
    /// answer (Redis Cluster; a single-node backend answers every key or fails as a whole).
    pub(crate) async fn read(
        &self,
        keys: &[KeyRead],
        timeout: Duration,
    ) -> Result<Vec<Option<KeyFields>>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read(keys).map(all_answered),
            Backend::Redis(s) => s.read(keys).await.map(all_answered),
            Backend::RedisCluster(s) => s.read(keys, timeout).await,
        }
    }

    /// Reads `keys` for a pipeline's batch: every key answered, or an error (a cluster
    /// node that did not answer fails the whole call).
    pub(crate) async fn read_every(
        &self,
        keys: &[KeyRead],
        timeout: Duration,
    ) -> Result<Vec<KeyFields>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read(keys),
            Backend::Redis(s) => s.read(keys).await,
            Backend::RedisCluster(s) => s
                .read(keys, timeout)
                .await?
                .into_iter()
                .map(|v| {
                    v.ok_or_else(|| StoreError::Unavailable("a cluster node did not answer".into()))
                })
                .collect(),
        }
    }

    /// Writes `keys` in order, then removes `deletes`, in one call.
    pub(crate) async fn write(
        &self,
        keys: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(s) => s.write(keys, deletes).await,
            Backend::Redis(s) => s.write(keys, deletes).await,
            Backend::RedisCluster(s) => s.write(keys, deletes, timeout).await,
        }
    }

    /// [`Backend::write`] of `ordered` in phases: its first `phases[0]` writes, the next
    /// `phases[1]`, the rest, then `deletes`. A single-node backend keeps the order in one
    /// call; a cluster starts a phase once every node acknowledged the previous one.
    pub(crate) async fn write_phased(
        &self,
        ordered: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
        phases: [usize; 2],
        timeout: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(s) => s.write(ordered, deletes).await,
            Backend::Redis(s) => s.write(ordered, deletes).await,
            Backend::RedisCluster(s) => s.write_phased(ordered, deletes, phases, timeout).await,
        }
    }

    /// Every field of one key (empty when absent or expired), like `HGETALL`.
    pub(crate) async fn read_all(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Backend::Embedded(s) => s.read_all(key),
            Backend::Redis(s) => s.read_all(key).await,
            Backend::RedisCluster(s) => s.read_all(key, timeout).await,
        }
    }

    /// Removes some fields of one key, like `HDEL`.
    pub(crate) async fn delete_fields(
        &self,
        key: String,
        fields: &[String],
        timeout: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(s) => s.delete_fields(key, fields.to_vec()).await,
            Backend::Redis(s) => s.delete_fields(&key, fields).await,
            Backend::RedisCluster(s) => s.delete_fields(&key, fields, timeout).await,
        }
    }

    /// Checks the backend answers (the embedded store always does).
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(_) => Ok(()),
            Backend::Redis(s) => s.ping().await,
            Backend::RedisCluster(s) => s.ping(timeout).await,
        }
    }

    /// A Redis Cluster's nodes with each one's breaker state (empty for other backends).
    pub(crate) fn cluster_nodes(&self) -> Vec<NodeStatus> {
        match self {
            Backend::RedisCluster(s) => s.nodes(),
            _ => Vec::new(),
        }
    }
}

/// A whole-batch answer of a single-node backend: every key answered.
pub(crate) fn all_answered(rows: Vec<KeyFields>) -> Vec<Option<KeyFields>> {
    rows.into_iter().map(Some).collect()
}
