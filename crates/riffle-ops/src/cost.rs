//! `riffle cost`: the lesson's cost rule ("Redis memory cost at 2× current entity count")
//! from live keys. Per entity: `SCAN` a sample of its keys ([`Keyspace`]), `MEMORY USAGE …
//! SAMPLES 0` each (exact), and `HSTRLEN` of every group's `<group>@<version>` field and
//! every `~<source>` state field, to split a key's bytes into groups, pipeline state and
//! Redis's per-key overhead. The mean bytes per key are extrapolated to the registry's
//! `expected_count` and to twice that, times `1 + replicas`, in GiB and in money per month.
//! The largest sampled keys are listed (the lesson's `--bigkeys` audit), with a warning for
//! those above a threshold (default: 10× the median key).
//!
//! Redis only: the number that costs money is Redis memory, and the embedded store has no
//! such figure (its file size says nothing about a Redis deployment), so the command refuses
//! it rather than guess.

use std::fmt::Write as _;
use std::time::Duration;

use riffle_registry::Registry;
use riffle_store::layout;
use serde::Serialize;

use crate::probe::keyspace::{self, entity_pattern, Keyspace, KeyspaceError};

/// Why a cost estimate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// Bad flags (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Redis(#[from] KeyspaceError),
}

impl CostError {
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CostError::Usage(_) | CostError::Redis(KeyspaceError::BadUrl { .. })
        )
    }
}

#[derive(Debug, Clone)]
pub struct CostConfig {
    /// `redis://…` or `rediss://…`.
    pub store: String,
    /// Keys to sample per entity.
    pub sample: usize,
    pub price_per_gb_month: f64,
    pub replicas: u32,
    /// Warn for keys above this many bytes (default: 10× the median sampled key).
    pub bigkey_bytes: Option<u64>,
    /// Largest keys to list.
    pub top: usize,
    pub timeout: Duration,
}

/// A projection of memory at some entity count.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    pub entities: u64,
    /// Primary only.
    pub bytes: f64,
    /// Primary and replicas.
    pub bytes_replicated: f64,
    pub gib_replicated: f64,
    pub cost_per_month: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupBytes {
    /// A group name, or `~<source>` for pipeline state.
    pub field: String,
    /// Sampled keys holding this field.
    pub keys_with_field: u64,
    /// Mean bytes per sampled key (field name + value), over all sampled keys.
    pub mean_bytes_per_key: f64,
    /// Share of the sampled memory.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BigKey {
    pub key: String,
    pub bytes: u64,
    pub over_threshold: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityCost {
    pub entity: String,
    pub keys_sampled: u64,
    /// True when the sample is every key of the entity.
    pub complete: bool,
    /// Σ `MEMORY USAGE` over the sampled keys.
    pub sampled_bytes: u64,
    pub mean_bytes_per_key: f64,
    pub median_bytes_per_key: u64,
    pub groups: Vec<GroupBytes>,
    /// Mean per key of what is not field payload: key name, hash and Redis object overhead.
    pub overhead_bytes_per_key: f64,
    pub expected_count: Option<u64>,
    pub at_expected: Option<Projection>,
    pub at_2x: Option<Projection>,
    pub bigkey_threshold: u64,
    pub largest: Vec<BigKey>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// When the measurement ended (RFC 3339, UTC).
    pub finished_at: String,
    pub store: String,
    pub replicas: u32,
    pub price_per_gb_month: f64,
    /// `used_memory` and `maxmemory` from `INFO memory` (0: no limit).
    pub used_memory: Option<u64>,
    pub maxmemory: Option<u64>,
    pub dbsize: Option<u64>,
    pub entities: Vec<EntityCost>,
    pub total_at_expected: Option<Projection>,
    pub total_at_2x: Option<Projection>,
    pub warnings: Vec<String>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn project(mean: f64, entities: u64, cfg: &CostConfig) -> Projection {
    let bytes = mean * entities as f64;
    let replicated = bytes * (1.0 + f64::from(cfg.replicas));
    Projection {
        entities,
        bytes,
        bytes_replicated: replicated,
        gib_replicated: replicated / GIB,
        cost_per_month: replicated / GIB * cfg.price_per_gb_month,
    }
}

fn sum(a: Option<Projection>, b: &Option<Projection>, cfg: &CostConfig) -> Option<Projection> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) => Some(x),
        (None, Some(y)) => Some(y.clone()),
        (Some(x), Some(y)) => {
            let bytes_replicated = x.bytes_replicated + y.bytes_replicated;
            Some(Projection {
                entities: x.entities + y.entities,
                bytes: x.bytes + y.bytes,
                bytes_replicated,
                gib_replicated: bytes_replicated / GIB,
                cost_per_month: bytes_replicated / GIB * cfg.price_per_gb_month,
            })
        }
    }
}

fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Samples the live keys of every entity with groups and projects their memory.
pub async fn run(registry: &Registry, cfg: &CostConfig) -> Result<CostReport, CostError> {
    if cfg.sample == 0 {
        return Err(CostError::Usage("--sample must be at least 1".into()));
    }
    if !(cfg.price_per_gb_month.is_finite() && cfg.price_per_gb_month >= 0.0) {
        return Err(CostError::Usage(
            "--price-per-gb-month must be a number ≥ 0".into(),
        ));
    }
    let mut redis = Keyspace::connect(&cfg.store, cfg.timeout).await?;
    let info: String = redis
        .query("INFO memory", redis::cmd("INFO").arg("memory"))
        .await?;
    let dbsize: Option<u64> = redis.query("DBSIZE", &redis::cmd("DBSIZE")).await.ok();
    let mut report = CostReport {
        finished_at: String::new(),
        store: keyspace::redact(&cfg.store),
        replicas: cfg.replicas,
        price_per_gb_month: cfg.price_per_gb_month,
        used_memory: info_field(&info, "used_memory"),
        maxmemory: info_field(&info, "maxmemory"),
        dbsize,
        entities: Vec::new(),
        total_at_expected: None,
        total_at_2x: None,
        warnings: Vec::new(),
    };
    if let (Some(used), Some(max)) = (report.used_memory, report.maxmemory) {
        if max > 0 && used as f64 > 0.85 * max as f64 {
            report.warnings.push(format!(
                "Redis uses {:.0}% of maxmemory: evictions (missing values) are near",
                used as f64 * 100.0 / max as f64
            ));
        }
    }
    for (e, entity) in registry.entities.iter().enumerate() {
        let groups: Vec<_> = registry.groups_of(e).collect();
        if groups.is_empty() {
            continue;
        }
        let mut fields: Vec<(String, String)> = groups
            .iter()
            .map(|g| (g.name.clone(), layout::group_field(g)))
            .collect();
        for s in &registry.sources {
            let f = layout::state_field(&s.name);
            fields.push((f.clone(), f));
        }
        let pattern = entity_pattern(&registry.project, &entity.name);
        let (keys, complete) = redis.sample_keys(&pattern, cfg.sample, 10_000).await?;
        let mut sizes: Vec<(String, u64)> = Vec::with_capacity(keys.len());
        let mut field_bytes = vec![0u64; fields.len()];
        let mut field_keys = vec![0u64; fields.len()];
        let mut payload_total = 0u64;
        for chunk in keys.chunks(100) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
                for (_, f) in &fields {
                    pipe.cmd("HSTRLEN").arg(k).arg(f);
                }
            }
            let answers: Vec<Option<u64>> = redis.pipeline("MEMORY USAGE", &pipe).await?;
            for (k, row) in chunk.iter().zip(answers.chunks(1 + fields.len())) {
                // A key that expired between SCAN and MEMORY USAGE answers nil: skip it.
                let Some(Some(mem)) = row.first() else {
                    continue;
                };
                sizes.push((k.clone(), *mem));
                for (i, (_, f)) in fields.iter().enumerate() {
                    let len = row.get(i + 1).copied().flatten().unwrap_or(0);
                    if len > 0 {
                        let b = len + f.len() as u64;
                        field_bytes[i] += b;
                        field_keys[i] += 1;
                        payload_total += b;
                    }
                }
            }
        }
        let n = sizes.len() as u64;
        let sampled: u64 = sizes.iter().map(|(_, b)| b).sum();
        let mean = if n == 0 {
            0.0
        } else {
            sampled as f64 / n as f64
        };
        let mut sorted: Vec<u64> = sizes.iter().map(|(_, b)| *b).collect();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
        let threshold = cfg.bigkey_bytes.unwrap_or(median.saturating_mul(10).max(1));
        sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let largest: Vec<BigKey> = sizes
            .iter()
            .take(cfg.top)
            .map(|(k, b)| BigKey {
                key: k.clone(),
                bytes: *b,
                over_threshold: *b > threshold,
            })
            .collect();
        let over = sizes.iter().filter(|(_, b)| *b > threshold).count();
        if over > 0 {
            report.warnings.push(format!(
                "{over} sampled {} keys are above {threshold} bytes (largest {} bytes): set TTLs or trim what those entities hold",
                entity.name, sizes[0].1
            ));
        }
        if n == 0 {
            report.warnings.push(format!(
                "no live keys of entity {:?} (pattern {pattern}) in this Redis: nothing to measure",
                entity.name
            ));
        }
        let groups_out = fields
            .iter()
            .enumerate()
            .map(|(i, (name, _))| GroupBytes {
                field: name.clone(),
                keys_with_field: field_keys[i],
                mean_bytes_per_key: if n == 0 {
                    0.0
                } else {
                    field_bytes[i] as f64 / n as f64
                },
                share: if sampled == 0 {
                    0.0
                } else {
                    field_bytes[i] as f64 / sampled as f64
                },
            })
            .filter(|g| g.keys_with_field > 0 || !g.field.starts_with('~'))
            .collect();
        let expected = entity.expected_count;
        if expected.is_none() {
            report.warnings.push(format!(
                "entity {:?} declares no expected_count: no projection (set it in the registry)",
                entity.name
            ));
        }
        let at_expected = expected.filter(|_| n > 0).map(|c| project(mean, c, cfg));
        let at_2x = expected
            .filter(|_| n > 0)
            .map(|c| project(mean, c.saturating_mul(2), cfg));
        report.total_at_expected = sum(report.total_at_expected.take(), &at_expected, cfg);
        report.total_at_2x = sum(report.total_at_2x.take(), &at_2x, cfg);
        report.entities.push(EntityCost {
            entity: entity.name.clone(),
            keys_sampled: n,
            complete,
            sampled_bytes: sampled,
            mean_bytes_per_key: mean,
            median_bytes_per_key: median,
            groups: groups_out,
            overhead_bytes_per_key: if n == 0 {
                0.0
            } else {
                sampled.saturating_sub(payload_total) as f64 / n as f64
            },
            expected_count: expected,
            at_expected,
            at_2x,
            bigkey_threshold: threshold,
            largest,
        });
    }
    report.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(report)
}

