//! The Redis Cluster backend: routes every key to the master owning its hash slot, one
//! pipeline per node per batch, all nodes in parallel, and keeps one sick node from failing
//! the whole store.
//!
//! - **Slot map** (`slot_map.rs`): from `CLUSTER SLOTS` of any reachable node (seeds first
//!   known, then the masters learnt). Fetched lazily on the first call, refreshed in the
//!   background (one refresh at a time, at most every [`MIN_REFRESH_INTERVAL`]) when a node
//!   answers `MOVED`, `CLUSTERDOWN` or `READONLY`, cannot be reached, or is skipped by its
//!   breaker: after a failover the promoted replica is found that way.
//! - **Connections**: one multiplexed, auto-reconnecting `ConnectionManager` per node,
//!   made lazily, kept across map refreshes.
//! - **Routing**: keys are grouped per master and each group sent as ONE pipeline; the
//!   groups go out together (`join_all`). Our keys are hash-tagged per entity
//!   (`<project>:{<entity>:<id>}`, [`crate::layout`]), so an entity's commands never span
//!   slots. We route ourselves because the `redis` crate's async cluster connection sends a
//!   pipeline to one slot only (it answers `CrossSlot` for a batch of entities), and its
//!   per-slot splitting of `MGET` does not apply to `HMGET`s. The slot function is ours too
//!   ([`slot_of`], CRC16/XMODEM as the cluster spec defines it, checked against the spec's
//!   vectors and against `CLUSTER KEYSLOT` in the tests): `redis` 1.8 has `Slot::for_key`
//!   behind its `cluster` feature, but gives no way to read the slot's number, which the
//!   slot map needs.
//! - **Redirects**: `MOVED` points the slot at the named node at once (and schedules a full
//!   refresh), `ASK` resends with `ASKING` to the named node; at most [`MAX_REDIRECTS`] per
//!   command, after which it is answered as unavailable. Resending is safe: our writes are
//!   idempotent (`HSET` of whole fields, `PEXPIRE`, `HDEL`).
//! - **Per-node health**: each node has a circuit breaker (`breaker.rs`) and a bound on its
//!   pipelines in flight; a node's pipeline runs under the call's deadline. A node that is
//!   skipped, full, slow or down answers for its keys only: reads of its entities come back
//!   unavailable ([`crate::RowRead::Unavailable`]) while the other nodes' entities are
//!   served; a write fails as a whole (the caller retries, writes being idempotent).
//!   Breaker transitions are logged; [`RedisClusterStore::nodes`] lists each node's state.
//! - **Writes with metadata** run in phases (meta sets before → rows → meta sets after →
//!   removals), each phase one parallel pipeline per node, so what the single-node backend
//!   gets from one ordered pipeline (see [`crate::OnlineStore::write_with_meta`]) still
//!   holds across nodes: a phase starts only once the previous one is acknowledged.

mod breaker;
mod pipeline;
mod slot_map;

pub use slot_map::slot_of;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisResult, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use self::breaker::{Admission, NodeBreaker, Transition};
use self::pipeline::{outcomes, Op, Outcome};
use self::slot_map::SlotMap;
use crate::error::StoreError;
use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};
use crate::limits::StoreLimits;
use crate::url::ClusterUrl;

/// Redirects (`MOVED`/`ASK`) followed for one command before it is answered as unavailable.
pub const MAX_REDIRECTS: usize = 3;
/// Full slot-map refreshes are at least this far apart.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// One node as the store sees it, for `/health` and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// `host:port`.
    pub addr: String,
    /// Owns slots in the current slot map.
    pub master: bool,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// Pipelines sent to it so far (one per batch touching it).
    pub round_trips: u64,
    /// Pipelines in flight now.
    pub in_flight: usize,
}

pub struct RedisClusterStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: ClusterUrl,
    connect_timeout: Duration,
    /// Pipelines in flight per node: past it that node is answered as unavailable at once.
    node_in_flight: usize,
    map: RwLock<SlotMap>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    /// Held while a refresh runs; holds when the last one started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    refresh_scheduled: AtomicBool,
}

struct Node {
    addr: String,
    conn: ConnectionManager,
    breaker: NodeBreaker,
    in_flight: Semaphore,
    round_trips: AtomicU64,
}

/// Why a node's whole pipeline got no answer.
struct NodeFailure {
    /// The slot map may be stale (connection lost, node skipped).
    refresh: bool,
}

