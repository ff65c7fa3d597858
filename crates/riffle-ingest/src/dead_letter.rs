//! The dead-letter sink: every event the pipeline could not use, with its reason, so that
//! nothing is dropped silently. Each record is `{"reason", "detail", "source", "position",
//! "payload"}` with the original payload as text: a line of an NDJSON file (embedded
//! deployments, `file:PATH`), or a message of a Kafka topic (`kafka:TOPIC`, keyed by the
//! source name, with the reason in a `reason` header). Either way [`DeadLetterSink::flush`]
//! makes what was written durable (fsync; every message acknowledged by the broker) and is
//! called before source positions are committed, so a dead letter is never lost; after a
//! crash a replayed event may be dead-lettered twice (at least once, like any Kafka sink).
//! Where a source's dead letters go, when its registry entry does not say:
//! [`DeadLetterTarget::of_source`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use riffle_registry::Source;
use riffle_store::StoreUrl;
use serde::Serialize;

use crate::decode::Rejection;
use crate::feed::kafka::source::KafkaConfig;

/// How long a flush waits for the broker to acknowledge every dead letter.
const KAFKA_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a source's dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// Appended to an NDJSON file.
    File(PathBuf),
    /// Produced to a Kafka topic.
    Kafka { brokers: String, topic: String },
}

impl fmt::Display for DeadLetterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Kafka { brokers, topic } => write!(f, "kafka:{topic} ({brokers})"),
        }
    }
}

impl DeadLetterTarget {
    /// Where the dead letters of `source` go: its `dead_letter` setting, `file:PATH`, or
    /// `kafka:TOPIC` on the source's own brokers (or `brokers` when given); without one, a
    /// file `dead-letter-<source>.ndjson` beside the embedded store `store`, else in the
    /// working directory. `None`: a `kafka:` sink on a source that is not a Kafka source,
    /// and no `brokers`.
    pub fn of_source(source: &Source, store: &StoreUrl, brokers: Option<&str>) -> Option<Self> {
        let Some(sink) = source.dead_letter.as_deref() else {
            let name = format!("dead-letter-{}.ndjson", source.name);
            return Some(Self::File(match store {
                StoreUrl::Embedded(dir) => dir.join(name),
                _ => Path::new(".").join(name),
            }));
        };
        if let Some(path) = sink.strip_prefix("file:") {
            return Some(Self::File(PathBuf::from(path)));
        }
        // The registry accepts only `file:` and `kafka:` sinks.
        let topic = sink.strip_prefix("kafka:").unwrap_or(sink);
        let brokers = brokers
            .map(str::to_owned)
            .or_else(|| KafkaConfig::from_source(&source.kind).map(|c| c.brokers))?;
        Some(Self::Kafka {
            brokers,
            topic: topic.to_owned(),
        })
    }
}

/// An open dead-letter sink of either kind.
pub enum DeadLetterSink {
    File(FileDeadLetterSink),
    Kafka(KafkaDeadLetterSink),
}

impl DeadLetterSink {
    pub fn open(target: &DeadLetterTarget) -> std::io::Result<Self> {
        Ok(match target {
            DeadLetterTarget::File(path) => Self::File(FileDeadLetterSink::open(path)?),
            DeadLetterTarget::Kafka { brokers, topic } => {
                Self::Kafka(KafkaDeadLetterSink::open(brokers, topic)?)
            }
        })
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> std::io::Result<()> {
        match self {
            Self::File(sink) => sink.write(letter),
            Self::Kafka(sink) => sink.write(letter),
        }
    }

    /// Makes every letter written so far durable; an error means some may not be.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(sink) => sink.flush(),
            Self::Kafka(sink) => sink.flush(),
        }
    }

    /// Dead letters written since the sink was opened.
    pub fn written(&self) -> u64 {
        match self {
            Self::File(sink) => sink.written(),
            Self::Kafka(sink) => sink.written,
        }
    }
}

/// One dead-lettered event.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: &'static str,
    pub detail: String,
    pub source: &'a str,
    /// Where the event came from (`partition 3 offset 1200`, `line 17`).
    pub position: String,
    pub payload: String,
}

impl<'a> DeadLetter<'a> {
    pub fn new(rejection: &Rejection, source: &'a str, position: String, payload: &[u8]) -> Self {
        Self {
            reason: rejection.reason(),
            detail: rejection.to_string(),
            source,
            position,
            payload: String::from_utf8_lossy(payload).into_owned(),
        }
    }
}

