//! The gate's decisions on the fraud example's registry: who is let through, what each
//! refusal says, and that no refusal or audit line repeats a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use riffle_auth::token::digest;
use riffle_auth::{AuditLog, Caller, Denial, Gate, Route};
use riffle_registry::{AuditSettings, Registry};

const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");

fn registry(auth: &str) -> Arc<Registry> {
    Arc::new(Registry::from_toml(&format!("{FRAUD}\n{auth}")).unwrap())
}

fn principal(name: &str, token: &str, scopes: &str, extra: &str) -> String {
    format!(
        "[[auth.principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n{extra}\n",
        digest(token).to_hex()
    )
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn group(registry: &Registry, name: &str) -> usize {
    registry.group(name).unwrap().id
}

fn principals() -> String {
    [
        principal(
            "fraud-model",
            "model-token",
            r#"["read:service:fraud_v1"]"#,
            "",
        ),
        principal(
            "profile-loader",
            "loader-token",
            r#"["write:user_profile"]"#,
            "",
        ),
        principal(
            "events-gateway",
            "events-token",
            r#"["ingest:transactions"]"#,
            "",
        ),
        principal(
            "oncall",
            "oncall-token",
            r#"["admin", "read", "metrics"]"#,
            "",
        ),
    ]
    .concat()
}

#[test]
fn each_principal_may_do_what_its_scopes_say_and_nothing_else() {
    let registry = registry(&principals());
    let gate = Gate::new(registry.clone(), None, "serve");
    let velocity = group(&registry, "user_velocity");
    let profile = group(&registry, "user_profile");
    let transactions = registry
        .sources
        .iter()
        .position(|s| s.name == "transactions")
        .unwrap();

    // No token, a malformed one, an unknown one: 401 on every closed route.
    for route in [Route::Read, Route::Write, Route::Ingest, Route::Admin] {
        assert_eq!(
            gate.authenticate(&HeaderMap::new(), route),
            Err(Denial::Missing)
        );
        assert_eq!(
            gate.authenticate(&bearer("guess"), route),
            Err(Denial::Unknown)
        );
    }
    let mut basic = HeaderMap::new();
    basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic bW9kZWw="));
    assert_eq!(
        gate.authenticate(&basic, Route::Read),
        Err(Denial::Malformed)
    );
    assert_eq!(Denial::Missing.status(), StatusCode::UNAUTHORIZED);
    // Metrics stay open for scrapers.
    assert_eq!(
        gate.authenticate(&HeaderMap::new(), Route::Metrics),
        Ok(Caller::Anonymous)
    );

    let model = gate
        .authenticate(&bearer("model-token"), Route::Read)
        .unwrap();
    assert_eq!(gate.name(model), "fraud-model");
    // The service covers its groups, and no other.
    let service = registry.service("fraud_v1").unwrap();
    let covered: Vec<usize> = service.features.iter().map(|f| f.group).collect();
    assert!(gate.may_read(model, covered.iter().copied()).is_ok());
    let uncovered = (0..registry.groups.len()).find(|g| !covered.contains(g));
    if let Some(g) = uncovered {
        let denial = gate.may_read(model, [covered[0], g]).unwrap_err();
        assert_eq!(denial.status(), StatusCode::FORBIDDEN);
        assert!(
            denial
                .message()
                .contains(&format!("read:{}", registry.groups[g].name)),
            "{}",
            denial.message()
        );
    }
    let denial = gate.may_write(model, velocity).unwrap_err();
    assert_eq!(
        denial,
        Denial::Forbidden {
            principal: "fraud-model".into(),
            scope: "write:user_velocity".into()
        }
    );

    let loader = gate
        .authenticate(&bearer("loader-token"), Route::Write)
        .unwrap();
    assert!(gate.may_write(loader, profile).is_ok());
    assert!(gate.may_write(loader, velocity).is_err());
    assert!(gate.may_read(loader, [profile]).is_err());

    let events = gate
        .authenticate(&bearer("events-token"), Route::Ingest)
        .unwrap();
    assert!(gate.may_ingest(events, transactions).is_ok());
    assert!(gate.may_read(events, [velocity]).is_err());
    assert!(gate.may_write(events, velocity).is_err());

    let oncall = gate
        .authenticate(&bearer("oncall-token"), Route::Admin)
        .unwrap();
    assert!(gate.may_admin(oncall).is_ok());
    assert!(gate.may_read(oncall, 0..registry.groups.len()).is_ok());
    assert!(gate.may_admin(model).is_err());
    assert!(gate.may_ingest(oncall, transactions).is_err());
}

#[test]
fn without_principals_only_the_legacy_token_closes_anything() {
    let open = Gate::new(registry(""), None, "serve");
    assert!(open.is_open());
    for route in [
        Route::Read,
        Route::Write,
        Route::Ingest,
        Route::Admin,
        Route::Metrics,
    ] {
        let caller = open.authenticate(&HeaderMap::new(), route).unwrap();
        assert_eq!(caller, Caller::Anonymous);
    }
    assert!(open.may_write(Caller::Anonymous, 0).is_ok());

    let legacy = Gate::new(registry(""), Some("s3cret"), "serve");
    assert!(!legacy.is_open());
    assert_eq!(
        legacy.authenticate(&HeaderMap::new(), Route::Read),
        Ok(Caller::Anonymous)
    );
    assert_eq!(
        legacy.authenticate(&HeaderMap::new(), Route::Write),
        Err(Denial::Missing)
    );
    assert_eq!(
        legacy.authenticate(&HeaderMap::new(), Route::Ingest),
        Err(Denial::Missing)
    );
    let writer = legacy
        .authenticate(&bearer("s3cret"), Route::Ingest)
        .unwrap();
    assert!(legacy.may_ingest(writer, 0).is_ok());
    assert!(legacy.may_write(writer, 0).is_ok());

    let text = FRAUD.replace("[serve]\n", "[serve]\nread_requires_token = true\n");
    let reads_too = Gate::new(
        Arc::new(Registry::from_toml(&text).unwrap()),
        Some("s3cret"),
        "serve",
    );
    assert_eq!(
        reads_too.authenticate(&HeaderMap::new(), Route::Read),
        Err(Denial::Missing)
    );
    let reader = reads_too
        .authenticate(&bearer("s3cret"), Route::Read)
        .unwrap();
    assert!(reads_too.may_read(reader, [0, 1]).is_ok());
}

#[test]
fn a_principal_over_its_rate_is_told_when_to_come_back() {
    let gate = Gate::new(
        registry(&principal(
            "batch",
            "batch-token",
            r#"["read"]"#,
            "rate = 2",
        )),
        None,
        "serve",
    );
    let started = Instant::now();
    let mut allowed = 0;
    let mut limited = None;
    while started.elapsed() < Duration::from_millis(300) {
        match gate.authenticate(&bearer("batch-token"), Route::Read) {
            Ok(_) => allowed += 1,
            Err(denial) => {
                limited = Some(denial);
                break;
            }
        }
    }
    // A bucket of one second's worth: 2 at once, then refused (the next in 500 ms).
    assert_eq!(allowed, 2);
    let Some(Denial::Limited {
        principal,
        retry_after,
    }) = limited
    else {
        panic!("never limited: {limited:?}");
    };
    assert_eq!(principal, "batch");
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500));
    let response = axum::response::IntoResponse::into_response(Denial::Limited {
        principal,
        retry_after,
    });
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[test]
fn denials_and_writes_are_audited_without_any_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let registry = registry(&principals());
    let settings = AuditSettings {
        path: path.clone(),
        rotate_bytes: AuditSettings::DEFAULT_ROTATE_BYTES,
        keep: 1,
    };
    let gate = Gate::new(registry.clone(), None, "serve");
    let audit = AuditLog::open(&settings, gate.metrics.audit_dropped.clone()).unwrap();
    let gate = gate.with_audit(audit);
    let velocity = group(&registry, "user_velocity");
    assert!(gate
        .authenticate(&bearer("guess-token"), Route::Write)
        .is_err());
    let loader = gate
        .authenticate(&bearer("loader-token"), Route::Write)
        .unwrap();
    assert!(gate.may_write(loader, velocity).is_err());
    gate.audit_done(loader, "write", "user_profile", 12);
    drop(gate);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while text.lines().count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        text = std::fs::read_to_string(&path).unwrap_or_default();
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["principal"], "unknown");
    assert_eq!(lines[0]["outcome"], "unknown_token");
    assert_eq!(lines[1]["principal"], "profile-loader");
    assert_eq!(lines[1]["outcome"], "forbidden");
    assert_eq!(lines[1]["target"], "write:user_velocity");
    assert_eq!(lines[2]["action"], "write");
    assert_eq!(lines[2]["target"], "user_profile");
    assert_eq!(lines[2]["count"], 12);
    for secret in [
        "guess-token",
        "loader-token",
        &digest("loader-token").to_hex(),
    ] {
        assert!(!text.contains(secret), "the audit log holds {secret}");
    }
}
