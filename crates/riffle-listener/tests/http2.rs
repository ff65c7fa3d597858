//! An HTTP/2 listener on real sockets: prior-knowledge requests are served (at once on one
//! connection, with the peer's address), an HTTP/1.1 client gets no answer, a client that
//! sends nothing or only the preface is closed after the header-read timeout, an idle
//! connection is closed after it while a long request is not, a header block over
//! `max_header_bytes` is answered 431, the connection cap holds, and shutdown lets a request
//! in flight finish while it closes an idle connection at once. TLS with ALPN `h2` is in
//! `tls.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, read_until_closed, Client, H2Client, Server, SLOW};
use riffle_listener::{Limits, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn start(limits: Limits) -> Server {
    Server::start_speaking(Protocol::Http2, limits, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prior_knowledge_requests_are_served_at_once_on_one_connection() {
    let server = start(Limits::default()).await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let local = tcp.local_addr().expect("local addr");
    let mut client = H2Client::over(tcp).await;
    assert_eq!(
        client.get("/").await.expect("GET /"),
        (200, "ok".to_owned())
    );
    assert_eq!(
        client.get("/peer").await.expect("GET /peer"),
        (200, local.to_string())
    );

    // Two slow requests on the one connection take one SLOW, not two.
    let (mut first, mut second) = (client.sender.clone(), client.sender.clone());
    let started = Instant::now();
    let (a, b) = tokio::join!(
        H2Client::get_with(&mut first, "/slow", &[]),
        H2Client::get_with(&mut second, "/slow", &[]),
    );
    assert_eq!(a.expect("first /slow"), (200, "done".to_owned()));
    assert_eq!(b.expect("second /slow"), (200, "done".to_owned()));
    assert!(
        started.elapsed() < SLOW * 2 - Duration::from_millis(300),
        "two streams took {:?}: not served at once",
        started.elapsed()
    );
    assert_eq!(server.metrics.snapshot().accepted, 1);

    // The listener speaks one protocol: HTTP/1.1 gets no answer.
    let mut http1 = Client::connect(server.addr).await;
    assert!(http1.get("/").await.is_err(), "HTTP/1.1 answered on h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_secs(2);
    let server = start(Limits {
        header_read_timeout: timeout,
        ..Limits::default()
    })
    .await;

    // Connects and sends nothing; then one that sends the preface and nothing more.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut prefaced = TcpStream::connect(server.addr).await.expect("connect");
    prefaced.write_all(PREFACE).await.expect("write preface");
    let opened = Instant::now();
    for (what, stream) in [("silent", &mut silent), ("prefaced", &mut prefaced)] {
        let closed = read_until_closed(stream, opened + timeout + Duration::from_secs(2)).await;
        assert!(closed.is_ok(), "a {what} client still open");
    }
    assert!(
        opened.elapsed() >= timeout - Duration::from_millis(300),
        "closed after {:?}, before the header timeout",
        opened.elapsed()
    );
    eventually("2 header timeouts", || {
        server.metrics.snapshot().header_timeouts == 2
    })
    .await;

    // Served, then idle: closed (with a GOAWAY, which hyper's client takes as a clean end).
    let mut client = H2Client::connect(server.addr).await;
    assert_eq!(client.get("/").await.expect("GET /").0, 200);
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(timeout + Duration::from_secs(2), &mut client.closed).await;
    let idle = idle_since.elapsed();
    let ended = closed.unwrap_or_else(|_| panic!("an idle connection still open after {idle:?}"));
    assert!(ended.expect("join").is_ok(), "not a clean close");
    assert!(
        idle >= timeout - Duration::from_millis(500),
        "closed after {idle:?} idle, before the header timeout of {timeout:?}"
    );
    eventually("3 header timeouts", || {
        server.metrics.snapshot().header_timeouts == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_header_timeout_is_not_cut_off() {
    let timeout = Duration::from_secs(1);
    assert!(SLOW > timeout * 3 / 2);
    let server = start(Limits {
        header_read_timeout: timeout,
        ..Limits::default()
    })
    .await;
    let mut client = H2Client::connect(server.addr).await;
    assert_eq!(
        client.get("/slow").await.expect("GET /slow"),
        (200, "done".to_owned())
    );
    assert_eq!(server.metrics.snapshot().header_timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_over_max_header_bytes_is_answered_431() {
    let server = start(Limits {
        max_header_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let mut client = H2Client::connect(server.addr).await;
    let big = "x".repeat(8000);
    let answer = H2Client::get_with(&mut client.sender, "/", &[("x-big", &big)]).await;
    assert_eq!(answer.expect("an answer").0, 431);
    // Only that stream was refused: the connection goes on.
    assert_eq!(client.get("/").await.expect("GET /").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_an_extra_client_until_one_closes() {
    let server = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let mut first = H2Client::connect(server.addr).await;
    assert_eq!(first.get("/").await.expect("first").0, 200);

    let mut second = H2Client::connect(server.addr).await;
    let mut waiting = tokio::spawn(async move { second.get("/").await });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut waiting)
            .await
            .is_err(),
        "a second connection was served at the cap"
    );
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("never served after the first closed")
        .expect("join");
    assert_eq!(answer.expect("second").0, 200);
    assert!(server.metrics.snapshot().waited_at_cap >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_request_in_flight_and_closes_an_idle_connection() {
    let mut server = start(Limits::default()).await;
    let mut idle = H2Client::connect(server.addr).await;
    assert_eq!(idle.get("/").await.expect("idle's request").0, 200);
    let mut busy = H2Client::connect(server.addr).await;
    let in_flight = tokio::spawn(async move { busy.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await; // the request is in the handler
    let stopping = Instant::now();
    server.stop();

    tokio::time::timeout(Duration::from_secs(3), &mut idle.closed)
        .await
        .expect("the idle connection was not closed by shutdown")
        .expect("join")
        .expect("clean close");
    let answer = in_flight.await.expect("join");
    assert_eq!(
        answer.expect("the request in flight"),
        (200, "done".to_owned())
    );
    tokio::time::timeout(SLOW + Duration::from_secs(3), &mut server.task)
        .await
        .expect("serve did not return after its last request")
        .expect("join")
        .expect("serve");
    assert!(stopping.elapsed() >= SLOW / 2);
    assert_eq!(server.metrics.snapshot().open, 0);
}
