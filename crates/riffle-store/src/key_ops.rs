//! The backend-neutral operations on one key that [`OnlineStore`](crate::OnlineStore) hands
//! its backends: read some fields, write some fields with the key's TTL, remove some fields.
//!
//! They are the whole vocabulary between the store and its backends (`embedded.rs`,
//! `redis_backend.rs`, `redis_cluster.rs`, `replicas.rs`), and depend on nothing of the
//! crate, so every arrow points here and none leaves.

use std::time::Duration;

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

impl KeyWrite {
    /// A write of no fields yet to `key`, which gets `ttl`.
    pub(crate) fn new(key: String, ttl: Duration) -> Self {
        Self {
            key,
            fields: Vec::new(),
            ttl,
        }
    }
}

/// Backend-neutral removal of some fields of one key (`HDEL`).
pub(crate) struct KeyDelete {
    pub key: String,
    pub fields: Vec<String>,
}
