//! Faults of `riffle ingest` on Kafka, end to end with the real binary, a real (tansu 0.6.0)
//! broker and a real Redis: while events flow into a 4-partition topic (produced in the
//! background, one message per produce call, so every partition's end offset is known
//! exactly), ingest processes are SIGKILLed and restarted, a group member is killed or
//! stopped and the survivor takes over, or the broker is not there yet when ingest starts.
//! Each test waits until the group's committed offsets reach the end of every partition,
//! then compares every stored value with the independent oracle (`ingest_support`): an event
//! lost or counted twice shows as a wrong value.
//!
//! # What tansu 0.6.0 cannot do, and how the tests live with it
//!
//! - **A silently dead member's partitions are never reassigned.** When a member stops
//!   heartbeating, tansu notices it on the survivor's heartbeat
//!   (`Inner<Formed>::heartbeat` → `missed_heartbeat` in its group coordinator), drops the
//!   member and answers `REBALANCE_IN_PROGRESS`, but leaves the group *formed*, at the same
//!   generation, with the old assignments. The survivor rejoins as an existing member (no
//!   new generation) and its `SyncGroup` is answered from the stale assignments (a formed
//!   group ignores the leader's new ones): the survivor gets back only its own partitions
//!   and the dead member's stay unowned, so their committed offsets stop short of the end
//!   forever. The survivor's logs show `revoked [0, 1]` then `assigned [0, 1]` and nothing
//!   more. No client setting changes this (`max.poll.interval.ms` is only the rebalance
//!   timeout, which tansu stores and never reads). Any membership change does start a real
//!   rebalance (a join or a `LeaveGroup` moves the group to a new generation), provided the
//!   dead member was not the group's leader: a dead leader stays the leader of the forming
//!   group, which then never completes. So the rebalance test keeps the survivor the leader
//!   (it starts first), kills the other member, waits for tansu to drop it (session timeout,
//!   10 s by default), then lets a bare consumer join and leave the group: the membership
//!   change tansu should have made itself. On a real Kafka broker the coordinator
//!   rebalances on the session timeout alone. A member stopped with SIGTERM leaves the
//!   group and tansu rebalances at once.
//! - **A restart must wait out the dead member.** A SIGKILLed sole member stays the
//!   group's leader in tansu until its session times out; a restart that joins before then
//!   is answered "not the leader" (with a 3 s pause per join) until tansu drops the dead
//!   one, and tansu never refreshes a joining member's last-contact time, so the new member
//!   can be dropped in the same sweep. Measured: about one run in ten left the restarted
//!   member with an empty assignment that never changed. The crash test therefore restarts
//!   only once the dead member's session has expired (10 s and some slack, with events
//!   still flowing); the restart's first join then finds no leader and takes every
//!   partition at once. It kills only a member that owns every partition and has committed
//!   since it started.
//! - **Memory storage only.** Restarting the broker loses every topic and every committed
//!   offset, and a topic created again restarts its offsets at 0, which a resumed consumer
//!   must not take for messages it already applied; so broker loss is tested as a broker
//!   that is not there yet when ingest starts, then comes up.
//! - Producers must not batch (one message per produce call), and the group uses the eager
//!   `range` assignor (`cooperative-sticky` stalls a partition).

