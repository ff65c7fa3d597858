//! JWT bearer tokens from an identity provider (`[auth.jwt]`): a token is believed when it
//! is signed by the JWKS key its header's `kid` names, with an algorithm that key allows
//! (asymmetric only: never `none`, never HMAC), is within `exp`/`nbf` (30 s leeway), and
//! names the configured issuer and audience. Its roles (the claim at `roles_claim`, a
//! string or an array of strings) become a [`RoleSet`] over `[auth.jwt.roles]`.
//!
//! Checking a signature costs tens of microseconds, so a verified token is remembered by
//! its SHA-256 (which the gate computes anyway) until its `exp`: a token used again costs
//! one lookup. The remembered tokens are forgotten whenever the keys change.
//!
//! The keys ([`keys`]) are refreshed every five minutes and when a token names a `kid`
//! the set lacks (at most every 30 s), by a task [`JwtVerifier::spawn_refresh`] starts; a
//! failed refresh keeps the keys already loaded.
//!
//! Nothing about a token (not the token, its hash, nor its claims) leaves this module but
//! its roles and a [`Rejection`] from a fixed list.

pub mod keys;
mod ring_provider;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, AlgorithmFamily, Validation};
use riffle_registry::{JwksSource, JwtSettings, TokenDigest};
use serde_json::Value;
use tokio::sync::Notify;

pub use keys::{JwksError, KeySet};

/// Seconds of clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// How often the keys are read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two refreshes asked for by unknown `kid`s (so a stream of forged
/// `kid`s cannot make Riffle hammer the identity provider).
pub const UNKNOWN_KID_GAP: Duration = Duration::from_secs(30);
/// Verified tokens remembered.
const CACHE_CAPACITY: usize = 10_000;

/// A token's mapped roles, as indexes into `JwtSettings::roles` (at most 64 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RoleSet(u64);

impl RoleSet {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The first role (in `[auth.jwt.roles]`'s sorted order), which names the caller.
    pub fn first(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |i| self.0 & (1 << i) != 0)
    }

    fn with(self, role: usize) -> RoleSet {
        RoleSet(self.0 | 1u64.checked_shl(role as u32).unwrap_or(0))
    }
}

/// Why a token was not believed: for a debug log line and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts with a JSON header naming a known algorithm.
    Malformed,
    /// `none`, HMAC, or an algorithm its key does not allow.
    Algorithm,
    /// No key of the JWKS has the token's `kid`.
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    /// `exp`, `iss` or `aud` missing, or a claim of the wrong type.
    Claims,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Algorithm => "algorithm not allowed",
            Rejection::UnknownKey => "unknown key id",
            Rejection::Signature => "bad signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not yet valid",
            Rejection::Issuer => "wrong issuer",
            Rejection::Audience => "wrong audience",
            Rejection::Claims => "missing or malformed claims",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    roles: RoleSet,
    /// `exp`, seconds since the epoch.
    expires: u64,
}

/// Checks JWTs against `[auth.jwt]`.
pub struct JwtVerifier {
    source: JwksSource,
    issuer: String,
    audience: String,
    roles_claim: Vec<String>,
    roles: HashMap<String, usize>,
    keys: RwLock<Arc<KeySet>>,
    cache: quick_cache::sync::Cache<TokenDigest, Verified>,
    /// Wakes the refresh task (shared with it, so it does not keep the verifier alive).
    wanted: Arc<Notify>,
    last_wanted: Mutex<Option<Instant>>,
}

