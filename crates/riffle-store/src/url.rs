//! Store URLs: `embedded:PATH`, `redis://[user:pass@]host:port[/db]`, `rediss://…`, and
//! `redis-cluster://[user:pass@]host:port,host:port,…` (`rediss-cluster://…` for TLS): a
//! Redis Cluster named by some of its nodes (seeds; any one reachable is enough).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("store URL {0:?} is not understood: use embedded:PATH, redis://host:port, rediss://host:port or redis-cluster://host:port,host:port")]
    Unknown(String),
    #[error("store URL {0:?} names no path: use embedded:./riffle-data")]
    EmptyPath(String),
    #[error("store URL {0:?} names no valid seed node: use redis-cluster://host:port,host:port")]
    BadSeeds(String),
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A directory holding the embedded store's file.
    Embedded(PathBuf),
    /// A standalone Redis (TLS when the scheme is `rediss`). Kept whole: the `redis` crate
    /// reads user, password, database and TLS from it.
    Redis(String),
    /// A Redis Cluster, by its seed nodes.
    RedisCluster(ClusterUrl),
}

/// A Redis Cluster URL: seed nodes plus what every node's connection shares (TLS, user,
/// password). Nodes learnt from the slot map are reached with the same credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// The URL as given, for [`StoreUrl::redacted`].
    raw: String,
    /// `rediss-cluster://`: TLS to every node.
    pub tls: bool,
    /// `user:pass` or `pass` (before the `@`), shared by every node.
    userinfo: Option<String>,
    /// Whatever follows `#` (`insecure`: accept a self-signed certificate).
    fragment: Option<String>,
    /// `host:port` of each seed node, in the order given.
    pub seeds: Vec<String>,
}

impl ClusterUrl {
    fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis-cluster://") {
            (false, rest)
        } else {
            (true, url.strip_prefix("rediss-cluster://")?)
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_owned())),
            None => (rest, None),
        };
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, rest),
        };
        let hosts = hosts.trim_end_matches('/');
        let mut seeds = Vec::new();
        for seed in hosts.split(',').map(str::trim) {
            let (host, port) = seed.rsplit_once(':')?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return None;
            }
            seeds.push(seed.to_owned());
        }
        Some(Self {
            raw: url.to_owned(),
            tls,
            userinfo,
            fragment,
            seeds,
        })
    }

    /// The `redis://` (or `rediss://`) URL of one node, `host:port`, with the cluster's
    /// credentials: what the `redis` crate connects with.
    pub fn node_url(&self, addr: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = self
            .userinfo
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let fragment = self
            .fragment
            .as_deref()
            .map(|f| format!("#{f}"))
            .unwrap_or_default();
        format!("{scheme}://{auth}{addr}/{fragment}")
    }
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
        if url.starts_with("redis-cluster://") || url.starts_with("rediss-cluster://") {
            return ClusterUrl::parse(url)
                .map(StoreUrl::RedisCluster)
                .ok_or_else(|| UrlError::BadSeeds(url.into()));
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
            StoreUrl::RedisCluster(c) => redact_password(&c.raw),
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

    #[test]
    fn parses_cluster_seeds() {
        let StoreUrl::RedisCluster(c) =
            StoreUrl::parse("redis-cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001/").unwrap()
        else {
            panic!("not a cluster URL");
        };
        assert_eq!(c.seeds, ["10.0.0.1:7000", "10.0.0.2:7001"]);
        assert!(!c.tls);
        assert_eq!(
            c.node_url("10.0.0.3:7002"),
            "redis://app:s3cret@10.0.0.3:7002/"
        );
        assert_eq!(
            StoreUrl::RedisCluster(c).redacted(),
            "redis-cluster://app:***@10.0.0.1:7000,10.0.0.2:7001/"
        );
        let StoreUrl::RedisCluster(t) = StoreUrl::parse("rediss-cluster://h:1#insecure").unwrap()
        else {
            panic!("not a cluster URL");
        };
        assert_eq!(t.node_url("h:2"), "rediss://h:2/#insecure");
        for bad in [
            "redis-cluster://",
            "redis-cluster://h",
            "redis-cluster://h:1,",
            "redis-cluster://h:99999",
            "redis-cluster://:1",
        ] {
            assert_eq!(
                StoreUrl::parse(bad),
                Err(UrlError::BadSeeds(bad.into())),
                "{bad}"
            );
        }
    }
}
