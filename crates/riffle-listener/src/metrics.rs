//! A listener's own metrics: connections open, accepted, waited for at the cap, closed by
//! the header-read timeout, and TLS handshakes that failed. The owner registers them into its
//! own registry under a prefix of its choosing; no labels, so each listener is one set.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The metrics of one listener. Cheap to clone: clones share the same values, so the owner
/// keeps one to register and hands another to [`crate::Listener::metrics`].
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// let metrics = riffle_listener::ListenerMetrics::default();
/// metrics.register(registry.sub_registry_with_prefix("serve_listener"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    pub(crate) open: Gauge,
    pub(crate) accepted: Counter,
    pub(crate) waited_at_cap: Counter,
    pub(crate) header_timeouts: Counter,
    pub(crate) tls_handshakes_failed: Counter,
    pub(crate) accept_errors: Counter,
}

/// The values of a [`ListenerMetrics`] at one moment, for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Connections open now (TLS handshakes in progress included).
    pub open: i64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Times the accept loop found `max_connections` open and waited for one to close.
    pub waited_at_cap: u64,
    /// Connections closed because no complete request head arrived within
    /// `header_read_timeout`: slow clients and idle keep-alive connections alike (hyper
    /// reports both the same way). On HTTP/2: connections that completed no request within
    /// it, and connections sent a GOAWAY after no stream was open for as long.
    pub header_timeouts: u64,
    /// TLS handshakes that failed or timed out, plain-text clients on a TLS port included.
    pub tls_handshakes_failed: u64,
    /// `accept` calls that failed (out of descriptors, or a connection reset before it was
    /// accepted).
    pub accept_errors: u64,
}

impl ListenerMetrics {
    /// Registers every metric into `registry` (usually a sub-registry with the owner's
    /// prefix, e.g. `serve_listener`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_open",
            "Connections open on this listener, TLS handshakes included",
            self.open.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted",
            self.accepted.clone(),
        );
        registry.register(
            "connections_waited_at_cap",
            "Times the listener had max_connections open and stopped accepting until one closed",
            self.waited_at_cap.clone(),
        );
        registry.register(
            "connections_header_timeout",
            "Connections closed because no complete request head arrived within header_read_timeout (slow or idle clients; on HTTP/2, no stream open for as long)",
            self.header_timeouts.clone(),
        );
        registry.register(
            "tls_handshakes_failed",
            "TLS handshakes that failed or timed out, plain-text clients included",
            self.tls_handshakes_failed.clone(),
        );
        registry.register(
            "accept_errors",
            "accept() calls that failed",
            self.accept_errors.clone(),
        );
    }

    /// The values now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            open: self.open.get(),
            accepted: self.accepted.get(),
            waited_at_cap: self.waited_at_cap.get(),
            header_timeouts: self.header_timeouts.get(),
            tls_handshakes_failed: self.tls_handshakes_failed.get(),
            accept_errors: self.accept_errors.get(),
        }
    }

    /// Counts a connection open until the returned guard is dropped, so a connection task
    /// that ends any way at all (error, panic, abort at shutdown) is no longer counted.
    pub(crate) fn open_guard(&self) -> OpenGuard {
        self.open.inc();
        OpenGuard(self.open.clone())
    }
}

/// See [`ListenerMetrics::open_guard`].
pub(crate) struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
