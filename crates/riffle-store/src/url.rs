//! Store URLs: `embedded:PATH`, `redis://[user:pass@]host:port[/db]`, `rediss://…`.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("store URL {0:?} is not understood: use embedded:PATH, redis://host:port or rediss://host:port")]
    Unknown(String),
    #[error("store URL {0:?} names no path: use embedded:./riffle-data")]
    EmptyPath(String),
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A directory holding the embedded store's file.
    Embedded(PathBuf),
    /// A standalone Redis (TLS when the scheme is `rediss`). Kept whole: the `redis` crate
    /// reads user, password, database and TLS from it.
    Redis(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("embedded:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(UrlError::EmptyPath(url.into()));
            }
            return Ok(StoreUrl::Embedded(PathBuf::from(path)));
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(StoreUrl::Redis(url.into()));
        }
        Err(UrlError::Unknown(url.into()))
    }

    /// The URL with any password replaced by `***`, for logs and `/health`.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Embedded(p) => format!("embedded:{}", p.display()),
            StoreUrl::Redis(url) => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        assert_eq!(
            StoreUrl::parse("embedded:./data").unwrap(),
            StoreUrl::Embedded("./data".into())
        );
        let r = StoreUrl::parse("redis://app:secret@127.0.0.1:6379/2").unwrap();
        assert_eq!(r.redacted(), "redis://app:***@127.0.0.1:6379/2");
        assert!(StoreUrl::parse("memcached://x").is_err());
        assert!(StoreUrl::parse("embedded:").is_err());
    }
}
