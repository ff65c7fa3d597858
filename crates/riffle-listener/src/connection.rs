//! One accepted connection, from its TLS handshake (if any) to its close: served as HTTP/1.1
//! with keep-alive by hyper, the peer's address put in every request's extensions, counted
//! in the listener's metrics, and watched for graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt;

use crate::{ListenerMetrics, Tls};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What every connection of one listener shares.
pub(crate) struct Connection {
    pub(crate) app: axum::Router,
    pub(crate) http: hyper::server::conn::http1::Builder,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) metrics: ListenerMetrics,
}

/// Serves one connection to its end. `_permit` is its place under the connection cap, given
/// back when this returns (or is aborted).
pub(crate) async fn run(
    shared: Arc<Connection>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    _permit: OwnedSemaphorePermit,
) {
    let _open = shared.metrics.open_guard();
    // Responses are written whole by hyper; Nagle would only delay their last segment.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
    }
    match &shared.tls {
        None => serve_http(&shared, stream, peer, watcher).await,
        Some(tls) => {
            let handshake = handshake(tls, stream);
            match tokio::time::timeout(shared.tls_handshake_timeout, handshake).await {
                Ok(Ok(stream)) => serve_http(&shared, stream, peer, watcher).await,
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

/// The server side of a TLS handshake. A client whose first byte is not a TLS handshake
/// record (plain HTTP sent to a TLS port) is closed without a byte written: rustls would
/// answer it with an alert, which such a client would only misread.
async fn handshake(
    tls: &Tls,
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
    tls.acceptor().accept(stream).await
}

async fn serve_http<I>(shared: &Connection, io: I, peer: SocketAddr, watcher: Watcher)
where
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
    let conn = shared
        .http
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    match watcher.watch(conn).await {
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
