//! JWT bearer tokens from an identity provider, through the real binary: `riffle serve`
//! with `[auth.jwt]` (a JWKS file beside the registry, keys made in the test). A token with
//! a mapped role reads (200) and writes what its role may; without a mapped role, 403; a
//! forged, expired, `alg: none`, HMAC-with-the-public-key, wrong-issuer or wrong-audience
//! token, 401. Decisions are counted and audited under `jwt:<role>`; no token, digest or
//! claim appears in serve's log (at debug), `/metrics`, error bodies or the audit log.

mod common;

use common::serving::{audit_lines, client, wait_up};
use common::{fraud_config, Running, TestCommand};
use riffle_auth::token::digest;
use riffle_testkit::jwt::{hs256, now, unsigned, TestAlg, TestIssuer};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.com/realms/feast";
const AUDIENCE: &str = "riffle";

fn registry_text() -> String {
    let fraud = std::fs::read_to_string(fraud_config()).unwrap();
    format!(
        r#"{fraud}
[auth]
audit_log = "audit.log"

[auth.jwt]
jwks = "jwks.json"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
roles_claim = "resource_access.feast.roles"

[auth.jwt.roles]
reader = ["read:service:fraud_v1"]
loader = ["write:user_profile"]
"#
    )
}

/// Claims from `ISSUER` for `AUDIENCE` with `roles`, expiring `exp` seconds from now.
fn claims(roles: &[&str], exp: i64) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"subject-7f3a","exp":{},"resource_access":{{"feast":{{"roles":[{}]}}}}}}"#,
        now() + exp,
        roles.join(",")
    )
}

/// POSTs `body` with `token`: (status, body); every body kept in `seen`.
fn post(seen: &mut String, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    let code = resp.status().as_u16();
    if code == 401 {
        let www = resp.headers().get("www-authenticate").unwrap();
        assert!(www.to_str().unwrap().starts_with("Bearer"));
    }
    let text = resp.text().unwrap();
    seen.push_str(&text);
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn serve_believes_only_tokens_its_identity_provider_signed_for_it() {
    let idp = TestIssuer::new(TestAlg::Es256, "riffle-test-key");
    let mallory = TestIssuer::new(TestAlg::Es256, "riffle-test-key");
    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    cmd.write("jwks.json", &TestIssuer::jwks(&[&idp]));
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
    let mut seen = String::new();
    let push = format!("{base}/v1/push");
    let features = format!("{base}/v1/features");
    let feast = format!("{base}/get-online-features");

    let reader = idp.token(&claims(&["reader"], 300));
    let loader = idp.token(&claims(&["loader"], 300));
    let viewer = idp.token(&claims(&["viewer"], 300));
    let write_u1 = json!({"group": "user_profile", "rows": [{"id": "u1", "features":
        {"account_age_days": 10, "credit_score_bucket": 3, "is_premium": true}}]});
    let read_u1 = json!({"entity": "user", "ids": ["u1"], "groups": ["user_profile"]});

    // The loader's role writes its group; the reader's role reads its service, by Riffle's
    // API and Feast's, and writes nothing.
    let (code, body) = post(&mut seen, &push, &loader, &write_u1);
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&mut seen, &features, &reader, &read_u1);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["results"][0]["groups"][0]["status"], "fresh", "{body}");
    let by_service = json!({"feature_service": "fraud_v1", "entities": {"user_id": ["u1"]}});
    assert_eq!(post(&mut seen, &feast, &reader, &by_service).0, 200);
    let (code, body) = post(&mut seen, &push, &reader, &write_u1);
    assert_eq!(code, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("jwt:reader") && message.contains("write:user_profile"),
        "{body}"
    );
    // A valid identity without a mapped role: 403.
    assert_eq!(post(&mut seen, &features, &viewer, &read_u1).0, 403);

    // Every forgery and every token out of date, issuer or audience: 401.
    let good = claims(&["reader"], 300);
    let hs = r#"{"alg":"HS256","typ":"JWT","kid":"riffle-test-key"}"#;
    let bad = [
        ("forged", mallory.token(&good)),
        ("expired", idp.token(&claims(&["reader"], -120))),
        ("alg none", unsigned(r#"{"alg":"none","typ":"JWT"}"#, &good)),
        (
            "HS256 with the public key",
            hs256(idp.public_key(), hs, &good),
        ),
        ("HS256 with the JWK", hs256(idp.jwk().as_bytes(), hs, &good)),
        (
            "wrong issuer",
            idp.token(&good.replace(ISSUER, "https://evil.example.com")),
        ),
        (
            "wrong audience",
            idp.token(&good.replace("\"aud\":\"riffle\"", "\"aud\":\"account\"")),
        ),
    ];
    for (what, token) in &bad {
        let (code, body) = post(&mut seen, &features, token, &read_u1);
        assert_eq!(code, 401, "{what}: {body}");
    }

    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    seen.push_str(&metrics);
    for line in [
        r#"riffle_auth_decisions_total{principal="jwt:reader",outcome="allowed"} 2"#,
        r#"riffle_auth_decisions_total{principal="jwt:reader",outcome="forbidden"} 1"#,
        r#"riffle_auth_decisions_total{principal="jwt:loader",outcome="allowed"} 1"#,
        r#"riffle_auth_decisions_total{principal="jwt",outcome="forbidden"} 1"#,
        r#"riffle_auth_decisions_total{principal="unknown",outcome="invalid_token"} 7"#,
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
    let health: Value = serde_json::from_str(
        &client()
            .get(format!("{base}/health"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(health["auth"], "jwt");

    let audit = cmd.dir().join("audit.log");
    let lines = audit_lines(&audit, 10);
    assert!(
        lines.iter().any(|l| l["principal"] == "jwt:loader"
            && l["action"] == "write"
            && l["outcome"] == "ok"),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l["principal"] == "jwt:reader" && l["outcome"] == "forbidden"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "invalid_token")
            .count(),
        7,
        "{lines:?}"
    );

    drop(running);
    let places = [
        ("the error bodies and /metrics", seen),
        ("serve's log", std::fs::read_to_string(&log).unwrap()),
        ("the audit log", std::fs::read_to_string(&audit).unwrap()),
    ];
    let tokens = [reader, loader, viewer]
        .into_iter()
        .chain(bad.into_iter().map(|(_, t)| t));
    let tokens: Vec<String> = tokens.collect();
    for (place, text) in &places {
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "{place} holds a token");
            // Any of its three parts (the claims alone would leak the subject).
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!text.contains(part), "{place} holds part of a token");
            }
            assert!(
                !text.contains(&digest(token).to_hex()),
                "{place} holds a digest"
            );
        }
        assert!(
            !text.contains("subject-7f3a"),
            "{place} holds a token's subject"
        );
    }
}