impl RedisClusterStore {
    /// Prepares the store; nothing is sent until the first call, so a server starts (and
    /// serves defaults) while the cluster is down.
    pub fn connect(url: &ClusterUrl, limits: &StoreLimits) -> Result<Self, StoreError> {
        if url.tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let inner = Arc::new(Inner {
            url: url.clone(),
            connect_timeout: limits.connect_timeout,
            // A quarter of the store's bound: a hung node holds at most that many calls for
            // a full timeout, after which its keys fail fast and the other nodes' entities
            // keep being answered at their own pace.
            node_in_flight: (limits.max_in_flight / 4).max(1),
            map: RwLock::new(SlotMap::default()),
            nodes: Mutex::new(HashMap::new()),
            refresh: tokio::sync::Mutex::new(None),
            refresh_scheduled: AtomicBool::new(false),
        });
        for seed in &url.seeds {
            inner.node(seed)?;
        }
        Ok(Self { inner })
    }

    /// One `HMGET` per key, one pipeline per node, all nodes at once. `None` for a key
    /// whose node could not answer. An error only when the batch spanned every master and
    /// none answered (the whole cluster is failing, which the caller's breaker should
    /// count); one failing node, even for a single-entity batch, is not the store failing.
    pub(crate) async fn read(
        &self,
        keys: &[KeyRead],
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<Option<Vec<u8>>>>>, StoreError> {
        let ops: Vec<Op<'_>> = keys.iter().map(Op::Read).collect();
        let answers = self.inner.run(&ops, deadline(timeout)).await?;
        if !answers.is_empty() && answers.iter().all(Option::is_none) {
            let map = self.inner.read_map();
            let owners: std::collections::HashSet<&str> = keys
                .iter()
                .filter_map(|k| map.owner(slot_of(k.key.as_bytes())))
                .collect();
            if owners.len() >= map.masters().len() {
                return Err(StoreError::Unavailable(
                    "no Redis Cluster master answered".into(),
                ));
            }
        }
        Ok(answers
            .into_iter()
            .map(|v| v.and_then(|v| FromRedisValue::from_redis_value(v).ok()))
            .collect())
    }

    /// `HSET` + `PEXPIRE` per key and `HDEL` per delete, one pipeline per node; fails when
    /// any node did not acknowledge its part.
    pub(crate) async fn write(
        &self,
        keys: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.write_phased(keys, deletes, [0, 0], timeout).await
    }

    /// Writes in phases: the first `counts[0]` of `ordered` (meta sets before the rows),
    /// the next `counts[1]` (the rows), the rest (meta sets after), then `deletes`; a phase
    /// starts once the previous one is acknowledged by every node. With `[0, 0]` all writes
    /// form one phase.
    pub(crate) async fn write_phased(
        &self,
        mut ordered: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
        counts: [usize; 2],
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let deadline = deadline(timeout);
        let mut rows = ordered.split_off(counts[0].min(ordered.len()));
        let after = rows.split_off(counts[1].min(rows.len()));
        let deletes: Vec<KeyDelete> = deletes
            .into_iter()
            .filter(|d| !d.fields.is_empty())
            .collect();
        let phases: [Vec<Op<'_>>; 4] = [
            ordered.iter().map(Op::Write).collect(),
            rows.iter().map(Op::Write).collect(),
            after.iter().map(Op::Write).collect(),
            deletes.iter().map(Op::Delete).collect(),
        ];
        for ops in phases.iter().filter(|ops| !ops.is_empty()) {
            let answers = self.inner.run(ops, deadline).await?;
            let failed = answers.iter().filter(|a| a.is_none()).count();
            if failed > 0 {
                return Err(StoreError::Unavailable(format!(
                    "{failed} of {} keys not written: their cluster nodes did not answer",
                    answers.len()
                )));
            }
        }
        Ok(())
    }

    /// `HGETALL` of one key on its node.
    pub(crate) async fn read_all(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let answer = self
            .inner
            .run(&[Op::ReadAll(key)], deadline(timeout))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| StoreError::Unavailable(format!("node of {key} did not answer")))?;
        FromRedisValue::from_redis_value(answer)
            .map_err(|e| StoreError::Unavailable(format!("HGETALL {key}: {e}")))
    }

    /// `HDEL` of some fields of one key on its node.
    pub(crate) async fn delete_fields(
        &self,
        key: &str,
        fields: &[String],
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let delete = KeyDelete {
            key: key.to_owned(),
            fields: fields.to_vec(),
        };
        self.write(Vec::new(), vec![delete], timeout).await
    }

