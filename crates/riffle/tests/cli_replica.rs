//! The real `riffle serve --read-replica` over a real Redis primary and replica (fraud
//! example, rows loaded with `riffle load`) while the replica is SIGKILLed, or SIGSTOPped,
//! under steady reads: every request is answered with the real stored values (from the
//! primary after the failover), never an error or a default; the servers' own
//! `INFO commandstats` show which node served; once the replica is back, reads return to it.

mod common;

use std::io::{Read, Write};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fraud_config, http_get_status, TestCommand};
use riffle_testkit::RedisServer;
use serde_json::Value;

const USERS: usize = 200;

/// The real `account_age_days` of user `i` (the training default is 0).
fn age(i: usize) -> i64 {
    1000 + i as i64
}

fn load_profiles(store: &str) {
    let mut cmd = TestCommand::new();
    let mut csv = String::from("user_id,account_age_days,credit_score_bucket,is_premium\n");
    for i in 0..USERS {
        csv.push_str(&format!("u{i},{},{},{}\n", age(i), i % 10, i % 2 == 0));
    }
    let file = cmd.write("profiles.csv", &csv);
    cmd.args(["load", "--config"])
        .arg(fraud_config())
        .args(["--store", store, "--group", "user_profile"])
        .arg(file);
    cmd.expect_code(0);
}