fn human(bytes: f64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes / GIB)
    } else if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

impl CostReport {
    /// The human report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "store {}  replicas {}  price {:.2}/GiB-month{}",
            self.store,
            self.replicas,
            self.price_per_gb_month,
            self.used_memory.map_or_else(String::new, |u| format!(
                "  used_memory {}",
                human(u as f64)
            ))
        );
        for e in &self.entities {
            let _ = writeln!(
                out,
                "\nentity {}: {} keys sampled{} — {} in all, mean {} per key (median {}, overhead {})",
                e.entity,
                e.keys_sampled,
                if e.complete { " (every key)" } else { "" },
                human(e.sampled_bytes as f64),
                human(e.mean_bytes_per_key),
                human(e.median_bytes_per_key as f64),
                human(e.overhead_bytes_per_key),
            );
            let _ = writeln!(
                out,
                "  {:<26} {:>10} {:>14} {:>7}",
                "GROUP", "KEYS", "BYTES/KEY", "SHARE"
            );
            for g in &e.groups {
                let _ = writeln!(
                    out,
                    "  {:<26} {:>10} {:>14.1} {:>6.1}%",
                    g.field,
                    g.keys_with_field,
                    g.mean_bytes_per_key,
                    g.share * 100.0
                );
            }
            for (label, p) in [("expected", &e.at_expected), ("2x", &e.at_2x)] {
                if let Some(p) = p {
                    let _ = writeln!(
                        out,
                        "  at {label:<8} {:>12} entities: {} primary, {} with replicas, {:.2}/month",
                        p.entities,
                        human(p.bytes),
                        human(p.bytes_replicated),
                        p.cost_per_month
                    );
                }
            }
            let _ = writeln!(out, "  largest keys (warn above {} B):", e.bigkey_threshold);
            for k in &e.largest {
                let _ = writeln!(
                    out,
                    "    {:>10} B  {}{}",
                    k.bytes,
                    k.key,
                    if k.over_threshold { "  <- big" } else { "" }
                );
            }
        }
        for (label, p) in [
            ("expected", &self.total_at_expected),
            ("2x", &self.total_at_2x),
        ] {
            if let Some(p) = p {
                let _ = writeln!(
                    out,
                    "\ntotal at {label}: {} with replicas ({:.3} GiB), {:.2}/month",
                    human(p.bytes_replicated),
                    p.gib_replicated,
                    p.cost_per_month
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }
}
