//! The online store: where served feature rows live, and how they are laid out.
//!
//! - [`layout`]: the documented key layout (`docs/storage-layout.md`): one Redis hash per
//!   entity, hash-tagged so all of an entity's data sits in one cluster slot, one field per
//!   feature group.
//! - [`codec`]: the binary encoding of one group's row (typed values, event time, computed-at).
//! - [`OnlineStore`]: batched multi-entity reads and writes, one round trip per batch, behind
//!   a per-call timeout and a bound on calls in flight that fails fast instead of queueing.
//! - [`meta`]: pipeline metadata beside the rows (reserved keys `<project>:~meta:<name>`).
//! - [`watermark`]: the event-time watermarks ingest publishes there (per worker and per
//!   Kafka partition), and the one reader that turns them into a source's watermark for
//!   `riffle serve`, `riffle lag` and `riffle check`.
//! - Backends: [`embedded`] (in-process, persisted to a local file; the default) and
//!   [`redis`](crate::redis_backend) (standalone Redis, TLS, AUTH/ACL) and
//!   [`redis_cluster`] (Redis Cluster: per-node pipelines, redirects, per-node breakers).
//! - [`replicas`]: serving reads from the nearest healthy read replica of a Redis primary,
//!   with its replication lag measured by a heartbeat and a fallback to the primary.
//!
//! The store knows the registry only to encode and decode rows; it never decides what to
//! serve: freshness, fallbacks and statuses belong to `riffle-serve`.
#![forbid(unsafe_code)]

pub mod codec;
pub mod embedded;
mod error;
pub mod layout;
pub mod meta;
pub mod redis_backend;
pub mod redis_cluster;
pub mod replicas;
mod store;
mod url;
pub mod watermark;

pub use codec::{DecodeError, GroupRow};
pub use error::StoreError;
pub use replicas::{ReadAnswer, ReadNode, ReplicaStatus};
pub use store::{
    EntityRead, MetaChange, MetaChanges, OnlineStore, RowRead, RowWrite, StateWrite, StoreInfo,
    StoreLimits,
};
pub use url::{ClusterUrl, StoreUrl, UrlError};