    /// `PING` to every master at once: fails naming the masters that did not answer.
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.ensure_map().await?;
        let masters = inner.read_map().masters().to_vec();
        let deadline = deadline(timeout);
        let pings = masters.iter().map(|addr| async move {
            let Ok(node) = inner.node(addr) else {
                return false;
            };
            let mut conn = node.conn.clone();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            matches!(tokio::time::timeout_at(deadline, ping).await, Ok(Ok(_)))
        });
        let answered = join_all(pings).await;
        let down: Vec<&str> = masters
            .iter()
            .zip(answered)
            .filter(|(_, ok)| !ok)
            .map(|(a, _)| a.as_str())
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            inner.refresh_soon();
            Err(StoreError::Unavailable(format!(
                "cluster masters not answering PING: {}",
                down.join(", ")
            )))
        }
    }

    /// Every node the store has connected to or learnt from the slot map, by address.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let map = self.inner.read_map();
        let nodes = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<NodeStatus> = nodes
            .values()
            .map(|n| NodeStatus {
                addr: n.addr.clone(),
                master: map.masters().contains(&n.addr),
                breaker: n.breaker.state_name(),
                round_trips: n.round_trips.load(Ordering::Relaxed),
                in_flight: self.inner.node_in_flight - n.in_flight.available_permits(),
            })
            .collect();
        list.sort_by(|a, b| a.addr.cmp(&b.addr));
        list
    }
}

/// Each node's pipeline must end (answered or given up) before the store's outer per-call
/// timeout, which would fail the whole batch: nine tenths of it leave room to collect the
/// other nodes' answers.
fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout.mul_f64(0.9)
}

