//! `TestCommand`: runs the real `riffle` binary in a fresh temporary directory, with the
//! `RIFFLE_*` environment cleared, and reports stdout/stderr whenever an expectation fails;
//! `certs` mints the certificates of TLS tests; `serving` talks to a `riffle` started in the
//! background.
#![allow(dead_code)]

pub mod certs;
pub mod serving;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The fraud example registry of this repository.
pub fn fraud_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fraud/riffle.toml")
}

pub fn fraud_profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fraud/profiles.csv")
}

/// A `riffle` invocation being built.
pub struct TestCommand {
    dir: tempfile::TempDir,
    cmd: Command,
}

impl TestCommand {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tests can create temporary directories");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_riffle"));
        cmd.current_dir(dir.path())
            .env_remove("RIFFLE_CONFIG")
            .env_remove("RIFFLE_STORE")
            .env_remove("RIFFLE_LISTEN")
            .env("RUST_LOG", "warn");
        Self { dir, cmd }
    }

    /// The directory the command runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the command's directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("tests can write into their temporary directory");
        path
    }

    pub fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Runs to completion (killed after 120 s).
    pub fn output(&mut self) -> Output {
        let child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the riffle binary starts");
        wait_with_deadline(child, Duration::from_secs(120))
    }

    /// Runs and checks the exit code; returns (stdout, stderr).
    pub fn expect_code(&mut self, code: i32) -> (String, String) {
        let out = self.output();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "riffle {:?} exited with {:?}, expected {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.cmd.get_args().collect::<Vec<_>>(),
            out.status
        );
        (stdout, stderr)
    }

    /// Starts the command in the background, stdout and stderr both appended to `log`.
    pub fn spawn_logged(&mut self, log: &Path) -> Child {
        let out = std::fs::File::create(log).expect("tests can create a log file");
        let err = out.try_clone().expect("a log file can be shared");
        self.cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("the riffle binary starts")
    }

    /// Starts the command in the background (stdout piped, stderr inherited).
    pub fn spawn(&mut self) -> Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the riffle binary starts")
    }
}

/// A background `riffle` process, killed and reaped when dropped: when the test ends,
/// whatever way it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` while reading its output (so a full pipe cannot stall it); kills it
/// when `limit` passes.
fn wait_with_deadline(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("the riffle binary's output can be read"),
        Err(_) => {
            let _ = riffle_testkit::signal(pid, "KILL");
            panic!("riffle did not finish within {limit:?}");
        }
    }
}

/// `GET base + path` over a fresh plain connection: (HTTP status, body), or `None` when
/// nothing answered (a server down or hung past 5 s).
pub fn http_get_status(base: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// `riffle serve` over the test Redis, without its hot cache (every read sees the store),
/// killed on drop.
pub struct Serve {
    child: Child,
    pub base: String,
}

impl Serve {
    pub fn start(config: &Path, store: &str) -> Self {
        let port = riffle_testkit::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = TestCommand::new();
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--store", store, "--no-cache"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .spawn();
        let serve = Self { child, base };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get_status(&serve.base, "/health").is_none() {
            assert!(Instant::now() < deadline, "riffle serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    /// Stops serve with SIGTERM and waits for its graceful exit (requests in flight
    /// answered, the feature log's last file completed); any other end fails the test.
    pub fn stop(mut self) {
        riffle_testkit::signal(self.child.id(), "TERM").expect("serve can be signalled");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().expect("serve can be waited for") {
                Some(status) => {
                    assert!(status.success(), "serve stopped with {status}");
                    return;
                }
                None => {
                    assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// `GET /v1/features/user/{user}{query}`: the body; any answer but 200 fails the test.
    pub fn user_body(&self, user: &str, query: &str) -> String {
        let (code, body) = http_get_status(&self.base, &format!("/v1/features/user/{user}{query}"))
            .expect("serve answers");
        assert_eq!(code, 200, "{body}");
        body
    }

    /// [`Serve::user_body`] as JSON.
    pub fn user(&self, user: &str, query: &str) -> serde_json::Value {
        serde_json::from_str(&self.user_body(user, query)).expect("JSON")
    }

    /// The status `serve` gives the first group of `user` (`missing` when it has no row).
    pub fn status(&self, user: &str) -> String {
        self.user(user, "")["results"][0]["groups"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
