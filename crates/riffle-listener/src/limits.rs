//! What a listener allows a client: how long it may take to send a request head, how many
//! connections may be open at once, how large a head may be, how long a TLS handshake may
//! take, how long shutdown waits, and on an HTTP/2 listener how many streams a connection
//! may open and how often it is pinged. Also the process's open-file limit, which the default
//! connection cap is derived from, and the helper binaries call at start to raise it.

use std::io;
use std::time::Duration;

/// Descriptors kept back from the connection cap for everything else a process opens: store
/// connections, files, Kafka sockets, log files.
const NOFILE_RESERVE: u64 = 64;

/// The cap never falls below this, however low the open-file limit: a listener that admits
/// a handful of connections is an outage of its own.
const MIN_CONNECTIONS: u64 = 32;

/// The cap when the open-file limit is unlimited or absurdly high: each connection costs
/// memory too, and a cap that never binds protects nothing.
const MAX_DEFAULT_CONNECTIONS: u64 = 100_000;

/// The limits of one listener. Every field has a default ([`Limits::default`]); a caller sets
/// what its configuration says and keeps the rest:
/// `Limits { header_read_timeout: Duration::from_secs(5), ..Limits::default() }`.
///
/// # No separate idle timeout
///
/// hyper starts its header-read timer whenever a connection waits for a request head: on a
/// new connection, and on a keep-alive connection as soon as the previous response has been
/// written. A keep-alive connection with no request in progress is therefore closed
/// `header_read_timeout` after its last response; that *is* the idle timeout, and a separate
/// longer one could not be had from hyper without re-implementing its timer. What the timer
/// does not cover: a request body arriving slowly and a client that stops reading a response
/// (both are bounded by the application's own request timeout, if it has one, and by
/// [`Limits::shutdown_grace`] at shutdown).
///
/// # HTTP/2
///
/// On a [`crate::Protocol::Http2`] listener the same fields mean the same things, as far as
/// HTTP/2 allows: a connection that has not sent its client preface within
/// `header_read_timeout` is dropped without a byte written; one with no stream open for
/// `header_read_timeout` (idle, or still sending its first request's headers) is closed
/// with a GOAWAY, which lets a request racing it finish; `max_header_bytes` is the
/// connection's `SETTINGS_MAX_HEADER_LIST_SIZE` (a larger header block is refused, 431);
/// and a peer that does not answer a keep-alive ping within `http2_keep_alive_timeout` is
/// dropped, also in the middle of a long request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A client that has not sent a complete request head within this is disconnected,
    /// without a response. Applies to the first request of a connection and to every
    /// following one on a keep-alive connection, including the wait for it (see above).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Connections open at once on this listener (TLS handshakes included). At the cap the
    /// listener stops accepting until one closes; new clients wait in the kernel's accept
    /// backlog meanwhile. Default: [`default_max_connections`], read when
    /// [`Limits::default`] is called, so raise the open-file limit first
    /// ([`raise_nofile_limit`]). A process with several listeners derives each from the same
    /// open-file limit; set them explicitly if they must share it.
    pub max_connections: usize,
    /// The largest request head (request line and headers) accepted, in bytes. A larger one
    /// is answered `431 Request Header Fields Too Large` and the connection closed; hyper
    /// checks it while the head is still arriving, so a client cannot make the listener
    /// buffer more than this per connection. Default 16 KiB.
    pub max_header_bytes: usize,
    /// A TLS client that has not completed its handshake within this is disconnected.
    /// Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// At shutdown, how long requests in flight get to finish before their connections are
    /// dropped. Default 30 s.
    pub shutdown_grace: Duration,
    /// HTTP/2 only: requests (streams) one connection may have open at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`); the client waits for one to end before opening
    /// another. Default 100, the least RFC 9113 recommends.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 only: how often each connection is sent a keep-alive ping. Default 20 s.
    pub http2_keep_alive_interval: Duration,
    /// HTTP/2 only: a connection whose peer has not answered a ping within this is dropped
    /// (a peer gone without a close, or one that stopped reading). Default 20 s.
    pub http2_keep_alive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            max_header_bytes: 16 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            http2_max_concurrent_streams: 100,
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// A [`Limits`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A timeout of zero would close every connection before it could say anything (and a
    /// stream cap of zero would refuse every request).
    #[error("listener limits: {0} must be more than zero")]
    Zero(&'static str),
}

impl Limits {
    /// Checks that the limits can serve anything at all.
    ///
    /// # Errors
    /// [`LimitsError::Zero`] naming the first field that is zero (a zero grace is allowed:
    /// it means "drop connections at once").
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.header_read_timeout.is_zero() {
            return Err(LimitsError::Zero("header_read_timeout"));
        }
        if self.max_connections == 0 {
            return Err(LimitsError::Zero("max_connections"));
        }
        if self.max_header_bytes == 0 {
            return Err(LimitsError::Zero("max_header_bytes"));
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err(LimitsError::Zero("tls_handshake_timeout"));
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(LimitsError::Zero("http2_max_concurrent_streams"));
        }
        if self.http2_keep_alive_interval.is_zero() {
            return Err(LimitsError::Zero("http2_keep_alive_interval"));
        }
        if self.http2_keep_alive_timeout.is_zero() {
            return Err(LimitsError::Zero("http2_keep_alive_timeout"));
        }
        Ok(())
    }
}

/// The default connection cap: 80% of the process's soft open-file limit less a reserve of
/// 64 descriptors, at least 32 and at most 100,000. Falls back to a soft limit of 1,024 (the
/// usual default) if the limit cannot be read.
#[must_use]
pub fn default_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _hard)| soft);
    cap_for_nofile(soft)
}

fn cap_for_nofile(soft: u64) -> usize {
    let cap = (soft / 5 * 4)
        .saturating_sub(NOFILE_RESERVE)
        .clamp(MIN_CONNECTIONS, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Raises the process's soft open-file limit to its hard limit and returns the new soft
/// limit. Binaries call this once at start, before building their [`Limits`]: the soft limit
/// is often 1,024 while the hard one is far higher, and every connection costs a descriptor.
///
/// # Errors
/// The `getrlimit`/`setrlimit` error, if either fails.
pub fn raise_nofile_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_most_of_the_soft_limit() {
        assert_eq!(cap_for_nofile(1024), 752);
        assert_eq!(cap_for_nofile(65_536), 52_364);
        assert_eq!(cap_for_nofile(10), 32);
        assert_eq!(cap_for_nofile(u64::MAX), 100_000);
    }

    #[test]
    fn defaults_are_valid_and_zeroes_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let limits = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert_eq!(limits.validate(), Err(LimitsError::Zero("max_connections")));
    }
}
