//! The real `riffle serve` over a real Redis Cluster (3 masters, 3 replicas) while a master
//! is `SIGKILL`ed under steady load: every request is answered (real values, or training
//! defaults marked `unavailable`), real values come back once a replica is promoted, and
//! rows written after the failover land on the masters owning their slots.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fraud_config, http_get_status, TestCommand};
use riffle_store::layout::entity_key;
use riffle_store::redis_cluster::slot_of;
use riffle_testkit::RedisCluster;
use serde_json::Value;

/// The real `account_age_days` of user `i` (the default is 0).
fn age(i: usize) -> i64 {
    1000 + i as i64
}

/// Loads users `from..to` into `user_profile` with `riffle load`.
fn load_profiles(store: &str, from: usize, to: usize) {
    let mut cmd = TestCommand::new();
    let mut csv = String::from("user_id,account_age_days,credit_score_bucket,is_premium\n");
    for i in from..to {
        csv.push_str(&format!("u{i},{},{},{}\n", age(i), i % 10, i % 2 == 0));
    }
    let file = cmd.write("profiles.csv", &csv);
    cmd.args(["load", "--config"])
        .arg(fraud_config())
        .args(["--store", store, "--group", "user_profile"])
        .arg(file);
    cmd.expect_code(0);
}

/// What one answer for user `i` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Answer {
    /// The stored value.
    Real,
    /// The training default, marked unavailable.
    Default,
}

