//! [`OnlineStore`]: typed, batched reads and writes over a backend, behind a per-call
//! timeout and a bound on calls in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use riffle_core::{EntityId, Timestamp};
use riffle_registry::{GroupId, ReadFrom, Registry, StoreSettings};
use tokio::sync::Semaphore;

use crate::codec::{self, DecodeError, GroupRow};
use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::layout;
use crate::meta;
use crate::redis_backend::RedisStore;
use crate::redis_cluster::{NodeStatus, RedisClusterStore};
use crate::replicas::{ReadAnswer, ReadNode, ReplicaSet, ReplicaStatus, Replicas, Route};
use crate::url::StoreUrl;

/// The limits every store call runs under.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    /// Per-call timeout for reads (the lesson's 50 ms).
    pub timeout: Duration,
    /// Per-call timeout for writes, which carry bigger batches.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// Calls in flight at once; past it calls fail with [`StoreError::Overloaded`] at once.
    pub max_in_flight: usize,
    /// Fraction of the TTL added at random to each key's TTL.
    pub ttl_jitter: f64,
}

impl StoreLimits {
    pub fn from_settings(s: &StoreSettings) -> Self {
        Self {
            timeout: s.timeout,
            write_timeout: s.timeout.max(Duration::from_secs(10)),
            connect_timeout: s.connect_timeout,
            max_in_flight: s.max_in_flight,
            ttl_jitter: s.ttl_jitter,
        }
    }
}

/// Read the rows of some groups of one entity.
#[derive(Debug, Clone)]
pub struct EntityRead<'a> {
    /// Index of the entity in the registry.
    pub entity: usize,
    pub id: &'a str,
    /// Groups to read (all of this entity).
    pub groups: &'a [GroupId],
}

/// What the store holds for one (entity, group).
#[derive(Debug, Clone, PartialEq)]
pub enum RowRead {
    Found(GroupRow),
    /// No row, or a row older than the group's TTL.
    Missing,
    /// A row that does not decode as the group's declared schema.
    Corrupt(DecodeError),
    /// The entity's node could not answer (Redis Cluster: that node down, slow or skipped
    /// by its breaker) while other entities of the batch were answered.
    Unavailable,
}

/// One group's row to write for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub id: EntityId,
    pub group: GroupId,
    pub row: GroupRow,
}

/// Pipeline state to write beside an entity's rows: one reserved field (starting with
/// [`layout::STATE_PREFIX`]) of the entity's own key, written in the same command as the
/// entity's rows (see [`OnlineStore::write_with_state`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub id: EntityId,
    /// Index of the entity in the registry.
    pub entity: usize,
    /// The field, e.g. `~transactions` ([`layout::state_field`]).
    pub field: String,
    pub bytes: Vec<u8>,
}

/// Backend-neutral read of some fields of one key.
pub(crate) struct KeyRead {
    pub key: String,
    pub fields: Vec<String>,
}

/// Backend-neutral write of some fields of one key, with the key's TTL.
pub(crate) struct KeyWrite {
    pub key: String,
    pub fields: Vec<(String, Vec<u8>)>,
    pub ttl: Duration,
}

/// Backend-neutral removal of some fields of one key (`HDEL`).
pub(crate) struct KeyDelete {
    pub key: String,
    pub fields: Vec<String>,
}

/// One change to a field (`member`) of a pipeline-metadata hash `<project>:~meta:<name>`
/// ([`crate::meta`]), made in the same store call as rows (see
/// [`OnlineStore::write_with_meta`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaChange {
    pub name: String,
    pub member: String,
    /// The new value; `None` removes the field.
    pub bytes: Option<Vec<u8>>,
}

/// Metadata changes around one batch of rows and states, and the TTL the written meta keys
/// get (refreshed on every write: no key without a TTL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaChanges {
    /// Applied before the rows: of the batch, the sets (e.g. index entries added).
    pub before: Vec<MetaChange>,
    /// Applied after the rows (sets first, then removals).
    pub after: Vec<MetaChange>,
    pub ttl: Duration,
}

