//! What the listener's tests share: a server on a free loopback port running a small app, a
//! hyper client on one connection (plain or TLS; HTTP/1.1 or HTTP/2), and raw-socket helpers
//! for clients that misbehave on purpose.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use riffle_listener::{Limits, Listener, ListenerMetrics, Protocol, Tls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long `/slow` takes to answer.
pub const SLOW: Duration = Duration::from_secs(2);

/// `/` answers `ok`, `/slow` answers `done` after [`SLOW`], `/hang` answers after a minute,
/// `/peer` answers the peer address the listener handed the app.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "done"
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
}

/// A listener serving [`app`] on a free loopback port, until [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    pub metrics: ListenerMetrics,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(limits: Limits, tls: Option<Arc<Tls>>) -> Self {
        Self::start_speaking(Protocol::Http1, limits, tls).await
    }

    pub async fn start_speaking(protocol: Protocol, limits: Limits, tls: Option<Arc<Tls>>) -> Self {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("local addr");
        let metrics = ListenerMetrics::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = Listener::new(socket)
            .limits(limits)
            .protocol(protocol)
            .tls(tls)
            .metrics(metrics.clone());
        let task = tokio::spawn(listener.serve(app(), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    /// Starts the graceful shutdown; `task` ends when it has.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One HTTP/1.1 keep-alive connection through hyper's client. `closed` ends when the server
/// closes the connection.
pub struct Client {
    pub sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub closed: JoinHandle<Result<(), hyper::Error>>,
}

impl Client {
    pub async fn over<I>(io: I) -> Self
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .expect("client handshake");
        Self {
            sender,
            closed: tokio::spawn(conn),
        }
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.expect("connect")).await
    }

    /// GET `path`; the status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), hyper::Error> {
        self.sender.ready().await?;
        let request = hyper::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// One HTTP/2 connection through hyper's client (prior knowledge on a plain connection, or
/// over TLS that negotiated `h2`). `closed` ends when the server closes the connection.
pub struct H2Client {
    pub sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    pub closed: JoinHandle<Result<(), hyper::Error>>,
}

impl H2Client {
    pub async fn over<I>(io: I) -> Self
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("client handshake");
        Self {
            sender,
            closed: tokio::spawn(conn),
        }
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.expect("connect")).await
    }

    /// GET `path` with `headers`; the status and body. Requests on clones of `sender` run
    /// at once on the one connection.
    pub async fn get_with(
        sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), hyper::Error> {
        sender.ready().await?;
        let mut request = hyper::Request::get(format!("http://localhost{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).expect("request");
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// GET `path`; the status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), hyper::Error> {
        Self::get_with(&mut self.sender, path, &[]).await
    }
}

/// Reads until the peer closes (a read of 0 or an error such as a reset) or `deadline`
/// passes. `Ok(bytes read)` if closed in time, `Err(bytes read)` if still open at the
/// deadline.
pub async fn read_until_closed<R: AsyncRead + Unpin>(
    stream: &mut R,
    deadline: Instant,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await;
        match read {
            Err(_elapsed) => return Err(got),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits up to 3 s for `counted` to hold: a connection's counters are updated by its task
/// as it ends, which may be just after the client has seen the close.
pub async fn eventually(what: &str, mut counted: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !counted() {
        assert!(Instant::now() < deadline, "never counted: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
