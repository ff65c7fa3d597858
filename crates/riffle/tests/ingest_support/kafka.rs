//! Kafka support for the `cli_ingest_kafka*` tests: the topic layout, a producer that runs
//! in the background (one message per produce call, acknowledged before the next, so every
//! partition's end offset is known exactly without tansu's watermark), the group's committed
//! offsets, `riffle ingest` workers that can be killed, stopped and asked what they own, and
//! the comparison of stored rows with the oracle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use riffle_store::StoreUrl;

use super::{oracle, Ev, Generated, REGISTRY};

pub const TOPIC: &str = "transactions";
pub const PARTITIONS: i32 = 4;

/// The test registry for Kafka runs: the default `allowed_lateness` (5 min). Lateness is
/// judged per partition, so partitions consumed at different paces (and replayed after
/// kills) dead-letter no valid event: a generated partition is out of order by a minute at
/// most.
pub fn registry() -> String {
    REGISTRY.to_owned()
}

/// The generated lines as `(key, payload)` messages, keyed by user (`malformed` when the
/// line has no user).
pub fn keyed(g: &Generated) -> Vec<(String, String)> {
    g.text
        .lines()
        .map(|line| {
            let key = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["user_id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "malformed".to_owned());
            (key, line.to_owned())
        })
        .collect()
}

/// The partition of a key (FNV-1a): every event of an entity goes to one partition, as
/// Kafka's key partitioning guarantees.
pub fn partition_of(key: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % PARTITIONS as u64) as i32
}

/// Per partition, one past the highest acknowledged offset; and failed deliveries.
#[derive(Default)]
struct Acks {
    ends: [AtomicI64; PARTITIONS as usize],
    failed: AtomicUsize,
}

#[derive(Clone, Default)]
struct AckContext(Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Some(end) = usize::try_from(m.partition())
                    .ok()
                    .and_then(|p| self.0.ends.get(p))
                {
                    end.fetch_max(m.offset() + 1, Ordering::SeqCst);
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Produces messages on a thread of its own, one per produce call, each acknowledged before
/// the next (tansu cannot fetch from an offset inside a producer batch), one every `pause`.
pub struct Background {
    acks: Arc<Acks>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn start(bootstrap: &str, messages: Vec<(String, String)>, pause: Duration) -> Self {
        let count = messages.len();
        let mut messages = messages.into_iter();
        Self::start_with(bootstrap, count, pause, move |_| {
            messages.next().expect("one message per index")
        })
    }

    /// `count` messages made by `make(i)` just before message `i` is sent (so an event can
    /// carry its time of sending), message `i` sent `i * pause` after the start: a schedule,
    /// not a pause after each delivery, so a slow round trip does not slow the rate (when
    /// behind, the next goes at once).
    pub fn start_with(
        bootstrap: &str,
        count: usize,
        pause: Duration,
        mut make: impl FnMut(usize) -> (String, String) + Send + 'static,
    ) -> Self {
        let context = AckContext::default();
        let acks = context.0.clone();
        let producer: BaseProducer<AckContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "0")
            .create_with_context(context)
            .expect("producer config is valid");
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..count {
                let due = start + pause * u32::try_from(i).unwrap_or(u32::MAX);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let (key, payload) = make(i);
                let record = BaseRecord::to(TOPIC)
                    .key(&key)
                    .payload(&payload)
                    .partition(partition_of(&key));
                producer
                    .send(record)
                    .map_err(|(e, _)| e)
                    .expect("message queued");
                let started = Instant::now();
                while producer.in_flight_count() > 0 {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "message not delivered"
                    );
                    producer.poll(Duration::from_millis(1));
                }
            }
            flag.store(true, Ordering::SeqCst);
        });
        Self {
            acks,
            done,
            thread: Some(thread),
        }
    }

    /// Per partition, the offset the next message will get (what is produced so far).
    pub fn ends(&self) -> Vec<i64> {
        self.acks
            .ends
            .iter()
            .map(|e| e.load(Ordering::SeqCst))
            .collect()
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until every message is acknowledged; returns the end offsets.
    pub fn finish(mut self) -> Vec<i64> {
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the producer thread finished");
        }
        assert_eq!(
            self.acks.failed.load(Ordering::SeqCst),
            0,
            "failed deliveries"
        );
        self.ends()
    }
}

/// Reads the group's committed offsets (without joining the group).
pub struct Committed {
    consumer: BaseConsumer,
}

impl Committed {
    pub fn new(bootstrap: &str, group: &str) -> Self {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer config is valid");
        Self { consumer }
    }

    /// Per partition, the committed offset (0 when none), or `None` when the broker did not
    /// answer in time.
    pub fn offsets(&self) -> Option<Vec<i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(TOPIC, p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .ok()?;
        let mut out = vec![0; PARTITIONS as usize];
        for e in committed.elements() {
            if let (Offset::Offset(o), Ok(p)) = (e.offset(), usize::try_from(e.partition())) {
                if let Some(slot) = out.get_mut(p) {
                    *slot = o;
                }
            }
        }
        Some(out)
    }

