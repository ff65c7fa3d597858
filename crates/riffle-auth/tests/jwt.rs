//! JWT bearer tokens through the gate, with keys made in the test: a token signed by the
//! JWKS key of its `kid`, from the configured issuer, for the configured audience, with a
//! mapped role, is let through with that role's scopes; every forgery and every token out
//! of date, issuer or audience is 401; the keys are refreshed from a file or a URL.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use riffle_auth::jwt::Rejection;
use riffle_auth::{Caller, Denial, Gate, Route};
use riffle_registry::Registry;
use riffle_testkit::jwt::{hs256, now, unsigned, TestAlg, TestIssuer};

const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");
const ISSUER: &str = "https://idp.example.com/realms/feast";
const AUDIENCE: &str = "riffle";

fn registry(jwks: &str, extra: &str) -> Arc<Registry> {
    Arc::new(
        Registry::from_toml(&format!(
            r#"{FRAUD}
{extra}
[auth.jwt]
jwks = "{jwks}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
roles_claim = "resource_access.feast.roles"

[auth.jwt.roles]
reader = ["read:service:fraud_v1"]
loader = ["write:user_profile"]
"#
        ))
        .unwrap(),
    )
}

fn jwks_file(dir: &Path, issuers: &[&TestIssuer]) -> String {
    let path = dir.join("jwks.json");
    std::fs::write(&path, TestIssuer::jwks(issuers)).unwrap();
    path.display().to_string()
}

/// Claims from `ISSUER` for `AUDIENCE` with `roles`, expiring `exp` seconds from now.
fn claims(roles: &[&str], exp: i64) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"user-42","exp":{},"iat":{},"resource_access":{{"feast":{{"roles":[{}]}}}}}}"#,
        now() + exp,
        now(),
        roles.join(",")
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

#[test]
fn a_signed_token_with_a_mapped_role_may_do_what_the_role_may() {
    let dir = tempfile::tempdir().unwrap();
    let idp = TestIssuer::new(TestAlg::Es256, "k1");
    let registry = registry(&jwks_file(dir.path(), &[&idp]), "");
    let gate = Gate::new(registry.clone(), None, "serve");
    assert!(!gate.is_open());
    assert_eq!(gate.mode(), "jwt");
    let (velocity, profile) = (
        group(&registry, "user_velocity"),
        group(&registry, "user_profile"),
    );

    let reader = gate
        .authenticate(&bearer(&idp.token(&claims(&["reader"], 300))), Route::Read)
        .unwrap();
    assert!(matches!(reader, Caller::Jwt(_)));
    assert_eq!(gate.name(reader), "jwt:reader");
    assert!(gate.may_read(reader, [velocity, profile]).is_ok());
    let denial = gate.may_write(reader, profile).unwrap_err();
    assert_eq!(denial.status(), StatusCode::FORBIDDEN);
    assert!(
        denial.message().contains("jwt:reader"),
        "{}",
        denial.message()
    );
    assert!(denial.message().contains("write:user_profile"));

    // Two roles: the union of their scopes, named after the first in sorted order.
    let both = gate
        .authenticate(
            &bearer(&idp.token(&claims(&["reader", "loader", "not-mapped"], 300))),
            Route::Write,
        )
        .unwrap();
    assert_eq!(gate.name(both), "jwt:loader");
    assert!(gate.may_write(both, profile).is_ok());
    assert!(gate.may_read(both, [velocity]).is_ok());
    assert!(gate.may_admin(both).is_err());

    // A valid identity without a mapped role is known, but may do nothing.
    let nobody = gate
        .authenticate(&bearer(&idp.token(&claims(&["viewer"], 300))), Route::Read)
        .unwrap();
    assert_eq!(gate.name(nobody), "jwt");
    let denial = gate.may_read(nobody, [velocity]).unwrap_err();
    assert_eq!(denial.status(), StatusCode::FORBIDDEN);

    // The same token again is remembered (and still let through).
    let token = idp.token(&claims(&["reader"], 300));
    for _ in 0..3 {
        assert_eq!(gate.authenticate(&bearer(&token), Route::Read), Ok(reader));
    }
}

