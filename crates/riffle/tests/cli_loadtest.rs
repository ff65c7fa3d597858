//! `riffle loadtest` with the real binary against a real `riffle serve` over a real Redis:
//! the counts and statuses in the report are what was sent (known ids ⇒ `fresh`, cold ids
//! ⇒ `missing` with the training default, replayed ids in their order, batches), the open
//! loop sends its intended number of requests, an impossible p99 SLO exits 3 and a generous
//! one 0, and unreachable, silent or garbage targets fail with a clear message, never a hang.

mod common;
mod ops_support;

use common::TestCommand;
use ops_support::{fake_server, json, Served};
use serde_json::Value;

fn loadtest(config: &std::path::Path, base: &str, extra: &[&str], code: i32) -> (Value, String) {
    let mut cmd = TestCommand::new();
    cmd.args(["loadtest", "--config"])
        .arg(config)
        .args(["--target", base, "--json", "--quiet"])
        .args(extra);
    let (stdout, stderr) = cmd.expect_code(code);
    (json(&stdout), stderr)
}

fn count(report: &Value, group: &str, status: &str) -> u64 {
    report["values"][group][status].as_u64().unwrap_or(0)
}

#[test]
fn loadtest_counts_and_statuses_match_what_was_sent() {
    let served = Served::start("1s", 50);
    let config = &served.config;
    let base = &served.base;

    // Known ids only, closed loop: every value fresh, every response healthy.
    let (r, _) = loadtest(
        config,
        base,
        &[
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--users",
            "50",
            "--cold-share",
            "0",
        ],
        0,
    );
    let ok = r["ok"].as_u64().unwrap();
    assert!(ok > 20, "{r}");
    assert_eq!(r["sent"], ok, "{r}");
    assert_eq!(r["mode"], "closed");
    assert_eq!(count(&r, "velocity", "fresh"), 2 * ok, "{r}");
    assert_eq!(count(&r, "embedding", "fresh"), ok, "{r}");
    assert_eq!(r["degradation"]["healthy"], ok, "{r}");
    assert_eq!(r["default_mismatches"], 0);
    assert_eq!(r["level_violations"], 0);
    assert_eq!(r["passed"], true);
    let groups: Vec<&str> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["velocity", "embedding"]);
    let l = &r["latency_ms"];
    for (a, b) in [
        ("p50", "p90"),
        ("p90", "p99"),
        ("p99", "p999"),
        ("p999", "max"),
    ] {
        assert!(l[a].as_f64().unwrap() <= l[b].as_f64().unwrap(), "{l}");
    }

    // Cold ids only, open loop at 40 req/s for 2 s: 80 requests, every value missing and
    // served as the training default, every response degraded, still no error.
    let (r, _) = loadtest(
        config,
        base,
        &["--rate", "40", "--duration", "2s", "--cold-share", "1"],
        0,
    );
    assert_eq!(r["mode"], "open");
    assert_eq!(r["intended_requests"], 80, "{r}");
    let sent = r["sent"].as_u64().unwrap();
    assert_eq!(sent, 80, "{r}");
    assert_eq!(r["ok"], sent);
    assert_eq!(count(&r, "velocity", "missing"), 2 * sent, "{r}");
    assert_eq!(count(&r, "embedding", "missing"), sent, "{r}");
    assert_eq!(count(&r, "velocity", "fresh"), 0, "{r}");
    assert_eq!(r["degradation"]["degraded"], sent, "{r}");
    assert_eq!(r["default_mismatches"], 0);
    assert!(r["dispatch_lag_p99_ms"].as_f64().is_some());

    // --peak × --factor is an open-loop rate; the peak defaults to the registry's (40).
    let (r, _) = loadtest(config, base, &["--factor", "0.5", "--duration", "1s"], 0);
    assert_eq!(r["rate"], 20.0, "{r}");
    assert_eq!(
        (r["peak_rps"].as_f64(), r["factor"].as_f64()),
        (Some(40.0), Some(0.5))
    );
    assert_eq!(r["intended_requests"], 20, "{r}");
    // The last run is recorded beside the registry for `riffle check`.
    let record = config.parent().unwrap().join(".riffle/last-loadtest.json");
    let saved = json(&std::fs::read_to_string(record).unwrap());
    assert_eq!(saved["passed"], true);
    assert_eq!(saved["factor"], 0.5);
    assert!(saved["finished_at"].as_str().unwrap().ends_with('Z'));

    // A replay of recorded ids, in order: every third one exists nowhere.
    let cmd = TestCommand::new();
    let ids = cmd.write("ids.txt", "# recorded\nu1\nu2\nnobody\n");
    let (r, _) = loadtest(
        config,
        base,
        &[
            "--ids",
            ids.to_str().unwrap(),
            "--cold-share",
            "0",
            "--rate",
            "30",
            "--duration",
            "1s",
            "--groups",
            "velocity",
        ],
        0,
    );
    let sent = r["sent"].as_u64().unwrap();
    assert_eq!(sent, 30, "{r}");
    assert_eq!(count(&r, "velocity", "missing"), 2 * (sent / 3), "{r}");
    assert_eq!(count(&r, "velocity", "fresh"), 2 * (sent - sent / 3), "{r}");
    assert!(
        r["values"]["embedding"].is_null(),
        "only velocity was asked for: {r}"
    );
    assert_eq!(r["selection"], "velocity");

    // Batches of 10 entities per request.
    let (r, _) = loadtest(
        config,
        base,
        &[
            "--batch",
            "10",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--users",
            "50",
            "--cold-share",
            "0",
            "--groups",
            "velocity",
        ],
        0,
    );
    let sent = r["sent"].as_u64().unwrap();
    assert_eq!(sent, 10, "{r}");
    assert_eq!(count(&r, "velocity", "fresh"), 10 * 2 * sent, "{r}");
    assert_eq!(r["entities_per_s"].as_f64().unwrap().round(), 100.0, "{r}");

    // A burst doubles the rate for half the run: 1 s at 20 + 1 s at 40.
    let (r, _) = loadtest(
        config,
        base,
        &[
            "--rate",
            "20",
            "--duration",
            "2s",
            "--burst",
            "2x@1s+1s",
            "--cold-share",
            "1",
        ],
        0,
    );
    assert_eq!(r["intended_requests"], 60, "{r}");
    assert_eq!(r["sent"], 60, "{r}");

    // The human table names the percentiles and the verdict.
    let mut cmd = TestCommand::new();
    cmd.args(["loadtest", "--config"]).arg(config).args([
        "--target",
        base,
        "--rate",
        "20",
        "--duration",
        "1s",
        "--quiet",
    ]);
    let (stdout, _) = cmd.expect_code(0);
    for needle in ["p99.9", "throughput", "velocity", "PASS"] {
        assert!(stdout.contains(needle), "{needle}:\n{stdout}");
    }
}

