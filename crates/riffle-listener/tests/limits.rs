//! The listener's limits on real sockets: an idle keep-alive connection is closed by the
//! header-read timer, an oversized head is answered 431, the connection cap holds an extra
//! client until a place frees up, and handlers see the peer's address.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, read_until_closed, Client, Server};
use riffle_listener::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_by_the_header_timeout() {
    let timeout = Duration::from_secs(2);
    let server = Server::start(
        Limits {
            header_read_timeout: timeout,
            ..Limits::default()
        },
        None,
    )
    .await;
    let mut client = Client::connect(server.addr).await;
    // Two requests on the one connection: the timer restarts for each head, and the second
    // comes after a pause longer than half the timeout, so a timer that ran from the
    // connection's start (rather than from each wait) would have cut it off.
    assert_eq!(client.get("/").await.expect("first").0, 200);
    tokio::time::sleep(timeout * 3 / 4).await;
    assert_eq!(client.get("/").await.expect("second").0, 200);
    let idle_since = Instant::now();

    // Then nothing: the server must close it, and not long before the timeout.
    let closed = tokio::time::timeout(timeout + Duration::from_secs(2), &mut client.closed).await;
    let idle = idle_since.elapsed();
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection still open after {idle:?}"
    );
    assert!(
        idle >= timeout - Duration::from_millis(500),
        "closed after {idle:?} idle, before the header timeout of {timeout:?}"
    );
    eventually("1 header timeout", || {
        server.metrics.snapshot().header_timeouts == 1
    })
    .await;
}

/// Sends `head` on a new connection and reads the answer until the server closes.
async fn send_raw(addr: std::net::SocketAddr, head: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = match read_until_closed(&mut stream, deadline).await {
        Ok(bytes) | Err(bytes) => bytes,
    };
    String::from_utf8_lossy(&answer).into_owned()
}

fn head_with_header_of(bytes: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(bytes)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_head_over_max_header_bytes_gets_431() {
    let limits = Limits::default();
    assert_eq!(limits.max_header_bytes, 16 * 1024);
    let server = Server::start(limits, None).await;

    let under = send_raw(server.addr, &head_with_header_of(15 * 1024)).await;
    assert!(
        under.starts_with("HTTP/1.1 200"),
        "15 KiB head: {under:.40}"
    );

    let over = send_raw(server.addr, &head_with_header_of(20 * 1024)).await;
    assert!(
        over.starts_with("HTTP/1.1 431"),
        "20 KiB head answered {over:.40}"
    );

    // A head that never ends is cut off at the limit too, not buffered on and on.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        .await
        .expect("write");
    let filler = vec![b'a'; 64 * 1024];
    // The server may close while we are still writing; that is the point.
    let _ = stream.write_all(&filler).await;
    let answer = match read_until_closed(&mut stream, Instant::now() + Duration::from_secs(5)).await
    {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => panic!("a 64 KiB unfinished head kept the connection open"),
    };
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "unfinished head answered {answer:.40}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_client_waits_for_a_place() {
    let server = Server::start(
        Limits {
            max_connections: 10,
            // Long enough that no idle connection is closed by the timer during the test.
            header_read_timeout: Duration::from_secs(30),
            ..Limits::default()
        },
        None,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut client = Client::connect(server.addr).await;
        assert_eq!(client.get("/").await.expect("within the cap").0, 200);
        held.push(client);
    }
    assert_eq!(server.metrics.snapshot().open, 10);

    // The eleventh connects (the kernel's backlog takes it) but is not answered...
    let mut eleventh = TcpStream::connect(server.addr).await.expect("connect");
    eleventh
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0_u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(1), eleventh.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the eleventh connection was answered at the cap: {early:?}"
    );
    let counted = server.metrics.snapshot();
    assert_eq!(counted.open, 10);
    assert!(counted.waited_at_cap >= 1, "{counted:?}");

    // ...until one of the ten goes away.
    let gone = held.pop().expect("a held client");
    gone.closed.abort();
    drop(gone);
    let answer =
        match read_until_closed(&mut eleventh, Instant::now() + Duration::from_secs(5)).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(bytes) => panic!(
                "not answered 5 s after a place freed: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        };
    assert!(answer.starts_with("HTTP/1.1 200"), "answered {answer:.40}");

    // The nine still held were never disturbed.
    for client in &mut held {
        assert_eq!(client.get("/").await.expect("a held client").0, 200);
    }
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let server = Server::start(Limits::default(), None).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let local = stream.local_addr().expect("local addr");
    let mut client = Client::over(stream).await;
    let (status, body) = client.get("/peer").await.expect("peer");
    assert_eq!(status, 200);
    assert_eq!(body, local.to_string());
}
