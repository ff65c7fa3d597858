//! Who may do what, through the real binary: principals with scopes on `riffle serve` and on
//! `riffle ingest --http-events`. No token → 401, a token without the scope → 403 naming it,
//! the right scope → 200; nothing refused is written (the store, the events read); every
//! write audited with its principal; no token or digest in the logs, `/metrics`, error
//! bodies or the audit log. Also: no open door on a non-loopback address, and `riffle token
//! new` round-trips into a working principal.

mod common;

use common::serving::{audit_lines, client, wait_up};
use common::{fraud_config, Running, TestCommand};
use riffle_auth::token::digest;
use serde_json::{json, Value};

const MODEL: &str = "rfl_model_0123456789abcdef";
const LOADER: &str = "rfl_loader_0123456789abcdef";
const EVENTS: &str = "rfl_events_0123456789abcdef";
const ONCALL: &str = "rfl_oncall_0123456789abcdef";

/// The fraud example with four principals and an audit log.
fn registry_text() -> String {
    let fraud = std::fs::read_to_string(fraud_config()).unwrap();
    let principal = |name: &str, token: &str, scopes: &str| {
        format!(
            "[[auth.principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n\n",
            digest(token).to_hex()
        )
    };
    format!(
        "{fraud}\n[auth]\naudit_log = \"audit.log\"\n\n{}{}{}{}",
        principal("fraud-model", MODEL, r#"["read:service:fraud_v1"]"#),
        principal("profile-loader", LOADER, r#"["write:user_profile"]"#),
        principal("events-gateway", EVENTS, r#"["ingest:transactions"]"#),
        principal("oncall", ONCALL, r#"["admin", "read"]"#),
    )
}

/// Every answer the test saw, to search for secrets at the end.
#[derive(Default)]
struct Seen(String);

impl Seen {
    /// POSTs `body` to `url` with `token` (if any): (status, body as JSON or text).
    fn post(&mut self, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = client().post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let code = resp.status().as_u16();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().unwrap();
        self.0.push_str(&text);
        if code == 401 {
            assert!(
                www.is_some_and(|w| w.starts_with("Bearer")),
                "401 without WWW-Authenticate"
            );
        }
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&mut self, url: &str, token: Option<&str>) -> (u16, String) {
        let mut req = client().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().unwrap();
        self.0.push_str(&text);
        (code, text)
    }
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn profile_row(id: &str) -> Value {
    json!({"id": id, "features": {"account_age_days": 10, "credit_score_bucket": 3, "is_premium": true}})
}

fn assert_no_secret(place: &str, text: &str) {
    for token in [MODEL, LOADER, EVENTS, ONCALL] {
        assert!(!text.contains(token), "{place} holds a token");
        assert!(
            !text.contains(&digest(token).to_hex()),
            "{place} holds a token's digest"
        );
    }
}

#[test]
fn serve_lets_each_principal_do_what_its_scopes_say_and_writes_nothing_refused() {
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &registry_text());
    let log = cmd.dir().join("serve.log");
    let mut child = cmd
        .args([
            "serve",
            "--no-cache",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--config")
        .arg(&config)
        .args(["--store", "embedded:./data"])
        .env("RUST_LOG", "debug")
        .spawn_logged(&log);
    wait_up(&base, &mut child);
    let running = Running(child);
    let mut seen = Seen::default();
    let push = format!("{base}/v1/push");
    let features = format!("{base}/v1/features");
    let feast = format!("{base}/get-online-features");

    // No token, an unknown token: 401 on reads and writes.
    let read_u1 = json!({"entity": "user", "ids": ["u1"], "groups": ["user_profile"]});
    assert_eq!(seen.post(&features, None, &read_u1).0, 401);
    assert_eq!(seen.post(&features, Some("rfl_guess"), &read_u1).0, 401);
    let write_u1 = json!({"group": "user_profile", "rows": [profile_row("u1")]});
    assert_eq!(seen.post(&push, None, &write_u1).0, 401);

    // The loader writes its group, and no other; the model writes nothing.
    let (code, body) = seen.post(&push, Some(LOADER), &write_u1);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["written"], 1);
    let velocity = json!({"group": "user_velocity", "rows": [{"id": "u2", "features": {
        "tx_count_1h": 5, "tx_sum_1h": 1.0, "tx_amount_mean_1h": 1.0, "tx_amount_max_1h": 1.0,
        "distinct_merchants_24h": 1}}]});
    let (code, body) = seen.post(&push, Some(LOADER), &velocity);
    assert_eq!(code, 403, "{body}");
    assert!(message(&body).contains("write:user_velocity"), "{body}");
    let write_u3 = json!({"group": "user_profile", "rows": [profile_row("u3")]});
    let (code, body) = seen.post(&push, Some(MODEL), &write_u3);
    assert_eq!(code, 403, "{body}");
    assert!(message(&body).contains("write:user_profile"), "{body}");
    // Feast's write route is guarded the same way.
    let feast_write = json!({"feature_view_name": "user_profile", "df": {
        "user_id": ["u3"], "account_age_days": [1], "credit_score_bucket": [1], "is_premium": [false]}});
    assert_eq!(
        seen.post(
            &format!("{base}/write-to-online-store"),
            Some(MODEL),
            &feast_write
        )
        .0,
        403
    );
    // The events gateway cannot read.
    assert_eq!(seen.post(&features, Some(EVENTS), &read_u1).0, 403);

    // The model reads its service's groups, by Riffle's API and Feast's, and no other.
    let (code, body) = seen.post(&features, Some(MODEL), &read_u1);
    assert_eq!(code, 200, "{body}");
    let profile = &body["results"][0]["groups"][0];
    assert_eq!(profile["status"], "fresh", "{body}");
    let by_service = json!({"feature_service": "fraud_v1", "entities": {"user_id": ["u1"]}});
    assert_eq!(seen.post(&feast, Some(MODEL), &by_service).0, 200);
    let embeddings =
        json!({"features": ["user_embeddings:user_embedding"], "entities": {"user_id": ["u1"]}});
    let (code, body) = seen.post(&feast, Some(MODEL), &embeddings);
    assert_eq!(code, 403, "{body}");
    assert!(message(&body).contains("read:user_embeddings"), "{body}");
    let (code, _) = seen.get(
        &format!("{base}/v1/features/user/u1?groups=user_embeddings"),
        Some(MODEL),
    );
    assert_eq!(code, 403);

    // Nothing refused was written: u2's velocity and u3's profile have no row.
    for (id, group) in [("u2", "user_velocity"), ("u3", "user_profile")] {
        let read = json!({"entity": "user", "ids": [id], "groups": [group]});
        let (code, body) = seen.post(&features, Some(ONCALL), &read);
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body["results"][0]["groups"][0]["status"], "missing",
            "{group} of {id}: {body}"
        );
    }

    // /metrics stays open for scrapers and counts decisions per principal.
    let (code, metrics) = seen.get(&format!("{base}/metrics"), None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            "\nriffle_auth_decisions_total{principal=\"profile-loader\",outcome=\"forbidden\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("\nriffle_auth_decisions_total{principal=\"unknown\",outcome=\"no_token\"} 2"));
    let (_, health) = seen.get(&format!("{base}/health"), None);
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap()["auth"],
        "principals"
    );

    // One audit line per write, with its principal; the refusals too.
    let audit = cmd.dir().join("audit.log");
    let lines = audit_lines(&audit, 7);
    let writes: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "ok").collect();
    assert_eq!(writes.len(), 1, "{lines:?}");
    assert_eq!(writes[0]["principal"], "profile-loader");
    assert_eq!(writes[0]["action"], "write");
    assert_eq!(writes[0]["target"], "user_profile");
    assert_eq!(writes[0]["count"], 1);
    assert!(lines.iter().any(|l| l["principal"] == "fraud-model"
        && l["outcome"] == "forbidden"
        && l["target"] == "write:user_profile"));

    drop(running);
    assert_no_secret("the error bodies and /metrics", &seen.0);
    assert_no_secret("serve's log", &std::fs::read_to_string(&log).unwrap());
    assert_no_secret("the audit log", &std::fs::read_to_string(&audit).unwrap());
}

#[test]
fn ingest_takes_events_only_from_a_principal_with_the_source_scope() {
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &registry_text());
    let log = cmd.dir().join("ingest.log");
    let mut child = cmd
        .args([
            "ingest",
            "--http-events",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--config")
        .arg(&config)
        .args(["--store", "embedded:./data"])
        .env("RUST_LOG", "debug")
        .spawn_logged(&log);
    wait_up(&base, &mut child);
    let running = Running(child);
    let mut seen = Seen::default();
    let events = format!("{base}/v1/events");
    let now = riffle_core::Timestamp::now().millis();
    let event = json!({"user_id": "u9", "event_time": now, "amount": 12.5, "merchant_id": "m1",
        "country": "FR", "device": "d1", "login_ts": now});

    assert_eq!(seen.post(&events, None, &event).0, 401);
    assert_eq!(seen.post(&events, Some("rfl_guess"), &event).0, 401);
    for token in [MODEL, LOADER, ONCALL] {
        let (code, body) = seen.post(&events, Some(token), &event);
        assert_eq!(code, 403, "{body}");
        assert!(message(&body).contains("ingest:transactions"), "{body}");
    }
    let (code, body) = seen.post(&events, Some(EVENTS), &event);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 1);

    // Only the accepted event was ever read.
    let (_, metrics) = seen.get(&format!("{base}/metrics"), None);
    assert!(
        metrics.contains(r#"riffle_ingest_events_read_total{source="transactions"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "\nriffle_ingest_auth_decisions_total{principal=\"events-gateway\",outcome=\"allowed\"} 1"
        ),
        "{metrics}"
    );
    let lines = audit_lines(&cmd.dir().join("audit.log"), 6);
    let accepted: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "ok").collect();
    assert_eq!(accepted.len(), 1, "{lines:?}");
    assert_eq!(accepted[0]["principal"], "events-gateway");
    assert_eq!(accepted[0]["action"], "ingest");
    assert_eq!(accepted[0]["target"], "transactions");
    assert_eq!(accepted[0]["count"], 1);

    drop(running);
    assert_no_secret("the answers", &seen.0);
    assert_no_secret("ingest's log", &std::fs::read_to_string(&log).unwrap());
}

#[test]
fn a_listener_open_to_the_network_needs_credentials_or_an_explicit_allowance() {
    let port = riffle_testkit::free_port();
    let mut cmd = TestCommand::new();
    let (_, stderr) = cmd
        .args(["serve", "--config"])
        .arg(fraud_config())
        .args([
            "--store",
            "embedded:./data",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .expect_code(2);
    assert!(stderr.contains("not loopback"), "{stderr}");
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");

    let mut cmd = TestCommand::new();
    let (_, stderr) = cmd
        .args(["ingest", "--http-events", "--config"])
        .arg(fraud_config())
        .args([
            "--store",
            "embedded:./data",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .expect_code(2);
    assert!(stderr.contains("riffle ingest would listen on"), "{stderr}");

    // Allowed on purpose: it starts, says so, and /health reports the open door.
    let mut cmd = TestCommand::new();
    let log = cmd.dir().join("serve.log");
    let mut child = cmd
        .args(["serve", "--allow-unauthenticated", "--config"])
        .arg(fraud_config())
        .args([
            "--store",
            "embedded:./data",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .spawn_logged(&log);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&base, &mut child);
    let _running = Running(child);
    let health: Value = client()
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["auth"], "open");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("open to the network"));
}

#[test]
fn a_new_token_pasted_into_the_registry_is_a_working_principal() {
    let mut cmd = TestCommand::new();
    let (stdout, stderr) = cmd
        .args([
            "token",
            "new",
            "fraud-model",
            "--scope",
            "read:service:fraud_v1",
            "--config",
        ])
        .arg(fraud_config())
        .expect_code(0);
    // The token on stderr, once; stdout is the entry alone, ready to append to a file.
    let token = stderr
        .lines()
        .find(|l| l.starts_with("rfl_"))
        .expect("the token is printed")
        .to_owned();
    assert!(!stdout.contains(&token), "stdout holds the token itself");
    let entry = stdout.as_str();

    let (_, stderr) = TestCommand::new()
        .args(["token", "new", "x", "--scope", "read:nope", "--config"])
        .arg(fraud_config())
        .expect_code(2);
    assert!(
        stderr.contains("no feature group named \"nope\""),
        "{stderr}"
    );

    let fraud = std::fs::read_to_string(fraud_config()).unwrap();
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", &format!("{fraud}\n{entry}"));
    let log = cmd.dir().join("serve.log");
    let mut child = cmd
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .args(["--store", "embedded:./data"])
        .spawn_logged(&log);
    wait_up(&base, &mut child);
    let _running = Running(child);
    let mut seen = Seen::default();
    let read = json!({"feature_service": "fraud_v1", "entities": {"user_id": ["u1"]}});
    let feast = format!("{base}/get-online-features");
    assert_eq!(seen.post(&feast, Some(&token), &read).0, 200);
    assert_eq!(seen.post(&feast, None, &read).0, 401);
}
