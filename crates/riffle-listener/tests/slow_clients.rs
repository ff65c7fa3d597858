//! Slow clients cannot hold a listener: 3,000 connections that send half a request head and
//! stop are all closed by the header-read timeout, while a normal client is served without an
//! error the whole time.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, read_until_closed, Server};
use riffle_listener::Limits;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 3_000;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Room for a loaded two-core machine between the timer firing and the close being seen.
const MARGIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_closed_and_others_are_served() {
    // Both ends of 3,000 connections live in this process.
    let nofile = riffle_listener::raise_nofile_limit().expect("raise NOFILE");
    assert!(
        nofile >= 2 * SLOW_CLIENTS as u64 + 200,
        "this test needs {} descriptors; the hard limit allows {nofile}",
        2 * SLOW_CLIENTS + 200
    );
    let server = Server::start(
        Limits {
            header_read_timeout: HEADER_TIMEOUT,
            max_connections: SLOW_CLIENTS + 100,
            ..Limits::default()
        },
        None,
    )
    .await;
    let addr = server.addr;

    // A normal client keeps asking throughout, over a pooled keep-alive connection.
    let stop_normal = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let normal = tokio::spawn({
        let stop = std::sync::Arc::clone(&stop_normal);
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let (mut ok, mut errors) = (0_u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.get(format!("http://{addr}/")).send().await {
                    Ok(response) if response.status() == 200 => ok += 1,
                    Ok(response) => errors.push(format!("status {}", response.status())),
                    Err(error) => errors.push(error.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, errors)
        }
    });

    // Each slow client: connect, send half a head, and watch for the server closing it.
    let mut watchers = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write half a head");
        let opened = Instant::now();
        watchers.push(tokio::spawn(async move {
            let deadline = opened + HEADER_TIMEOUT + MARGIN;
            let outcome = read_until_closed(&mut stream, deadline).await;
            (outcome, opened.elapsed())
        }));
    }

    let mut still_open = 0;
    let mut answered = 0;
    let mut fastest = Duration::MAX;
    for watcher in watchers {
        let (outcome, took) = watcher.await.expect("watcher");
        match outcome {
            Ok(bytes) if bytes.is_empty() => fastest = fastest.min(took),
            Ok(_) => answered += 1,
            Err(_) => still_open += 1,
        }
    }
    stop_normal.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, errors) = normal.await.expect("normal client");

    assert_eq!(
        still_open,
        0,
        "connections still open {:?} after they sent half a head",
        HEADER_TIMEOUT + MARGIN
    );
    assert_eq!(
        answered, 0,
        "a half head must get no response, only a close"
    );
    // The server's timer starts when it accepts, a little before the client's clock here.
    assert!(
        fastest >= HEADER_TIMEOUT - Duration::from_millis(500),
        "one was closed after {fastest:?}, well before the header timeout"
    );
    assert!(
        errors.is_empty(),
        "the normal client saw errors: {errors:?}"
    );
    assert!(ok >= 10, "the normal client got only {ok} answers");
    eventually("a header timeout for each slow client", || {
        server.metrics.snapshot().header_timeouts >= SLOW_CLIENTS as u64
    })
    .await;
}
