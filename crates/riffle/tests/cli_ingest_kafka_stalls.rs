//! Ingest never stalls silently (the lesson's stream job 90 minutes behind that nobody
//! noticed), end to end with the real binaries, a real tansu broker and a real Redis:
//!
//! - a member of the group that holds partitions and never commits (another application
//!   under the same group id) makes `riffle lag` exit 3 within its threshold, ingest's
//!   `/health` say so, and `riffle serve` serve exactly the entities of those partitions as
//!   `stale` while the others stay `fresh`;
//! - after the crash sequence of the issue (two workers, one SIGKILLed and replaced four
//!   times 2.5–4.5 s apart while events flow), the run ends either exact (every user's
//!   values equal the oracle) or loud (`riffle lag` exits 3 and every user whose values are
//!   behind is served `stale`, never `fresh`);
//! - partitions read an hour apart in event time dead-letter no valid event (lateness is
//!   judged per partition);
//! - a worker whose store hangs keeps serving its group (a joining member gets its share at
//!   once), leaves it after `ingest.max_stall`, and joins again once the store is back.
//!
//! tansu 0.6 lists a group's members without their assignments, so who owns a partition
//! is told by the partition marks the workers publish (see `riffle_ops::lag`); and it keeps
//! a dead member's assignment (see `cli_ingest_kafka_faults.rs`), which the workers undo by
//! rejoining the group.

