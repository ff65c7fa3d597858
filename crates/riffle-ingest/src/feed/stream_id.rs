//! The stable stream ids that make replays of an input recognisable: a Kafka partition's
//! hashes its topic and partition, a file's its canonical absolute path, device and inode;
//! stdin's hashes the process start, so stdin replays are **not** deduplicated across runs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// The stream id of an archive: a hash of its location and of each of its files' name, size
/// and change tag (an ETag or modification time), so the same objects replayed again are
/// recognised and a changed archive is a new stream.
pub fn archive_stream_id<'a>(
    location: &str,
    files: impl IntoIterator<Item = (&'a str, u64, &'a str)>,
) -> u64 {
    let mut h = Fnv::new();
    h.write(b"archive\0");
    h.write(location.as_bytes());
    for (name, size, tag) in files {
        h.write(b"\0");
        h.write(name.as_bytes());
        h.write(&size.to_le_bytes());
        h.write(tag.as_bytes());
    }
    h.0
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

/// FNV-1a, 64 bits: stable across builds and platforms (stream ids are stored beside every
/// entity's positions, so the hash must never change; std's hashers promise no such thing).
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
