//! How every Riffle HTTP listener accepts connections, so that none leaves a door open to slow
//! or hostile clients and every one can speak TLS. It replaces
//! `axum::serve(listener, app).with_graceful_shutdown(..)` (and, for gRPC, tonic's own
//! server) with the same job done under limits, in HTTP/1.1 or, as a [`Protocol`] option,
//! HTTP/2:
//!
//! - a client must send a complete request head within `header_read_timeout`, on every
//!   request of a keep-alive connection, and an idle keep-alive connection is closed by the
//!   same timer ([`Limits`] says why there is no separate idle timeout);
//! - at most `max_connections` are open at once (derived from the open-file limit, which
//!   [`raise_nofile_limit`] raises); at the cap the listener stops accepting until one
//!   closes;
//! - a request head over `max_header_bytes` is answered 431;
//! - on HTTP/2, a connection that completes no request within `header_read_timeout` is
//!   dropped, one with no stream open for as long is sent a GOAWAY, a connection opens at
//!   most `http2_max_concurrent_streams` at once, and a peer that stops answering keep-alive
//!   pings is dropped;
//! - with [`Tls`], a handshake must finish within `tls_handshake_timeout`, and a renewed
//!   certificate is picked up from its files without a restart or a dropped connection;
//! - shutdown stops accepting, lets requests in flight finish within `shutdown_grace`, and
//!   drops the rest;
//! - [`ListenerMetrics`] counts what happened, for the owner's registry.
//!
//! It owns the accept loop and the protocol choice (`serve.rs`), one connection's life
//! (`connection.rs`, with HTTP/2's streams, idle timer and GOAWAY in `http2.rs`), the limits
//! and open-file limit (`limits.rs`), TLS configuration and reloading (`tls.rs`) and the
//! metrics (`metrics.rs`). It knows nothing of Riffle's API: the owner passes an
//! `axum::Router` (a tonic service becomes one with `Routes::into_axum_router`), which can
//! read the peer's address as `ConnectInfo<SocketAddr>`.

mod connection;
mod http2;
mod limits;
mod metrics;
mod serve;
mod tls;

pub use limits::{default_max_connections, raise_nofile_limit, Limits, LimitsError};
pub use metrics::{ListenerMetrics, MetricsSnapshot};
pub use serve::{serve, Listener, Protocol};
pub use tls::{Tls, TlsError};
