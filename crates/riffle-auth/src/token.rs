//! Bearer tokens: made from the system's secure random source, read from an
//! `Authorization` header, and known by their SHA-256 only (the registry keeps the digest,
//! never the token).

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use riffle_registry::TokenDigest;
use ring::rand::{SecureRandom, SystemRandom};

/// What every token `riffle token new` makes starts with, so secret scanners and people
/// can tell one when they see it.
pub const PREFIX: &str = "rfl_";

/// A fresh token: [`PREFIX`] and 32 random bytes as hexadecimal.
pub fn new_token() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{PREFIX}{hex}"))
}

/// The SHA-256 of `token`, what a principal's `token_sha256` holds.
pub fn digest(token: &str) -> TokenDigest {
    let hash = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    TokenDigest(out)
}

/// What a request's `Authorization` header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    Nothing,
    /// A header that is not `Bearer <token>`.
    Malformed,
    Bearer(&'a str),
}

/// The bearer token of `headers`, if any (the scheme's case ignored, as RFC 6750 allows).
pub fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Presented::Nothing;
    };
    let Ok(text) = value.to_str() else {
        return Presented::Malformed;
    };
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Presented::Bearer(token.trim())
        }
        _ => Presented::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_are_fresh_and_known_by_their_sha256() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        // The SHA-256 of "test", as sha256sum prints it.
        assert_eq!(
            digest("test").to_hex(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn only_a_bearer_header_presents_a_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented(&headers), Presented::Nothing);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&headers), Presented::Malformed);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(presented(&headers), Presented::Bearer("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(presented(&headers), Presented::Malformed);
    }
}
