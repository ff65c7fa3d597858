//! What `riffle check --connect URL` learns from the running deployment, every call under a
//! timeout: serve's `/health` (JSON) and `/metrics` (Prometheus text, with a small reader
//! for families and histogram quantiles), the TTL of a sample of live entity keys (Redis:
//! `SCAN` + `PTTL`), and each stream source's published watermark (read as `riffle lag`
//! reads it: `riffle_store::meta`), falling back to serve's
//! `riffle_source_watermark_age_seconds` when the store cannot be opened from here (an
//! embedded store held by the server). Failures are kept as facts, never raised: the items
//! that needed them fail with the reason.

use std::sync::Arc;
use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::watermark;

use crate::lag::{BrokerView, LagReport, SourceInput};
use riffle_store::{OnlineStore, StoreLimits, StoreUrl};
use serde_json::Value;

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
    pub metrics: Result<MetricsText, String>,
    /// The store URL, password redacted.
    pub store: String,
    pub keys: Keys,
    /// Sources feeding a group; `Err` when neither the store nor serve could say.
    pub sources: Result<Vec<SourceLive>, String>,
}

/// Prometheus text as scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsText(pub String);

/// One sample line: name, raw label text (without braces), value.
fn parse_line(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, rest.trim_end_matches('}'), value)),
        None => Some((series, "", value)),
    }
}

/// The value of label `key` in raw label text.
pub fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=\"");
    let start = labels
        .match_indices(&pat)
        .find(|(i, _)| *i == 0 || labels.as_bytes()[i - 1] == b',')?
        .0
        + pat.len();
    let end = labels[start..].find('"')? + start;
    Some(&labels[start..end])
}

impl MetricsText {
    /// Whether family `name` (without `_total`) is exported, even with no series yet.
    pub fn has_family(&self, name: &str) -> bool {
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.0.lines().any(|l| {
            l.strip_prefix("# TYPE ")
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|n| n == name)
        })
    }

    /// Whether a series of `name` has label `key="value"`.
    pub fn has_series(&self, name: &str, key: &str, value: &str) -> bool {
        self.0
            .lines()
            .filter_map(parse_line)
            .any(|(n, labels, _)| n == name && label(labels, key) == Some(value))
    }

    /// Values of `name`'s series, with their labels.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0
            .lines()
            .filter_map(parse_line)
            .filter(move |(n, _, _)| *n == name)
            .map(|(_, l, v)| (l, v))
    }

    /// Quantile `q` of histogram `name` over the series `keep` accepts (buckets summed by
    /// `le`, linear within a bucket, as Prometheus's `histogram_quantile`), with the count
    /// of observations; `None` before any observation.
    pub fn quantile(&self, name: &str, keep: &dyn Fn(&str) -> bool, q: f64) -> Option<(f64, u64)> {
        let bucket = format!("{name}_bucket");
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        for (labels, v) in self.samples(&bucket) {
            if !keep(labels) {
                continue;
            }
            let le = match label(labels, "le")? {
                "+Inf" => f64::INFINITY,
                other => other.parse().ok()?,
            };
            match by_le.iter_mut().find(|(b, _)| *b == le) {
                Some(entry) => entry.1 += v,
                None => by_le.push((le, v)),
            }
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = by_le.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, count) in &by_le {
            if count >= rank {
                if le.is_infinite() {
                    return Some((prev.0, total as u64));
                }
                let within = if count > prev.1 {
                    (rank - prev.1) / (count - prev.1)
                } else {
                    1.0
                };
                return Some((prev.0 + (le - prev.0) * within, total as u64));
            }
            prev = (le, count);
        }
        Some((prev.0, total as u64))
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
    let client = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build();
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
                .map(MetricsText);
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

async fn sample_keys(url: &str, project: &str) -> Keys {
    let work = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let pattern = format!("{project}:{{*");
        let mut cursor: u64 = 0;
        let mut keys: Vec<String> = Vec::new();
        for _ in 0..50 {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut con)
                .await
                .map_err(|e| e.to_string())?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= SAMPLE_KEYS {
                break;
            }
        }
        keys.truncate(SAMPLE_KEYS);
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("PTTL").arg(k);
        }
        let ttls: Vec<i64> = if keys.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut con)
                .await
                .map_err(|e| e.to_string())?
        };
        Ok::<_, String>((keys, ttls))
    };
    match tokio::time::timeout(SAMPLE_TIMEOUT, work).await {
        Err(_) => Keys::Failed(format!(
            "no answer from the store within {SAMPLE_TIMEOUT:?}"
        )),
        Ok(Err(e)) => Keys::Failed(e),
        Ok(Ok((keys, ttls))) => {
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
            Keys::Sampled(sample)
        }
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

fn watermarks_from_metrics(registry: &Registry, metrics: &MetricsText) -> Vec<SourceLive> {
    stream_sources(registry)
        .into_iter()
        .map(|(_, name)| {
            let age = metrics
                .samples("riffle_source_watermark_age_seconds")
                .find(|(l, _)| label(l, "source") == Some(name.as_str()))
                .map(|(_, v)| Duration::from_secs_f64(v.max(0.0)));
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

    const TEXT: &str = "# TYPE riffle_cache_hits counter\nriffle_cache_hits_total 3\n\
# TYPE riffle_store_call_duration_seconds histogram\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"0.001\"} 50\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"0.002\"} 100\n\
riffle_store_call_duration_seconds_bucket{op=\"read\",le=\"+Inf\"} 100\n\
riffle_store_call_duration_seconds_bucket{op=\"write\",le=\"0.001\"} 0\n\
riffle_store_call_duration_seconds_bucket{op=\"write\",le=\"+Inf\"} 7\n";

    #[test]
    fn families_and_quantiles_are_read_like_prometheus() {
        let m = MetricsText(TEXT.into());
        assert!(m.has_family("riffle_cache_hits_total"));
        assert!(!m.has_family("riffle_cache_misses_total"));
        let read = |l: &str| label(l, "op") == Some("read");
        let (p50, n) = m
            .quantile("riffle_store_call_duration_seconds", &read, 0.5)
            .unwrap();
        assert_eq!(n, 100);
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let (p99, _) = m
            .quantile("riffle_store_call_duration_seconds", &read, 0.99)
            .unwrap();
        assert!((p99 - 0.00198).abs() < 1e-6, "{p99}");
        assert!(m.has_series("riffle_store_call_duration_seconds_bucket", "op", "write"));
    }

    #[test]
    fn a_bare_address_becomes_a_url() {
        assert_eq!(base_url("127.0.0.1:6566/"), "http://127.0.0.1:6566");
        assert_eq!(base_url("https://x"), "https://x");
    }
}
