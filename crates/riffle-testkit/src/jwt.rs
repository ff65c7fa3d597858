//! An identity provider for tests: a signing key made fresh in the test (ECDSA P-256 or
//! Ed25519, by ring), its JWKS, and JWTs it signs, plus the forgeries a verifier must
//! refuse (`alg: none`, HMAC keyed with the public key, a signature by another key).

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The signing algorithm of a [`TestIssuer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestAlg {
    Es256,
    EdDsa,
}

/// A key pair that signs JWTs with header `kid`.
pub struct TestIssuer {
    kid: String,
    alg: TestAlg,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl TestIssuer {
    /// A fresh key pair of `alg`, known by `kid`.
    pub fn new(alg: TestAlg, kid: &str) -> TestIssuer {
        let rng = SystemRandom::new();
        let (pkcs8, public) = match alg {
            TestAlg::Es256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("an ECDSA key pair");
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .expect("the key just made");
                (doc.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
            }
            TestAlg::EdDsa => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("an Ed25519 key pair");
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("the key just made");
                (doc.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
            }
        };
        TestIssuer {
            kid: kid.to_owned(),
            alg,
            pkcs8,
            public,
        }
    }

    /// The public key's bytes (the uncompressed point, or Ed25519's 32 bytes): what the
    /// HMAC confusion attack keys its MAC with.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// This key as one JWK (no surrounding `{"keys": [...]}`).
    pub fn jwk(&self) -> String {
        match self.alg {
            TestAlg::Es256 => format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","kid":"{}","use":"sig","alg":"ES256"}}"#,
                b64(&self.public[1..33]),
                b64(&self.public[33..]),
                self.kid
            ),
            TestAlg::EdDsa => format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":"{}","use":"sig","alg":"EdDSA"}}"#,
                b64(&self.public),
                self.kid
            ),
        }
    }

    /// A JWKS of `issuers`' keys.
    pub fn jwks(issuers: &[&TestIssuer]) -> String {
        let keys: Vec<String> = issuers.iter().map(|i| i.jwk()).collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    fn alg_name(&self) -> &'static str {
        match self.alg {
            TestAlg::Es256 => "ES256",
            TestAlg::EdDsa => "EdDSA",
        }
    }

    /// A JWT of `claims` (JSON), signed, with this key's `alg` and `kid`.
    pub fn token(&self, claims: &str) -> String {
        let header = format!(
            r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#,
            self.alg_name(),
            self.kid
        );
        self.token_with_header(&header, claims)
    }

    /// A JWT of `header` and `claims` (JSON) signed with this key, whatever the header says.
    pub fn token_with_header(&self, header: &str, claims: &str) -> String {
        let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let rng = SystemRandom::new();
        let signature = match self.alg {
            TestAlg::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &rng)
                    .expect("the key")
                    .sign(&rng, message.as_bytes())
                    .expect("an ECDSA signature")
                    .as_ref()
                    .to_vec()
            }
            TestAlg::EdDsa => Ed25519KeyPair::from_pkcs8(&self.pkcs8)
                .expect("the key")
                .sign(message.as_bytes())
                .as_ref()
                .to_vec(),
        };
        format!("{message}.{}", b64(&signature))
    }
}

/// `alg: none`: `header` and `claims` with an empty signature.
pub fn unsigned(header: &str, claims: &str) -> String {
    format!("{}.{}.", b64(header.as_bytes()), b64(claims.as_bytes()))
}

/// `header` and `claims` MACed with HMAC-SHA256 keyed by `secret`.
pub fn hs256(secret: &[u8], header: &str, claims: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", b64(tag.as_ref()))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Base64url without padding, as JWTs and JWKs write bytes.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