mod ingest_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ingest_support::kafka::{self, Background, Committed, Worker, PARTITIONS, TOPIC};
use ingest_support::{generate, Generated, Rng, MINUTE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use riffle_core::Timestamp;
use riffle_store::StoreUrl;
use riffle_testkit::{KafkaBroker, RedisServer};

const GROUP: &str = "riffle-faults";
/// How long a final catch-up may take.
const CATCH_UP: Duration = Duration::from_secs(60);
/// Riffle's consumer session timeout (`KafkaConfig::new`), after which tansu drops a
/// member that stopped heartbeating; plus a heartbeat and some slack.
const EVICTION: Duration = Duration::from_secs(13);

/// A broker with the topic, a Redis, the generated stream and a directory with the registry.
struct Setup {
    broker: KafkaBroker,
    redis: RedisServer,
    g: Generated,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(seed: u64, events: usize) -> Self {
        let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
        broker
            .create_topic(TOPIC, PARTITIONS as u32)
            .expect("topic created");
        Self::with_broker(broker, seed, events)
    }

    fn with_broker(broker: KafkaBroker, seed: u64, events: usize) -> Self {
        let redis = RedisServer::start().expect("redis-server starts");
        let g = generate(
            seed,
            Timestamp::now().millis(),
            60,
            events,
            10 * MINUTE,
            true,
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("riffle.toml");
        std::fs::write(&config, kafka::registry()).expect("registry written");
        Self {
            broker,
            redis,
            g,
            dir,
            config,
        }
    }

    fn worker(&self, name: &str) -> Worker {
        Worker::start(
            self.dir.path(),
            name,
            &self.config,
            &self.redis.url(),
            &self.broker.bootstrap(),
            GROUP,
        )
    }

    fn produce(&self, pause: Duration) -> Background {
        Background::start(&self.broker.bootstrap(), kafka::keyed(&self.g), pause)
    }

    fn check(&self) {
        kafka::check_against_oracle(&StoreUrl::Redis(self.redis.url()), &self.g.accepted);
    }
}

/// Waits until the group commits past `from` on one of `partitions` (or, when the producer
/// is done, until those partitions are caught up).
fn wait_progress(
    committed: &Committed,
    producer: &Background,
    partitions: &[i32],
    worker: &mut Worker,
) -> Duration {
    let from = committed.offsets().unwrap_or_default();
    let started = Instant::now();
    while started.elapsed() < CATCH_UP {
        assert!(worker.alive(), "{} exited:\n{}", worker.name, worker.log());
        let ends = producer.ends();
        if let Some(now) = committed.offsets() {
            let moved = partitions.iter().any(|&p| {
                let p = p as usize;
                now[p] > from.get(p).copied().unwrap_or(0)
            });
            let caught_up = producer.is_done()
                && partitions
                    .iter()
                    .all(|&p| now[p as usize] >= ends[p as usize]);
            if moved || caught_up {
                return started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no commit on {partitions:?} in {CATCH_UP:?} ({}):\n{}",
        worker.name,
        worker.log()
    );
}

#[test]
fn sigkill_at_random_moments_and_restarts_match_the_oracle() {
    const KILLS: usize = 3;
    let started = Instant::now();
    let s = Setup::new(31, 5500);
    let committed = Committed::new(&s.broker.bootstrap(), GROUP);
    let producer = s.produce(Duration::from_millis(8));
    let mut rng = Rng::new(0x5eed_c4a5);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let mut worker = s.worker("ingest-0");
    for kill in 1..=KILLS {
        // Owning every partition and committing: the group's only member and its leader.
        worker.wait_assigned(CATCH_UP, &|p| p.len() == PARTITIONS as usize);
        let joined = wait_progress(&committed, &producer, &all, &mut worker);
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        worker.kill();
        eprintln!(
            "kill {kill} at {:?} (joined and committing after {joined:?}), committed {:?} of {:?}",
            started.elapsed(),
            committed.offsets(),
            producer.ends()
        );
        // Events keep flowing while the group has no member (see the module docs).
        std::thread::sleep(EVICTION);
        worker = s.worker(&format!("ingest-{kill}"));
    }
    assert!(
        !producer.is_done(),
        "events must still flow at the last kill: produce more slowly"
    );
    let ends = producer.finish();
    let took = committed.wait_reach(&ends, CATCH_UP, &mut worker);
    eprintln!(
        "caught up {took:?} after the last event; {:?}",
        started.elapsed()
    );
    let summary = worker.terminate();
    eprintln!("last run: {summary}");
    s.check();
}

/// Joins the group with a bare consumer until it is given partitions, then leaves it: a
/// membership change, so that tansu rebalances (see the module docs).
fn join_and_leave(bootstrap: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("client.id", "nudge")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer config is valid");
    consumer.subscribe(&[TOPIC]).expect("subscribed");
    let started = Instant::now();
    while consumer.assignment().map_or(true, |a| a.count() == 0) {
        assert!(
            started.elapsed() < CATCH_UP,
            "the bare consumer never got partitions"
        );
        let _ = consumer.poll(Duration::from_millis(100));
    }
    consumer.unsubscribe();
    for _ in 0..5 {
        let _ = consumer.poll(Duration::from_millis(50));
    }
}

#[test]
fn rebalance_after_sigkill_and_sigterm_matches_the_oracle() {
    let started = Instant::now();
    let s = Setup::new(47, 4000);
    let bootstrap = s.broker.bootstrap();
    let committed = Committed::new(&bootstrap, GROUP);
    let producer = s.produce(Duration::from_millis(8));
    let mut rng = Rng::new(0x0ba1_a4ce);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let four = |p: &[i32]| p.len() == PARTITIONS as usize;

    // A first, alone: it owns everything and leads the group.
    let mut a = s.worker("a");
    a.wait_assigned(CATCH_UP, &four);
    wait_progress(&committed, &producer, &all, &mut a);
    // B joins: the partitions are shared.
    let mut b = s.worker("b");
    b.wait_assigned(CATCH_UP, &|p| !p.is_empty());
    a.wait_assigned(CATCH_UP, &|p| !p.is_empty() && !four(p));
    let owned_by_b = b.assigned().unwrap_or_default();
    wait_progress(&committed, &producer, &owned_by_b, &mut b);
    std::thread::sleep(Duration::from_millis(rng.below(1000)));
    b.kill();
    eprintln!(
        "b (owning {owned_by_b:?}) killed at {:?}; committed {:?} of {:?}",
        started.elapsed(),
        committed.offsets(),
        producer.ends()
    );

    // Phase 1, SIGKILL: once tansu dropped B, a membership change makes it rebalance, and
    // the survivor takes over B's partitions.
    std::thread::sleep(EVICTION);
    join_and_leave(&bootstrap);
    a.wait_assigned(CATCH_UP, &four);
    let target = producer.ends();
    let took = committed.wait_reach(&target, CATCH_UP, &mut a);
    eprintln!(
        "a took over {owned_by_b:?} and caught up in {took:?}; at {:?}",
        started.elapsed()
    );

    // Phase 2, SIGTERM: C joins, then leaves cleanly mid-stream; A takes everything back.
    let mut c = s.worker("c");
    c.wait_assigned(CATCH_UP, &|p| !p.is_empty());
    let owned_by_c = c.assigned().unwrap_or_default();
    wait_progress(&committed, &producer, &owned_by_c, &mut c);
    std::thread::sleep(Duration::from_millis(rng.below(1000)));
    assert!(
        !producer.is_done(),
        "events must still flow when C stops: produce more slowly"
    );
    let summary = c.terminate();
    eprintln!("c (owning {owned_by_c:?}) stopped: {summary}");
    a.wait_assigned(CATCH_UP, &four);

    let ends = producer.finish();
    let took = committed.wait_reach(&ends, CATCH_UP, &mut a);
    eprintln!(
        "caught up {took:?} after the last event; {:?}",
        started.elapsed()
    );
    a.terminate();
    s.check();
}

#[test]
fn broker_down_at_start_then_up_loses_nothing() {
    let port = riffle_testkit::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let redis = RedisServer::start().expect("redis-server starts");
    let g = generate(53, Timestamp::now().millis(), 60, 1000, 10 * MINUTE, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("riffle.toml");
    std::fs::write(&config, kafka::registry()).expect("registry written");
    let mut worker = Worker::start(
        dir.path(),
        "ingest",
        &config,
        &redis.url(),
        &bootstrap,
        GROUP,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(worker.alive(), "ingest gave up:\n{}", worker.log());
    let broker = KafkaBroker::start_on(port).expect("tansu starts on the same port");
    broker
        .create_topic(TOPIC, PARTITIONS as u32)
        .expect("topic created");
    let ends = Background::start(&bootstrap, kafka::keyed(&g), Duration::ZERO).finish();
    let took = Committed::new(&bootstrap, GROUP).wait_reach(&ends, CATCH_UP, &mut worker);
    eprintln!("caught up {took:?} after the last event");
    let log = worker.log();
    assert!(
        log.contains("kafka client error"),
        "the broker's absence was not reported:\n{log}"
    );
    worker.terminate();
    kafka::check_against_oracle(&StoreUrl::Redis(redis.url()), &g.accepted);
}
