//! The Redis backend: one multiplexed, auto-reconnecting connection (`redis`'s
//! `ConnectionManager`) carrying pipelined commands. There is no pool to size: callers are
//! bounded by the store's in-flight limit instead, and a full bound fails fast.
//!
//! The connection is made lazily, so a server starts (and serves defaults) while Redis is
//! down. Reconnection is the manager's job; it never retries a timed-out call.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::StoreError;
use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};
use crate::limits::StoreLimits;

/// Cloning shares the connection (the replica monitor writes heartbeats on the primary's).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// TLS (`rediss://`) needs a process-wide rustls crypto provider; install ours once.
fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RedisStore {
    /// Prepares a connection to `url`; nothing is sent until the first call.
    pub fn connect(url: &str, limits: &StoreLimits) -> Result<Self, StoreError> {
        if url.starts_with("rediss://") {
            ensure_crypto_provider();
        }
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Config(format!("bad Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(limits.connect_timeout))
            // Our own per-call timeout governs; the manager must not add retries on top.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Config(format!("cannot set up Redis connection: {e}")))?;
        Ok(Self { conn })
    }

    /// The shared connection, for commands of its own (the replica monitor's probes).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// One pipeline of `HMGET`s: one round trip for the whole batch.
    pub(crate) async fn read(
        &self,
        keys: &[KeyRead],
    ) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HMGET").arg(&k.key).arg(&k.fields);
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    /// One pipeline of `HSET` + `PEXPIRE` per key, in order, then one `HDEL` per delete:
    /// one round trip for the whole batch. Redis runs a connection's commands in order, so
    /// whatever prefix of the pipeline a crash lets through, it is a prefix.
    pub(crate) async fn write(
        &self,
        keys: Vec<KeyWrite>,
        deletes: Vec<KeyDelete>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for k in &keys {
            let cmd = pipe.cmd("HSET").arg(&k.key);
            for (field, bytes) in &k.fields {
                cmd.arg(field).arg(bytes.as_slice());
            }
            cmd.ignore();
            pipe.cmd("PEXPIRE")
                .arg(&k.key)
                .arg(k.ttl.as_millis() as u64)
                .ignore();
        }
        for d in deletes.iter().filter(|d| !d.fields.is_empty()) {
            pipe.cmd("HDEL").arg(&d.key).arg(&d.fields).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    /// `HGETALL`: every field of one key.
    pub(crate) async fn read_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// `HDEL`: removes some fields of one key.
    pub(crate) async fn delete_fields(
        &self,
        key: &str,
        fields: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HDEL")
            .arg(key)
            .arg(fields)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