/// Reads user `i`'s profile; panics on anything but a 200 with its real, fresh value.
fn ask(base: &str, i: usize) {
    let path = format!("/v1/features/user/u{i}?groups=user_profile");
    let (code, body) =
        http_get_status(base, &path).unwrap_or_else(|| panic!("no answer for u{i}: serve is down"));
    assert_eq!(code, 200, "u{i}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let group = &json["results"][0]["groups"][0];
    let feature = &group["features"]["account_age_days"];
    assert!(
        group["status"] == "fresh" && feature["value"].as_i64() == Some(age(i)),
        "u{i}: not its real value: {body}"
    );
}

/// `calls=` of `cmdstat_hmget` (the serving read) in `INFO commandstats`.
fn hmget_calls(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hmget:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn health(base: &str) -> Value {
    let (_, body) = http_get_status(base, "/health").expect("serve answers /health");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `/health` says reads go to `target`.
fn wait_target(base: &str, target: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(base);
        if h["store"]["read_target"] == target {
            return;
        }
        assert!(Instant::now() < deadline, "read target never {target}: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `riffle serve --store primary --read-replica replica --no-cache` and waits for it.
///
/// The fraud registry with one change: the store timeout is 250 ms instead of the lesson's
/// 50 ms. A hung replica takes half the budget and the primary must answer in the rest;
/// a debug build on a busy shared 2-core machine was seen to miss 25 ms for the primary's
/// round trip (one request served `unavailable`), which says nothing about the split.
fn serve(dir: &mut TestCommand, primary: &RedisServer, replica: &RedisServer) -> (String, Serve) {
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let fraud = std::fs::read_to_string(fraud_config()).unwrap();
    assert!(fraud.contains("timeout = \"50ms\""));
    let config = dir.write(
        "riffle.toml",
        &fraud.replacen("timeout = \"50ms\"", "timeout = \"250ms\"", 1),
    );
    let child = dir
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--store", &primary.url(), "--read-replica", &replica.url()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // Every read goes to the store: the cache would hide the failover.
        .arg("--no-cache")
        .spawn();
    let serve = Serve(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get_status(&base, "/health").is_none() {
        assert!(Instant::now() < deadline, "riffle serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (base, serve)
}

/// Steady reads on a thread of their own until stopped; each answer checked by [`ask`].
struct Reads {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Reads {
    fn start(base: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (base, s, d) = (base.to_owned(), stop.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                ask(&base, i % USERS);
                d.fetch_add(1, Ordering::Relaxed);
                i += 7;
            }
        });
        Self { stop, done, thread }
    }

    fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests were answered (each one checked).
    fn wait_more(&self, n: u64) {
        let target = self.count() + n;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count() < target {
            assert!(
                !self.thread.is_finished(),
                "the reader stopped: a request failed"
            );
            assert!(
                Instant::now() < deadline,
                "reads stalled at {}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops and returns how many requests were answered; a failed one fails the test.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
        self.done.load(Ordering::Relaxed)
    }
}

fn metric(base: &str, line_prefix: &str) -> f64 {
    let (_, text) = http_get_status(base, "/metrics").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Over 200 reads, `(primary, replica)` `HMGET`s counted by the servers: the reads went to
/// the replica, and the primary served some only if a replica read failed over (a read
/// slower than half the budget on a busy machine does, and the replica is then left until
/// the next probe).
fn served_by_replica((primary, replica): (u64, u64), failovers: f64) {
    assert!(
        replica >= 100,
        "reads did not go to the replica: primary {primary}, replica {replica}"
    );
    assert!(
        primary == 0 || failovers > 0.0,
        "{primary} serving reads went to the primary without a failover (replica {replica})"
    );
}

/// The replica fails (`fail`) and is brought back (`recover`) under steady reads.
fn survives(fail: fn(&mut RedisServer), recover: fn(&mut RedisServer)) {
    let primary = RedisServer::start().unwrap();
    let mut replica = RedisServer::start_replica_of(primary.port()).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    load_profiles(&primary.url());
    let mut dir = TestCommand::new();
    let (base, _serve) = serve(&mut dir, &primary, &replica);
    wait_target(&base, &replica.url());
    let h = health(&base);
    assert_eq!(h["store"]["replicas"][0]["healthy"], true, "{h}");

    let failovers_line = format!(
        "riffle_store_replica_failovers_total{{replica=\"{}\"}} ",
        replica.url()
    );
    let reads = Reads::start(&base);
    let (p0, r0, f0) = (
        hmget_calls(&primary),
        hmget_calls(&replica),
        metric(&base, &failovers_line),
    );
    reads.wait_more(200);
    served_by_replica(
        (hmget_calls(&primary) - p0, hmget_calls(&replica) - r0),
        metric(&base, &failovers_line) - f0,
    );

    fail(&mut replica);
    let failed_at = Instant::now();
    wait_target(&base, "primary");
    let left_after = failed_at.elapsed();
    reads.wait_more(300);
    let p1 = hmget_calls(&primary);
    assert!(
        p1 - p0 >= 100,
        "reads did not move to the primary ({})",
        p1 - p0
    );
    let h = health(&base);
    assert_eq!(h["store"]["replicas"][0]["healthy"], false, "{h}");
    let reads_on_primary = metric(&base, "riffle_store_reads_total{target=\"primary\"} ");
    assert!(reads_on_primary >= 100.0, "{reads_on_primary}");

    recover(&mut replica);
    let recovered_at = Instant::now();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    wait_target(&base, &replica.url());
    let back_after = recovered_at.elapsed();
    let (p2, r2, f2) = (
        hmget_calls(&primary),
        hmget_calls(&replica),
        metric(&base, &failovers_line),
    );
    reads.wait_more(200);
    let total = reads.finish();
    served_by_replica(
        (hmget_calls(&primary) - p2, hmget_calls(&replica) - r2),
        metric(&base, &failovers_line) - f2,
    );
    let lag = metric(
        &base,
        &format!(
            "riffle_store_replica_lag_seconds{{replica=\"{}\"}} ",
            replica.url()
        ),
    );
    assert!(lag < 1.0, "replica lag {lag} s after catching up");
    let failovers = metric(&base, &failovers_line);
    eprintln!(
        "{total} requests answered with real values; {failovers} failed over; /health said \
         primary {left_after:?} after the fault and the replica again {back_after:?} after recovery"
    );
}

#[test]
fn serve_reads_real_values_through_a_replica_sigkill_and_back() {
    survives(|r| r.kill(), |r| r.restart().expect("the replica restarts"));
}

#[test]
fn serve_reads_real_values_through_a_replica_sigstop_and_back() {
    survives(|r| r.pause(), |r| r.resume());
}

#[test]
fn bad_read_replica_flags_are_usage_errors() {
    let mut cmd = TestCommand::new();
    let (_, stderr) = cmd
        .arg("serve")
        .arg("--config")
        .arg(fraud_config())
        .args([
            "--store",
            "redis://127.0.0.1:1",
            "--read-replica",
            "http://x:1",
        ])
        .expect_code(2);
    assert!(stderr.contains("--read-replica"), "{stderr}");
    let mut cmd = TestCommand::new();
    let (_, stderr) = cmd
        .arg("serve")
        .arg("--config")
        .arg(fraud_config())
        .args(["--read-replica", "redis://127.0.0.1:1"])
        .expect_code(2);
    assert!(stderr.contains("redis:// primary"), "{stderr}");
}

/// A TCP proxy on the replication link that can hold what the primary sends: the link stays
/// up and the replica answers, but its data stops advancing (a slow link, for real).
struct LinkProxy {
    port: u16,
    hold: Arc<AtomicBool>,
}

impl LinkProxy {
    fn start(upstream: u16) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (down_r, up_w) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || pump(down_r, up_w, None));
                let held = held.clone();
                std::thread::spawn(move || pump(up, conn, Some(held)));
            }
        });
        Self { port, hold }
    }
}

/// Copies `from` to `to`; while `hold` is set, what is read is kept back.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, hold: Option<Arc<AtomicBool>>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(10)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        let holding = hold.as_ref().is_some_and(|h| h.load(Ordering::Relaxed));
        if !holding && !pending.is_empty() {
            if to.write_all(&pending).is_err() {
                return;
            }
            pending.clear();
        }
    }
}

/// A stream group aged from its source's watermark (kept current by the test), so a row's
/// own age stays under a second and only the replica's lag can make it stale.
const LAG_REGISTRY: &str = r#"
[project]
name = "lagt"
[store]
url = "redis://127.0.0.1:1"
timeout = "200ms"
replica_max_lag = "1m"
[[entities]]
name = "user"
join_key = "user_id"
[[sources]]
name = "events"
entity = "user"
kind = "http"
time_field = "ts"
fields = [{ name = "x", type = "int64" }]
[[feature_groups]]
name = "velocity"
entity = "user"
source = "events"
ttl = "1h"
freshness_slo = "3s"
staleness_limit = "1h"
[[feature_groups.features]]
name = "n"
type = "int64"
default = 0
aggregation = "count"
window = "1h"
"#;

/// (status, age_ms, value) of user u1's velocity.
fn velocity(base: &str) -> (String, u64, i64) {
    let (code, body) = http_get_status(base, "/v1/features/user/u1?groups=velocity").unwrap();
    assert_eq!(code, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    let group = &json["results"][0]["groups"][0];
    (
        group["status"].as_str().unwrap_or_default().to_owned(),
        group["age_ms"].as_u64().unwrap_or(u64::MAX),
        group["features"]["n"]["value"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn a_lagging_replicas_values_turn_stale_by_its_lag() {
    let primary = RedisServer::start().unwrap();
    let proxy = LinkProxy::start(primary.port());
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &proxy.port.to_string()]).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let mut dir = TestCommand::new();
    let config = dir.write("riffle.toml", LAG_REGISTRY);
    let rows = dir.write("velocity.csv", "user_id,n\nu1,42\n");
    let mut load = TestCommand::new();
    load.args(["load", "--config"])
        .arg(&config)
        .args(["--store", &primary.url(), "--group", "velocity"])
        .arg(&rows);
    load.expect_code(0);

    // The source's watermark, published on the primary as an ingest worker would.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, port) = (stop.clone(), primary.port());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                let record = format!(
                    r#"{{"watermark_ms":{now},"published_at_ms":{now},"events_applied_total":0,"publisher":"test:1"}}"#
                );
                let _ = std::process::Command::new("redis-cli")
                    .args([
                        "-p",
                        &port.to_string(),
                        "HSET",
                        "lagt:~meta:watermark:events",
                    ])
                    .args(["test:1", &record])
                    .output();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _serve = Serve(
        dir.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--store", &primary.url(), "--read-replica", &replica.url()])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-cache"])
            .spawn(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get_status(&base, "/health").is_none() {
        assert!(Instant::now() < deadline, "riffle serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_target(&base, &replica.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, age, value) = velocity(&base);
        if status == "fresh" && value == 42 && age < 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never fresh: {status} {age} {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Hold replication: the replica is still read (lag under replica_max_lag), and its
    // values age by its lag until they pass the 3 s freshness SLO.
    proxy.hold.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, age, value) = velocity(&base);
        assert_eq!(value, 42, "the replica's value is served");
        if status == "stale" {
            assert!(age > 3000, "{age}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never stale while the replica lagged: {status} {age}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = health(&base);
    assert_eq!(h["store"]["read_target"], replica.url(), "{h}");
    let lag = h["store"]["replicas"][0]["lag_ms"].as_u64().unwrap();
    assert!(lag > 1000, "{h}");
    assert_eq!(
        h["groups"][0]["freshness_basis"], "watermark",
        "the row's own age is the watermark's: {h}"
    );

    // Released: the replica catches up and the same value is fresh again.
    proxy.hold.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    while velocity(&base).0 != "fresh" {
        assert!(Instant::now() < deadline, "never fresh again");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
}
