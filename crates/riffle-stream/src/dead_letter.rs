//! The dead-letter sink: every event the pipeline could not use, with its reason, so that
//! nothing is dropped silently. Embedded deployments write NDJSON to a file; each record is
//! `{"reason", "detail", "source", "position", "payload"}` with the original payload as text.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decode::Rejection;

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
/// durable and is called before source positions are committed.
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

#[cfg(test)]
mod tests {
    use super::*;

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
