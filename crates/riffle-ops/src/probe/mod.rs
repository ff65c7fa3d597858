//! How the operator toolkit reads a running deployment, with one owner for each way in:
//!
//! - [`prom`]: the one reader of serve's `/metrics` (Prometheus text), for `riffle drill`'s
//!   verdict and `riffle check --connect`'s live items.
//! - [`keyspace`]: the one plain Redis client, every call under a deadline: key sampling by
//!   `SCAN` and their TTLs for `riffle check`, `MEMORY USAGE` for `riffle cost`,
//!   `CLIENT PAUSE` and the ids to drive for `riffle drill`.

pub mod keyspace;
pub mod prom;
