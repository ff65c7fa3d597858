//! The audit log (`auth.audit_log`): every write, accepted event batch, admin action and
//! denial as one JSON line — time, principal, action, target, rows or events, outcome.
//! Lines go through a bounded queue to a writer thread, so a request never waits for the
//! disk; a full queue drops the line and counts it (`riffle_auth_audit_dropped_total`).
//! The file is renamed `PATH.1` past `rotate_bytes` (older ones shift up to `PATH.<keep>`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use prometheus_client::metrics::counter::Counter;
use riffle_registry::AuditSettings;
use serde::Serialize;

/// Lines waiting for the writer; beyond it they are dropped and counted.
const QUEUE: usize = 8192;

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// The principal's name, `anonymous` on an open route, `unknown` for a credential no
    /// principal has.
    pub principal: String,
    /// `write`, `ingest`, `admin`, `read` (denials only), `metrics` (denials only).
    pub action: &'static str,
    /// The group, source or route acted on.
    pub target: String,
    /// Rows written or events accepted (0 for a denial).
    pub count: u64,
    /// `ok`, or the denial (`forbidden`, `unknown_token`, ...).
    pub outcome: &'static str,
    /// The listener: `serve`, `ingest`, ...
    pub listener: &'static str,
}

impl AuditEntry {
    /// An entry stamped now.
    pub fn now(
        listener: &'static str,
        principal: &str,
        action: &'static str,
        target: impl Into<String>,
        count: u64,
        outcome: &'static str,
    ) -> AuditEntry {
        AuditEntry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            principal: principal.to_owned(),
            action,
            target: target.into(),
            count,
            outcome,
            listener,
        }
    }
}

/// The sending side of the audit log; cloning shares the writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<AuditEntry>,
    dropped: Counter,
}

impl AuditLog {
    /// Opens (appends to) the file `settings` names and starts its writer thread; lines
    /// dropped for a full queue are counted in `dropped`.
    pub fn open(settings: &AuditSettings, dropped: Counter) -> io::Result<AuditLog> {
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = Rotating::open(settings)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("riffle-audit".into())
            .spawn(move || write_lines(rx, file))?;
        Ok(AuditLog { tx, dropped })
    }

    /// Queues `entry`; never waits.
    pub fn record(&self, entry: AuditEntry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// The writer thread: each line appended, the file flushed whenever the queue is empty,
/// until every sender is gone.
fn write_lines(rx: Receiver<AuditEntry>, mut file: Rotating) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(entry) = next {
            if let Err(e) = file.append(&entry) {
                tracing::warn!(error = %e, path = %file.path.display(), "cannot write the audit log");
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = file.flush() {
            tracing::warn!(error = %e, path = %file.path.display(), "cannot flush the audit log");
        }
    }
}

/// The audit file and its size, rotated past the limit.
struct Rotating {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    rotate_bytes: u64,
    keep: u32,
}

impl Rotating {
    fn open(settings: &AuditSettings) -> io::Result<Rotating> {
        let file = append_to(&settings.path)?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            path: settings.path.clone(),
            out: BufWriter::new(file),
            size,
            rotate_bytes: settings.rotate_bytes,
            keep: settings.keep,
        })
    }

    fn append(&mut self, entry: &AuditEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.rotate_bytes {
            self.rotate()?;
        }
        self.out.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// `PATH.<keep-1>` → `PATH.<keep>`, …, `PATH` → `PATH.1`, then a new `PATH`.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                if numbered(n).exists() {
                    std::fs::rename(numbered(n), numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.out = BufWriter::new(append_to(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn entries_are_json_lines_rotated_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit").join("audit.log");
        let settings = AuditSettings {
            path: path.clone(),
            rotate_bytes: 4096,
            keep: 2,
        };
        let log = AuditLog::open(&settings, Counter::default()).unwrap();
        for i in 0..100 {
            log.record(AuditEntry::now(
                "serve",
                "loader",
                "write",
                format!("g{i}"),
                3,
                "ok",
            ));
        }
        drop(log);
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let written = || lines(&path).last().is_some_and(|l| l["target"] == "g99");
        while !written() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // ~120 bytes a line: 100 lines fill about three 4 KiB files; two rotated are kept.
        assert!(rotated(1).exists() && rotated(2).exists() && !rotated(3).exists());
        let newest = lines(&path);
        let last = newest.last().unwrap();
        assert_eq!(last["target"], "g99");
        assert_eq!(last["principal"], "loader");
        assert_eq!(last["action"], "write");
        assert_eq!(last["count"], 3);
        assert_eq!(last["outcome"], "ok");
        assert_eq!(last["listener"], "serve");
        for file in [path.clone(), rotated(1), rotated(2)] {
            assert!(std::fs::metadata(&file).unwrap().len() <= 4096, "{file:?}");
        }
    }
}
