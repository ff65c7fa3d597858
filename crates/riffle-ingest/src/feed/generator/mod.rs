//! The generator feed of the pipeline: an [`EventGenerator`] on a thread of its own, paced
//! by a token bucket ([`Pacer`]), sending [`Feed::Records`] through the same bounded channel
//! as every other input, so a slow store blocks the generator (backpressure) and the time
//! spent blocked is not made up in a flood afterwards.
//!
//! Records of one run share a stream id derived from the seed and the process start (like
//! stdin: generated events are not deduplicated across runs) and carry offsets 1, 2, 3, …
//!
//! With an archive, every event is also appended to it as an NDJSON line before it is
//! sent, and the file is flushed every tick: what a topic's archive would keep, so the
//! generated stream can be replayed as history. An archive that cannot be written is
//! warned of once and then left alone: the stream goes on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use riffle_core::Timestamp;
use tokio::sync::mpsc;

use crate::feed::item::{Feed, Record};
use crate::feed::stream_id::stdin_stream_id;
use riffle_synth::{EventGenerator, Pacer};

/// How often the pacer is asked for due events.
const TICK: Duration = Duration::from_millis(5);

/// The stream id of a generator run: the seed mixed with the process start.
pub fn generator_stream_id(seed: u64) -> u64 {
    let mut x = stdin_stream_id() ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6E6E_6E6E;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The running generator thread; dropping the receiver or [`GeneratorFeed::stop`] ends it.
pub struct GeneratorFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GeneratorFeed {
    /// Starts generating: `limit` events in all (then the feed ends), or forever. Records go
    /// to the returned receiver in chunks of up to `chunk`, at most `capacity` chunks queued.
    pub fn start(
        generator: EventGenerator,
        pacer: Pacer,
        stream: u64,
        limit: Option<u64>,
        chunk: usize,
        capacity: usize,
        archive: Option<File>,
    ) -> std::io::Result<(Self, mpsc::Receiver<std::io::Result<Feed>>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut archive = archive.map(|f| Archive {
            out: Some(BufWriter::new(f)),
        });
        let thread = std::thread::Builder::new()
            .name("riffle-generator".into())
            .spawn(move || {
                let run = Run {
                    stream,
                    limit,
                    chunk: chunk.max(1),
                };
                generate(generator, pacer, &run, &tx, &flag, archive.as_mut());
                if let Some(archive) = archive.as_mut() {
                    archive.flush();
                }
            })?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Stops generating and waits for the thread (call from a blocking context, or after
    /// the receiver is dropped).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the generator thread panicked");
            }
        }
    }
}

/// What one generator run sends: its stream id, how many events in all, records per item.
struct Run {
    stream: u64,
    limit: Option<u64>,
    chunk: usize,
}

/// The file generated events are kept in; `None` once a write failed.
struct Archive {
    out: Option<BufWriter<File>>,
}

impl Archive {
    fn keep(&mut self, payload: &[u8]) {
        let written = self
            .out
            .as_mut()
            .map(|out| out.write_all(payload).and_then(|()| out.write_all(b"\n")));
        if let Some(Err(e)) = written {
            tracing::warn!(error = %e, "cannot write the generator's archive; events are no longer archived");
            self.out = None;
        }
    }

    fn flush(&mut self) {
        if let Some(Err(e)) = self.out.as_mut().map(|out| out.flush()) {
            tracing::warn!(error = %e, "cannot write the generator's archive; events are no longer archived");
            self.out = None;
        }
    }
}

fn generate(
    mut generator: EventGenerator,
    mut pacer: Pacer,
    run: &Run,
    tx: &mpsc::Sender<std::io::Result<Feed>>,
    stop: &AtomicBool,
    mut archive: Option<&mut Archive>,
) {
    let Run {
        stream,
        limit,
        chunk,
    } = *run;
    let started = Instant::now();
    let mut offset = 0u64;
    loop {
        if stop.load(Ordering::SeqCst) || tx.is_closed() {
            return;
        }
        let mut due = pacer.due(started.elapsed());
        if let Some(limit) = limit {
            due = due.min(limit - offset);
        }
        while due > 0 {
            let n = due.min(chunk as u64);
            due -= n;
            let now = Timestamp::now().millis();
            let records: Vec<Record> = (0..n)
                .map(|_| {
                    offset += 1;
                    let payload = generator.next_event(now);
                    if let Some(archive) = archive.as_deref_mut() {
                        archive.keep(&payload);
                    }
                    Record {
                        stream,
                        offset,
                        partition: None,
                        payload,
                    }
                })
                .collect();
            // Blocks while the queue is full: that is the backpressure.
            if tx.blocking_send(Ok(Feed::Records(records))).is_err() {
                return;
            }
        }
        if let Some(archive) = archive.as_deref_mut() {
            archive.flush();
        }
        if limit.is_some_and(|l| offset >= l) {
            return;
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoder;
    use riffle_synth::{Bursts, EventPlan};

    #[test]
    fn a_limited_feed_sends_exactly_the_limit_with_increasing_offsets_then_ends() {
        let reg = riffle_testkit::fixtures::generator_registry();
        let plan = EventPlan::new(1e9, 100, 1);
        let generator = EventGenerator::new(&reg, &reg.sources[0], &plan).unwrap();
        let pacer = Pacer::new(1e9, Bursts::none(1));
        let (feed, mut rx) =
            GeneratorFeed::start(generator, pacer, 9, Some(1_234), 100, 2, None).unwrap();
        let mut offsets = Vec::new();
        while let Some(item) = rx.blocking_recv() {
            let Ok(Feed::Records(records)) = item else {
                panic!("only records");
            };
            assert!(records.len() <= 100);
            offsets.extend(records.iter().map(|r| {
                assert_eq!(r.stream, 9);
                r.offset
            }));
        }
        assert_eq!(offsets, (1..=1_234).collect::<Vec<_>>());
        feed.stop();
    }

    #[test]
    fn events_decode_by_the_source_schema() {
        let reg = riffle_testkit::fixtures::generator_registry();
        let source = &reg.sources[0];
        let plan = EventPlan::new(500.0, 10_000, 7);
        let mut gen = EventGenerator::new(&reg, source, &plan).unwrap();
        let decoder = Decoder::new(&reg, source);
        let now = 1_800_000_000_000;
        for _ in 0..2_000 {
            let payload = gen.next_event(now);
            let event = decoder
                .decode(&payload, None)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&payload)));
            let t = event.time.millis();
            assert!((now - 3_000..=now).contains(&t), "time {t}");
            assert!(event.fields.iter().all(|v| !v.is_null()), "{event:?}");
        }
    }
}
