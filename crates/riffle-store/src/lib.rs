//! The online store: where served feature rows live, and how they are laid out.
//!
//! - [`layout`]: the documented key layout (`docs/storage-layout.md`): one Redis hash per
//!   entity, hash-tagged so all of an entity's data sits in one cluster slot, one field per
//!   feature group.
//! - [`codec`]: the binary encoding of one group's row (typed values, event time, computed-at).
//! - [`OnlineStore`]: batched multi-entity reads and writes, one round trip per batch, behind
//!   a per-call timeout and a bound on calls in flight that fails fast instead of queueing
//!   ([`StoreLimits`]). Its typed reads and writes are [`EntityRead`], [`RowRead`],
//!   [`RowWrite`] and [`StateWrite`].
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
//! Inside, arrows go one way: `store.rs` (the API) uses `backend.rs` (the enum dispatch to
//! the backend in use) and [`replicas`], which use the backends; the backends use
//! `key_ops.rs` (the operations on one key they understand), `limits.rs` and `error.rs`,
//! and never the API.
//!
//! The store knows the registry only to encode and decode rows; it never decides what to
//! serve: freshness, fallbacks and statuses belong to `riffle-serve`.
#![forbid(unsafe_code)]

mod backend;
pub mod codec;
pub mod embedded;
mod error;
mod key_ops;
pub mod layout;
mod limits;
pub mod meta;
pub mod redis_backend;
pub mod redis_cluster;
pub mod replicas;
mod rows;
mod store;
mod url;
pub mod watermark;

pub use codec::{DecodeError, GroupRow};
pub use error::StoreError;
pub use limits::StoreLimits;
pub use meta::{MetaChange, MetaChanges};
pub use replicas::{ReadAnswer, ReadNode, ReplicaStatus};
pub use rows::{EntityRead, RowRead, RowWrite, StateWrite};
pub use store::{OnlineStore, StoreInfo};
pub use url::{ClusterUrl, StoreUrl, UrlError};
