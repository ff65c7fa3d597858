//! `riffle drill` with the real binary: a real `riffle serve` over a real Redis that the
//! drill really pauses (`CLIENT PAUSE … ALL`, or the operator's commands: here `SIGSTOP` /
//! `SIGCONT` of the Redis process). On a correct server every check passes and the record
//! `riffle check` reads is written beside the registry; judged with a registry whose
//! defaults differ from what is served, or against a Redis that is not the server's store,
//! the verdict fails (exit 3). Unreachable targets and stores, a failing break command and
//! bad usage fail clearly, never hang.

mod common;
mod ops_support;

use std::path::Path;

use common::TestCommand;
use ops_support::{json, load_users, registry, Served};
use riffle_testkit::RedisServer;
use serde_json::Value;

const QUICK: [&str; 10] = [
    "--baseline",
    "2s",
    "--duration",
    "3s",
    "--recovery-timeout",
    "10s",
    "--rate",
    "60",
    "--quiet",
    "--json",
];

fn drill(config: &Path, base: &str, store: &str, extra: &[&str], code: i32) -> (Value, String) {
    let mut cmd = TestCommand::new();
    cmd.args(["drill", "--config"])
        .arg(config)
        .args(["--target", base, "--store", store])
        .args(QUICK)
        .args(extra);
    let (stdout, stderr) = cmd.expect_code(code);
    (json(&stdout), stderr)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

fn passed(report: &Value, name: &str) -> bool {
    check(report, name)["passed"] == true
}

#[test]
fn drill_passes_on_a_correct_server_and_writes_the_record() {
    let served = Served::start("1s", 40);
    let store = served.redis.url();
    let (r, _) = drill(&served.config, &served.base, &store, &[], 0);
    assert_eq!(r["passed"], true, "{r:#}");
    for name in [
        "baseline",
        "outage_reached_server",
        "no_errors_serve_defaults",
        "degraded_level",
        "exact_training_defaults",
        "fail_closed:embedding",
        "breaker_opened",
        "fallback_metrics",
        "outage_p99",
        "recovery",
    ] {
        assert!(passed(&r, name), "{name}: {:#}", check(&r, name));
    }
    assert_eq!(r["method"], "client_pause");
    let outage = &r["phases"]["outage"];
    assert!(
        outage["values"]["velocity"]["unavailable"]
            .as_u64()
            .unwrap()
            > 0,
        "{outage}"
    );
    assert!(
        outage["degradation"]["critical"].as_u64().unwrap() > 0,
        "{outage}"
    );
    let recovery = r["recovery_ms"].as_u64().expect("recovered");
    assert!(recovery < 10_000, "{recovery}");
    assert!(r["outage_p99_ms"].as_f64().unwrap() > 0.0);
    // The pause ended by itself: Redis answers again.
    assert!(served.redis.answers_ping());

    // The record, beside the registry, with the fields `riffle check` reads.
    let record = served
        .config
        .parent()
        .unwrap()
        .join(".riffle/last-drill.json");
    let text = std::fs::read_to_string(&record).expect("the drill record is written");
    let saved: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["passed"], true);
    assert!(
        saved["finished_at"].as_str().unwrap().ends_with('Z'),
        "{saved}"
    );
    assert_eq!(saved["target"], served.base);
    assert!(saved["checks"][0]["detail"].is_string());

    // The operator's own break: SIGSTOP and SIGCONT of the Redis process (it hangs with
    // its connections open), to a record path of our choosing.
    let pid = served.redis.pid().unwrap();
    let cmd = TestCommand::new();
    let elsewhere = cmd.dir().join("drills/one.json");
    let (r, _) = drill(
        &served.config,
        &served.base,
        &store,
        &[
            "--break-cmd",
            &format!("kill -STOP {pid}"),
            "--restore-cmd",
            &format!("kill -CONT {pid}"),
            "--record",
            elsewhere.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(r["method"], "commands");
    assert_eq!(r["passed"], true, "{r:#}");
    assert!(elsewhere.exists());
    assert!(served.redis.answers_ping());
}

#[test]
fn drill_fails_when_defaults_differ_or_the_store_is_not_the_servers() {
    let served = Served::start("1s", 40);
    let store = served.redis.url();

    // Judged by a registry whose default for velocity:tx_count_1h is 5, not the 0 served.
    let cmd = TestCommand::new();
    let wrong = cmd.write("riffle.toml", &registry("1s", 5, 40));
    let (r, stderr) = drill(&wrong, &served.base, &store, &[], 3);
    assert_eq!(r["passed"], false);
    assert!(!passed(&r, "exact_training_defaults"), "{r:#}");
    let observed = check(&r, "exact_training_defaults")["observed"]
        .as_str()
        .unwrap();
    assert!(
        observed.contains("velocity:tx_count_1h served 0"),
        "{observed}"
    );
    assert!(passed(&r, "breaker_opened"), "{r:#}");
    assert!(stderr.contains("exact_training_defaults"), "{stderr}");
    let saved = cmd.dir().join(".riffle/last-drill.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(saved["passed"], false);

    // Pausing a Redis the server does not use: nothing happens to the server, and the
    // drill says so.
    let other = RedisServer::start().unwrap();
    load_users(&served.config, &other.url(), 40);
    let (r, _) = drill(&served.config, &served.base, &other.url(), &[], 3);
    for name in [
        "outage_reached_server",
        "breaker_opened",
        "fallback_metrics",
    ] {
        assert!(!passed(&r, name), "{name}: {r:#}");
    }
    assert!(passed(&r, "baseline"));
}

#[test]
fn drill_fails_clearly_on_unreachable_targets_stores_and_bad_usage() {
    let cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &registry("1s", 0, 10));
    let run = |target: &str, store: &str, extra: &[&str], code: i32| {
        let mut c = TestCommand::new();
        c.args(["drill", "--config"])
            .arg(&config)
            .args(["--target", target, "--store", store, "--timeout", "500ms"])
            .args(["--baseline", "1s", "--duration", "1s", "--quiet"])
            .args(extra);
        c.expect_code(code).1
    };
    let nobody = format!("http://127.0.0.1:{}", riffle_testkit::free_port());
    let no_redis = format!("redis://127.0.0.1:{}", riffle_testkit::free_port());
    let stderr = run(&nobody, &no_redis, &[], 1);
    assert!(stderr.contains("cannot reach"), "{stderr}");

    let served = Served::start("1s", 5);
    let stderr = run(&served.base, &no_redis, &[], 1);
    assert!(stderr.contains("cannot connect to Redis"), "{stderr}");
    // An empty Redis: no ids to drive.
    let empty = RedisServer::start().unwrap();
    let stderr = run(&served.base, &empty.url(), &[], 1);
    assert!(stderr.contains("no keys of entity"), "{stderr}");
    // A break command that fails: the drill does not start.
    let stderr = run(
        &served.base,
        &served.redis.url(),
        &["--break-cmd", "exit 7", "--restore-cmd", "true"],
        1,
    );
    assert!(stderr.contains("break command failed"), "{stderr}");
    // The default break needs Redis.
    let stderr = run(&served.base, "embedded:./data", &[], 2);
    assert!(stderr.contains("CLIENT PAUSE"), "{stderr}");
    // --break-cmd needs --restore-cmd; durations must parse.
    run(
        &served.base,
        &served.redis.url(),
        &["--break-cmd", "true"],
        2,
    );
    let stderr = run(&served.base, &served.redis.url(), &["--rate", "0"], 2);
    assert!(stderr.contains("--rate"), "{stderr}");
}
