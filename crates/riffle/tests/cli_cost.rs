//! `riffle cost` with the real binary over a real Redis loaded through `riffle load`: the
//! bytes it samples are exactly `MEMORY USAGE` summed over every entity key, its projections
//! are that per-key mean times the declared and doubled entity counts and the replicas,
//! reserved meta keys are left out, an oversized key is named, and an embedded or
//! unreachable store fails clearly.

mod common;
mod ops_support;

use common::TestCommand;
use ops_support::{json, load_users, registry};
use riffle_testkit::RedisServer;
use serde_json::Value;

fn cost(config: &std::path::Path, store: &str, extra: &[&str], code: i32) -> (String, String) {
    let mut cmd = TestCommand::new();
    cmd.args(["cost", "--config"])
        .arg(config)
        .args(["--store", store, "--timeout", "2s"])
        .args(extra);
    cmd.expect_code(code)
}

/// Σ MEMORY USAGE over the keys matching `pattern`, by Redis itself.
fn memory_of(redis: &RedisServer, pattern: &str) -> u64 {
    let script = "local s = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  s = s + redis.call('MEMORY', 'USAGE', k, 'SAMPLES', 0) end return s";
    redis
        .cli(&["EVAL", script, "0", pattern])
        .unwrap()
        .parse()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn cost_measures_live_keys_and_projects_them() {
    let redis = RedisServer::start().unwrap();
    let cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &registry("10ms", 0, 1000));
    load_users(&config, &redis.url(), 200);
    // A power user holding far more than the others, and a reserved meta key.
    let big = "x".repeat(20_000);
    redis
        .cli(&["HSET", "ops:{user:whale}", "velocity@1", &big])
        .unwrap();
    redis
        .cli(&["HSET", "ops:~meta:watermark:tx", "w:1", &big])
        .unwrap();
    let expected_bytes = memory_of(&redis, "ops:{user:*");

    let (stdout, _) = cost(
        &config,
        &redis.url(),
        &["--json", "--replicas", "2", "--price-per-gb-month", "10"],
        0,
    );
    let r: Value = json(&stdout);
    let e = &r["entities"][0];
    assert_eq!(e["entity"], "user");
    assert_eq!(e["keys_sampled"], 201, "{e}");
    assert_eq!(e["complete"], true);
    assert_eq!(e["sampled_bytes"], expected_bytes, "{e}");
    let mean = e["mean_bytes_per_key"].as_f64().unwrap();
    assert!(close(mean, expected_bytes as f64 / 201.0), "{mean}");
    // Projections: mean × 1000 declared users, × 2, × (1 + 2 replicas), priced per GiB.
    let p = &e["at_expected"];
    assert_eq!(p["entities"], 1000);
    assert!(close(p["bytes"].as_f64().unwrap(), mean * 1000.0), "{p}");
    assert!(
        close(p["bytes_replicated"].as_f64().unwrap(), mean * 3000.0),
        "{p}"
    );
    let gib = mean * 3000.0 / (1u64 << 30) as f64;
    assert!(close(p["gib_replicated"].as_f64().unwrap(), gib), "{p}");
    assert!(
        close(p["cost_per_month"].as_f64().unwrap(), gib * 10.0),
        "{p}"
    );
    let p2 = &e["at_2x"];
    assert_eq!(p2["entities"], 2000);
    assert!(close(p2["bytes"].as_f64().unwrap(), mean * 2000.0), "{p2}");
    assert!(close(
        r["total_at_2x"]["bytes"].as_f64().unwrap(),
        mean * 2000.0
    ));
    // Per group: every user has both rows, the whale only velocity.
    let groups = e["groups"].as_array().unwrap();
    let velocity = groups.iter().find(|g| g["field"] == "velocity").unwrap();
    let embedding = groups.iter().find(|g| g["field"] == "embedding").unwrap();
    assert_eq!(velocity["keys_with_field"], 201);
    assert_eq!(embedding["keys_with_field"], 200);
    assert!(velocity["share"].as_f64().unwrap() > 0.3, "{velocity}");
    // The whale is the largest key and above the big-key threshold.
    assert_eq!(e["largest"][0]["key"], "ops:{user:whale}");
    assert_eq!(e["largest"][0]["over_threshold"], true);
    assert_eq!(e["largest"][1]["over_threshold"], false);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("above"), "{warnings}");

    let saved = json(&std::fs::read_to_string(cmd.dir().join(".riffle/last-cost.json")).unwrap());
    assert!(
        saved["finished_at"].as_str().unwrap().ends_with('Z'),
        "{saved}"
    );
    assert_eq!(saved["entities"][0]["sampled_bytes"], expected_bytes);

    // A sample smaller than the population.
    let (stdout, _) = cost(&config, &redis.url(), &["--json", "--sample", "50"], 0);
    let r: Value = json(&stdout);
    let n = r["entities"][0]["keys_sampled"].as_u64().unwrap();
    assert!((50..=50).contains(&n), "{r}");

    // The table.
    let (stdout, _) = cost(&config, &redis.url(), &[], 0);
    for needle in [
        "entity user",
        "velocity",
        "at 2x",
        "ops:{user:whale}",
        "<- big",
    ] {
        assert!(stdout.contains(needle), "{needle}:\n{stdout}");
    }
}

#[test]
fn cost_refuses_the_embedded_store_and_fails_on_an_unreachable_redis() {
    let cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &registry("10ms", 0, 1000));
    let (_, stderr) = cost(&config, "embedded:./data", &[], 2);
    assert!(stderr.contains("embedded store"), "{stderr}");
    let nobody = format!("redis://127.0.0.1:{}", riffle_testkit::free_port());
    let (_, stderr) = cost(&config, &nobody, &[], 1);
    assert!(stderr.contains("cannot connect to Redis"), "{stderr}");
    // A Redis that hangs: the timeout ends it.
    let mut hung = RedisServer::start().unwrap();
    hung.pause();
    let (_, stderr) = cost(&config, &hung.url(), &[], 1);
    hung.resume();
    assert!(
        stderr.contains("within") || stderr.contains("timed out"),
        "{stderr}"
    );
    let (_, stderr) = cost(&config, &nobody, &["--sample", "0"], 2);
    assert!(stderr.contains("--sample"), "{stderr}");
}
