//! `jsonwebtoken`'s signatures verified with ring, the crypto library the rest of Riffle
//! (rustls) already uses, instead of either of the crate's own backends (aws-lc-rs, or
//! RustCrypto's RSA). Only verification of the asymmetric algorithms exists: an HMAC
//! algorithm, or a key of another family than the algorithm's, is refused before any
//! signature is looked at, and nothing here can sign.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as sig;

/// The provider, installed once per process by [`install`].
static RING: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: no_ed_components,
        compute_digest: digest,
    },
};

/// Makes ring `jsonwebtoken`'s provider for this process (a second call changes nothing).
pub fn install() {
    // Err only when a provider is installed already, which can only be this one: no other
    // code in Riffle installs one.
    let _ = RING.install_default();
}

fn unsupported() -> Error {
    ErrorKind::UnsupportedAlgorithm.into()
}

fn no_ed_components(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>> {
    Err(unsupported())
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(unsupported())
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(unsupported()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

/// A verifier for `algorithm` with `key`, refused for HMAC (a public key is no shared
/// secret: the classic confusion attack signs HS256 with the public key's bytes) and for a
/// key of another family.
fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if algorithm.family() == AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        let ok = match (self.algorithm, self.key.kind()) {
            (Algorithm::RS256, kind) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA256, kind, message, signature)
            }
            (Algorithm::RS384, kind) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA384, kind, message, signature)
            }
            (Algorithm::RS512, kind) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA512, kind, message, signature)
            }
            (Algorithm::PS256, kind) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA256, kind, message, signature)
            }
            (Algorithm::PS384, kind) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA384, kind, message, signature)
            }
            (Algorithm::PS512, kind) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA512, kind, message, signature)
            }
            (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (Algorithm::ES384, DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(x)) => {
                sig::UnparsedPublicKey::new(&sig::ED25519, x)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

fn rsa(
    params: &'static sig::RsaParameters,
    key: &DecodingKeyKind,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match key {
        DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
            .verify(params, message, signature)
            .is_ok(),
        DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(params, der)
            .verify(message, signature)
            .is_ok(),
    }
}
