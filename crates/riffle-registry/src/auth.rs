//! `[auth]` resolved: who may call Riffle's listeners and what each may do. The principals
//! (a name, the SHA-256 of its bearer token, its scopes and an optional request rate), and
//! the settings every listener shares (metrics protected or not, an open deployment
//! allowed or not, the audit log). Enforced by the `riffle-auth` crate; this module only
//! says what was declared, checked against the registry (a scope naming an unknown group,
//! service or source is a registry problem like any other).

use std::fmt;
use std::path::PathBuf;

/// What `[auth]` declares. The default has no principal: every data route is open, which
/// only a loopback listener (or `allow_unauthenticated`) accepts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthSettings {
    /// From `[[auth.principals]]`, then the file `auth.principals_file` names.
    pub principals: Vec<Principal>,
    /// `/metrics` needs the `metrics` scope (else it stays open for scrapers).
    pub protect_metrics: bool,
    /// A listener on a non-loopback address may start without any credential.
    pub allow_unauthenticated: bool,
    /// Every write, accepted event batch, admin action and denial, one JSON line each.
    pub audit_log: Option<AuditSettings>,
    /// `[auth.jwt]`: JWT bearer tokens from an identity provider.
    pub jwt: Option<JwtSettings>,
}

/// `[auth.jwt]`: which tokens are believed (signed by a key of the JWKS, from `issuer`, for
/// `audience`) and what each role of `roles_claim` may do.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSettings {
    pub jwks: JwksSource,
    pub issuer: String,
    pub audience: String,
    /// The path to the roles in the claims, split at its dots (`["resource_access",
    /// "feast", "roles"]`).
    pub roles_claim: Vec<String>,
    /// By name (sorted): a token's grants are the union of its mapped roles' scopes.
    pub roles: Vec<JwtRole>,
}

impl JwtSettings {
    /// At most this many roles: a token's roles are kept as a bit set.
    pub const MAX_ROLES: usize = 64;
}

/// Where the identity provider's public keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// A JWKS file (relative paths resolved against the registry's folder when loaded).
    File(PathBuf),
    /// An `https://` URL (or `http://` to a loopback address).
    Url(String),
}

/// One role of `[auth.jwt.roles]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtRole {
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// `auth.audit_log`: where the audit lines go and when the file is rotated.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    pub path: PathBuf,
    /// Past this size the file is renamed `PATH.1` (older ones shift up) and a new one begun.
    pub rotate_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

impl AuditSettings {
    pub const DEFAULT_ROTATE_BYTES: u64 = 64 << 20;
    pub const DEFAULT_KEEP: u32 = 5;
}

/// One caller Riffle knows by its bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    pub token_sha256: TokenDigest,
    pub scopes: Vec<Scope>,
    /// Requests per second beyond which it gets 429 (a token bucket of one second's worth).
    pub rate: Option<f64>,
}

/// The SHA-256 of a bearer token: all Riffle keeps of it. Its `Debug` shows nothing of
/// it, so a registry printed in a log leaks no hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// Parses 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Option<TokenDigest> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(TokenDigest(out))
    }

    /// The 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One thing a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read features online or offline: of every group, of one, or of a service's groups.
    Read(ReadScope),
    /// Write rows (push, `write-to-online-store`): of every group or of one (an index into
    /// `Registry::groups`).
    Write(Option<usize>),
    /// Send events: to every source or to one (an index into `Registry::sources`).
    Ingest(Option<usize>),
    /// Operator actions: rollouts, retirement, tier switches, replays.
    Admin,
    /// `GET /metrics` when `auth.protect_metrics` is set.
    Metrics,
}

/// What a read scope covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    All,
    /// An index into `Registry::groups`.
    Group(usize),
    /// A feature service (an index into `Registry::services`): the groups it reads.
    Service(usize),
}
