//! HTTP/2 on one connection: hyper's server connection configured from the listener's
//! limits (the header-list cap from `max_header_bytes`, streams per connection, keep-alive
//! pings), streams counted from a request's complete head to the end of its response body,
//! so that a connection with none open for `header_read_timeout` is closed — dropped if it
//! never completed a request (a client that sends nothing, or not even the preface),
//! closed with a GOAWAY otherwise —, and graceful shutdown by GOAWAY.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use crate::{Limits, ListenerMetrics};

/// The HTTP/2 side of a listener: hyper's builder and the idle timeout.
pub(crate) struct Http2 {
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    idle_timeout: Duration,
}

/// A connection's streams: how many are open now, and how many were ever opened.
#[derive(Debug, Clone, Copy, Default)]
struct Streams {
    open: usize,
    opened: u64,
}

impl Http2 {
    pub(crate) fn new(limits: &Limits) -> Self {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            // hyper's own check of each decoded header block, answered 431.
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .keep_alive_interval(limits.http2_keep_alive_interval)
            .keep_alive_timeout(limits.http2_keep_alive_timeout);
        Self {
            builder,
            idle_timeout: limits.header_read_timeout,
        }
    }

    /// Serves `app` on `io` until the connection ends: the client closes it, it is idle past
    /// the timeout, a keep-alive ping goes unanswered, or `stopping` changes and its streams
    /// have ended.
    pub(crate) async fn serve<I, S>(
        &self,
        io: I,
        app: S,
        peer: SocketAddr,
        mut stopping: watch::Receiver<()>,
        metrics: &ListenerMetrics,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let (streams, watched) = watch::channel(Streams::default());
        let streams = Arc::new(streams);
        // Each stream is counted from the call (hyper calls the service once the request's
        // head is complete) until its response body is dropped: sent whole, or reset.
        let app = app.map_future(move |response| {
            let stream = StreamGuard::open(&streams);
            async move {
                response.await.map(|response| {
                    response.map(|body| CountedBody {
                        body,
                        _stream: stream,
                    })
                })
            }
        });
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
        let mut conn = std::pin::pin!(conn);
        let mut idle = std::pin::pin!(idle_for(watched.clone(), self.idle_timeout));
        let (mut idle_seen, mut closing) = (false, false);
        let ended = loop {
            tokio::select! {
                ended = conn.as_mut() => break ended,
                _ = stopping.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = idle.as_mut(), if !idle_seen => {
                    idle_seen = true;
                    metrics.header_timeouts.inc();
                    if watched.borrow().opened == 0 {
                        // No request at all (perhaps not even the preface, when hyper's
                        // GOAWAY would wait for it): nothing to finish.
                        tracing::debug!(%peer, "closed: no HTTP/2 request within header_read_timeout");
                        return;
                    }
                    tracing::debug!(%peer, "idle HTTP/2 connection: GOAWAY");
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        };
        if let Err(error) = ended {
            tracing::debug!(%peer, %error, "HTTP/2 connection ended with an error");
        }
    }
}

/// Completes once no stream has been open for `timeout` (and never if the connection's
/// service, which holds the sender, is gone: the connection is ending anyway).
async fn idle_for(mut streams: watch::Receiver<Streams>, timeout: Duration) {
    loop {
        if streams.wait_for(|s| s.open == 0).await.is_err() {
            return std::future::pending().await;
        }
        match tokio::time::timeout(timeout, streams.changed()).await {
            Err(_elapsed) => return,
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => return std::future::pending().await,
        }
    }
}

/// One open stream, counted until dropped.
struct StreamGuard(Arc<watch::Sender<Streams>>);

impl StreamGuard {
    fn open(streams: &Arc<watch::Sender<Streams>>) -> Self {
        streams.send_modify(|s| {
            s.open += 1;
            s.opened += 1;
        });
        Self(Arc::clone(streams))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.send_modify(|s| s.open = s.open.saturating_sub(1));
    }
}

/// A response body that keeps its stream counted while hyper sends it.
struct CountedBody {
    body: Body,
    _stream: StreamGuard,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_no_stream_open_for_the_whole_timeout() {
        let (streams, watched) = watch::channel(Streams::default());
        let streams = Arc::new(streams);
        let timeout = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let stream = StreamGuard::open(&streams);
        let idle = tokio::spawn(idle_for(watched, timeout));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "idle while a stream was open");
        drop(stream);
        let closed = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let another = StreamGuard::open(&streams);
        drop(another); // activity restarts the timer
        idle.await.expect("join");
        assert!(started.elapsed() >= Duration::from_secs(45));
        assert!(closed.elapsed() >= Duration::from_secs(15));
        assert_eq!(streams.borrow().opened, 2);
    }
}
