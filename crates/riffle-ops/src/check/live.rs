//! What `riffle check --connect URL` learns from the running deployment, every call under a
//! timeout: serve's `/health` (JSON) and `/metrics` (Prometheus text, read by [`prom`]), the
//! TTL of a sample of live entity keys (Redis: `SCAN` + `PTTL` by [`Keyspace`]), and each
//! stream source's published watermark (read as `riffle lag` reads it:
//! `riffle_store::meta`), falling back to serve's
//! `riffle_source_watermark_age_seconds` when the store cannot be opened from here (an
//! embedded store held by the server). Failures are kept as facts, never raised: the items
//! that needed them fail with the reason.

use std::sync::Arc;
use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::watermark;

use riffle_store::{OnlineStore, StoreLimits, StoreUrl};
use serde_json::Value;

use crate::lag::{BrokerView, LagReport, SourceInput};
use crate::probe::keyspace::{project_pattern, Keyspace, KeyspaceError};
use crate::probe::prom::{self, Scrape};

/// Timeout of each HTTP request to the target.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the whole key sample.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Live entity keys whose TTL is read.
pub const SAMPLE_KEYS: usize = 50;

/// Where to look.
#[derive(Debug, Clone)]
pub struct ProbeTargets {
    /// Base URL of `riffle serve` (`http://host:port`; a bare `host:port` is accepted).
    pub connect: String,
    /// The store URL (`--store`, else the registry's `store.url`).
    pub store: String,
    /// PEM certificates to trust for an https target (`--cacert`).
    pub cacert: Option<std::path::PathBuf>,
    /// The consumer group of each Kafka source (by source index) as the broker sees it,
    /// sampled by the caller (the operator toolkit does not talk to Kafka).
    pub brokers: Vec<(usize, Result<BrokerView, String>)>,
}

/// The TTLs of sampled live keys.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySample {
    pub sampled: usize,
    /// Keys with no TTL (`PTTL` = -1).
    pub without_ttl: Vec<String>,
    pub min_ttl: Option<Duration>,
    pub max_ttl: Option<Duration>,
}

/// How the key sample went.
#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    Sampled(KeySample),
    /// Not possible for this store (embedded), with why.
    NotSampled(String),
    Failed(String),
}

/// One source's watermark as seen live.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLive {
    pub source: String,
    /// now − the source's current watermark (its slowest Kafka partition, else the MIN over
    /// live publishers); `None`: nobody publishing.
    pub lag: Option<Duration>,
    pub publishers_alive: usize,
    /// What `riffle lag` finds wrong with the source (`riffle_ops::lag`): partitions behind
    /// or owned by nobody, by the store's marks and the broker's view. Empty when fine, or
    /// when only serve's metrics could be read.
    pub problems: Vec<String>,
    /// Why the source's consumer group could not be read from the broker, if it could not.
    pub unverified: Option<String>,
    /// `store` or `serve /metrics`.
    pub via: &'static str,
}

/// Everything learnt from the deployment.
#[derive(Debug, Clone)]
pub struct LiveFacts {
    pub target: String,
    pub health: Result<Value, String>,
    pub metrics: Result<Scrape, String>,
    /// The store URL, password redacted.
    pub store: String,
    pub keys: Keys,
    /// Sources feeding a group; `Err` when neither the store nor serve could say.
    pub sources: Result<Vec<SourceLive>, String>,
}

impl LiveFacts {
    /// Serve's `/health` and `/metrics`, or why either is missing.
    pub(super) fn http(&self) -> Result<(&Value, &Scrape), String> {
        let health = self.health.as_ref().map_err(Clone::clone)?;
        let metrics = self.metrics.as_ref().map_err(Clone::clone)?;
        Ok((health, metrics))
    }
}

