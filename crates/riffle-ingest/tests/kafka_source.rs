//! The Kafka source against a real broker (`tansu` through the test kit): reading a
//! partitioned topic, committing and resuming, redelivery of what was not committed,
//! sharing partitions in a group, handing them over on revoke, lag from statistics, and
//! retryable errors when the broker is gone.
//!
//! The producer here is test-only (rdkafka's `BaseProducer`), so the test kit stays free of
//! a Kafka client. No timing asserts: every wait is a poll loop with a generous deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use riffle_ingest::feed::kafka::source::{
    KafkaConfig, KafkaSource, RebalanceEvent, RevokeHook, SourceMessage,
};
use riffle_testkit::KafkaBroker;

const PARTITIONS: usize = 4;
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Counts failed deliveries so a test knows every message reached the broker.
#[derive(Default)]
struct Deliveries {
    failed: AtomicUsize,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A test-only producer of keyed messages `(entity id, payload)`.
struct TestProducer {
    producer: BaseProducer<Deliveries>,
    topic: String,
}

impl TestProducer {
    fn new(broker: &KafkaBroker, topic: &str) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("linger.ms", "5")
            .create_with_context(Deliveries::default())
            .expect("producer config is valid");
        Self {
            producer,
            topic: topic.to_owned(),
        }
    }

    /// Sends all, then waits until each is acknowledged (the producer may batch).
    fn send(&self, messages: &[(String, String)]) {
        for (key, payload) in messages {
            let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        // Queue full: let deliveries drain, then try again.
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                }
            }
        }
        self.producer
            .flush(Duration::from_secs(20))
            .expect("all messages delivered in time");
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        assert_eq!(failed, 0, "failed deliveries");
    }

    /// One produce request per message, so tansu's high watermark stays exact.
    fn send_one_by_one(&self, messages: &[(String, String)]) {
        for m in messages {
            self.send(std::slice::from_ref(m));
        }
    }
}

/// `count` keyed messages: entity ids `e0…e36`, payloads `{tag}-{i}`.
fn messages(tag: &str, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("e{}", i % 37), format!("{tag}-{i}")))
        .collect()
}

fn payloads(msgs: &[SourceMessage]) -> BTreeSet<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

fn expected(msgs: &[(String, String)]) -> BTreeSet<String> {
    msgs.iter().map(|(_, p)| p.clone()).collect()
}