impl Inner {
    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, SlotMap> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node at `addr`, its connection prepared (not made) on first use.
    fn node(&self, addr: &str) -> Result<Arc<Node>, StoreError> {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let client = redis::Client::open(self.url.node_url(addr))
            .map_err(|e| StoreError::Config(format!("bad cluster node {addr}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // The call's deadline governs; the manager must not add retries on top.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Config(format!("cannot set up connection to {addr}: {e}")))?;
        let node = Arc::new(Node {
            addr: addr.to_owned(),
            conn,
            breaker: NodeBreaker::default(),
            in_flight: Semaphore::new(self.node_in_flight),
            round_trips: AtomicU64::new(0),
        });
        nodes.insert(addr.to_owned(), node.clone());
        Ok(node)
    }

    /// Fetches the slot map when there is none yet.
    async fn ensure_map(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.read_map().is_empty() {
            self.refresh().await;
            if self.read_map().is_empty() {
                return Err(StoreError::Unavailable(
                    "no Redis Cluster node answered CLUSTER SLOTS".into(),
                ));
            }
        }
        Ok(())
    }

    /// Sends every op to the node owning its key (or the node an `ASK` names), one pipeline
    /// per node, all nodes at once, following redirects; `None` for an op not answered.
    async fn run(
        self: &Arc<Self>,
        ops: &[Op<'_>],
        deadline: Instant,
    ) -> Result<Vec<Option<Value>>, StoreError> {
        self.ensure_map().await?;
        let mut answers: Vec<Option<Value>> = vec![None; ops.len()];
        // (op, the node an ASK redirect names)
        let mut pending: Vec<(usize, Option<String>)> = (0..ops.len()).map(|i| (i, None)).collect();
        for _round in 0..=MAX_REDIRECTS {
            if pending.is_empty() {
                break;
            }
            let mut refresh = false;
            let mut batches: HashMap<String, Vec<(usize, bool)>> = HashMap::new();
            {
                let map = self.read_map();
                for (i, ask) in pending.drain(..) {
                    match ask {
                        Some(addr) => batches.entry(addr).or_default().push((i, true)),
                        None => match map.owner(slot_of(ops[i].key().as_bytes())) {
                            Some(addr) => {
                                batches.entry(addr.to_owned()).or_default().push((i, false))
                            }
                            None => refresh = true,
                        },
                    }
                }
            }
            let sends = batches.into_iter().map(|(addr, items)| async move {
                let result = match self.node(&addr) {
                    Ok(node) => self.send(&node, ops, &items, deadline).await,
                    Err(_) => Err(NodeFailure { refresh: true }),
                };
                (items, result)
            });
            for (items, result) in join_all(sends).await {
                let outcomes = match result {
                    Ok(outcomes) => outcomes,
                    Err(failure) => {
                        refresh |= failure.refresh;
                        continue;
                    }
                };
                for ((i, _), outcome) in items.into_iter().zip(outcomes) {
                    match outcome {
                        Outcome::Done(v) => answers[i] = Some(v),
                        Outcome::Moved { slot, addr } => {
                            self.map
                                .write()
                                .unwrap_or_else(PoisonError::into_inner)
                                .set_owner(slot, &addr);
                            refresh = true;
                            pending.push((i, None));
                        }
                        Outcome::Ask { addr } => pending.push((i, Some(addr))),
                        Outcome::Failed { refresh: r } => refresh |= r,
                    }
                }
            }
            if refresh {
                self.refresh_soon();
            }
        }
        Ok(answers)
    }

    /// One pipeline to one node, under its in-flight bound, its breaker and `deadline`.
    async fn send(
        &self,
        node: &Node,
        ops: &[Op<'_>],
        items: &[(usize, bool)],
        deadline: Instant,
    ) -> Result<Vec<Outcome>, NodeFailure> {
        let Ok(_permit) = node.in_flight.try_acquire() else {
            return Err(NodeFailure { refresh: false });
        };
        let admission = node.breaker.admit();
        if admission == Admission::Rejected {
            // Skipped while open; the map may be what is wrong (a failover), so look again.
            return Err(NodeFailure { refresh: true });
        }
        let mut pipe = redis::pipe();
        let mut replies = Vec::with_capacity(items.len());
        for &(i, asking) in items {
            replies.push(ops[i].push(&mut pipe, asking));
        }
        node.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut conn = node.conn.clone();
        let query = pipe
            .ignore_errors()
            .query_async::<Vec<RedisResult<Value>>>(&mut conn);
        let (ok, result) = match tokio::time::timeout_at(deadline, query).await {
            Err(_) => (false, Err(NodeFailure { refresh: false })),
            Ok(Err(e)) => {
                tracing::debug!(node = %node.addr, error = %e, "cluster node call failed");
                (false, Err(NodeFailure { refresh: true }))
            }
            Ok(Ok(values)) => (true, Ok(outcomes(values, &replies, &node.addr))),
        };
        match node.breaker.record(admission, ok) {
            Some(Transition::Opened) => tracing::warn!(
                node = %node.addr,
                "cluster node breaker opened: its entities are served as unavailable"
            ),
            Some(Transition::Closed) => {
                tracing::info!(node = %node.addr, "cluster node breaker closed")
            }
            None => {}
        }
        result
    }

    /// Schedules a slot-map refresh in the background, unless one is already scheduled.
    fn refresh_soon(self: &Arc<Self>) {
        if self.refresh_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            inner.refresh().await;
            inner.refresh_scheduled.store(false, Ordering::Release);
        });
    }

    /// Replaces the slot map with `CLUSTER SLOTS` of the first node that answers (closed
    /// breakers first, then seeds). One refresh at a time: a caller arriving during one
    /// waits for it; at most one per [`MIN_REFRESH_INTERVAL`].
    async fn refresh(self: &Arc<Self>) {
        let mut last = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                let _ = self.refresh.lock().await;
                return;
            }
        };
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let mut candidates: Vec<String> = self.read_map().masters().to_vec();
        candidates.extend(self.url.seeds.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|a| seen.insert(a.clone()));
        let mut nodes: Vec<Arc<Node>> = candidates
            .iter()
            .filter_map(|a| self.node(a).ok())
            .collect();
        nodes.sort_by_key(|n| n.breaker.state_name() != "closed");
        for node in nodes {
            let mut conn = node.conn.clone();
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SLOTS");
            let query = cmd.query_async::<Value>(&mut conn);
            let Ok(Ok(reply)) = tokio::time::timeout(self.connect_timeout, query).await else {
                continue;
            };
            let host = node.addr.rsplit_once(':').map_or("", |(h, _)| h);
            let Some(map) = SlotMap::from_cluster_slots(&reply, host) else {
                tracing::warn!(node = %node.addr, "CLUSTER SLOTS reply not understood");
                continue;
            };
            if map.is_empty() {
                continue;
            }
            let mut current = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let mut before = current.masters().to_vec();
            let mut after = map.masters().to_vec();
            before.sort();
            after.sort();
            if before != after {
                tracing::info!(from = %node.addr, masters = ?after, "cluster slot map changed");
            }
            *current = map;
            return;
        }
        tracing::warn!("no Redis Cluster node answered CLUSTER SLOTS; keeping the old slot map");
    }
}