fn base_url(connect: &str) -> String {
    let trimmed = connect.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("{url}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Gathers the live facts; never fails, never waits without a deadline.
pub async fn probe(registry: Arc<Registry>, targets: &ProbeTargets) -> LiveFacts {
    let base = base_url(&targets.connect);
    let client = crate::http_client::builder(targets.cacert.as_deref()).and_then(|b| {
        b.timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())
    });
    let (health, metrics) = match client {
        Ok(client) => {
            let health = get(&client, &format!("{base}/health"))
                .await
                .and_then(|text| {
                    serde_json::from_str::<Value>(&text)
                        .map_err(|e| format!("{base}/health is not JSON: {e}"))
                });
            let metrics = get(&client, &format!("{base}/metrics"))
                .await
                .map(|text| prom::parse(&text));
            (health, metrics)
        }
        Err(e) => (Err(e.to_string()), Err(e.to_string())),
    };
    let (store, keys, from_store) = match StoreUrl::parse(&targets.store) {
        Err(e) => (
            targets.store.clone(),
            Keys::Failed(e.to_string()),
            Err(e.to_string()),
        ),
        Ok(url) => {
            let keys = match &url {
                StoreUrl::Redis(u) => sample_keys(u, &registry.project).await,
                StoreUrl::RedisCluster(_) => Keys::NotSampled(
                    "redis cluster: keys are sampled per node; run the check against one master's redis:// URL"
                        .into(),
                ),
                StoreUrl::Embedded(_) => Keys::NotSampled(
                    "embedded store: its file is held by the server; it expires keys as Redis does"
                        .into(),
                ),
            };
            let wm = read_watermarks(&registry, &url, &targets.brokers).await;
            (url.redacted(), keys, wm)
        }
    };
    let sources = match from_store {
        Ok(s) => Ok(s),
        Err(store_err) => match &metrics {
            Ok(m) => Ok(watermarks_from_metrics(&registry, m)),
            Err(_) => Err(format!("store: {store_err}; serve's /metrics unreachable")),
        },
    };
    LiveFacts {
        target: base,
        health,
        metrics,
        store,
        keys,
        sources,
    }
}

/// The TTLs of up to [`SAMPLE_KEYS`] entity keys of `project`, within [`SAMPLE_TIMEOUT`].
async fn sample_keys(url: &str, project: &str) -> Keys {
    let work = async {
        let mut redis = Keyspace::connect(url, SAMPLE_TIMEOUT).await?;
        let (keys, _) = redis
            .sample_keys(&project_pattern(project), SAMPLE_KEYS, 50)
            .await?;
        let ttls = redis.ttls(&keys).await?;
        Ok::<_, KeyspaceError>((keys, ttls))
    };
    match tokio::time::timeout(SAMPLE_TIMEOUT, work).await {
        Err(_) => Keys::Failed(format!(
            "no answer from the store within {SAMPLE_TIMEOUT:?}"
        )),
        Ok(Err(e)) => Keys::Failed(e.to_string()),
        Ok(Ok((keys, ttls))) => Keys::Sampled(KeySample::of(keys, ttls)),
    }
}

impl KeySample {
    /// Sampled keys and their `PTTL`s; a key that expired between `SCAN` and `PTTL` is not
    /// counted.
    fn of(keys: Vec<String>, ttls: Vec<i64>) -> Self {
        let mut sample = KeySample {
            sampled: 0,
            without_ttl: Vec::new(),
            min_ttl: None,
            max_ttl: None,
        };
        for (k, ttl) in keys.into_iter().zip(ttls) {
            match ttl {
                -1 => {
                    sample.sampled += 1;
                    sample.without_ttl.push(k);
                }
                t if t >= 0 => {
                    sample.sampled += 1;
                    let d = Duration::from_millis(t as u64);
                    sample.min_ttl = Some(sample.min_ttl.map_or(d, |m| m.min(d)));
                    sample.max_ttl = Some(sample.max_ttl.map_or(d, |m| m.max(d)));
                }
                _ => {} // expired between SCAN and PTTL
            }
        }
        sample
    }
}

/// Stream sources that feed at least one group.
fn stream_sources(registry: &Registry) -> Vec<(usize, String)> {
    registry
        .sources
        .iter()
        .enumerate()
        .filter(|(i, _)| registry.groups_of_source(*i).next().is_some())
        .map(|(i, s)| (i, s.name.clone()))
        .collect()
}

/// Every stream source's lag as `riffle lag` judges it, from the store's watermarks and the
/// brokers' views given.
async fn read_watermarks(
    registry: &Arc<Registry>,
    url: &StoreUrl,
    brokers: &[(usize, Result<BrokerView, String>)],
) -> Result<Vec<SourceLive>, String> {
    let sources = stream_sources(registry);
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let limits = StoreLimits::from_settings(&registry.store);
    let open = OnlineStore::open(url, registry.clone(), limits);
    let store = tokio::time::timeout(SAMPLE_TIMEOUT, open)
        .await
        .map_err(|_| "the store did not open in time".to_owned())?
        .map_err(|e| format!("cannot open store {}: {e}", url.redacted()))?;
    let mut inputs = Vec::new();
    for (i, name) in sources {
        let watermark = watermark::read_source(&store, &name, Timestamp::now())
            .await
            .map_err(|e| format!("reading the watermark of {name}: {e}"))?;
        inputs.push(SourceInput {
            source: i,
            watermark,
            broker: brokers
                .iter()
                .find(|(s, _)| *s == i)
                .map(|(_, b)| b.clone()),
        });
    }
    let report = LagReport::build(
        registry,
        inputs,
        registry.ingest.lag_threshold,
        Timestamp::now(),
    );
    Ok(report
        .sources
        .into_iter()
        .map(|s| SourceLive {
            source: s.source,
            lag: s.lag_ms.map(Duration::from_millis),
            publishers_alive: s.publishers_alive,
            problems: s.problems,
            unverified: match s.broker {
                Some(Err(e)) => Some(e),
                _ => None,
            },
            via: "store",
        })
        .collect())
}

fn watermarks_from_metrics(registry: &Registry, metrics: &Scrape) -> Vec<SourceLive> {
    stream_sources(registry)
        .into_iter()
        .map(|(_, name)| {
            let age = metrics
                .named("riffle_source_watermark_age_seconds")
                .find(|s| s.label("source") == Some(name.as_str()))
                .map(|s| Duration::from_secs_f64(s.value.max(0.0)));
            SourceLive {
                source: name,
                lag: age,
                publishers_alive: 0,
                problems: Vec::new(),
                unverified: None,
                via: "serve /metrics",
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_becomes_a_url() {
        assert_eq!(base_url("127.0.0.1:6566/"), "http://127.0.0.1:6566");
        assert_eq!(base_url("https://x"), "https://x");
    }
}
