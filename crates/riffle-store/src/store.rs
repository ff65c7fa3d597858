//! [`OnlineStore`]: typed, batched reads and writes of feature rows, pipeline state and
//! metadata, over the backend a store URL names.
//!
//! This is the store's API and the translation between typed rows and keys: entity keys and
//! group fields ([`crate::layout`]), row encoding ([`crate::codec`]), TTLs with jitter, a
//! group's TTL enforced at read. What it leans on lives beside it: the limits every call
//! runs under (`limits.rs`), the dispatch to the backend in use (`backend.rs`), the
//! operations backends understand (`key_ops.rs`), and the typed reads and writes
//! (`rows.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use riffle_core::Timestamp;
use riffle_registry::{ReadFrom, Registry};

use crate::backend::{all_answered, Backend};
use crate::codec;
use crate::error::StoreError;
use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};
use crate::layout;
use crate::limits::{CallGuard, StoreLimits};
use crate::meta::{self, MetaChange, MetaChanges};
use crate::redis_cluster::NodeStatus;
use crate::replicas::{ReadAnswer, ReadNode, ReplicaSet, ReplicaStatus, Replicas, Route};
use crate::rows::{EntityRead, RowRead, RowWrite, StateWrite};
use crate::url::StoreUrl;

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
    /// The bound on calls in flight and the per-call timeout, enforced.
    guard: CallGuard,
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
        let backend = Backend::open(url, &limits)?;
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
            guard: CallGuard::new(limits.max_in_flight),
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
            kind: self.backend.kind(),
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
        self.guard.in_flight()
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
            .guard
            .run(self.limits.timeout, async {
                if let Some(r) = &self.replicas {
                    let (raw, route) = r.set.read(&keys, self.limits.timeout).await?;
                    return Ok((all_answered(raw), route));
                }
                let raw = self.backend.read(&keys, self.limits.timeout).await;
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
                                    if !group.row_alive(row.computed_at.age_at(now)) {
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
        let timeout = self.limits.write_timeout;
        self.guard
            .run(timeout, async {
                self.backend
                    .write_phased(ordered, deletes, phases, timeout)
                    .await
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
            .guard
            .run(self.limits.write_timeout, async {
                self.backend
                    .read_every(&keys, self.limits.write_timeout)
                    .await
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
        let timeout = self.limits.write_timeout;
        self.guard
            .run(timeout, async {
                self.backend.write(vec![key], Vec::new(), timeout).await
            })
            .await
    }

    /// Reads every record (member, bytes) of the meta key `<project>:~meta:<name>`; empty
    /// when the key is absent or expired. Runs under the write timeout: never on a request.
    pub async fn get_meta(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let key = meta::meta_key(&self.registry.project, name);
        let timeout = self.limits.write_timeout;
        self.guard
            .run(timeout, async {
                self.backend.read_all(&key, timeout).await
            })
            .await
    }

    /// Removes records (fields `members`) of the meta key `<project>:~meta:<name>`.
    pub async fn delete_meta(&self, name: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let key = meta::meta_key(&self.registry.project, name);
        let timeout = self.limits.write_timeout;
        self.guard
            .run(timeout, async {
                self.backend.delete_fields(key, members, timeout).await
            })
            .await
    }

    /// Checks the store answers; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let start = std::time::Instant::now();
        let timeout = self.limits.timeout;
        self.guard
            .run(timeout, async { self.backend.ping(timeout).await })
            .await?;
        Ok(start.elapsed())
    }

    /// The nodes of a Redis Cluster store with each one's breaker state (empty for other
    /// backends), for `/health` and tests.
    pub fn cluster_nodes(&self) -> Vec<NodeStatus> {
        self.backend.cluster_nodes()
    }
}