impl JwtVerifier {
    /// A verifier with no key yet (a JWKS file is read now; a failure is only logged here,
    /// [`JwtVerifier::refresh`] reports it).
    pub fn new(settings: &JwtSettings) -> JwtVerifier {
        ring_provider::install();
        let keys = match &settings.jwks {
            JwksSource::File(path) => KeySet::load_file(path).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "auth.jwt.jwks: no key loaded");
                KeySet::default()
            }),
            JwksSource::Url(_) => KeySet::default(),
        };
        JwtVerifier {
            source: settings.jwks.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            roles_claim: settings.roles_claim.clone(),
            roles: settings
                .roles
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), i))
                .collect(),
            keys: RwLock::new(Arc::new(keys)),
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            wanted: Arc::new(Notify::new()),
            last_wanted: Mutex::new(None),
        }
    }

    /// The roles of `token` (whose SHA-256 is `digest`), if it is to be believed.
    pub fn verify(&self, token: &str, digest: &TokenDigest) -> Result<RoleSet, Rejection> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(known) = self.cache.get(digest) {
            if now <= known.expires.saturating_add(LEEWAY_SECS) {
                return Ok(known.roles);
            }
            self.cache.remove(digest);
            return Err(Rejection::Expired);
        }
        let verified = self.verify_signed(token)?;
        self.cache.insert(*digest, verified);
        Ok(verified.roles)
    }

    fn verify_signed(&self, token: &str) -> Result<Verified, Rejection> {
        let header = decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(Rejection::Algorithm);
        }
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(key) = keys.find(header.kid.as_deref()) else {
            self.want_refresh();
            return Err(Rejection::UnknownKey);
        };
        // The algorithm is the key's to allow, whatever the header says.
        if !key.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Value>(token, &key.decoding, &validation)
            .map_err(|e| rejection(e.kind()))?
            .claims;
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(Rejection::Claims)?;
        Ok(Verified {
            roles: self.roles_of(&claims),
            expires,
        })
    }

    /// The mapped roles among those at `roles_claim` (other roles are ignored).
    fn roles_of(&self, claims: &Value) -> RoleSet {
        let mut set = RoleSet::default();
        let mut add = |role: &str| {
            if let Some(&i) = self.roles.get(role) {
                set = set.with(i);
            }
        };
        match claim_at(claims, &self.roles_claim) {
            Some(Value::String(role)) => add(role),
            Some(Value::Array(roles)) => roles.iter().filter_map(Value::as_str).for_each(add),
            _ => {}
        }
        set
    }

    /// Reads (or fetches) the JWKS again; true when the keys changed (then every
    /// remembered token is forgotten). On error the keys already loaded stay.
    pub async fn refresh(&self) -> Result<bool, JwksError> {
        let fresh = KeySet::load(&self.source).await?;
        let changed = {
            let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            let changed = keys.fingerprint != fresh.fingerprint;
            if changed {
                *keys = Arc::new(fresh);
            }
            changed
        };
        if changed {
            self.cache.clear();
        }
        Ok(changed)
    }

    /// How many keys are loaded.
    pub fn key_count(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .len()
    }

    fn want_refresh(&self) {
        let mut last = self
            .last_wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= UNKNOWN_KID_GAP) {
            *last = Some(Instant::now());
            self.wanted.notify_one();
        }
    }

    /// Starts the task that refreshes the keys every [`REFRESH_EVERY`] and when a token
    /// names an unknown `kid`, if a tokio runtime is running. It ends at its next wake-up
    /// after the verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let verifier = Arc::downgrade(self);
        let wanted = self.wanted.clone();
        Some(runtime.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                    () = wanted.notified() => {}
                }
                let Some(verifier) = verifier.upgrade() else {
                    return;
                };
                match verifier.refresh().await {
                    Ok(true) => tracing::info!(keys = verifier.key_count(), "auth.jwt.jwks: keys changed"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "auth.jwt.jwks: refresh failed; keeping the keys already loaded"),
                }
            }
        }))
    }
}

fn rejection(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature => Rejection::Signature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidIssuer => Rejection::Issuer,
        ErrorKind::InvalidAudience => Rejection::Audience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidKeyFormat => Rejection::Algorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => Rejection::Claims,
        _ => Rejection::Malformed,
    }
}

/// The value at `path` in `claims`. A claim's own name may hold dots (namespaced claims
/// such as `https://example.com/roles`), so at each level the longest name matching the
/// path's next parts wins.
fn claim_at<'v>(claims: &'v Value, path: &[String]) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(claims);
    }
    let object = claims.as_object()?;
    (1..=path.len()).rev().find_map(|n| {
        let value = object.get(&path[..n].join("."))?;
        claim_at(value, &path[n..])
    })
}
