//! `[auth]` resolved: every principal's name, token digest, scopes and rate checked with
//! its path (`auth.principals[1].scopes[0]: no feature group named "user_velocty"`), the
//! principals of `auth.principals_file` included; `[auth.jwt]` in `resolve_jwt.rs`.

use std::collections::HashSet;

use crate::auth::{AuditSettings, AuthSettings, Principal, ReadScope, Scope, TokenDigest};
use crate::error::RegistryError;
use crate::model::{FeatureGroup, FeatureService, Registry};
use crate::problems::Problems;
use crate::raw::{RawAuth, RawPrincipal, RawPrincipalsFile};
use crate::source::Source;

impl Registry {
    /// One scope as written (`read:service:fraud_v1`), checked against this registry.
    pub fn parse_scope(&self, text: &str) -> Result<Scope, String> {
        parse_scope(text, &self.names())
    }

    /// `[[auth.principals]]` entries as a principals file holds them, checked as loading
    /// them would check them (name, digest, scopes, rate).
    pub fn check_principal_entry(&self, text: &str) -> Result<(), RegistryError> {
        let file: RawPrincipalsFile =
            toml::from_str(text).map_err(|e| RegistryError::Syntax(e.to_string()))?;
        let mut p = Problems::default();
        resolve_auth(
            &RawAuth::default(),
            &file.auth.principals,
            &self.names(),
            &mut p,
        );
        p.into_result()
    }

    fn names(&self) -> Names<'_> {
        Names {
            groups: &self.groups,
            services: &self.services,
            sources: &self.sources,
        }
    }
}

/// What scopes may name.
pub(crate) struct Names<'a> {
    pub groups: &'a [FeatureGroup],
    pub services: &'a [FeatureService],
    pub sources: &'a [Source],
}

/// `raw`'s principals (at `auth.principals[i]`), then `from_file`'s (at
/// `auth.principals_file[i]`).
pub(crate) fn resolve_auth(
    raw: &RawAuth,
    from_file: &[RawPrincipal],
    names: &Names<'_>,
    p: &mut Problems,
) -> AuthSettings {
    let mut seen_names = HashSet::new();
    let mut seen_tokens = HashSet::new();
    let declared = raw
        .principals
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("auth.principals[{i}]"), r));
    let filed = from_file
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("auth.principals_file[{i}]"), r));
    let principals = declared
        .chain(filed)
        .filter_map(|(path, r)| {
            let principal = resolve_principal(&path, r, names, p)?;
            if !seen_names.insert(principal.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("principal {:?} is declared twice", principal.name),
                );
            }
            if !seen_tokens.insert(principal.token_sha256) {
                p.add(
                    format!("{path}.token_sha256"),
                    "another principal has the same token: each needs its own",
                );
            }
            Some(principal)
        })
        .collect();
    let audit_log = raw.audit_log.as_deref().map(|path| {
        if path.trim().is_empty() {
            p.add("auth.audit_log", "must name a file, not be empty");
        }
        let rotate_bytes = raw
            .audit_rotate_bytes
            .unwrap_or(AuditSettings::DEFAULT_ROTATE_BYTES);
        if rotate_bytes < 4096 {
            p.add("auth.audit_rotate_bytes", "must be at least 4096");
        }
        AuditSettings {
            path: path.trim().into(),
            rotate_bytes,
            keep: raw.audit_keep.unwrap_or(AuditSettings::DEFAULT_KEEP),
        }
    });
    AuthSettings {
        principals,
        protect_metrics: raw.protect_metrics.unwrap_or(false),
        allow_unauthenticated: raw.allow_unauthenticated.unwrap_or(false),
        audit_log,
        jwt: raw
            .jwt
            .as_ref()
            .map(|jwt| crate::resolve_jwt::resolve_jwt(jwt, names, p)),
    }
}

fn resolve_principal(
    path: &str,
    raw: &RawPrincipal,
    names: &Names<'_>,
    p: &mut Problems,
) -> Option<Principal> {
    p.name(&format!("{path}.name"), &raw.name);
    let Some(token_sha256) = TokenDigest::from_hex(&raw.token_sha256) else {
        p.add(
            format!("{path}.token_sha256"),
            "must be 64 hexadecimal digits: the SHA-256 of the token (`riffle token new` prints it)",
        );
        return None;
    };
    if raw.scopes.is_empty() {
        p.add(
            format!("{path}.scopes"),
            "is empty: give the principal what it may do, such as [\"read\"]",
        );
    }
    let scopes = raw
        .scopes
        .iter()
        .enumerate()
        .filter_map(|(j, text)| {
            parse_scope(text, names)
                .map_err(|why| p.add(format!("{path}.scopes[{j}]"), why))
                .ok()
        })
        .collect();
    let rate = raw.rate.filter(|r| {
        let ok = r.is_finite() && *r > 0.0;
        if !ok {
            p.add(
                format!("{path}.rate"),
                "must be above 0 (requests per second)",
            );
        }
        ok
    });
    Some(Principal {
        name: raw.name.clone(),
        token_sha256,
        scopes,
        rate,
    })
}

