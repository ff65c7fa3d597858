//! The one plain Redis client of the operator toolkit (`riffle cost`, `riffle drill`,
//! `riffle check --connect`): every call under a deadline, the sampling of live entity keys
//! by `SCAN` over the storage layout's `<project>:{<entity>:*` pattern (reserved
//! `<project>:~meta:*` keys never match it), and the TTLs of sampled keys (`PTTL`).
//!
//! `SCAN` walks Redis's hash table in slot order, which is unrelated to ids or insertion
//! order, so the first N keys it returns are a fair sample of the live population.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue};

/// A Redis call that failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyspaceError {
    #[error("bad Redis URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to Redis at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("Redis did not answer {what} within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("Redis refused {what}: {reason}")]
    Command { what: String, reason: String },
}

/// One multiplexed connection with a deadline on every call.
#[derive(Clone)]
pub struct Keyspace {
    conn: MultiplexedConnection,
    timeout: Duration,
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Escapes Redis glob characters in a literal part of a `SCAN MATCH` pattern.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `SCAN MATCH` pattern of every key of `entity` (storage layout).
pub fn entity_pattern(project: &str, entity: &str) -> String {
    format!("{}:{{{}:*", glob_escape(project), glob_escape(entity))
}

/// The `SCAN MATCH` pattern of every entity key of `project`, whatever its entity.
pub fn project_pattern(project: &str) -> String {
    format!("{}:{{*", glob_escape(project))
}

/// The id inside `<project>:{<entity>:<id>}`.
pub fn id_of_key<'a>(project: &str, entity: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(project)?
        .strip_prefix(":{")?
        .strip_prefix(entity)?
        .strip_prefix(':')?
        .strip_suffix('}')
}

/// Awaits one Redis call for at most `timeout`.
async fn within<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, KeyspaceError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(KeyspaceError::Command {
            what: what.to_owned(),
            reason: e.to_string(),
        }),
        Err(_) => Err(KeyspaceError::Timeout {
            what: what.to_owned(),
            timeout,
        }),
    }
}

impl Keyspace {
    /// Connects to `url` (`redis://` or `rediss://`) within `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, KeyspaceError> {
        let client = redis::Client::open(url).map_err(|e| KeyspaceError::BadUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connect = client.get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(KeyspaceError::Connect {
                    url: redact(url),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(KeyspaceError::Connect {
                    url: redact(url),
                    reason: format!("no answer within {timeout:?}"),
                })
            }
        };
        Ok(Self { conn, timeout })
    }

    /// Runs `cmd` under the deadline.
    pub async fn query<T: FromRedisValue>(
        &mut self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, KeyspaceError> {
        within(self.timeout, what, cmd.query_async(&mut self.conn)).await
    }

    /// Runs `pipe` under the deadline.
    pub async fn pipeline<T: FromRedisValue>(
        &mut self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, KeyspaceError> {
        within(self.timeout, what, pipe.query_async(&mut self.conn)).await
    }

    /// Up to `want` keys matching `pattern`, by `SCAN`; stops after `max_calls` calls so
    /// a huge keyspace with few matches cannot keep it busy. Returns the keys and whether the
    /// whole keyspace was walked.
    pub async fn sample_keys(
        &mut self,
        pattern: &str,
        want: usize,
        max_calls: usize,
    ) -> Result<(Vec<String>, bool), KeyspaceError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..max_calls.max(1) {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = self.query("SCAN", &cmd).await?;
            for k in batch {
                if keys.len() < want && !keys.contains(&k) {
                    keys.push(k);
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok((keys, true));
            }
            if keys.len() >= want {
                break;
            }
        }
        Ok((keys, false))
    }

    /// The `PTTL` of each key, in one pipeline: milliseconds left, -1 for a key without a
    /// TTL, -2 for a key gone since it was listed.
    pub async fn ttls(&mut self, keys: &[String]) -> Result<Vec<i64>, KeyspaceError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("PTTL").arg(k);
        }
        self.pipeline("PTTL", &pipe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_ids_follow_the_layout() {
        assert_eq!(entity_pattern("fraud", "user"), "fraud:{user:*");
        assert_eq!(entity_pattern("a*b", "u"), "a\\*b:{u:*");
        assert_eq!(project_pattern("fraud"), "fraud:{*");
        assert_eq!(id_of_key("fraud", "user", "fraud:{user:u42}"), Some("u42"));
        assert_eq!(id_of_key("fraud", "user", "fraud:~meta:watermark:x"), None);
        assert_eq!(redact("redis://u:secret@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