/// `(partition, next offset)` past everything in `msgs`.
fn next_offsets(msgs: &[SourceMessage]) -> Vec<(i32, i64)> {
    let mut next = BTreeMap::new();
    for m in msgs {
        let e = next.entry(m.partition).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    next.into_iter().collect()
}

fn test_config(broker: &KafkaBroker, topic: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(&broker.bootstrap(), topic, "riffle-test");
    config.session_timeout = Duration::from_millis(6000);
    config.heartbeat_interval = Duration::from_millis(500);
    config.stats_interval = Duration::from_millis(500);
    config
}

fn connect(broker: &KafkaBroker, topic: &str) -> KafkaSource {
    KafkaSource::connect(test_config(broker, topic)).expect("consumer created")
}

fn setup(topic: &str) -> (KafkaBroker, TestProducer) {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker
        .create_topic(topic, PARTITIONS as u32)
        .expect("topic created");
    let producer = TestProducer::new(&broker, topic);
    (broker, producer)
}

/// Polls `source` until `done(source, all read so far)` or the deadline.
fn read_until(
    source: &mut KafkaSource,
    mut done: impl FnMut(&KafkaSource, &[SourceMessage]) -> bool,
) -> Vec<SourceMessage> {
    let deadline = Instant::now() + DEADLINE;
    let mut read = Vec::new();
    while !done(source, &read) && Instant::now() < deadline {
        read.extend(source.poll_batch(500, POLL).expect("poll"));
    }
    read
}

/// Polls both members until `done(a, b, messages read)` or the deadline.
fn poll_both(
    a: &mut KafkaSource,
    b: &mut KafkaSource,
    mut done: impl FnMut(&KafkaSource, &KafkaSource, usize) -> bool,
) -> (Vec<SourceMessage>, Vec<SourceMessage>) {
    let deadline = Instant::now() + DEADLINE;
    let (mut read_a, mut read_b) = (Vec::new(), Vec::new());
    while !done(a, b, read_a.len() + read_b.len()) && Instant::now() < deadline {
        read_a.extend(a.poll_batch(500, POLL).expect("poll a"));
        read_b.extend(b.poll_batch(500, POLL).expect("poll b"));
    }
    (read_a, read_b)
}

fn holds_all(source: &KafkaSource) -> bool {
    source.assignment().len() == PARTITIONS
}

/// Both members hold a non-empty share and together all partitions, without overlap.
fn settled(a: &KafkaSource, b: &KafkaSource) -> bool {
    let (pa, pb) = (a.assignment(), b.assignment());
    !pa.is_empty()
        && !pb.is_empty()
        && pa.len() + pb.len() == PARTITIONS
        && pa.iter().all(|p| !pb.contains(p))
}

#[test]
fn reads_everything_commits_and_resumes_after_restart() {
    let (broker, producer) = setup("orders");
    let first = messages("old", 200);
    producer.send(&first);

    let mut source = connect(&broker, "orders");
    let read = read_until(&mut source, |_, r| r.len() >= first.len());
    assert_eq!(read.len(), first.len(), "each message exactly once");
    assert_eq!(payloads(&read), expected(&first));
    let parts: BTreeSet<i32> = read.iter().map(|m| m.partition).collect();
    assert!(parts.len() > 1, "keys spread over partitions: {parts:?}");
    assert!(read
        .iter()
        .all(|m| m.key.is_some() && m.timestamp_ms.is_some()));
    source.commit(&next_offsets(&read)).unwrap();
    drop(source);

    // A new member of the same group resumes after the commits: nothing old comes back.
    let mut source = connect(&broker, "orders");
    let before = read_until(&mut source, |s, _| holds_all(s));
    assert!(holds_all(&source), "{:?}", source.assignment());
    assert!(before.is_empty(), "replayed committed messages: {before:?}");
    let second = messages("new", 20);
    producer.send(&second);
    let read = read_until(&mut source, |_, r| r.len() >= second.len());
    assert_eq!(payloads(&read), expected(&second), "only the new messages");
    assert_eq!(read.len(), second.len());
}

#[test]
fn uncommitted_messages_are_delivered_again() {
    let (broker, producer) = setup("clicks");
    // One produce request per message: the test commits offsets in the middle of what was
    // produced, and tansu cannot fetch from an offset inside a producer batch (the consumer
    // gets nothing from that batch, then the next batch over and over). Kafka can.
    let sent = messages("m", 120);
    producer.send_one_by_one(&sent);

    let mut source = connect(&broker, "clicks");
    let read = read_until(&mut source, |_, r| r.len() >= sent.len());
    assert_eq!(read.len(), sent.len());
    // Only the first half of each partition is durable; the rest is not committed.
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in &read {
        by_partition.entry(m.partition).or_default().push(m.offset);
    }
    let committed: Vec<(i32, i64)> = by_partition
        .iter()
        .map(|(p, offsets)| (*p, offsets[offsets.len() / 2]))
        .collect();
    source.commit(&committed).unwrap();
    let uncommitted: BTreeSet<String> = read
        .iter()
        .filter(|m| {
            committed
                .iter()
                .any(|&(p, next)| p == m.partition && m.offset >= next)
        })
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    drop(source);

    let mut source = connect(&broker, "clicks");
    let again = read_until(&mut source, |_, r| r.len() >= uncommitted.len());
    assert_eq!(
        payloads(&again),
        uncommitted,
        "exactly the uncommitted ones again"
    );
    assert_eq!(again.len(), uncommitted.len());
}

#[test]
fn two_members_share_partitions_and_one_takes_over() {
    let (broker, producer) = setup("payments");
    let mut a = connect(&broker, "payments");
    let mut b = connect(&broker, "payments");
    let (early_a, early_b) = poll_both(&mut a, &mut b, |a, b, _| settled(a, b));
    assert!(
        settled(&a, &b),
        "{:?} / {:?}",
        a.assignment(),
        b.assignment()
    );
    assert!(early_a.is_empty() && early_b.is_empty());

    let first = messages("first", 200);
    producer.send(&first);
    let (read_a, read_b) = poll_both(&mut a, &mut b, |_, _, n| n >= first.len());
    assert!(
        !read_a.is_empty() && !read_b.is_empty(),
        "both members read"
    );
    let (pa, pb) = (a.assignment(), b.assignment());
    assert!(read_a.iter().all(|m| pa.contains(&m.partition)));
    assert!(read_b.iter().all(|m| pb.contains(&m.partition)));
    assert_eq!(read_a.len() + read_b.len(), first.len());
    let mut union = payloads(&read_a);
    union.extend(payloads(&read_b));
    assert_eq!(union, expected(&first));

    // `a` commits its work; `b` leaves without committing: `a` takes over every partition
    // and reads `b`'s messages again, then the ones produced after. (New messages are sent
    // once `a` holds everything: what `a` read but did not commit before its own partitions
    // were revoked and given back would rightly come again, at least once.)
    a.commit(&next_offsets(&read_a)).unwrap();
    drop(b);
    let mut more = read_until(&mut a, |a, _| holds_all(a));
    assert_eq!(a.assignment(), vec![0, 1, 2, 3]);
    let second = messages("second", 100);
    producer.send(&second);
    let mut rest = payloads(&read_b);
    rest.extend(expected(&second));
    let already = more.len();
    more.extend(read_until(&mut a, |_, r| already + r.len() >= rest.len()));
    assert_eq!(
        payloads(&more),
        rest,
        "b's uncommitted messages and the new ones"
    );
    assert_eq!(more.len(), rest.len());
}

#[test]
fn revoke_hook_commits_before_partitions_move() {
    let (broker, producer) = setup("views");
    let sent = messages("v", 200);
    producer.send(&sent);

    // The "pipeline" of `a` makes everything it reads durable at once.
    let durable: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::default();
    let revoked: Arc<Mutex<Vec<Vec<i32>>>> = Arc::default();
    let hook: RevokeHook = {
        let (durable, revoked) = (durable.clone(), revoked.clone());
        Arc::new(move |parts: &[i32]| {
            revoked.lock().unwrap().push(parts.to_vec());
            let durable = durable.lock().unwrap();
            parts
                .iter()
                .filter_map(|p| durable.get(p).map(|&next| (*p, next)))
                .collect()
        })
    };
    let mut config = test_config(&broker, "views");
    config.on_revoke = Some(hook);
    let mut a = KafkaSource::connect(config).unwrap();
    let read_a = read_until(&mut a, |_, r| r.len() >= sent.len());
    assert_eq!(read_a.len(), sent.len());
    durable.lock().unwrap().extend(next_offsets(&read_a));
    assert_eq!(
        a.take_rebalance_events(),
        vec![RebalanceEvent::Assigned(vec![0, 1, 2, 3])]
    );

    // `b` joins: `a` gives its partitions up through the hook, so nothing is replayed.
    let mut b = connect(&broker, "views");
    let (again_a, again_b) = poll_both(&mut a, &mut b, |a, b, _| settled(a, b));
    assert!(
        settled(&a, &b),
        "{:?} / {:?}",
        a.assignment(),
        b.assignment()
    );
    assert!(
        revoked.lock().unwrap().contains(&vec![0, 1, 2, 3]),
        "hook ran"
    );
    assert!(
        again_a.is_empty() && again_b.is_empty(),
        "replayed {} + {}",
        again_a.len(),
        again_b.len()
    );
    let events = a.take_rebalance_events();
    assert_eq!(
        events.first(),
        Some(&RebalanceEvent::Revoked(vec![0, 1, 2, 3]))
    );
    assert_eq!(
        events.last(),
        Some(&RebalanceEvent::Assigned(a.assignment()))
    );
}

#[test]
fn lag_counts_uncommitted_messages_from_statistics() {
    let (broker, producer) = setup("scores");
    let sent = messages("s", 40);
    producer.send_one_by_one(&sent);

    let total = |s: &KafkaSource| -> i64 { s.lag().iter().filter_map(|l| l.consumer_lag).sum() };
    let mut source = connect(&broker, "scores");
    // Reading does not reduce lag; only commits do.
    let read = read_until(&mut source, |s, r| {
        r.len() >= sent.len() && total(s) == sent.len() as i64
    });
    assert_eq!(read.len(), sent.len());
    assert_eq!(total(&source), sent.len() as i64, "{:?}", source.lag());
    let high: i64 = source.lag().iter().filter_map(|l| l.high_watermark).sum();
    assert_eq!(high, sent.len() as i64, "high watermarks");

    source.commit(&next_offsets(&read)).unwrap();
    let rest = read_until(&mut source, |s, _| total(s) == 0);
    assert!(rest.is_empty());
    assert_eq!(total(&source), 0, "{:?}", source.lag());
}

#[test]
fn broker_loss_gives_retryable_errors() {
    let (mut broker, producer) = setup("ticks");
    let sent = messages("t", 10);
    producer.send(&sent);
    let mut source = connect(&broker, "ticks");
    let read = read_until(&mut source, |_, r| r.len() >= sent.len());
    assert_eq!(read.len(), sent.len());

    broker.kill();
    let deadline = Instant::now() + DEADLINE;
    let mut errors = Vec::new();
    while errors.len() < 3 && Instant::now() < deadline {
        match source.poll_batch(10, POLL) {
            Ok(batch) => assert!(batch.is_empty(), "messages from a dead broker"),
            Err(e) => errors.push(e),
        }
    }
    assert!(!errors.is_empty(), "the loss is reported");
    assert!(errors.iter().all(|e| e.retryable()), "{errors:?}");
    // A commit never waits for a broker that is gone (a synchronous one would block the
    // polling thread forever): librdkafka holds it until the group's coordinator is back,
    // while polling goes on.
    let sent = Instant::now();
    source.commit(&next_offsets(&read)).unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let polling = Instant::now();
    let mut polls = 0;
    while polling.elapsed() < Duration::from_secs(2) {
        let _ = source.poll_batch(10, POLL);
        polls += 1;
    }
    assert!(polls >= 5, "polling was blocked: {polls} polls in 2 s");
    assert_eq!(source.commits_pending(), 1, "held for the coordinator");
}

/// A source whose close cannot finish is left to close in the background once its
/// session timeout and a margin have passed: dropping it never hangs the thread that owns
/// it. librdkafka's own close waits without a deadline; with the group's coordinator gone
/// it waited forever (this file's `broker_loss_gives_retryable_errors`, about 1 run in 10 on
/// a loaded machine). Here the close is held for certain by a revoke hook that does not
/// return until the test lets it.
#[test]
fn dropping_a_source_whose_close_cannot_finish_returns() {
    let (broker, producer) = setup("stuck");
    let sent = messages("s", 20);
    producer.send(&sent);
    let closing = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicBool::new(false));
    let hook: RevokeHook = {
        let (closing, released) = (closing.clone(), released.clone());
        Arc::new(move |_: &[i32]| {
            while closing.load(Ordering::SeqCst) && !released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Vec::new()
        })
    };
    let mut config = test_config(&broker, "stuck");
    let session = config.session_timeout;
    config.on_revoke = Some(hook);
    let mut source = KafkaSource::connect(config).unwrap();
    let read = read_until(&mut source, |_, r| r.len() >= sent.len());
    assert_eq!(read.len(), sent.len());

    closing.store(true, Ordering::SeqCst);
    let (done, dropped) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        drop(source);
        let _ = done.send(started.elapsed());
    });
    let took = dropped.recv_timeout(DEADLINE);
    released.store(true, Ordering::SeqCst);
    let took = took.expect("the drop returned while the close could not finish");
    assert!(took >= session, "the close was waited for: {took:?}");
}

