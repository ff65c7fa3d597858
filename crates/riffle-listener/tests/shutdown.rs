//! Graceful shutdown on real sockets: a request in flight when shutdown starts completes, an
//! idle connection is closed at once, the socket stops accepting, and a request that outlasts
//! the grace is dropped so shutdown ends within it.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server, SLOW};
use riffle_listener::Limits;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_completes_and_idle_connections_close() {
    let mut server = Server::start(Limits::default(), None).await;
    let mut idle = Client::connect(server.addr).await;
    assert_eq!(idle.get("/").await.expect("idle's request").0, 200);

    let mut busy = Client::connect(server.addr).await;
    let in_flight = tokio::spawn(async move { busy.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await; // the request is in the handler
    let stopping = Instant::now();
    server.stop();

    // The idle connection is closed at once, not after its 10 s header timeout.
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
    assert!(
        stopping.elapsed() >= SLOW / 2,
        "serve returned before the request in flight had finished"
    );
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the socket still accepts after shutdown"
    );
    assert_eq!(server.metrics.snapshot().open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_grace_is_dropped() {
    let grace = Duration::from_secs(1);
    let mut server = Server::start(
        Limits {
            shutdown_grace: grace,
            ..Limits::default()
        },
        None,
    )
    .await;
    let mut hung = Client::connect(server.addr).await;
    let in_flight = tokio::spawn(async move { hung.get("/hang").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    server.stop();

    tokio::time::timeout(grace + Duration::from_secs(3), &mut server.task)
        .await
        .expect("serve did not return after the grace")
        .expect("join")
        .expect("serve");
    assert!(stopping.elapsed() >= grace - Duration::from_millis(200));
    let answer = tokio::time::timeout(Duration::from_secs(3), in_flight)
        .await
        .expect("the hung request's connection was not dropped")
        .expect("join");
    assert!(answer.is_err(), "a dropped connection answered: {answer:?}");
    assert_eq!(server.metrics.snapshot().open, 0);
}