#[test]
fn ed25519_tokens_and_a_roles_claim_holding_dots_work() {
    let dir = tempfile::tempdir().unwrap();
    let idp = TestIssuer::new(TestAlg::EdDsa, "ed");
    let text = format!(
        "{FRAUD}\n[auth.jwt]\njwks = \"{}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nroles_claim = \"https://riffle.example/roles\"\n[auth.jwt.roles]\nreader = [\"read\"]\n",
        jwks_file(dir.path(), &[&idp])
    );
    let gate = Gate::new(Arc::new(Registry::from_toml(&text).unwrap()), None, "serve");
    let claims = format!(
        r#"{{"iss":"{ISSUER}","aud":["other","{AUDIENCE}"],"exp":{},"https://riffle.example/roles":"reader"}}"#,
        now() + 60
    );
    let caller = gate
        .authenticate(&bearer(&idp.token(&claims)), Route::Read)
        .unwrap();
    assert_eq!(gate.name(caller), "jwt:reader");
    assert!(gate.may_read(caller, [0]).is_ok());
}

#[test]
fn forged_expired_unsigned_hmac_and_misaddressed_tokens_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let idp = TestIssuer::new(TestAlg::Es256, "k1");
    let jwks_path = jwks_file(dir.path(), &[&idp]);
    let jwks_text = std::fs::read_to_string(&jwks_path).unwrap();
    let gate = Gate::new(registry(&jwks_path, ""), None, "serve");
    let good = claims(&["reader"], 300);
    let mallory = TestIssuer::new(TestAlg::Es256, "k1");
    let header_es = r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#;
    let header_hs = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let tampered = {
        let token = idp.token(&good);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = riffle_testkit::jwt::b64(claims(&["reader", "loader"], 300).as_bytes());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let cases = [
        ("signed by another key with the same kid", Rejection::Signature, mallory.token(&good)),
        ("claims changed after signing", Rejection::Signature, tampered),
        ("expired", Rejection::Expired, idp.token(&claims(&["reader"], -120))),
        (
            "not yet valid", Rejection::NotYetValid,
            idp.token(&good.replace("\"iat\"", &format!("\"nbf\":{},\"iat\"", now() + 3600))),
        ),
        ("alg none", Rejection::Malformed, unsigned(r#"{"alg":"none","typ":"JWT"}"#, &good)),
        (
            "alg none with a kid", Rejection::Malformed,
            unsigned(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#, &good),
        ),
        (
            "HS256 keyed with the public key's bytes", Rejection::Algorithm,
            hs256(idp.public_key(), header_hs, &good),
        ),
        (
            "HS256 keyed with the JWKS text", Rejection::Algorithm,
            hs256(jwks_text.as_bytes(), header_hs, &good),
        ),
        (
            "HS256 keyed with the JWK text", Rejection::Algorithm,
            hs256(idp.jwk().as_bytes(), header_hs, &good),
        ),
        (
            "wrong issuer", Rejection::Issuer,
            idp.token(&good.replace(ISSUER, "https://evil.example.com")),
        ),
        (
            "wrong audience", Rejection::Audience,
            idp.token(&good.replace("\"aud\":\"riffle\"", "\"aud\":\"account\"")),
        ),
        (
            "no audience", Rejection::Claims,
            idp.token(&good.replace("\"aud\":\"riffle\",", "")),
        ),
        (
            "no expiry", Rejection::Claims,
            idp.token(&format!(
                r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","resource_access":{{"feast":{{"roles":["reader"]}}}}}}"#
            )),
        ),
        (
            "unknown kid", Rejection::UnknownKey,
            TestIssuer::new(TestAlg::Es256, "k2").token(&good),
        ),
        (
            "an algorithm the key does not allow", Rejection::Algorithm,
            idp.token_with_header(r#"{"alg":"ES384","typ":"JWT","kid":"k1"}"#, &good),
        ),
        ("garbage in three parts", Rejection::Malformed, "a.b.c".to_owned()),
    ];
    assert!(gate
        .authenticate(
            &bearer(&idp.token_with_header(header_es, &good)),
            Route::Read
        )
        .is_ok());
    let verifier = gate.jwt().unwrap();
    for (what, why, token) in cases {
        assert_eq!(
            verifier.verify(&token, &riffle_auth::token::digest(&token)),
            Err(why),
            "{what}"
        );
        let denial = gate.authenticate(&bearer(&token), Route::Read).unwrap_err();
        assert_eq!(denial, Denial::Invalid, "{what}");
        assert_eq!(denial.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(!denial.message().contains(&token), "{what}");
    }
    // Not a JWT at all: just an unknown token.
    assert_eq!(
        gate.authenticate(&bearer("rfl_not-a-jwt"), Route::Read),
        Err(Denial::Unknown)
    );
}

#[test]
fn decisions_are_counted_under_role_labels_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let idp = TestIssuer::new(TestAlg::Es256, "k1");
    let gate = Gate::new(registry(&jwks_file(dir.path(), &[&idp]), ""), None, "serve");
    let token = idp.token(&claims(&["reader"], 300));
    let caller = gate.authenticate(&bearer(&token), Route::Read).unwrap();
    gate.may_read(caller, [0]).unwrap();
    let expired = idp.token(&claims(&["reader"], -300));
    assert!(gate.authenticate(&bearer(&expired), Route::Read).is_err());
    let mut metrics = prometheus_client::registry::Registry::with_prefix("riffle");
    gate.metrics.register(&mut metrics);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics).unwrap();
    assert!(
        text.contains(r#"riffle_auth_decisions_total{principal="jwt:reader",outcome="allowed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"riffle_auth_decisions_total{principal="unknown",outcome="invalid_token"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"principal="jwt",outcome="forbidden""#));
    for secret in [&token, &expired] {
        assert!(!text.contains(secret.as_str()));
        assert!(!text.contains(&riffle_auth::token::digest(secret).to_hex()));
        assert!(!text.contains("user-42"));
    }
}

#[test]
fn principals_still_come_first_and_the_mode_says_both() {
    let dir = tempfile::tempdir().unwrap();
    let idp = TestIssuer::new(TestAlg::Es256, "k1");
    let principal = format!(
        "[[auth.principals]]\nname = \"oncall\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
        riffle_auth::token::digest("oncall-token").to_hex()
    );
    let gate = Gate::new(
        registry(&jwks_file(dir.path(), &[&idp]), &principal),
        None,
        "serve",
    );
    assert_eq!(gate.mode(), "principals+jwt");
    let oncall = gate
        .authenticate(&bearer("oncall-token"), Route::Admin)
        .unwrap();
    assert_eq!(oncall, Caller::Principal(0));
    assert_eq!(
        gate.authenticate(&HeaderMap::new(), Route::Read),
        Err(Denial::Missing)
    );
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_and_a_failed_refresh_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let old = TestIssuer::new(TestAlg::Es256, "old");
    let path = jwks_file(dir.path(), &[&old]);
    let gate = Gate::open(registry(&path, ""), None, "serve")
        .await
        .unwrap();
    let reads = |idp: &TestIssuer| {
        gate.authenticate(&bearer(&idp.token(&claims(&["reader"], 300))), Route::Read)
    };
    assert!(reads(&old).is_ok());

    // The provider rotates: a token of the new key is refused once, and asks for a refresh.
    let new = TestIssuer::new(TestAlg::EdDsa, "new");
    jwks_file(dir.path(), &[&old, &new]);
    assert_eq!(reads(&new), Err(Denial::Invalid));
    let deadline = Instant::now() + Duration::from_secs(10);
    while reads(&new).is_err() {
        assert!(Instant::now() < deadline, "the refresh never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The JWKS goes away: the refresh fails, the keys loaded stay.
    std::fs::remove_file(&path).unwrap();
    let verifier = gate.jwt().unwrap();
    assert!(verifier.refresh().await.is_err());
    assert_eq!(verifier.key_count(), 2);
    assert!(reads(&old).is_ok());

    // The old key is dropped: its tokens (even remembered ones) are refused.
    let remembered = old.token(&claims(&["reader"], 300));
    assert!(gate.authenticate(&bearer(&remembered), Route::Read).is_ok());
    jwks_file(dir.path(), &[&new]);
    assert!(verifier.refresh().await.unwrap());
    assert_eq!(
        gate.authenticate(&bearer(&remembered), Route::Read),
        Err(Denial::Invalid)
    );
}

#[tokio::test]
async fn the_keys_are_fetched_from_a_url_and_a_missing_jwks_fails_the_start() {
    let idp = TestIssuer::new(TestAlg::Es256, "k1");
    let jwks = TestIssuer::jwks(&[&idp]);
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let gate = Gate::open(registry(&format!("http://{addr}/certs"), ""), None, "serve")
        .await
        .unwrap();
    assert_eq!(gate.jwt().unwrap().key_count(), 1);
    assert!(gate
        .authenticate(&bearer(&idp.token(&claims(&["reader"], 300))), Route::Read)
        .is_ok());

    let missing = Gate::open(registry(&format!("http://{addr}/nope"), ""), None, "serve").await;
    let err = missing.err().unwrap().to_string();
    assert!(
        err.contains("auth.jwt.jwks") && err.contains("404"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = Gate::open(
        registry(&dir.path().join("none.json").display().to_string(), ""),
        None,
        "serve",
    )
    .await;
    assert!(missing.err().unwrap().to_string().contains("none.json"));
}