/// A commit inside a producer batch: tansu fetches only whole batches starting at or after
/// the fetch offset, so the next member would start after the batch and skip the rest of
/// it. The source reads the partition again from earlier, so the messages from the commit
/// on all come (those before it may come again: the pipeline's positions skip them), and
/// no offset counts as never delivered.
#[test]
fn a_commit_inside_a_producer_batch_resumes_there() {
    let (broker, producer) = setup("batched");
    // One partition, one batch of 200 messages (linger 5 ms, sent at once).
    let sent: Vec<(String, String)> = (0..200)
        .map(|i| ("e1".to_owned(), format!("b-{i}")))
        .collect();
    producer.send(&sent);
    let mut source = connect(&broker, "batched");
    let read = read_until(&mut source, |_, r| r.len() >= sent.len());
    assert_eq!(read.len(), sent.len());
    let partition = read[0].partition;
    assert!(read.iter().all(|m| m.partition == partition));
    // Durable up to offset 120: inside the batch.
    source.commit(&[(partition, 120)]).unwrap();
    source.wait_for_commits(Duration::from_secs(10));
    drop(source);

    let mut again = connect(&broker, "batched");
    let resumed = read_until(&mut again, |_, r| r.iter().any(|m| m.offset == 199));
    let offsets: BTreeSet<i64> = resumed.iter().map(|m| m.offset).collect();
    let missing: Vec<i64> = (120..200).filter(|o| !offsets.contains(o)).collect();
    assert!(missing.is_empty(), "never delivered again: {missing:?}");
    assert_eq!(again.offset_gaps(), 0);
}
