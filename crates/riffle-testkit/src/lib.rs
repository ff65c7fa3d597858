//! Real processes for tests, on free loopback ports, killed on `Drop`.
//!
//! - [`RedisServer`]: a private `redis-server` that tests can kill (`SIGKILL`), hang
//!   (`SIGSTOP`/`SIGCONT`) and restart on the same port.
//! - [`RedisCluster`]: a private Redis Cluster (masters, replicas) whose nodes tests can kill
//!   or hang, with waits for a replica's takeover.
//! - [`KafkaBroker`]: a private Kafka-protocol broker (`tansu`, in-memory storage) that
//!   tests can create topics on, kill and hang.
//! - [`free_port`]: a loopback port nobody listens on.
//! - [`fixtures`]: the registries tests across the workspace share.
//! - [`jwt`]: an identity provider's signing key, its JWKS and the JWTs (and forgeries)
//!   it makes.
//!
//! No mocks: the fault tests of Riffle fault the real thing.
#![forbid(unsafe_code)]

pub mod fixtures;
pub mod jwt;
mod kafka_broker;
mod process;
mod redis_cluster;
mod redis_server;

pub use kafka_broker::KafkaBroker;
pub use redis_cluster::{ClusterMaster, RedisCluster, NODE_TIMEOUT_MS};
pub use redis_server::RedisServer;

use std::net::TcpListener;

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS always has a free loopback port for tests")
}

/// Sends a signal to a process by pid (`kill -SIG pid`), without unsafe code.
pub fn signal(pid: u32, sig: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -{sig} {pid} failed")))
    }
}
