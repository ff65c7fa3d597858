//! A private Kafka-protocol broker for one test: `tansu` with its in-memory storage engine,
//! on a free loopback port. Tests create their own topics.
//!
//! Facts this relies on (tansu 0.6.0, see TESTING.md): `tansu broker` binds
//! `--listener-url` and prints `ready in Nms` (~0.2 s); `tansu topic create` takes
//! `--broker URL --partitions N NAME`. tansu reads a `.env` file from its working directory
//! and its settings from the environment (`STORAGE_ENGINE`, …), so it runs in a private temp
//! directory with those variables removed. Its output goes to `tansu.log` there.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::process::Process;

/// The `tansu` binary: `$TANSU` or `tansu` on the `PATH` (installed by `scripts/test.sh`).
fn tansu_bin() -> String {
    std::env::var("TANSU").unwrap_or_else(|_| "tansu".into())
}

/// Environment variables tansu reads as defaults for its flags.
const TANSU_ENV: &[&str] = &[
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "DATA_LAKE",
];

/// A `tansu` broker on a free loopback port, keeping messages in memory (gone when it
/// stops), killed on `Drop`.
pub struct KafkaBroker {
    process: Process,
    port: u16,
    dir: tempfile::TempDir,
}

impl KafkaBroker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> std::io::Result<Self> {
        let mut last_err = None;
        // A free port can be taken between the check and the bind: try a few.
        for _ in 0..5 {
            let mut broker = Self {
                process: Process::default(),
                port: free_port(),
                dir: tempfile::tempdir()?,
            };
            match broker.spawn() {
                Ok(()) => return Ok(broker),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("tansu did not start")))
    }

    /// Starts a broker on `port` (one try): for a client that was started against that
    /// port before any broker listened there.
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let mut broker = Self {
            process: Process::default(),
            port,
            dir: tempfile::tempdir()?,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(tansu_bin());
        cmd.current_dir(self.dir.path());
        for var in TANSU_ENV {
            cmd.env_remove(var);
        }
        cmd
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let url = self.url();
        let log = std::fs::File::create(self.log_path())?;
        let child = self
            .command()
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| std::io::Error::other(format!("cannot run {}: {e}", tansu_bin())))?;
        self.process.set(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.process.exited()? {
                return Err(std::io::Error::other(format!(
                    "tansu exited: {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "tansu did not listen in time: {}",
            self.log()
        )))
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tcp://127.0.0.1:PORT`, as tansu's own commands want it.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    /// What the broker printed so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// True when the broker accepts TCP connections.
    pub fn accepts(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Creates a topic with `partitions` partitions (retried briefly while the broker
    /// settles).
    pub fn create_topic(&self, name: &str, partitions: u32) -> std::io::Result<()> {
        let mut last = String::new();
        for _ in 0..20 {
            let out = self
                .command()
                .args(["topic", "create", "--broker", &self.url()])
                .args(["--partitions", &partitions.to_string(), name])
                .output()?;
            if out.status.success() {
                return Ok(());
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(std::io::Error::other(format!(
            "cannot create topic {name}: {last}"
        )))
    }

    /// The topic names, from `tansu topic list`'s output.
    pub fn list_topics(&self) -> std::io::Result<String> {
        let out = self
            .command()
            .args(["topic", "list", "--broker", &self.url()])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "tansu topic list failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `SIGKILL`: the broker disappears, and with it every message (memory storage).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// `SIGSTOP`: the broker hangs with its connections open.
    pub fn pause(&mut self) {
        self.process.pause();
    }

    /// `SIGCONT` after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.process.resume();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_creates_a_topic_and_dies() {
        let mut broker = KafkaBroker::start().unwrap();
        assert!(broker.accepts());
        broker.create_topic("events", 4).unwrap();
        let topics = broker.list_topics().unwrap();
        assert!(topics.contains("events"), "{topics}");
        broker.kill();
        assert!(!broker.accepts());
    }
}
