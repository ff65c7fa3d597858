//! How every Riffle HTTP listener accepts connections, so that none leaves a door open to slow
//! or hostile clients and every one can speak TLS. It replaces
//! `axum::serve(listener, app).with_graceful_shutdown(..)` with the same job done under
//! limits:
//!
//! - a client must send a complete request head within `header_read_timeout`, on every
//!   request of a keep-alive connection, and an idle keep-alive connection is closed by the
//!   same timer ([`Limits`] says why there is no separate idle timeout);
//! - at most `max_connections` are open at once (derived from the open-file limit, which
//!   [`raise_nofile_limit`] raises); at the cap the listener stops accepting until one
//!   closes;
//! - a request head over `max_header_bytes` is answered 431;
//! - with [`Tls`], a handshake must finish within `tls_handshake_timeout`, and a renewed
//!   certificate is picked up from its files without a restart or a dropped connection;
//! - shutdown stops accepting, lets requests in flight finish within `shutdown_grace`, and
//!   drops the rest;
//! - [`ListenerMetrics`] counts what happened, for the owner's registry.
//!
//! It owns the accept loop (`serve.rs`), one connection's life (`connection.rs`), the limits
//! and open-file limit (`limits.rs`), TLS configuration and reloading (`tls.rs`) and the
//! metrics (`metrics.rs`). It knows nothing of Riffle's API: the owner passes an
//! `axum::Router`, which can read the peer's address as `ConnectInfo<SocketAddr>`.

mod connection;
mod limits;
mod metrics;
mod serve;
mod tls;

pub use limits::{default_max_connections, raise_nofile_limit, Limits, LimitsError};
pub use metrics::{ListenerMetrics, MetricsSnapshot};
pub use serve::{serve, Listener};
pub use tls::{Tls, TlsError};
