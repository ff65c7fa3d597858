//! The identity provider's public keys: a JWKS read from a file or fetched from a URL,
//! each usable key with the algorithms it may verify. Those come from the key (its `alg`,
//! else its type and curve), never from a token's header. Symmetric (`oct`) keys,
//! encryption keys and keys this build cannot use are skipped, so a JWKS that also lists
//! the provider's encryption keys still loads.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use riffle_registry::JwksSource;
use serde::Deserialize;

/// A JWKS larger than this is refused (real ones are a few kilobytes).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a JWKS could not be had. Its text names the source, never a token.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the JWKS file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the JWKS from {from} is not a JSON object with \"keys\": {reason}")]
    Json { from: String, reason: String },
    #[error(
        "the JWKS from {from} has no key usable for signatures (RSA, EC P-256/P-384, Ed25519)"
    )]
    NoKey { from: String },
}

/// One verification key.
pub struct Key {
    /// `None` when the JWKS gave it no `kid`.
    pub kid: Option<String>,
    pub decoding: DecodingKey,
    /// What it may verify.
    pub algorithms: Vec<Algorithm>,
}

/// The usable keys of one JWKS.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
    /// The JWKS as read, to tell whether a refresh changed anything.
    pub fingerprint: u64,
}

impl KeySet {
    /// The key a token whose header names `kid` is checked with: the key of that `kid`, or
    /// the only key when the token names none.
    pub fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }

    /// The usable keys of JWKS text `bytes` (from `from`, for errors).
    pub fn parse(bytes: &[u8], from: &str) -> Result<KeySet, JwksError> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| JwksError::Json {
            from: from.to_owned(),
            reason: e.to_string(),
        })?;
        let keys: Vec<Key> = raw
            .keys
            .into_iter()
            // One key this build cannot read (an unknown `alg`, say) does not spoil the rest.
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| usable(&jwk))
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoKey {
                from: from.to_owned(),
            });
        }
        Ok(KeySet {
            keys,
            fingerprint: fingerprint(bytes),
        })
    }

    /// Reads (a file) or fetches (a URL) the JWKS of `source`.
    pub async fn load(source: &JwksSource) -> Result<KeySet, JwksError> {
        match source {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| read_error(path, e))?;
                KeySet::parse(&bytes, &path.display().to_string())
            }
            JwksSource::Url(url) => KeySet::parse(&fetch(url).await?, url),
        }
    }

    /// [`KeySet::load`] for a file, without a runtime (`Gate::new`).
    pub fn load_file(path: &Path) -> Result<KeySet, JwksError> {
        let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
        KeySet::parse(&bytes, &path.display().to_string())
    }
}

fn read_error(path: &Path, source: std::io::Error) -> JwksError {
    JwksError::Read {
        path: path.display().to_string(),
        source,
    }
}

async fn fetch(url: &str) -> Result<Vec<u8>, JwksError> {
    let failed = |reason: String| JwksError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(e.to_string()))?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    Ok(bytes.to_vec())
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_le_bytes(first)
}

/// `jwk` as a signature key with the algorithms it may verify, if it is one.
fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // `oct` keys are shared secrets: never a way in.
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(declared) => {
            let alg = signing_algorithm(declared)?;
            if !by_type.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        decoding,
        algorithms,
    })
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