/// Appends dead letters to an NDJSON file. Buffered; [`flush`](Self::flush) makes them
/// durable (fsync).
pub struct FileDeadLetterSink {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

impl FileDeadLetterSink {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
            written: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, letter)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Dead letters written since the sink was opened.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Counts the messages the broker refused after librdkafka's own retries.
#[derive(Default)]
struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, _)) = result {
            tracing::warn!(%error, "a dead letter was not delivered to Kafka");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces dead letters to a Kafka topic (`acks=all`); its `flush` waits until
/// the broker acknowledged every one, and fails if any was refused.
pub struct KafkaDeadLetterSink {
    topic: String,
    producer: ThreadedProducer<DeliveryCounter>,
    written: u64,
}

impl KafkaDeadLetterSink {
    pub fn open(brokers: &str, topic: &str) -> std::io::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create_with_context(DeliveryCounter::default())
            .map_err(|e| std::io::Error::other(format!("dead-letter producer: {e}")))?;
        Ok(Self {
            topic: topic.to_owned(),
            producer,
            written: 0,
        })
    }

    fn write(&mut self, letter: &DeadLetter<'_>) -> std::io::Result<()> {
        let payload = serde_json::to_vec(letter)?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "reason",
            value: Some(letter.reason),
        });
        let mut record = BaseRecord::to(&self.topic)
            .key(letter.source)
            .payload(&payload)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: let its thread deliver some, then retry.
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(std::io::Error::other(format!(
                        "dead letter to kafka:{}: {e}",
                        self.topic
                    )))
                }
            }
        }
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.producer.flush(KAFKA_FLUSH_TIMEOUT).map_err(|e| {
            std::io::Error::other(format!("dead letters to kafka:{}: {e}", self.topic))
        })?;
        match self.producer.context().failed.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(std::io::Error::other(format!(
                "{n} dead letters were not delivered to kafka:{}",
                self.topic
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source's dead letters go where its `dead_letter` says, else beside an embedded
    /// store, else in the working directory; a `kafka:` sink takes its brokers from the
    /// caller or the source.
    #[test]
    fn a_source_dead_letters_where_it_says_or_beside_the_store() {
        let registry = riffle_testkit::fixtures::generator_registry();
        let mut source = registry.sources[0].clone();
        let embedded = StoreUrl::Embedded("/data".into());
        let redis = StoreUrl::Redis("redis://127.0.0.1:6379".into());
        let file = |path: &str| Some(DeadLetterTarget::File(path.into()));
        let kafka = |brokers: &str| {
            Some(DeadLetterTarget::Kafka {
                brokers: brokers.into(),
                topic: "dl".into(),
            })
        };
        let of =
            |source: &Source, store, brokers| DeadLetterTarget::of_source(source, store, brokers);
        assert_eq!(
            of(&source, &embedded, None),
            file("/data/dead-letter-transactions.ndjson")
        );
        assert_eq!(
            of(&source, &redis, None),
            file("./dead-letter-transactions.ndjson")
        );
        source.dead_letter = Some("file:/var/dl.ndjson".into());
        assert_eq!(of(&source, &embedded, None), file("/var/dl.ndjson"));
        source.dead_letter = Some("kafka:dl".into());
        assert_eq!(
            of(&source, &embedded, None),
            None,
            "a generator source has no brokers"
        );
        assert_eq!(of(&source, &embedded, Some("b:9092")), kafka("b:9092"));
        source.kind = riffle_registry::SourceKind::Kafka {
            brokers: "k:9092".into(),
            topic: "t".into(),
            group_id: "g".into(),
        };
        assert_eq!(of(&source, &redis, None), kafka("k:9092"));
        assert_eq!(of(&source, &redis, Some("b:9092")), kafka("b:9092"));
    }

    #[test]
    fn letters_carry_reason_and_payload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq/dead.ndjson");
        let mut sink = FileDeadLetterSink::open(&path).unwrap();
        let rejection = Rejection::Undecodable("not JSON".into());
        sink.write(&DeadLetter::new(
            &rejection,
            "tx",
            "line 3".into(),
            b"{oops",
        ))
        .unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "undecodable");
        assert_eq!(v["payload"], "{oops");
        assert_eq!(v["position"], "line 3");
        assert_eq!(sink.written(), 1);
    }
}
