//! Talking to a `riffle` started in the background: a blocking HTTP client, waiting until it
//! answers `/health`, and reading the audit log it writes.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A blocking client with a 30 s timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a blocking HTTP client")
}

/// Waits (up to 60 s) until `base` answers `/health`; panics if `child` exits first.
pub fn wait_up(base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client().get(format!("{base}/health")).send().is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process exited early: {status}");
        }
        assert!(Instant::now() < deadline, "never answered /health");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit log's lines once it has `n` of them (or what it has after 10 s).
pub fn audit_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
