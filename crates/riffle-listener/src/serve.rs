//! The accept loop: a connection is accepted only while fewer than `max_connections` are
//! open, each is served on its own task (see `connection.rs`) in the listener's
//! [`Protocol`], and shutdown stops accepting, tells every connection to finish (HTTP/1:
//! close after the response in flight; HTTP/2: GOAWAY), lets requests in flight finish
//! within `shutdown_grace`, then drops what is left.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connection::{self, Connection, Http};
use crate::http2::Http2;
use crate::{Limits, ListenerMetrics, Tls};

/// How long the loop pauses after an `accept` error that is not the peer's doing (out of
/// descriptors): retrying at once would spin a core while nothing can be accepted anyway.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The HTTP version a listener speaks. Each listener speaks one: an HTTP/2 listener is for
/// clients that know they speak HTTP/2 (gRPC's), not a browser's upgrade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive; over TLS, ALPN `http/1.1`. The default.
    #[default]
    Http1,
    /// HTTP/2: with prior knowledge on a plain connection (`h2c`, as gRPC clients do), ALPN
    /// `h2` over TLS. See [`Limits`] for how its limits apply.
    Http2,
}

/// One listening socket and how it serves: limits, protocol, TLS or not, and where it
/// counts. Build it with [`Listener::new`], set what differs from the defaults, then
/// [`Listener::serve`].
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let socket = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// riffle_listener::Listener::new(socket)
///     .serve(app, async { let _ = tokio::signal::ctrl_c().await; })
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    limits: Limits,
    protocol: Protocol,
    tls: Option<Arc<Tls>>,
    metrics: ListenerMetrics,
}

impl Listener {
    /// A listener on `socket` with [`Limits::default`], plain HTTP/1.1, and metrics of its
    /// own.
    #[must_use]
    pub fn new(socket: TcpListener) -> Self {
        Self {
            socket,
            limits: Limits::default(),
            protocol: Protocol::default(),
            tls: None,
            metrics: ListenerMetrics::default(),
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Speaks `protocol` (HTTP/1.1 unless told otherwise).
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Serves TLS (with `Some`) or plain HTTP (with `None`).
    #[must_use]
    pub fn tls(mut self, tls: Option<Arc<Tls>>) -> Self {
        self.tls = tls;
        self
    }

    /// Counts into `metrics` (a clone of the one the owner registered).
    #[must_use]
    pub fn metrics(mut self, metrics: ListenerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    /// The socket's error, if it has none.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves `app` until `shutdown` completes, then shuts down gracefully: the socket is
    /// closed (new connections are refused), idle connections are closed, requests in flight
    /// finish and their connections close after the response (an HTTP/2 connection is sent a
    /// GOAWAY and closes when its streams have ended), and whatever is still open after
    /// [`Limits::shutdown_grace`] is dropped. Returns once every connection is gone.
    ///
    /// Handlers can read the peer's address as `axum::extract::ConnectInfo<SocketAddr>`.
    /// HTTP upgrades (WebSockets) are not offered.
    ///
    /// # Errors
    /// `InvalidInput` if the limits cannot work ([`Limits::validate`]). Failures of single
    /// connections, or of `accept` itself, are counted and logged, never returned.
    pub async fn serve<F>(self, app: axum::Router, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            socket,
            limits,
            protocol,
            tls,
            metrics,
        } = self;
        limits
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

        let http = match protocol {
            Protocol::Http1 => {
                let mut http1 = hyper::server::conn::http1::Builder::new();
                http1
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .max_header_size(limits.max_header_bytes)
                    .keep_alive(true);
                Http::One(http1)
            }
            Protocol::Http2 => Http::Two(Http2::new(&limits)),
        };
        let shared = Arc::new(Connection {
            app,
            http,
            tls,
            tls_handshake_timeout: limits.tls_handshake_timeout,
            metrics: metrics.clone(),
        });

        // One permit per open connection, taken before `accept`: at the cap the loop stops
        // accepting, so new clients wait in the kernel's backlog instead of costing us a
        // descriptor and a task each. The permit travels with the connection's task.
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        // Each connection holds a receiver until it ends: a send tells them all to finish,
        // and the sender's `closed` is when the last is gone.
        let (stopping, _) = watch::channel(());
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);

        loop {
            // Reap finished connection tasks so the set holds only live ones. A task ends in
            // a panic only if the app panicked (axum catches nothing by itself): its
            // connection is gone, the listener goes on, and the owner should hear of it.
            while let Some(ended) = tasks.try_join_next() {
                if let Err(error) = ended {
                    if error.is_panic() {
                        tracing::error!(%error, "a connection's task panicked; its connection was dropped");
                    }
                }
            }

            let permit = match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    metrics.waited_at_cap.inc();
                    tracing::debug!(
                        max_connections = limits.max_connections,
                        "connection cap reached; accepting again when one closes"
                    );
                    tokio::select! {
                        permit = Arc::clone(&permits).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            // The semaphore is never closed; stop serving if it somehow is.
                            Err(_) => break,
                        },
                        () = &mut shutdown => break,
                    }
                }
            };
            let accepted = tokio::select! {
                accepted = socket.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    metrics.accept_errors.inc();
                    if !is_peer_error(&error) {
                        tracing::warn!(%error, "accept failed; pausing before the next");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            };
            metrics.accepted.inc();
            // Subscribed before the task starts, so a shutdown signalled while it is still
            // shaking hands is seen as soon as it starts serving HTTP.
            let watcher = stopping.subscribe();
            tasks.spawn(connection::run(
                Arc::clone(&shared),
                stream,
                peer,
                watcher,
                permit,
            ));
        }

        // Stop accepting first: from here a connect is refused instead of queued.
        drop(socket);
        tracing::info!(
            open = tasks.len(),
            "listener shutting down; letting requests in flight finish"
        );
        // No receiver left means no connection to tell, which is not an error.
        let _ = stopping.send(());
        if tokio::time::timeout(limits.shutdown_grace, stopping.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?limits.shutdown_grace,
                open = tasks.len(),
                "connections still open after the shutdown grace; dropping them"
            );
        }
        // Aborts whatever is left and waits until it is gone, so no connection outlives
        // the call (and its descriptor is closed when this returns).
        tasks.shutdown().await;
        Ok(())
    }
}

/// Serves `app` on `listener` until `shutdown` completes: [`Listener`] in one call, for
/// owners that do not need its metrics.
///
/// # Errors
/// See [`Listener::serve`].
pub async fn serve<F>(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    Listener::new(listener)
        .limits(limits)
        .tls(tls)
        .serve(app, shutdown)
        .await
}

/// Errors of one would-be connection (reset or aborted before we took it): nothing is wrong
/// with the listener, so the next accept follows at once.
fn is_peer_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
