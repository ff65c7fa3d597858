//! One accepted connection, from its TLS handshake (if any) to its close: served as HTTP/1.1
//! with keep-alive by hyper, or as HTTP/2 (see `http2.rs`), the peer's address put in every
//! request's extensions, counted in the listener's metrics, and told to finish when the
//! listener shuts down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tower::ServiceExt;

use crate::http2::Http2;
use crate::{ListenerMetrics, Protocol, Tls};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What every connection of one listener shares.
pub(crate) struct Connection {
    pub(crate) app: axum::Router,
    pub(crate) http: Http,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) metrics: ListenerMetrics,
}

/// How a listener's connections speak HTTP, configured once from its limits.
pub(crate) enum Http {
    One(hyper::server::conn::http1::Builder),
    Two(Http2),
}

impl Http {
    fn protocol(&self) -> Protocol {
        match self {
            Self::One(_) => Protocol::Http1,
            Self::Two(_) => Protocol::Http2,
        }
    }
}

/// Serves one connection to its end. `stopping` changes when the listener shuts down (the
/// connection holds it until it ends, which is how the listener knows it has); `_permit` is
/// its place under the connection cap, given back when this returns (or is aborted).
pub(crate) async fn run(
    shared: Arc<Connection>,
    stream: TcpStream,
    peer: SocketAddr,
    stopping: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = shared.metrics.open_guard();
    // Responses are written whole by hyper; Nagle would only delay their last segment.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
    }
    match &shared.tls {
        None => serve_http(&shared, stream, peer, stopping).await,
        Some(tls) => {
            let handshake = handshake(tls, shared.http.protocol(), stream);
            match tokio::time::timeout(shared.tls_handshake_timeout, handshake).await {
                Ok(Ok(stream)) => serve_http(&shared, stream, peer, stopping).await,
                Ok(Err(error)) => {
                    shared.metrics.tls_handshakes_failed.inc();
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_elapsed) => {
                    shared.metrics.tls_handshakes_failed.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

/// The server side of a TLS handshake, offering `protocol` by ALPN. A client whose first
/// byte is not a TLS handshake record (plain HTTP sent to a TLS port) is closed without a
/// byte written: rustls would answer it with an alert, which such a client would only
/// misread.
async fn handshake(
    tls: &Tls,
    protocol: Protocol,
    stream: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0_u8; 1];
    let read = stream.peek(&mut first).await?;
    if read == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before the TLS handshake",
        ));
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a TLS client (plain text on a TLS port?)",
        ));
    }
    tls.acceptor(protocol).accept(stream).await
}

async fn serve_http<I>(
    shared: &Connection,
    io: I,
    peer: SocketAddr,
    mut stopping: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The same extension axum's `into_make_service_with_connect_info` inserts, so handlers
    // extract `ConnectInfo<SocketAddr>` as they would under `axum::serve`.
    let app = shared
        .app
        .clone()
        .map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
    let http1 = match &shared.http {
        Http::One(http1) => http1,
        Http::Two(http2) => return http2.serve(io, app, peer, stopping, &shared.metrics).await,
    };
    let conn = http1.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        // Closes an idle connection at once and one with a request in flight after its
        // response. The receiver is kept until the connection has ended.
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match ended {
        Ok(()) => {}
        // hyper reports its header-read timer as a timeout; nothing else on a server
        // connection is (the app's own timeouts are responses, not connection errors).
        Err(error) if error.is_timeout() => {
            shared.metrics.header_timeouts.inc();
            tracing::debug!(%peer, "closed: no complete request head within header_read_timeout");
        }
        Err(error) => tracing::debug!(%peer, %error, "connection ended with an error"),
    }
}
