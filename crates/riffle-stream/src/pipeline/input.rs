//! Where events come from: the [`Feed`] the pipeline reads ([`Record`]s, each at a
//! `(stream, offset)` position, rebalance marks and the caught-up mark), the reader of
//! numbered NDJSON lines of one input (on a thread of its own, optionally following the file
//! as it grows and saying when it reached the end), and the stable stream ids of files,
//! stdin and Kafka partitions.
//!
//! A file's stream id is a 64-bit FNV-1a hash of its canonical absolute path, device and
//! inode, so a re-run over the same file is recognised and deduplicated. Stdin has no such
//! identity: its stream id hashes the process start time, so stdin replays are **not**
//! deduplicated across runs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tokio::sync::mpsc;

use super::ack::Ack;

/// One event to apply, at its position: `offset` is a line number (from 1) or a Kafka
/// offset; `partition` is the Kafka partition the record came from, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: u64,
    pub offset: u64,
    pub partition: Option<i32>,
    pub payload: Vec<u8>,
}

impl Record {
    /// Where the record came from, for dead letters.
    pub fn origin(&self) -> String {
        match self.partition {
            Some(p) => format!("partition {p} offset {}", self.offset),
            None => format!("line {}", self.offset),
        }
    }
}

/// What the pipeline receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    Records(Vec<Record>),
    /// Kafka partitions were taken from this process: the pipeline flushes, then forgets all
    /// in-memory entity state (it is reloaded from the store when next touched).
    Revoked,
    /// Kafka partitions were given to this process (after a rebalance, the whole set it now
    /// owns), so the pipeline can take over what belongs to them (e.g. pending expiries) and
    /// publish their watermarks; `partition_count` is how many the topic has, when the
    /// broker said.
    Assigned {
        partitions: Vec<i32>,
        partition_count: Option<u32>,
    },
    /// These input streams are drained: every record of theirs available now was sent (a
    /// followed file at its end; a Kafka partition at its high watermark). Until a record
    /// of one comes again the pipeline publishes the flush time as its watermark, so an
    /// idle partition or file is not judged behind. Sent by the follow reader
    /// ([`spawn_reader`] with `follow`) and by the Kafka feed once per catch-up of each
    /// partition; a feed that never sends it keeps the largest event time as watermark.
    CaughtUp(Vec<u64>),
    /// Pushed records (HTTP) whose sender waits: the pipeline applies them on their own and
    /// answers the [`Ack`] with their outcome once a flush made them durable.
    Acked(Vec<Record>, Ack),
}

/// The stream id of one partition of a Kafka topic.
pub fn kafka_stream_id(topic: &str, partition: i32) -> u64 {
    let mut h = Fnv::new();
    h.write(b"kafka\0");
    h.write(topic.as_bytes());
    h.write(b"\0");
    h.write(&partition.to_le_bytes());
    h.0
}

/// The stream id of a file.
pub fn file_stream_id(path: &Path) -> std::io::Result<u64> {
    let canonical = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&canonical)?;
    let mut h = Fnv::new();
    h.write(canonical.as_os_str().as_encoded_bytes());
    h.write(&meta.dev().to_le_bytes());
    h.write(&meta.ino().to_le_bytes());
    Ok(h.0)
}

/// The stream id of this process's stdin: a hash of the start time (not deduplicated
/// across runs).
pub fn stdin_stream_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Fnv::new();
    h.write(b"stdin");
    h.write(&nanos.to_le_bytes());
    h.write(&std::process::id().to_le_bytes());
    h.0
}

/// Reads `input` line by line on a thread as records of `stream`, sending non-blank lines
/// in chunks of up to `chunk` (a chunk is sent early whenever the next read could block: the
/// buffer ran dry); a read error ends the stream with `Err`. The channel's bound is the
/// backpressure. With `follow`, end of file is not the end: the reader polls for appended
/// lines (a partial last line waits for its newline) until the receiver is dropped, and
/// each time it reaches the end after reading lines (and once at the start if the file is
/// empty) it sends [`Feed::CaughtUp`].
pub fn spawn_reader(
    input: Box<dyn Read + Send>,
    stream: u64,
    follow: bool,
    chunk: usize,
    capacity: usize,
) -> std::io::Result<mpsc::Receiver<std::io::Result<Feed>>> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    std::thread::Builder::new()
        .name("riffle-ingest-reader".into())
        .spawn(move || {
            let mut input = BufReader::with_capacity(1 << 16, input);
            let mut batch = Vec::with_capacity(chunk);
            let mut number = 0u64;
            let mut buf = Vec::new();
            // Whether the reader is at the end it last told the pipeline about.
            let mut told = false;
            let send = |batch: &mut Vec<Record>| {
                let full = std::mem::replace(batch, Vec::with_capacity(chunk));
                tx.blocking_send(Ok(Feed::Records(full))).is_ok()
            };
            loop {
                match input.read_until(b'\n', &mut buf) {
                    Ok(0) if follow => {
                        if !batch.is_empty() && !send(&mut batch) {
                            return;
                        }
                        if !told {
                            told = true;
                            if tx.blocking_send(Ok(Feed::CaughtUp(vec![stream]))).is_err() {
                                return;
                            }
                        }
                        if tx.is_closed() {
                            return;
                        }
                        std::thread::sleep(FOLLOW_POLL);
                    }
                    Ok(0) => break,
                    Ok(_) if follow && buf.last() != Some(&b'\n') => {
                        // A line still being written: wait for the rest of it.
                        std::thread::sleep(FOLLOW_POLL);
                    }
                    Ok(_) => {
                        told = false;
                        number += 1;
                        let mut line = std::mem::take(&mut buf);
                        while matches!(line.last(), Some(b'\n' | b'\r')) {
                            line.pop();
                        }
                        if !line.iter().all(u8::is_ascii_whitespace) {
                            batch.push(Record {
                                stream,
                                offset: number,
                                partition: None,
                                payload: line,
                            });
                        }
                        let dry = input.buffer().is_empty();
                        if (batch.len() >= chunk || dry) && !batch.is_empty() && !send(&mut batch) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                send(&mut batch);
            }
        })?;
    Ok(rx)
}

/// How often a followed file is checked for new lines.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// FNV-1a, 64 bits: stable across builds and platforms.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    /// The next mark that is not an empty chunk, within a generous deadline.
    fn next(rx: &mut mpsc::Receiver<std::io::Result<Feed>>) -> Feed {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match rx.try_recv() {
                Ok(Ok(Feed::Records(r))) if r.is_empty() => {}
                Ok(feed) => return feed.unwrap(),
                Err(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nothing from the reader"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    #[test]
    fn a_followed_file_says_when_it_is_caught_up_once_per_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson");
        std::fs::write(&path, "a\nb\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut rx = spawn_reader(Box::new(file), 9, true, 16, 4).unwrap();
        let Feed::Records(first) = next(&mut rx) else {
            panic!("records first")
        };
        assert_eq!(first.len(), 2);
        assert_eq!(next(&mut rx), Feed::CaughtUp(vec![9]));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        let Feed::Records(more) = next(&mut rx) else {
            panic!("the appended line")
        };
        assert_eq!((more.len(), more[0].offset), (1, 3));
        assert_eq!(next(&mut rx), Feed::CaughtUp(vec![9]));
        // Idle: no further mark until something new is read.
        std::thread::sleep(Duration::from_millis(500));
        assert!(rx.try_recv().is_err());
    }
}