    /// Waits until every partition's committed offset is at least `target`'s, checking
    /// that `worker` stays alive on the way (its log goes into the failure message).
    pub fn wait_reach(&self, target: &[i64], deadline: Duration, worker: &mut Worker) -> Duration {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < deadline {
            assert!(
                worker.alive(),
                "{} exited early:\n{}",
                worker.name,
                worker.log()
            );
            if let Some(now) = self.offsets() {
                if now.iter().zip(target).all(|(c, t)| c >= t) {
                    return started.elapsed();
                }
                last = Some(now);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "committed offsets {last:?} did not reach {target:?} in {deadline:?}; {}:\n{}",
            worker.name,
            worker.log()
        );
    }
}

/// One `riffle ingest` process of the group, its stderr in `<name>.log` and stdout (the
/// JSON summary) in `<name>.out` of `dir`. Killed on `Drop`.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    out: PathBuf,
}

impl Worker {
    /// Starts `riffle ingest --config config --store store --json --brokers … --topic …
    /// --group-id group`, logging its partition assignments.
    pub fn start(
        dir: &Path,
        name: &str,
        config: &Path,
        store: &str,
        bootstrap: &str,
        group: &str,
    ) -> Self {
        Self::start_with(dir, name, config, store, bootstrap, group, &[])
    }

    /// [`Worker::start`] with more arguments (`--listen ADDR`, …).
    pub fn start_with(
        dir: &Path,
        name: &str,
        config: &Path,
        store: &str,
        bootstrap: &str,
        group: &str,
        extra: &[&str],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let stdout = std::fs::File::create(&out).expect("output file");
        let child = Command::new(env!("CARGO_BIN_EXE_riffle"))
            .current_dir(dir)
            .env_remove("RIFFLE_CONFIG")
            .env_remove("RIFFLE_STORE")
            .env("RUST_LOG", "warn,riffle_ingest::feed::kafka::source=info")
            .env("NO_COLOR", "1")
            .arg("ingest")
            .arg("--config")
            .arg(config)
            .args(["--store", store, "--json"])
            .args([
                "--brokers",
                bootstrap,
                "--topic",
                TOPIC,
                "--group-id",
                group,
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the riffle binary starts");
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
            out,
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What the worker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The partitions of the worker's latest assignment (`None` before the first).
    pub fn assigned(&self) -> Option<Vec<i32>> {
        self.assignments().pop()
    }

    /// Every assignment the worker logged, oldest first.
    pub fn assignments(&self) -> Vec<Vec<i32>> {
        self.log()
            .lines()
            .filter(|l| l.contains("kafka partitions assigned"))
            .filter_map(|line| {
                let list = line.split("partitions=[").nth(1)?.split(']').next()?;
                Some(
                    list.split(',')
                        .filter_map(|p| p.trim().parse().ok())
                        .collect(),
                )
            })
            .collect()
    }

    /// Waits until the worker's latest assignment satisfies `want`.
    pub fn wait_assigned(&mut self, deadline: Duration, want: &dyn Fn(&[i32]) -> bool) {
        let started = Instant::now();
        while started.elapsed() < deadline {
            assert!(self.alive(), "{} exited:\n{}", self.name, self.log());
            if self.assigned().is_some_and(|a| want(&a)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} has assignment {:?} after {deadline:?}:\n{}",
            self.name,
            self.assigned(),
            self.log()
        );
    }

    /// `SIGKILL`: no flush, no commit, no leaving the group.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            riffle_testkit::signal(child.id(), "KILL").expect("kill -KILL");
            let _ = child.wait();
        }
    }

    /// `SIGTERM`: checks the worker exits 0 after its last flush and commit, with its JSON
    /// summary on stdout.
    pub fn terminate(&mut self) -> serde_json::Value {
        let mut child = self.child.take().expect("the worker is running");
        riffle_testkit::signal(child.id(), "TERM").expect("kill -TERM");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = std::fs::read_to_string(&self.out).unwrap_or_default();
        assert!(
            status.success(),
            "{}: {status:?}\n{stdout}\n{}",
            self.name,
            self.log()
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every value of every user equals the oracle's read at the row's `computed_at`.
pub fn check_against_oracle(url: &StoreUrl, events: &[Ev]) {
    let users: Vec<String> = events
        .iter()
        .map(|e| e.user.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = super::read_rows(url, &users);
    for (user, row) in users.iter().zip(rows) {
        let row = row.unwrap_or_else(|| panic!("no row for {user}"));
        let want = oracle(events, user, row.computed_at.millis());
        assert_eq!(row.values, want, "{user} at {}", row.computed_at);
        assert!(row.event_ts <= row.computed_at);
    }
}