mod common;
mod ingest_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{http_get_status, Serve, TestCommand};
use ingest_support::kafka::{self, partition_of, Background, Committed, Worker, PARTITIONS, TOPIC};
use ingest_support::{generate, oracle, Ev, Rng, MINUTE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use riffle_core::Timestamp;
use riffle_store::StoreUrl;
use riffle_testkit::{KafkaBroker, RedisServer};
use serde_json::Value;

/// The test registry with a 4 s freshness SLO and a 5 s lag threshold, so staleness and
/// lag show within seconds, and more `[ingest]` settings.
fn registry_with(ingest: &str) -> String {
    let text = kafka::registry()
        .replace("freshness_slo = \"1m\"", "freshness_slo = \"4s\"")
        .replace(
            "[[entities]]",
            &format!("[ingest]\nlag_threshold = \"5s\"\n{ingest}\n[[entities]]"),
        );
    assert!(text.contains("\"4s\"") && text.contains("lag_threshold"));
    text
}

/// A broker with the topic, a Redis, and a directory holding the registry.
struct Setup {
    broker: KafkaBroker,
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self::with_ingest("")
    }

    /// With these more `[ingest]` settings in the registry.
    fn with_ingest(ingest: &str) -> Self {
        let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
        broker
            .create_topic(TOPIC, PARTITIONS as u32)
            .expect("topic created");
        let redis = RedisServer::start().expect("redis-server starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("riffle.toml"), registry_with(ingest))
            .expect("registry written");
        Self { broker, redis, dir }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("riffle.toml")
    }

    /// A worker of `group` with its own `/metrics` and `/health` on a free port.
    fn worker(&self, name: &str, group: &str) -> (Worker, String) {
        let listen = format!("127.0.0.1:{}", riffle_testkit::free_port());
        let worker = Worker::start_with(
            self.dir.path(),
            name,
            &self.config(),
            &self.redis.url(),
            &self.broker.bootstrap(),
            group,
            &["--listen", &listen],
        );
        (worker, format!("http://{listen}"))
    }

    /// `riffle lag --json` for `group`: (exit code, report).
    fn lag(&self, group: &str) -> (i32, Value) {
        let mut cmd = TestCommand::new();
        cmd.arg("lag")
            .arg("--config")
            .arg(self.config())
            .args(["--store", &self.redis.url(), "--json"])
            .args(["--brokers", &self.broker.bootstrap(), "--topic", TOPIC])
            .args(["--group-id", group]);
        let out = cmd.output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    fn serve(&self) -> Serve {
        Serve::start(&self.config(), &self.redis.url())
    }
}

/// A consumer of the group that is not Riffle: it polls (so the group keeps it) and never
/// commits. Its client id sorts after Riffle's, so the range assignor gives it the upper
/// half of the partitions.
struct Squatter {
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<Vec<i32>>>,
    thread: Option<JoinHandle<()>>,
}

impl Squatter {
    fn join(bootstrap: &str, group: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("client.id", "zz-squatter")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("partition.assignment.strategy", "range,roundrobin")
            .create()
            .expect("consumer config is valid");
        consumer.subscribe(&[TOPIC]).expect("subscribed");
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, assigned) = (stop.clone(), assigned.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let _ = consumer.poll(Duration::from_millis(100));
                    if let Ok(tpl) = consumer.assignment() {
                        let mut now: Vec<i32> =
                            tpl.elements().iter().map(|e| e.partition()).collect();
                        now.sort_unstable();
                        *assigned.lock().unwrap() = now;
                    }
                }
            }
        });
        Self {
            stop,
            assigned,
            thread: Some(thread),
        }
    }

    /// Waits until its assignment satisfies `want`; returns how long that took.
    fn wait_assigned(&self, within: Duration, want: &dyn Fn(&[i32]) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.assigned.lock().unwrap().clone();
            if want(&now) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the squatter holds {now:?} after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Live events of `users` users spread over every partition, one every `every` for
/// `duration`, each with its time of sending as its event time (a schedule computed ahead
/// would fall behind the wall clock whenever the producer does, and the users would turn
/// stale for the test's own slowness).
fn live_events(bootstrap: &str, users: u64, every: Duration, duration: Duration) -> Background {
    let count = (duration.as_millis() / every.as_millis().max(1)) as usize;
    let mut rng = Rng::new(7);
    Background::start_with(bootstrap, count, every, move |_| {
        let user = format!("u{}", rng.below(users));
        let time = Timestamp::now().millis();
        let line = format!(
            "{{\"user_id\":\"{user}\",\"event_time\":{time},\"amount\":1.5,\"merchant_id\":\"m1\"}}"
        );
        (user, line)
    })
}

/// Users of `users` whose events go to one of `partitions`.
fn users_on(users: u64, partitions: &[i32]) -> Vec<String> {
    (0..users)
        .map(|u| format!("u{u}"))
        .filter(|u| partitions.contains(&partition_of(u)))
        .collect()
}

#[test]
fn a_member_that_never_commits_fails_lag_and_stales_exactly_its_entities() {
    let s = Setup::new();
    let group = "riffle-squatted";
    let (mut worker, metrics) = s.worker("ingest", group);
    worker.wait_assigned(Duration::from_secs(60), &|a: &[i32]| a.len() == 4);
    let serve = s.serve();
    // Events keep flowing to every partition for the whole test.
    let producer = live_events(
        &s.broker.bootstrap(),
        40,
        Duration::from_millis(10),
        Duration::from_secs(60),
    );
    // Riffle processes everything for a few seconds: every user gets a row.
    std::thread::sleep(Duration::from_secs(4));

    let _squatter = Squatter::join(&s.broker.bootstrap(), group);
    worker.wait_assigned(Duration::from_secs(60), &|a: &[i32]| a == [0, 1]);
    let taken = Instant::now();

    // `riffle lag` fails within its threshold (5 s) and some sampling slack, and settles on
    // the squatted partitions alone (right after the rebalance the others may be behind by
    // the messages that came while it ran, until the worker commits them).
    let mut failed_after = None;
    loop {
        let (code, report) = s.lag(group);
        assert!(code == 0 || code == 3, "{report:#}");
        if code == 3 {
            failed_after.get_or_insert(taken.elapsed());
            let statuses: Vec<&str> = report["sources"][0]["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["status"].as_str().unwrap())
                .collect();
            if statuses[..2] == ["ok", "ok"] && statuses[2..].iter().all(|s| *s != "ok") {
                break;
            }
        }
        assert!(
            taken.elapsed() < Duration::from_secs(40),
            "riffle lag does not single out the squatted partitions: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let failed_after = failed_after.unwrap_or_default();
    assert!(failed_after < Duration::from_secs(20), "{failed_after:?}");

    // Serve: the squatted partitions' users stale, the others fresh.
    std::thread::sleep(Duration::from_secs(5));
    for user in users_on(40, &[2, 3]) {
        assert_eq!(
            serve.status(&user),
            "stale",
            "{user} on a squatted partition"
        );
    }
    for user in users_on(40, &[0, 1]) {
        assert_eq!(
            serve.status(&user),
            "fresh",
            "{user} on a processed partition"
        );
    }

    // The worker's own /health and /metrics say it too, from the broker's side.
    let (code, health) = http_get_status(&metrics, "/health").expect("ingest answers");
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("oldest uncommitted message"), "{health}");
    let (_, text) = http_get_status(&metrics, "/metrics").expect("ingest answers");
    let lag_of = |p: i32| -> f64 {
        let prefix = format!(
            "riffle_ingest_group_lag_seconds{{source=\"transactions\",partition=\"{p}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no group lag for partition {p}:\n{text}"))
    };
    assert!(lag_of(2) > 5.0 && lag_of(0) < 5.0, "{text}");
    drop(producer);
}

/// The crash sequence: two workers; one SIGKILLed and a replacement started, four
/// times, 2.5–4.5 s apart, alternating, while 30,000 events are produced over 20 s. The run
/// must end exact, or loud.
#[test]
fn after_the_crash_sequence_the_run_is_exact_or_loud() {
    let s = Setup::new();
    let group = "riffle-crashes";
    let now = Timestamp::now().millis();
    let g = generate(23, now, 60, 30_000, 10 * MINUTE, false);
    let messages = kafka::keyed(&g);
    let (mut a, _) = s.worker("a0", group);
    let (mut b, _) = s.worker("b0", group);
    a.wait_assigned(Duration::from_secs(60), &|p: &[i32]| !p.is_empty());
    b.wait_assigned(Duration::from_secs(60), &|p: &[i32]| !p.is_empty());
    let serve = s.serve();
    let producer = Background::start(
        &s.broker.bootstrap(),
        messages,
        Duration::from_micros(20_000_000 / 30_000),
    );
    let mut rng = Rng::new(5);
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(2_500 + rng.below(2_000)));
        let victim = if round % 2 == 0 { &mut a } else { &mut b };
        victim.kill();
        let name = format!(
            "{}{}",
            if round % 2 == 0 { "a" } else { "b" },
            round / 2 + 1
        );
        *victim = s.worker(&name, group).0;
    }
    let ends = producer.finish();
    let users: Vec<String> = g
        .accepted
        .iter()
        .map(|e| e.user.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let committed = Committed::new(&s.broker.bootstrap(), group);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut loud_checks = 0;
    loop {
        let offsets = committed.offsets().unwrap_or_default();
        if offsets.len() == ends.len() && offsets.iter().zip(&ends).all(|(c, e)| c >= e) {
            // Exact: every value is the oracle's.
            kafka::check_against_oracle(&StoreUrl::parse(&s.redis.url()).unwrap(), &g.accepted);
            eprintln!(
                "exact: committed {offsets:?} reached {ends:?} ({loud_checks} loud checks before)"
            );
            return;
        }
        // Not caught up: it must be loud. Once the freshness SLO has passed since the
        // events stopped, every user whose values are behind is served stale.
        let behind = behind_users(&s.redis.url(), &users, &g.accepted);
        let (code, report) = s.lag(group);
        if Instant::now() >= deadline {
            assert_eq!(code, 3, "not caught up, yet riffle lag passes: {report:#}");
            for user in &behind {
                assert_not_fresh_while_behind(&serve, &s.redis.url(), user, &g.accepted, &report);
            }
            eprintln!(
                "loud: committed {offsets:?} short of {ends:?}; {} users behind",
                behind.len()
            );
            return;
        }
        if !behind.is_empty() && code != 3 {
            // Behind while the lag check passes is only allowed while things move.
            eprintln!(
                "behind {} users with lag exit {code}: waiting",
                behind.len()
            );
        } else if code == 3 {
            loud_checks += 1;
            for user in &behind {
                assert_not_fresh_while_behind(&serve, &s.redis.url(), user, &g.accepted, &report);
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `user` was behind when last read: if serve now says `fresh`, the row must have caught up
/// in the meantime. Read after the answer, a row still behind was behind when it was
/// served (rows only move towards the oracle), so that is the failure; one that caught up
/// meanwhile (its partition drained between the reads) is not.
fn assert_not_fresh_while_behind(
    serve: &Serve,
    store: &str,
    user: &str,
    events: &[Ev],
    report: &Value,
) {
    if serve.status(user) != "fresh" {
        return;
    }
    let still_behind = behind_users(store, &[user.to_owned()], events);
    assert!(
        still_behind.is_empty(),
        "{user} is behind yet served fresh: {report:#}"
    );
}

/// Users whose stored values differ from the oracle over every event (missing rows count).
fn behind_users(store: &str, users: &[String], events: &[Ev]) -> Vec<String> {
    let rows = ingest_support::read_rows(&StoreUrl::parse(store).unwrap(), users);
    users
        .iter()
        .zip(rows)
        .filter(|(user, row)| match row {
            Some(row) => row.values != oracle(events, user, row.computed_at.millis()),
            None => true,
        })
        .map(|(user, _)| user.clone())
        .collect()
}

/// One partition's events an hour behind another's in event time, consumed together by
/// one worker with the default 5-minute `allowed_lateness`: nothing is dead-lettered, and
/// every value is the oracle's.
#[test]
fn partitions_read_an_hour_apart_dead_letter_nothing() {
    let s = Setup::new();
    let group = "riffle-apart";
    let now = Timestamp::now().millis();
    let mut rng = Rng::new(3);
    let mut behind = Vec::new();
    let mut ahead = Vec::new();
    for i in 0..400i64 {
        let user = format!("u{}", rng.below(30));
        let offset = if partition_of(&user) == 0 {
            60 * MINUTE
        } else {
            0
        };
        let ev = Ev {
            user: user.clone(),
            time: now - offset - 5 * MINUTE + i * 700,
            amount: (i % 50) as f64,
            merchant: format!("m{}", i % 7),
        };
        if offset > 0 {
            behind.push(ev);
        } else {
            ahead.push(ev);
        }
    }
    assert!(!behind.is_empty() && !ahead.is_empty());
    // Interleaved, so the worker reads both partitions at once; what is left of the longer
    // side follows.
    let mut all: Vec<Ev> = Vec::new();
    let n = ahead.len().max(behind.len());
    for i in 0..n {
        all.extend(ahead.get(i).cloned());
        all.extend(behind.get(i).cloned());
    }
    let messages: Vec<(String, String)> = all
        .iter()
        .map(|ev| {
            let line = format!(
                "{{\"user_id\":\"{}\",\"event_time\":{},\"amount\":{},\"merchant_id\":\"{}\"}}",
                ev.user, ev.time, ev.amount, ev.merchant
            );
            (ev.user.clone(), line)
        })
        .collect();
    let ends = Background::start(&s.broker.bootstrap(), messages, Duration::ZERO).finish();
    let (mut worker, _) = s.worker("ingest", group);
    Committed::new(&s.broker.bootstrap(), group).wait_reach(
        &ends,
        Duration::from_secs(60),
        &mut worker,
    );
    let summary = worker.terminate();
    assert_eq!(summary["dead_lettered_total"], 0, "{summary:#}");
    let applied = summary["applied"].as_u64().unwrap();
    assert_eq!(applied as usize, all.len(), "{summary:#}");
    let dead: BTreeMap<String, Value> =
        serde_json::from_value(summary["dead_lettered"].clone()).unwrap_or_default();
    assert!(dead.is_empty(), "{dead:?}");
    kafka::check_against_oracle(&StoreUrl::parse(&s.redis.url()).unwrap(), &all);
}

/// Riffle's own member stays alive whatever its pipeline does: with its store hung
/// (SIGSTOP) and its queue full, the worker still serves the group, so a member that joins
/// gets its share at once (a consumer blocked on its pipeline would hold the rebalance up
/// for librdkafka's 5-minute poll interval); after `ingest.max_stall` it leaves the group
/// so the other member processes every partition, and once the store is back it joins
/// again.
#[test]
fn a_worker_whose_store_hangs_keeps_serving_its_group_then_steps_aside() {
    let s = Setup::with_ingest("max_stall = \"6s\"\nflush_max_events = 10\nqueue_capacity = 256\n");
    let group = "riffle-hung";
    let (mut worker, metrics) = s.worker("ingest", group);
    worker.wait_assigned(Duration::from_secs(60), &|a: &[i32]| a.len() == 4);
    let mut redis = s.redis;
    redis.pause();
    // A backlog far beyond what the pipeline holds while its writes hang.
    let producer = live_events(
        &s.broker.bootstrap(),
        40,
        Duration::from_millis(1),
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_secs(3));

    let other = Squatter::join(&s.broker.bootstrap(), group);
    let took = other.wait_assigned(Duration::from_secs(30), &|a: &[i32]| !a.is_empty());
    eprintln!("the joining member got its share {took:?} after joining");
    // Then the stalled worker steps aside: the other member gets every partition.
    other.wait_assigned(Duration::from_secs(40), &|a: &[i32]| a.len() == 4);
    assert!(worker.alive(), "{}", worker.log());
    assert!(
        worker.log().contains("leaving the consumer group"),
        "{}",
        worker.log()
    );

    // The store is back: the worker drains its queue, joins again and gets partitions.
    let before = worker.assignments().len();
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !worker.assignments()[before..].iter().any(|a| !a.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "no new assignment:\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, text) = http_get_status(&metrics, "/metrics").expect("ingest answers");
    assert!(
        text.contains("riffle_ingest_group_left{source=\"transactions\"} 1"),
        "{text}"
    );
    drop(producer);
}