impl MetaChanges {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

impl KeyWrite {
    fn new(key: String, ttl: Duration) -> Self {
        Self {
            key,
            fields: Vec::new(),
            ttl,
        }
    }
}

enum Backend {
    Embedded(EmbeddedStore),
    Redis(RedisStore),
    RedisCluster(RedisClusterStore),
}

/// What kind of store this is, for `/health` and logs.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    pub kind: &'static str,
    pub url: String,
    pub max_in_flight: usize,
    pub timeout_ms: u64,
}

/// The online store.
pub struct OnlineStore {
    backend: Backend,
    registry: Arc<Registry>,
    limits: StoreLimits,
    in_flight: Arc<Semaphore>,
    url: StoreUrl,
    /// Field name of each group, computed once.
    fields: Vec<String>,
    /// Read replicas of a Redis primary and their monitor (`store.replicas`).
    replicas: Option<Replicas>,
}

impl OnlineStore {
    /// Opens the store at `url`. A Redis store connects lazily, so a server can start while
    /// Redis is down and serve defaults until it is back.
    pub async fn open(
        url: &StoreUrl,
        registry: Arc<Registry>,
        limits: StoreLimits,
    ) -> Result<Self, StoreError> {
        let backend = match url {
            StoreUrl::Embedded(dir) => Backend::Embedded(EmbeddedStore::open(dir)?),
            StoreUrl::Redis(u) => Backend::Redis(RedisStore::connect(u, &limits)?),
            StoreUrl::RedisCluster(u) => {
                Backend::RedisCluster(RedisClusterStore::connect(u, &limits)?)
            }
        };
        let fields = registry.groups.iter().map(layout::group_field).collect();
        let replicas = match (&backend, registry.store.replicas.is_empty()) {
            (_, true) => None,
            (Backend::Redis(primary), false) => Some(Replicas::start(ReplicaSet::new(
                primary,
                &registry.store.replicas,
                registry.store.read_from == ReadFrom::Replica,
                &registry.project,
                &limits,
                registry.store.replica_max_lag,
            )?)),
            _ => {
                return Err(StoreError::Config(format!(
                    "store.replicas need a redis:// primary, not {}",
                    url.redacted()
                )))
            }
        };
        Ok(Self {
            replicas,
            backend,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            registry,
            limits,
            url: url.clone(),
            fields,
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: match self.backend {
                Backend::Embedded(_) => "embedded",
                Backend::Redis(_) => "redis",
                Backend::RedisCluster(_) => "redis-cluster",
            },
            url: self.url.redacted(),
            max_in_flight: self.limits.max_in_flight,
            timeout_ms: self.limits.timeout.as_millis() as u64,
        }
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Store calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limits.max_in_flight - self.in_flight.available_permits()
    }

    /// Runs `call` under the in-flight bound and `timeout`.
    async fn guarded<T>(
        &self,
        timeout: Duration,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| StoreError::Overloaded(self.limits.max_in_flight))?;
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(timeout.as_millis() as u64)),
        }
    }

    /// Reads many entities' group rows in one round trip. The answer has one entry per
    /// `EntityRead`, holding one [`RowRead`] per requested group, in order.
    pub async fn read(&self, reads: &[EntityRead<'_>]) -> Result<Vec<Vec<RowRead>>, StoreError> {
        self.read_routed(reads).await.map(|answer| answer.rows)
    }

    /// [`OnlineStore::read`], saying which node answered: with `store.read_from =
    /// "replica"` the nearest healthy replica, else (or when it fails) the primary
    /// ([`crate::replicas`]).
    pub async fn read_routed(&self, reads: &[EntityRead<'_>]) -> Result<ReadAnswer, StoreError> {
        let keys: Vec<KeyRead> = reads
            .iter()
            .map(|r| KeyRead {
                key: layout::entity_key(
                    &self.registry.project,
                    &self.registry.entities[r.entity].name,
                    r.id,
                ),
                fields: r.groups.iter().map(|&g| self.fields[g].clone()).collect(),
            })
            .collect();
        let (raw, route) = self
            .guarded(self.limits.timeout, async {
                if let Some(r) = &self.replicas {
                    let (raw, route) = r.set.read(&keys, self.limits.timeout).await?;
                    return Ok((all_answered(raw), route));
                }
                let raw = match &self.backend {
                    Backend::Embedded(s) => s.read(&keys).map(all_answered),
                    Backend::Redis(s) => s.read(&keys).await.map(all_answered),
                    Backend::RedisCluster(s) => s.read(&keys, self.limits.timeout).await,
                };
                raw.map(|raw| (raw, Route::PRIMARY))
            })
            .await?;
        let now = Timestamp::now();
        let rows = reads
            .iter()
            .zip(raw)
            .map(|(r, values)| {
                let Some(values) = values else {
                    return vec![RowRead::Unavailable; r.groups.len()];
                };
                r.groups
                    .iter()
                    .zip(values)
                    .map(|(&gid, bytes)| {
                        let group = &self.registry.groups[gid];
                        match bytes {
                            None => RowRead::Missing,
                            Some(bytes) => match codec::decode(group, &bytes) {
                                Ok(row) => {
                                    let ttl_ms = group.ttl.as_millis() as u64;
                                    if row.computed_at.age_at(now) > ttl_ms {
                                        RowRead::Missing
                                    } else {
                                        RowRead::Found(row)
                                    }
                                }
                                Err(e) => RowRead::Corrupt(e),
                            },
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(ReadAnswer {
            rows,
            node: route.node,
            replica_lag_ms: route.replica_lag_ms,
            failed_over_from: route.failed_over_from,
        })
    }

    /// Where serving reads go now, and each replica as last measured (empty without
    /// `store.replicas`).
    pub fn replicas(&self) -> (ReadNode, Vec<ReplicaStatus>) {
        match &self.replicas {
            Some(r) => (r.set.target(), r.set.status()),
            None => (ReadNode::Primary, Vec::new()),
        }
    }

    /// Writes rows in one round trip. Rows of one entity share one key and one command.
    /// Every row is checked against its group's schema before anything is written.
    pub async fn write(&self, writes: &[RowWrite]) -> Result<(), StoreError> {
        self.write_with_state(writes, &[]).await
    }

    /// Writes rows and pipeline state in one round trip. All the fields of one entity (its
    /// rows and its state) go in one command to its one key (one `HSET` in Redis, one
    /// transaction in the embedded store), so a crash never keeps one without the other.
    /// Keys get the same TTL (plus jitter) as [`OnlineStore::write`]. A state field must
    /// start with [`layout::STATE_PREFIX`], so it can never shadow a row.
    pub async fn write_with_state(
        &self,
        writes: &[RowWrite],
        states: &[StateWrite],
    ) -> Result<(), StoreError> {
        self.write_with_meta(writes, states, &MetaChanges::default())
            .await
    }

    /// [`OnlineStore::write_with_state`] plus changes to pipeline-metadata hashes, all in
    /// the same store call (one pipeline in Redis, one transaction in the embedded store),
    /// in this order: the sets of `meta.before`, the rows and states, the sets of
    /// `meta.after`, then every removal (of `before` and `after`). In Redis a pipeline is
    /// not atomic, but a connection's commands run in order, so a crash lets through a
    /// prefix of that order; the embedded store applies all or nothing.
    pub async fn write_with_meta(
        &self,
        writes: &[RowWrite],
        states: &[StateWrite],
        meta: &MetaChanges,
    ) -> Result<(), StoreError> {
        // A block, so the `ThreadRng` (not `Send`) is gone before the await and `write`
        // can run inside a spawned task (every axum handler).
        let keys: Vec<KeyWrite> = {
            let mut by_key: HashMap<String, KeyWrite> = HashMap::new();
            let mut rng = rand::rng();
            let mut entry = |entity: usize, id: &str| {
                let key = layout::entity_key(
                    &self.registry.project,
                    &self.registry.entities[entity].name,
                    id,
                );
                let base = self.registry.entity_key_ttl(entity);
                let jitter = base.mul_f64(self.limits.ttl_jitter * rng.random::<f64>());
                (key, base + jitter)
            };
            for w in writes {
                let group = &self.registry.groups[w.group];
                let bytes = codec::encode_as(self.registry.store.encoding, group, &w.row)
                    .map_err(|e| StoreError::Config(format!("group {}: {e}", group.name)))?;
                let (key, ttl) = entry(group.entity, w.id.as_str());
                by_key
                    .entry(key.clone())
                    .or_insert_with(|| KeyWrite::new(key, ttl))
                    .fields
                    .push((self.fields[w.group].clone(), bytes));
            }
            for s in states {
                if !s.field.starts_with(layout::STATE_PREFIX) {
                    return Err(StoreError::Config(format!(
                        "state field {:?} must start with {:?}",
                        s.field,
                        layout::STATE_PREFIX
                    )));
                }
                if s.entity >= self.registry.entities.len() {
                    return Err(StoreError::Config(format!("no entity #{}", s.entity)));
                }
                let (key, ttl) = entry(s.entity, s.id.as_str());
                by_key
                    .entry(key.clone())
                    .or_insert_with(|| KeyWrite::new(key, ttl))
                    .fields
                    .push((s.field.clone(), s.bytes.clone()));
            }
            by_key.into_values().collect()
        };
        let (before, before_deletes) = self.meta_ops(&meta.before, meta.ttl);
        let (after, after_deletes) = self.meta_ops(&meta.after, meta.ttl);
        let phases = [before.len(), keys.len()];
        let mut ordered = before;
        ordered.extend(keys);
        ordered.extend(after);
        let mut deletes = before_deletes;
        deletes.extend(after_deletes);
        self.guarded(self.limits.write_timeout, async {
            match &self.backend {
                Backend::Embedded(s) => s.write(ordered, deletes).await,
                Backend::Redis(s) => s.write(ordered, deletes).await,
                Backend::RedisCluster(s) => {
                    let timeout = self.limits.write_timeout;
                    s.write_phased(ordered, deletes, phases, timeout).await
                }
            }
        })
        .await
    }

    /// Meta changes grouped per key, in first-seen order: the sets (one write per key, with
    /// `ttl`) and the removals (one per key).
    fn meta_ops(&self, changes: &[MetaChange], ttl: Duration) -> (Vec<KeyWrite>, Vec<KeyDelete>) {
        let mut writes: Vec<KeyWrite> = Vec::new();
        let mut deletes: Vec<KeyDelete> = Vec::new();
        for c in changes {
            let key = meta::meta_key(&self.registry.project, &c.name);
            match &c.bytes {
                Some(bytes) => {
                    let field = (c.member.clone(), bytes.clone());
                    match writes.iter_mut().find(|w| w.key == key) {
                        Some(w) => w.fields.push(field),
                        None => writes.push(KeyWrite {
                            key,
                            fields: vec![field],
                            ttl,
                        }),
                    }
                }
                None => match deletes.iter_mut().find(|d| d.key == key) {
                    Some(d) => d.fields.push(c.member.clone()),
                    None => deletes.push(KeyDelete {
                        key,
                        fields: vec![c.member.clone()],
                    }),
                },
            }
        }
        (writes, deletes)
    }

    /// Reads one raw field (pipeline state, see [`StateWrite`]) of many entities of one
    /// kind in one round trip: one answer per id, in order, `None` where the key or field
    /// is absent (or the key expired). Runs under the write timeout: it is a pipeline's
    /// batch call, not a serving one.
    pub async fn read_raw_fields(
        &self,
        entity: usize,
        ids: &[&str],
        field: &str,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let Some(kind) = self.registry.entities.get(entity) else {
            return Err(StoreError::Config(format!("no entity #{entity}")));
        };
        let keys: Vec<KeyRead> = ids
            .iter()
            .map(|id| KeyRead {
                key: layout::entity_key(&self.registry.project, &kind.name, id),
                fields: vec![field.to_owned()],
            })
            .collect();
        let raw = self
            .guarded(self.limits.write_timeout, async {
                match &self.backend {
                    Backend::Embedded(s) => s.read(&keys),
                    Backend::Redis(s) => s.read(&keys).await,
                    Backend::RedisCluster(s) => {
                        let timeout = self.limits.write_timeout;
                        s.read(&keys, timeout)
                            .await?
                            .into_iter()
                            .map(|v| {
                                v.ok_or_else(|| {
                                    StoreError::Unavailable("a cluster node did not answer".into())
                                })
                            })
                            .collect()
                    }
                }
            })
            .await?;
        Ok(raw
            .into_iter()
            .map(|mut fields| fields.pop().flatten())
            .collect())
    }

    /// Publishes one pipeline-metadata record: field `member` of the reserved key
    /// `<project>:~meta:<name>` ([`crate::meta`]), the key's TTL refreshed to `ttl`.
    pub async fn put_meta(
        &self,
        name: &str,
        member: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = KeyWrite {
            key: meta::meta_key(&self.registry.project, name),
            fields: vec![(member.to_owned(), bytes)],
            ttl,
        };
        self.guarded(self.limits.write_timeout, async {
            match &self.backend {
                Backend::Embedded(s) => s.write(vec![key], Vec::new()).await,
                Backend::Redis(s) => s.write(vec![key], Vec::new()).await,
                Backend::RedisCluster(s) => {
                    let timeout = self.limits.write_timeout;
                    s.write(vec![key], Vec::new(), timeout).await
                }
            }
        })
        .await
    }

    /// Reads every record (member, bytes) of the meta key `<project>:~meta:<name>`; empty
    /// when the key is absent or expired. Runs under the write timeout: never on a request.
    pub async fn get_meta(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let key = meta::meta_key(&self.registry.project, name);
        self.guarded(self.limits.write_timeout, async {
            match &self.backend {
                Backend::Embedded(s) => s.read_all(&key),
                Backend::Redis(s) => s.read_all(&key).await,
                Backend::RedisCluster(s) => s.read_all(&key, self.limits.write_timeout).await,
            }
        })
        .await
    }

    /// Removes records (fields `members`) of the meta key `<project>:~meta:<name>`.
    pub async fn delete_meta(&self, name: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let key = meta::meta_key(&self.registry.project, name);
        self.guarded(self.limits.write_timeout, async {
            match &self.backend {
                Backend::Embedded(s) => s.delete_fields(key, members.to_vec()).await,
                Backend::Redis(s) => s.delete_fields(&key, members).await,
                Backend::RedisCluster(s) => {
                    let timeout = self.limits.write_timeout;
                    s.delete_fields(&key, members, timeout).await
                }
            }
        })
        .await
    }

    /// Checks the store answers; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let start = std::time::Instant::now();
        self.guarded(self.limits.timeout, async {
            match &self.backend {
                Backend::Embedded(_) => Ok(()),
                Backend::Redis(s) => s.ping().await,
                Backend::RedisCluster(s) => s.ping(self.limits.timeout).await,
            }
        })
        .await?;
        Ok(start.elapsed())
    }

    /// The nodes of a Redis Cluster store with each one's breaker state (empty for other
    /// backends), for `/health` and tests.
    pub fn cluster_nodes(&self) -> Vec<NodeStatus> {
        match &self.backend {
            Backend::RedisCluster(s) => s.nodes(),
            _ => Vec::new(),
        }
    }
}

/// A whole-batch answer of a single-node backend: every key answered.
fn all_answered(rows: Vec<Vec<Option<Vec<u8>>>>) -> Vec<Option<Vec<Option<Vec<u8>>>>> {
    rows.into_iter().map(Some).collect()
}
