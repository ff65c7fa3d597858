//! Where replayed events come from: numbered NDJSON lines of one input, read on a thread
//! of their own, and the stable id of that input (its *stream*).
//!
//! A file's stream id is a 64-bit FNV-1a hash of its canonical absolute path, device and
//! inode, so a re-run over the same file is recognised and deduplicated. Stdin has no such
//! identity: its stream id hashes the process start time, so stdin replays are **not**
//! deduplicated across runs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tokio::sync::mpsc;

/// One input line: its number (from 1) and bytes (without the line ending).
pub type Line = (u64, Vec<u8>);

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

/// Reads `input` line by line on a thread, sending non-blank lines in chunks of up to
/// `chunk` (a chunk is sent early whenever the next read could block: the buffer ran dry);
/// a read error ends the stream with `Err`. The channel's bound is the backpressure.
pub fn spawn_reader(
    input: Box<dyn Read + Send>,
    chunk: usize,
    capacity: usize,
) -> std::io::Result<mpsc::Receiver<std::io::Result<Vec<Line>>>> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    std::thread::Builder::new()
        .name("riffle-ingest-reader".into())
        .spawn(move || {
            let mut input = BufReader::with_capacity(1 << 16, input);
            let mut batch = Vec::with_capacity(chunk);
            let mut number = 0u64;
            loop {
                let mut buf = Vec::new();
                match input.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        number += 1;
                        while matches!(buf.last(), Some(b'\n' | b'\r')) {
                            buf.pop();
                        }
                        if !buf.iter().all(u8::is_ascii_whitespace) {
                            batch.push((number, buf));
                        }
                        let dry = input.buffer().is_empty();
                        if (batch.len() >= chunk || dry) && !batch.is_empty() {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(chunk));
                            if tx.blocking_send(Ok(full)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(Ok(batch));
            }
        })?;
    Ok(rx)
}

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
