//! What the operator-command tests share: a small registry (one group that may serve
//! defaults, one that must fail closed, a quick breaker), a real Redis loaded through
//! `riffle load`, and a real `riffle serve` over it, all stopped on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use riffle_testkit::RedisServer;

use crate::common::TestCommand;

/// The test registry; `p99` is both groups' p99 SLO, `default` the training default of
/// `velocity:tx_count_1h`.
pub fn registry(p99: &str, default: i64, expected: u64) -> String {
    format!(
        r#"
[project]
name = "ops"
peak_rps = 40

[serve.cache]
enabled = true
max_entries = 1000
ttl = "200ms"
negative_ttl = "200ms"

[serve.breaker]
failure_threshold = 3
window = "10s"
reset_timeout = "500ms"
success_threshold = 1

[store]
url = "embedded:./data"
timeout = "250ms"

[[entities]]
name = "user"
join_key = "user_id"
expected_count = {expected}

[[feature_groups]]
name = "velocity"
entity = "user"
ttl = "2h"
freshness_slo = "1h"
p99_slo = "{p99}"
availability_slo = "99%"
on_unsafe = "serve_defaults"

[[feature_groups.features]]
name = "tx_count_1h"
type = "int64"
default = {default}

[[feature_groups.features]]
name = "tx_sum_1h"
type = "float64"
default = 0.0

[[feature_groups]]
name = "embedding"
entity = "user"
ttl = "2h"
freshness_slo = "1h"
p99_slo = "{p99}"
availability_slo = "99%"
on_unsafe = "fail"

[[feature_groups.features]]
name = "vec"
type = "float_vector"
dimension = 2
default = [0.0, 0.0]
"#
    )
}

/// Loads users `u0 … u(n-1)` into both groups of the test registry at `config`.
pub fn load_users(config: &Path, store: &str, n: usize) {
    let cmd = TestCommand::new();
    let mut velocity = String::from("user_id,tx_count_1h,tx_sum_1h\n");
    let mut embedding = String::from("user_id,vec\n");
    for i in 0..n {
        velocity.push_str(&format!("u{i},{},{}.5\n", i % 7 + 1, i));
        embedding.push_str(&format!("u{i},0.5;{}\n", i % 3));
    }
    let files = [
        ("velocity", cmd.write("velocity.csv", &velocity)),
        ("embedding", cmd.write("embedding.csv", &embedding)),
    ];
    for (group, file) in files {
        let mut load = TestCommand::new();
        load.args(["load", "--config"])
            .arg(config)
            .args(["--store", store, "--group", group])
            .arg(file);
        load.expect_code(0);
    }
}

/// A real `riffle serve` over a real Redis holding `users` users.
pub struct Served {
    pub redis: RedisServer,
    pub base: String,
    /// The registry the server runs with.
    pub config: PathBuf,
    serve: Child,
    _dir: TestCommand,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// Another `riffle serve` started by [`Served::beside`]; stopped on drop.
pub struct Beside {
    pub base: String,
    child: Child,
    _dir: TestCommand,
}

impl Drop for Beside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `riffle serve --config config --store store` plus `extra`, and waits for it.
fn spawn_serve(
    dir: &mut TestCommand,
    config: &Path,
    store: &str,
    extra: &[&str],
) -> (String, Child) {
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = dir
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .spawn();
    (base, child)
}

impl Served {
    pub fn start(p99: &str, users: usize) -> Self {
        let redis = RedisServer::start().expect("redis-server starts");
        let mut dir = TestCommand::new();
        let config = dir.write("riffle.toml", &registry(p99, 0, users as u64));
        load_users(&config, &redis.url(), users);
        let (base, serve) = spawn_serve(&mut dir, &config, &redis.url(), &[]);
        let served = Self {
            redis,
            base,
            config,
            serve,
            _dir: dir,
        };
        wait_ready(&served.base);
        served
    }

    /// Another `riffle serve`, with `extra` flags, over the same Redis and registry.
    pub fn beside(&self, extra: &[&str]) -> Beside {
        let mut dir = TestCommand::new();
        let (base, child) = spawn_serve(&mut dir, &self.config, &self.redis.url(), extra);
        let beside = Beside {
            base,
            child,
            _dir: dir,
        };
        wait_ready(&beside.base);
        beside
    }
}

/// `GET base + path` over a plain socket: the body, or `None` when nothing answers.
pub fn http_get(base: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1").then(|| body.to_owned())
}

/// Waits until `riffle serve` at `base` answers `/health`.
pub fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(base, "/health").is_none() {
        assert!(Instant::now() < deadline, "riffle serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP server on a free port that answers every connection with `answer` (or holds it
/// open without a word when `answer` is `None`), until the test ends.
pub fn fake_server(answer: Option<&'static str>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            match answer {
                Some(text) => {
                    let _ = conn.write_all(text.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Parses stdout as JSON or fails with it.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}
