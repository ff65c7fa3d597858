//! A private `redis-server` for one test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::process::Process;

/// A `redis-server` on a free loopback port, with no persistence, in its own temp dir.
pub struct RedisServer {
    process: Process,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`--requirepass x`, …).
    pub fn start_with(extra_args: &[&str]) -> std::io::Result<Self> {
        let mut last_err = None;
        // A free port can be taken between the check and the bind: try a few.
        for _ in 0..5 {
            let mut server = Self {
                process: Process::default(),
                port: free_port(),
                dir: tempfile::tempdir()?,
                extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
                tls: false,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    /// Starts a replica of the server on `primary_port` (`--replicaof`); wait for its link
    /// with [`wait_linked`](Self::wait_linked).
    pub fn start_replica_of(primary_port: u16) -> std::io::Result<Self> {
        Self::start_with(&["--replicaof", "127.0.0.1", &primary_port.to_string()])
    }

    /// Waits until this replica says its link to the primary is up (`master_link_status:up`).
    pub fn wait_linked(&self, within: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self
                .cli(&["INFO", "replication"])?
                .contains("master_link_status:up")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("replica on port {} never linked", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a TLS-only server (self-signed certificate made with `openssl`); reach it with
    /// [`tls_url`](Self::tls_url).
    pub fn start_tls() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(
                "openssl could not make a certificate",
            ));
        }
        let cert = dir.path().join("cert.pem").display().to_string();
        let key = dir.path().join("key.pem").display().to_string();
        let mut server = Self {
            process: Process::default(),
            port: free_port(),
            dir,
            extra_args: [
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &cert,
                "--tls-auth-clients",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            tls: true,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `rediss://127.0.0.1:PORT/#insecure` (the test certificate is self-signed).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/#insecure", self.port)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let port = self.port.to_string();
        let (plain_port, tls_port) = if self.tls {
            ("0", Some(port.as_str()))
        } else {
            (port.as_str(), None)
        };
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", plain_port]);
        if let Some(p) = tls_port {
            cmd.args(["--tls-port", p]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.process.set(child);
        self.wait_ready(Duration::from_secs(5))
    }

    fn wait_ready(&mut self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.process.exited()? {
                return Err(std::io::Error::other(format!(
                    "redis-server exited at start: {status}"
                )));
            }
            if self.answers_ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(std::io::Error::other(
            "redis-server did not answer PING in time",
        ))
    }

    /// True when the server answers `PING` (or `-NOAUTH`, which also proves it is up).
    pub fn answers_ping(&self) -> bool {
        if self.tls {
            return self
                .cli(&["PING"])
                .is_ok_and(|out| out == "PONG" || out.contains("NOAUTH"));
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(n) if n > 0 && (buf.starts_with(b"+PONG") || buf.starts_with(b"-NOAUTH")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// `SIGKILL`: the server is gone at once, connections reset.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// `SIGSTOP`: the server hangs with its connections open (the honest timeout test).
    pub fn pause(&mut self) {
        self.process.pause();
    }

    /// `SIGCONT` after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.process.resume();
    }

    /// Starts the server again on the same port after [`kill`](Self::kill). Its data is
    /// gone (no persistence), as after a real crash without AOF.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> std::io::Result<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if self.tls {
            cmd.args(["--tls", "--insecure"]);
        }
        let out = cmd.args(args).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_pauses_kills_and_restarts() {
        let mut redis = RedisServer::start().unwrap();
        assert!(redis.answers_ping());
        assert_eq!(redis.cli(&["SET", "k", "v"]).unwrap(), "OK");
        redis.pause();
        assert!(!redis.answers_ping());
        redis.resume();
        assert!(redis.answers_ping());
        redis.kill();
        assert!(!redis.answers_ping());
        redis.restart().unwrap();
        assert!(redis.answers_ping());
        assert_eq!(redis.cli(&["GET", "k"]).unwrap(), "");
    }
}