#[test]
fn loadtest_exits_3_when_a_p99_slo_is_missed() {
    let served = Served::start("1us", 20);
    let (r, stderr) = loadtest(
        &served.config,
        &served.base,
        &["--concurrency", "2", "--duration", "1s", "--users", "20"],
        3,
    );
    assert_eq!(r["passed"], false);
    assert_eq!(r["groups"][0]["passed"], false);
    assert_eq!(r["groups"][0]["p99_slo_ms"], 0.001);
    assert!(stderr.contains("SLO missed by velocity"), "{stderr}");
}

#[test]
fn loadtest_fails_clearly_on_bad_targets_and_bad_usage() {
    let cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &ops_support::registry("10ms", 0, 10));
    let run = |target: &str, extra: &[&str], code: i32| {
        let mut c = TestCommand::new();
        c.args(["loadtest", "--config"])
            .arg(&config)
            .args([
                "--target",
                target,
                "--duration",
                "1s",
                "--timeout",
                "500ms",
                "--quiet",
            ])
            .args(extra);
        c.expect_code(code).1
    };
    // Nothing listens.
    let nobody = format!("http://127.0.0.1:{}", riffle_testkit::free_port());
    let stderr = run(&nobody, &[], 1);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    // Something listens and never answers: the timeout ends it.
    let stderr = run(&fake_server(None), &[], 1);
    assert!(
        stderr.contains("cannot reach") && stderr.contains("timed out"),
        "{stderr}"
    );
    // Something answers, but not JSON.
    let garbage = fake_server(Some(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    ));
    let stderr = run(&garbage, &[], 1);
    assert!(
        stderr.contains("does not answer like riffle serve"),
        "{stderr}"
    );
    // Bad usage: exit 2 before any request.
    for (extra, needle) in [
        (vec!["--burst", "lots"], "FACTORx@START+LENGTH"),
        (
            vec!["--concurrency", "2", "--burst", "2x@1s+1s"],
            "open-loop",
        ),
        (vec!["--groups", "nope"], "no group \"nope\""),
        (vec!["--cold-share", "2"], "--cold-share"),
        (vec!["--batch", "0"], "--batch"),
        (vec!["--duration", "soon"], "--duration"),
    ] {
        let stderr = run(&nobody, &extra, 2);
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
    let stderr = run("127.0.0.1:1", &[], 2);
    assert!(stderr.contains("http://"), "{stderr}");
}