/// One scope as written: `read`, `read:GROUP`, `read:service:SERVICE`, `write`,
/// `write:GROUP`, `ingest`, `ingest:SOURCE`, `admin`, `metrics`.
pub(crate) fn parse_scope(text: &str, names: &Names<'_>) -> Result<Scope, String> {
    let group = |name: &str| {
        names
            .groups
            .iter()
            .position(|g| g.name == name)
            .ok_or_else(|| format!("no feature group named {name:?}"))
    };
    match text.trim().split_once(':') {
        None => match text.trim() {
            "read" => Ok(Scope::Read(ReadScope::All)),
            "write" => Ok(Scope::Write(None)),
            "ingest" => Ok(Scope::Ingest(None)),
            "admin" => Ok(Scope::Admin),
            "metrics" => Ok(Scope::Metrics),
            other => Err(format!("{other:?} is not a scope: {SCOPES}")),
        },
        Some(("read", rest)) => match rest.strip_prefix("service:") {
            Some(service) => names
                .services
                .iter()
                .position(|s| s.name == service)
                .map(|s| Scope::Read(ReadScope::Service(s)))
                .ok_or_else(|| format!("no feature service named {service:?}")),
            None => group(rest).map(|g| Scope::Read(ReadScope::Group(g))),
        },
        Some(("write", rest)) => group(rest).map(|g| Scope::Write(Some(g))),
        Some(("ingest", rest)) => names
            .sources
            .iter()
            .position(|s| s.name == rest)
            .map(|s| Scope::Ingest(Some(s)))
            .ok_or_else(|| format!("no source named {rest:?}")),
        Some(_) => Err(format!("{text:?} is not a scope: {SCOPES}")),
    }
}

const SCOPES: &str = "use read, read:GROUP, read:service:SERVICE, write, write:GROUP, ingest, ingest:SOURCE, admin or metrics";

#[cfg(test)]
mod tests {
    use crate::{ReadScope, Registry, RegistryError, Scope};

    const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");
    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn with_auth(auth: &str) -> Result<Registry, RegistryError> {
        Registry::from_toml(&format!("{FRAUD}\n{auth}"))
    }

    #[test]
    fn scopes_name_groups_services_and_sources() {
        let registry = with_auth(&format!(
            r#"
[[auth.principals]]
name = "fraud-model"
token_sha256 = "{DIGEST}"
scopes = ["read:service:fraud_v1", "read:user_profile", "write:user_profile", "ingest:transactions", "admin", "metrics", "read", "write", "ingest"]
rate = 50
"#
        ))
        .unwrap();
        let principal = &registry.auth.principals[0];
        assert_eq!(principal.token_sha256.to_hex(), DIGEST);
        assert_eq!(principal.rate, Some(50.0));
        let texts: Vec<String> = principal
            .scopes
            .iter()
            .map(|s| registry.scope_text(s))
            .collect();
        assert_eq!(
            texts,
            [
                "read:service:fraud_v1",
                "read:user_profile",
                "write:user_profile",
                "ingest:transactions",
                "admin",
                "metrics",
                "read",
                "write",
                "ingest"
            ]
        );
        let profile = registry.group("user_profile").unwrap().id;
        assert_eq!(principal.scopes[1], Scope::Read(ReadScope::Group(profile)));
        assert!(!format!("{registry:?}").contains(DIGEST));
    }

    #[test]
    fn every_bad_principal_is_reported_with_its_path() {
        let err = with_auth(&format!(
            r#"
[[auth.principals]]
name = "a"
token_sha256 = "{DIGEST}"
scopes = ["read:user_velocty", "write:service:x", "ingest:clicks", "root", "admin:x"]
rate = 0

[[auth.principals]]
name = "a"
token_sha256 = "{DIGEST}"
scopes = ["read"]

[[auth.principals]]
name = "b"
token_sha256 = "not hex"
scopes = []
"#
        ))
        .unwrap_err()
        .to_string();
        for expected in [
            r#"auth.principals[0].scopes[0]: no feature group named "user_velocty""#,
            r#"auth.principals[0].scopes[1]: no feature group named "service:x""#,
            r#"auth.principals[0].scopes[2]: no source named "clicks""#,
            r#"auth.principals[0].scopes[3]: "root" is not a scope"#,
            r#"auth.principals[0].scopes[4]: "admin:x" is not a scope"#,
            "auth.principals[0].rate: must be above 0",
            r#"auth.principals[1].name: principal "a" is declared twice"#,
            "auth.principals[1].token_sha256: another principal has the same token",
            "auth.principals[2].token_sha256: must be 64 hexadecimal digits",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn a_principals_file_is_read_beside_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("principals.toml"),
            format!(
                "[[auth.principals]]\nname = \"loader\"\ntoken_sha256 = \"{DIGEST}\"\nscopes = [\"write:nope\"]\n"
            ),
        )
        .unwrap();
        let registry_path = dir.path().join("riffle.toml");
        std::fs::write(
            &registry_path,
            format!("{FRAUD}\n[auth]\nprincipals_file = \"principals.toml\"\n"),
        )
        .unwrap();
        let err = Registry::load(&registry_path).unwrap_err().to_string();
        assert!(
            err.contains(r#"auth.principals_file[0].scopes[0]: no feature group named "nope""#),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("principals.toml")).unwrap();
        let err = Registry::load(&registry_path).unwrap_err().to_string();
        assert!(err.contains("auth.principals_file"), "{err}");
        assert!(err.contains("principals.toml"), "{err}");
    }
}