/// Reads user `i`'s profile; panics on anything but a 200 carrying either its real value
/// or the training default with status `unavailable`.
fn ask(base: &str, i: usize) -> Answer {
    let path = format!("/v1/features/user/u{i}?groups=user_profile");
    let (code, body) =
        http_get_status(base, &path).unwrap_or_else(|| panic!("no answer for u{i}: serve is down"));
    assert_eq!(code, 200, "u{i}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let group = &json["results"][0]["groups"][0];
    let feature = &group["features"]["account_age_days"];
    match (group["status"].as_str(), feature["value"].as_i64()) {
        (Some("fresh"), Some(v)) if v == age(i) => Answer::Real,
        (Some("unavailable"), Some(0)) if feature["status"] == "unavailable" => Answer::Default,
        _ => panic!("u{i}: neither its value nor the default marked unavailable: {body}"),
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sums `CLUSTER COUNTKEYSINSLOT` over `slots` on the node at `port` (one `redis-cli` fed
/// every command on stdin).
fn count_keys_in_slots(port: u16, slots: &[(u16, u16)]) -> u64 {
    let mut cli = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for &(a, b) in slots {
        for slot in a..=b {
            input.push_str(&format!("CLUSTER COUNTKEYSINSLOT {slot}\n"));
        }
    }
    let mut stdin = cli.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = cli.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn serve_answers_through_a_master_failover_and_writes_land_on_slot_owners() {
    let mut cluster = RedisCluster::start(3, 1).unwrap();
    let url = cluster.url();
    let users = 300;
    load_profiles(&url, 0, users);

    let mut dir = TestCommand::new();
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = dir
        .arg("serve")
        .arg("--config")
        .arg(fraud_config())
        .args(["--store", &url, "--listen", &format!("127.0.0.1:{port}")])
        // Every read goes to the store: the cache would hide the failover.
        .arg("--no-cache")
        .spawn();
    let _serve = Serve(serve);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get_status(&base, "/health").is_none() {
        assert!(Instant::now() < deadline, "riffle serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health: Value =
        serde_json::from_str(&http_get_status(&base, "/health").unwrap().1).unwrap();
    assert_eq!(health["store"]["kind"], "redis-cluster", "{health}");
    let nodes = health["store"]["cluster_nodes"].as_array().unwrap();
    assert_eq!(
        nodes.iter().filter(|n| n["master"] == true).count(),
        3,
        "{health}"
    );

    // Every user of `ids` served its real value, soon (a call slowed past serve's 50 ms
    // store timeout on this busy machine serves a default once).
    let wait_all_real = |ids: std::ops::Range<usize>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ids.clone().all(|i| ask(&base, i) == Answer::Real) {
            assert!(
                Instant::now() < deadline,
                "real values of {ids:?} never served"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_all_real(0..users);

    // The users whose slots the victim serves.
    let victim = 0;
    let owners = cluster.masters_seen_by(1).unwrap();
    let victim_slots = owners
        .iter()
        .find(|m| m.node == victim)
        .unwrap()
        .slots
        .clone();
    let on_victim: Vec<usize> = (0..users)
        .filter(|&i| {
            let slot = slot_of(entity_key("fraud", "user", &format!("u{i}")).as_bytes());
            victim_slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
        })
        .collect();
    assert!(!on_victim.is_empty());

    // Steady load from four clients, each answer checked as it comes.
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<HashMap<Answer, u64>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, tally, base) = (stop.clone(), tally.clone(), base.clone());
            let on_victim = on_victim.clone();
            std::thread::spawn(move || {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    // Every other request for a user on the victim.
                    let i = if n % 2 == 0 {
                        on_victim[n / 2 % on_victim.len()]
                    } else {
                        n % users
                    };
                    let answer = ask(&base, i);
                    *tally.lock().unwrap().entry(answer).or_default() += 1;
                    n += 4;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    cluster.kill(victim);
    let promoted = cluster
        .wait_for_failover(victim, Duration::from_secs(30))
        .unwrap();
    let promoted_after = killed_at.elapsed();

    // Once promoted, the victim's users are served real values again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !on_victim.iter().all(|&i| ask(&base, i) == Answer::Real) {
        assert!(
            Instant::now() < deadline,
            "the promoted replica's users never served again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered_after = killed_at.elapsed();
    // /health shows the dead master's breaker open, and the promoted replica as a master.
    let health: Value =
        serde_json::from_str(&http_get_status(&base, "/health").unwrap().1).unwrap();
    let node = |i: usize| {
        let addr = format!("127.0.0.1:{}", cluster.node(i).port());
        health["store"]["cluster_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["addr"] == addr.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{addr} not in {health}"))
    };
    assert_ne!(node(victim)["breaker"], "closed", "{health}");
    assert_eq!(node(victim)["master"], false, "{health}");
    assert_eq!(node(promoted)["master"], true, "{health}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client
            .join()
            .expect("every request was answered with a value or a default");
    }
    let tally = tally.lock().unwrap().clone();
    eprintln!(
        "failover: replica node {promoted} promoted {promoted_after:?} after the kill; \
         real values again after {recovered_after:?}; answers {tally:?}"
    );
    assert!(
        tally.get(&Answer::Default).copied().unwrap_or(0) > 0,
        "the kill was never felt: {tally:?}"
    );
    assert!(tally.get(&Answer::Real).copied().unwrap_or(0) > 0);

    // Rows written after the failover land on the masters owning their slots.
    load_profiles(&url, users, 2 * users);
    wait_all_real(0..2 * users);
    let live = cluster.live();
    let masters = cluster.masters_seen_by(live[0]).unwrap();
    assert_eq!(masters.len(), 3);
    let mut entities = 0;
    for m in &masters {
        let keys = cluster.cli(m.node, &["KEYS", "*"]).unwrap();
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        for key in &keys {
            let slot = slot_of(key.as_bytes());
            assert!(
                m.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)),
                "{key} (slot {slot}) sits on node {}, which does not own it",
                m.node
            );
        }
        entities += keys
            .iter()
            .filter(|k| k.starts_with("fraud:{user:"))
            .count();
        let dbsize: u64 = cluster.cli(m.node, &["DBSIZE"]).unwrap().parse().unwrap();
        assert_eq!(
            count_keys_in_slots(cluster.node(m.node).port(), &m.slots),
            dbsize,
            "node {}: keys counted per owned slot differ from DBSIZE",
            m.node
        );
    }
    assert_eq!(entities, 2 * users);
}
