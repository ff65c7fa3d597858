//! `[auth.jwt]` resolved: where the identity provider's keys come from (a JWKS file or an
//! `https://` URL), the issuer and audience a token must name, the dotted path to its roles,
//! and each role's scopes, checked like a principal's (`auth.jwt.roles.reader[0]: no feature
//! group named "user_velocty"`).

use crate::auth::{JwksSource, JwtRole, JwtSettings};
use crate::problems::Problems;
use crate::raw::RawJwt;
use crate::resolve_auth::{parse_scope, Names};

pub(crate) fn resolve_jwt(raw: &RawJwt, names: &Names<'_>, p: &mut Problems) -> JwtSettings {
    let jwks = jwks_source(raw.jwks.trim(), p);
    for (key, value) in [("issuer", &raw.issuer), ("audience", &raw.audience)] {
        if value.trim().is_empty() {
            p.add(
                format!("auth.jwt.{key}"),
                "must not be empty: tokens are checked against it",
            );
        }
    }
    let roles_claim: Vec<String> = raw
        .roles_claim
        .trim()
        .split('.')
        .map(str::to_owned)
        .collect();
    if roles_claim.iter().any(String::is_empty) {
        p.add(
            "auth.jwt.roles_claim",
            "must be a dotted path to the roles claim, such as \"roles\" or \"resource_access.feast.roles\"",
        );
    }
    if raw.roles.is_empty() {
        p.add(
            "auth.jwt.roles",
            "maps no role: add [auth.jwt.roles] with role = [\"read\", ...]",
        );
    }
    if raw.roles.len() > JwtSettings::MAX_ROLES {
        p.add(
            "auth.jwt.roles",
            format!(
                "maps {} roles: at most {}",
                raw.roles.len(),
                JwtSettings::MAX_ROLES
            ),
        );
    }
    let roles = raw
        .roles
        .iter()
        .map(|(name, scopes)| {
            let path = format!("auth.jwt.roles.{name}");
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                p.add(
                    &path,
                    "a role name must be 1-128 characters, none of them a control character",
                );
            }
            if scopes.is_empty() {
                p.add(
                    &path,
                    "is empty: give the role what it may do, such as [\"read\"]",
                );
            }
            let scopes = scopes
                .iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    parse_scope(text, names)
                        .map_err(|why| p.add(format!("{path}[{j}]"), why))
                        .ok()
                })
                .collect();
            JwtRole {
                name: name.clone(),
                scopes,
            }
        })
        .collect();
    JwtSettings {
        jwks,
        issuer: raw.issuer.trim().to_owned(),
        audience: raw.audience.trim().to_owned(),
        roles_claim,
        roles,
    }
}

/// `https://…` (or `http://` to a loopback address: a local sidecar or a test), else a file.
fn jwks_source(text: &str, p: &mut Problems) -> JwksSource {
    if text.is_empty() {
        p.add(
            "auth.jwt.jwks",
            "must name a JWKS file or an https:// URL, not be empty",
        );
    }
    if text.starts_with("https://") {
        return JwksSource::Url(text.to_owned());
    }
    if let Some(rest) = text.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if !matches!(host, "localhost" | "[::1]") && !host.starts_with("127.") {
            p.add(
                "auth.jwt.jwks",
                "must be https:// (keys fetched in clear could be swapped on the way); http:// only to a loopback address",
            );
        }
        return JwksSource::Url(text.to_owned());
    }
    if text.contains("://") {
        p.add(
            "auth.jwt.jwks",
            "must be a file or an https:// URL: no other scheme is fetched",
        );
    }
    JwksSource::File(text.into())
}

#[cfg(test)]
mod tests {
    use crate::{JwksSource, ReadScope, Registry, RegistryError, Scope};

    const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");

    fn with_auth(auth: &str) -> Result<Registry, RegistryError> {
        Registry::from_toml(&format!("{FRAUD}\n{auth}"))
    }

    #[test]
    fn roles_map_to_scopes_and_the_claim_path_is_split() {
        let registry = with_auth(
            r#"
[auth.jwt]
jwks = "https://idp.example.com/realms/feast/protocol/openid-connect/certs"
issuer = "https://idp.example.com/realms/feast"
audience = "riffle"
roles_claim = "resource_access.feast.roles"

[auth.jwt.roles]
reader = ["read:service:fraud_v1"]
"fraud.admin" = ["admin", "metrics"]
"#,
        )
        .unwrap();
        let jwt = registry.auth.jwt.as_ref().unwrap();
        assert!(matches!(&jwt.jwks, JwksSource::Url(u) if u.starts_with("https://idp")));
        assert_eq!(jwt.roles_claim, ["resource_access", "feast", "roles"]);
        let names: Vec<&str> = jwt.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fraud.admin", "reader"]);
        let fraud = registry
            .services
            .iter()
            .position(|s| s.name == "fraud_v1")
            .unwrap();
        assert_eq!(
            jwt.roles[1].scopes,
            [Scope::Read(ReadScope::Service(fraud))]
        );
    }

    #[test]
    fn every_bad_jwt_setting_is_reported_with_its_path() {
        let err = with_auth(
            r#"
[auth.jwt]
jwks = "http://idp.example.com/certs"
issuer = " "
audience = ""
roles_claim = "a..b"

[auth.jwt.roles]
reader = ["read:user_velocty", "root"]
empty = []
"#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "auth.jwt.jwks: must be https://",
            "auth.jwt.issuer: must not be empty",
            "auth.jwt.audience: must not be empty",
            "auth.jwt.roles_claim: must be a dotted path",
            r#"auth.jwt.roles.reader[0]: no feature group named "user_velocty""#,
            r#"auth.jwt.roles.reader[1]: "root" is not a scope"#,
            "auth.jwt.roles.empty: is empty",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        let err = with_auth(
            "[auth.jwt]\njwks = \"ftp://x\"\nissuer = \"i\"\naudience = \"a\"\nroles_claim = \"roles\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.jwt.jwks: must be a file"), "{err}");
        assert!(err.contains("auth.jwt.roles: maps no role"), "{err}");
    }

    #[test]
    fn a_jwks_file_is_relative_to_the_registry_and_loopback_http_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("riffle.toml");
        std::fs::write(
            &path,
            format!("{FRAUD}\n[auth.jwt]\njwks = \"keys/jwks.json\"\nissuer = \"i\"\naudience = \"a\"\nroles_claim = \"roles\"\n[auth.jwt.roles]\nr = [\"read\"]\n"),
        )
        .unwrap();
        let registry = Registry::load(&path).unwrap();
        assert_eq!(
            registry.auth.jwt.unwrap().jwks,
            JwksSource::File(dir.path().join("keys/jwks.json"))
        );
        let local = with_auth(
            "[auth.jwt]\njwks = \"http://127.0.0.1:8080/certs\"\nissuer = \"i\"\naudience = \"a\"\nroles_claim = \"roles\"\n[auth.jwt.roles]\nr = [\"read\"]\n",
        )
        .unwrap();
        assert!(matches!(local.auth.jwt.unwrap().jwks, JwksSource::Url(_)));
    }
}
