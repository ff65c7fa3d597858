//! A private Redis Cluster for one test: `redis-server --cluster-enabled yes` instances on
//! free loopback ports joined by `redis-cli --cluster create`, with the faults tests inflict
//! on one node (`SIGKILL`, `SIGSTOP`/`SIGCONT`) and waits for the cluster to heal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;

/// How long a node may be silent before the others mark it failing (and a replica takes
/// over): short, so failover tests take seconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// One master as `CLUSTER NODES` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMaster {
    /// Index of the node in [`RedisCluster::ports`].
    pub node: usize,
    /// Slot ranges it owns, inclusive.
    pub slots: Vec<(u16, u16)>,
}

/// A Redis Cluster of `masters` masters with `replicas_per_master` replicas each; the first
/// `masters` nodes start as masters. Every node is killed on `Drop`.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `--cluster create` makes the first `masters` nodes masters, the rest replicas.
    masters: usize,
}

impl RedisCluster {
    /// Starts and joins the nodes, waits for `cluster_state:ok` on every node and for every
    /// replica to be in sync with its master.
    pub fn start(masters: usize, replicas_per_master: usize) -> std::io::Result<Self> {
        Self::start_with(masters, replicas_per_master, &[])
    }

    /// [`start`](Self::start) with extra `redis-server` arguments for every node (e.g.
    /// `--cluster-require-full-coverage no`, so the nodes still up keep serving their slots
    /// while one master is down).
    pub fn start_with(
        masters: usize,
        replicas_per_master: usize,
        extra_args: &[&str],
    ) -> std::io::Result<Self> {
        if masters < 3 {
            return Err(std::io::Error::other("a Redis Cluster needs 3 masters"));
        }
        let timeout = NODE_TIMEOUT_MS.to_string();
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
        ];
        args.extend_from_slice(extra_args);
        let total = masters * (1 + replicas_per_master);
        let nodes = (0..total)
            .map(|_| RedisServer::start_with(&args))
            .collect::<std::io::Result<Vec<_>>>()?;
        let cluster = Self { nodes, masters };
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        cluster.wait_ok(Duration::from_secs(30))?;
        cluster.wait_replicas_synced(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The port of every node, masters first (as started).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,…` naming every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// `redis-cluster://` naming only node `i`: the store must learn the others.
    pub fn url_of_one(&self, i: usize) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.nodes[i].port())
    }

    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// The node on `port`.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// `SIGKILL` node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// `SIGSTOP` node `i`: it hangs with its connections open.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].pause();
    }

    /// `SIGCONT` node `i`.
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].resume();
    }

    /// `redis-cli -p PORT ARGS…` on node `i`.
    pub fn cli(&self, i: usize, args: &[&str]) -> std::io::Result<String> {
        self.nodes[i].cli(args)
    }

    /// Nodes answering `PING`.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].answers_ping())
            .collect()
    }

    /// `CLUSTER KEYSLOT key`, asked of a live node.
    pub fn keyslot(&self, key: &str) -> std::io::Result<u16> {
        let i = self.any_live()?;
        let out = self.cli(i, &["CLUSTER", "KEYSLOT", key])?;
        out.parse()
            .map_err(|_| std::io::Error::other(format!("CLUSTER KEYSLOT answered {out:?}")))
    }

    /// The masters and their slots as live node `asked` sees them (`CLUSTER NODES`),
    /// leaving out masters flagged `fail`.
    pub fn masters_seen_by(&self, asked: usize) -> std::io::Result<Vec<ClusterMaster>> {
        let text = self.cli(asked, &["CLUSTER", "NODES"])?;
        let mut masters = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                continue;
            }
            let flags = fields[2];
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok());
            let Some(node) = port.and_then(|p| self.index_of_port(p)) else {
                continue;
            };
            let slots = fields[8..]
                .iter()
                .filter(|r| !r.starts_with('['))
                .filter_map(|r| match r.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => r.parse().ok().map(|s| (s, s)),
                })
                .collect();
            masters.push(ClusterMaster { node, slots });
        }
        Ok(masters)
    }

    /// The node serving `slot`, as a live node sees it.
    pub fn node_for_slot(&self, slot: u16) -> std::io::Result<Option<usize>> {
        let masters = self.masters_seen_by(self.any_live()?)?;
        Ok(masters
            .iter()
            .find(|m| m.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .map(|m| m.node))
    }

    /// The node serving `key`.
    pub fn node_for_key(&self, key: &str) -> std::io::Result<Option<usize>> {
        self.node_for_slot(self.keyslot(key)?)
    }

    /// Waits until every live node says `cluster_state:ok`.
    pub fn wait_ok(&self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let live = self.live();
            let ok = !live.is_empty()
                && live.iter().all(|&i| {
                    self.cli(i, &["CLUSTER", "INFO"])
                        .is_ok_and(|info| info.contains("cluster_state:ok"))
                });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("cluster_state did not become ok"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a replica has taken over the slots of (dead) master `dead`: every live
    /// node sees masters covering all slots, none of them `dead`, and the cluster is ok
    /// again. Returns the promoted node.
    pub fn wait_for_failover(&self, dead: usize, limit: Duration) -> std::io::Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            let live = self.live();
            let views: Vec<Vec<ClusterMaster>> = live
                .iter()
                .filter_map(|&i| self.masters_seen_by(i).ok())
                .collect();
            let promoted = views.first().and_then(|v| {
                let covered: usize = v
                    .iter()
                    .flat_map(|m| &m.slots)
                    .map(|&(a, b)| (b - a) as usize + 1)
                    .sum();
                (covered == 16_384 && v.iter().all(|m| m.node != dead))
                    .then(|| v.iter().map(|m| m.node).collect::<Vec<_>>())
            });
            if let Some(masters) = promoted {
                let agreed = views.len() == live.len()
                    && views.iter().all(|v| {
                        let mut nodes: Vec<usize> = v.iter().map(|m| m.node).collect();
                        nodes.sort_unstable();
                        let mut want = masters.clone();
                        want.sort_unstable();
                        nodes == want
                    });
                let new = masters.iter().copied().find(|&m| m >= self.masters);
                if let (true, Some(new)) = (agreed, new) {
                    self.wait_ok(deadline.saturating_duration_since(Instant::now()))?;
                    return Ok(new);
                }
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("no replica took over in time"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_replicas_synced(&self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let synced = self.nodes.iter().all(|n| {
                n.cli(&["INFO", "replication"]).is_ok_and(|info| {
                    !info.contains("role:slave") || info.contains("master_link_status:up")
                })
            });
            if synced {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("replicas did not sync in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn any_live(&self) -> std::io::Result<usize> {
        self.live()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("no cluster node is up"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_masters_cover_every_slot() {
        let cluster = RedisCluster::start(3, 0).unwrap();
        let masters = cluster.masters_seen_by(0).unwrap();
        assert_eq!(masters.len(), 3);
        let covered: u32 = masters
            .iter()
            .flat_map(|m| &m.slots)
            .map(|&(a, b)| (b - a) as u32 + 1)
            .sum();
        assert_eq!(covered, 16_384);
        let slot = cluster.keyslot("foo").unwrap();
        assert_eq!(slot, 12182);
        let owner = cluster.node_for_slot(slot).unwrap().unwrap();
        assert_eq!(cluster.cli(owner, &["SET", "foo", "1"]).unwrap(), "OK");
        assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
    }
}
