//! From [`RawRegistry`] to [`Registry`]: every rule checked, every problem collected
//! ([`Problems`]). The serve and store settings, entities and services are resolved here;
//! groups in `resolve_group.rs`, sources and ingest settings in `resolve_source.rs`,
//! `[serve.logging]` in `resolve_logging.rs`, `[auth]` in `resolve_auth.rs`.

use std::collections::{HashMap, HashSet};

use crate::error::RegistryError;
use crate::model::*;
use crate::problems::Problems;
use crate::raw::*;
use crate::resolve_auth::{resolve_auth, Names};
use crate::resolve_group::resolve_groups;
use crate::resolve_listener::{resolve_listener, RawListener};
use crate::resolve_logging::resolve_logging;
use crate::resolve_source::{resolve_ingest, resolve_sources};
use crate::settings::*;

/// `raw` resolved; `filed_principals` are those of `auth.principals_file`, already read.
pub(crate) fn resolve(
    raw: RawRegistry,
    filed_principals: &[RawPrincipal],
) -> Result<Registry, RegistryError> {
    let mut p = Problems::default();

    let project = raw.project.name.clone().unwrap_or_else(|| "riffle".into());
    p.name("project.name", &project);

    let serve = resolve_serve(&raw.serve, &mut p);
    let store = resolve_store(&raw.store, &mut p);
    let entities = resolve_entities(&raw.entities, &mut p);
    let sources = resolve_sources(&raw.sources, &entities, &mut p);
    let ingest = resolve_ingest(&raw.ingest, &mut p);
    let groups = resolve_groups(&raw.feature_groups, &entities, &sources, &mut p);
    let group_index: HashMap<String, GroupId> =
        groups.iter().map(|g| (g.name.clone(), g.id)).collect();
    let services = resolve_services(&raw.feature_services, &groups, &group_index, &mut p);
    let names = Names {
        groups: &groups,
        services: &services,
        sources: &sources,
    };
    let auth = resolve_auth(&raw.auth, filed_principals, &names, &mut p);

    p.into_result()?;
    Ok(Registry {
        project,
        description: raw.project.description.unwrap_or_default(),
        peak_rps: raw.project.peak_rps,
        serve,
        store,
        entities,
        groups,
        services,
        sources,
        ingest,
        auth,
        group_index,
    })
}

fn resolve_serve(raw: &RawServe, p: &mut Problems) -> ServeSettings {
    let d = ServeSettings::default();
    let max_batch = raw.max_batch.unwrap_or(d.max_batch);
    if !(1..=100_000).contains(&max_batch) {
        p.add("serve.max_batch", "must be between 1 and 100000");
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(d.max_body_bytes);
    if max_body_bytes < 1024 {
        p.add("serve.max_body_bytes", "must be at least 1024");
    }
    let max_concurrent_requests = raw
        .max_concurrent_requests
        .unwrap_or(d.max_concurrent_requests);
    if max_concurrent_requests == 0 {
        p.add("serve.max_concurrent_requests", "must be at least 1");
    }
    let cache = CacheSettings {
        enabled: raw.cache.enabled.unwrap_or(d.cache.enabled),
        max_entries: raw.cache.max_entries.unwrap_or(d.cache.max_entries),
        ttl: p.duration("serve.cache.ttl", &raw.cache.ttl, d.cache.ttl),
        negative_ttl: p.duration(
            "serve.cache.negative_ttl",
            &raw.cache.negative_ttl,
            d.cache.negative_ttl,
        ),
    };
    if cache.enabled && cache.max_entries == 0 {
        p.add(
            "serve.cache.max_entries",
            "must be at least 1 when the cache is enabled",
        );
    }
    let breaker = BreakerSettings {
        failure_threshold: raw
            .breaker
            .failure_threshold
            .unwrap_or(d.breaker.failure_threshold),
        window: p.duration(
            "serve.breaker.window",
            &raw.breaker.window,
            d.breaker.window,
        ),
        reset_timeout: p.duration(
            "serve.breaker.reset_timeout",
            &raw.breaker.reset_timeout,
            d.breaker.reset_timeout,
        ),
        success_threshold: raw
            .breaker
            .success_threshold
            .unwrap_or(d.breaker.success_threshold),
    };
    if breaker.failure_threshold == 0 {
        p.add("serve.breaker.failure_threshold", "must be at least 1");
    }
    if breaker.success_threshold == 0 {
        p.add("serve.breaker.success_threshold", "must be at least 1");
    }
    ServeSettings {
        listen: raw.listen.clone().unwrap_or(d.listen),
        max_batch,
        max_body_bytes,
        max_concurrent_requests,
        write_token_env: raw.write_token_env.clone().unwrap_or(d.write_token_env),
        read_requires_token: raw.read_requires_token.unwrap_or(d.read_requires_token),
        cache,
        breaker,
        logging: raw.logging.as_ref().map(|l| resolve_logging(l, p)),
        listener: resolve_listener(
            "serve",
            RawListener {
                tls_cert: &raw.tls_cert,
                tls_key: &raw.tls_key,
                header_read_timeout: &raw.header_read_timeout,
                max_connections: raw.max_connections,
                max_header_bytes: raw.max_header_bytes,
            },
            p,
        ),
    }
}

fn resolve_store(raw: &RawStore, p: &mut Problems) -> StoreSettings {
    let d = StoreSettings::default();
    let ttl_jitter = raw.ttl_jitter.unwrap_or(d.ttl_jitter);
    if !(0.0..=1.0).contains(&ttl_jitter) {
        p.add("store.ttl_jitter", "must be a fraction between 0 and 1");
    }
    let max_in_flight = raw.max_in_flight.unwrap_or(d.max_in_flight);
    if max_in_flight == 0 {
        p.add("store.max_in_flight", "must be at least 1");
    }
    let url = raw.url.clone().unwrap_or(d.url);
    let replicas = raw.replicas.clone().unwrap_or_default();
    let read_from = match raw.read_from.as_deref() {
        None => d.read_from,
        Some("primary") => ReadFrom::Primary,
        Some("replica") => ReadFrom::Replica,
        Some(other) => {
            p.add(
                "store.read_from",
                format!("{other:?} is not \"primary\" or \"replica\""),
            );
            d.read_from
        }
    };
    resolve_replicas(&url, &replicas, read_from, p);
    StoreSettings {
        url,
        timeout: p.duration("store.timeout", &raw.timeout, d.timeout),
        connect_timeout: p.duration(
            "store.connect_timeout",
            &raw.connect_timeout,
            d.connect_timeout,
        ),
        max_in_flight,
        ttl_jitter,
        encoding: match raw.encoding {
            None => d.encoding,
            Some(1) => RowEncoding::V1,
            Some(2) => RowEncoding::V2,
            Some(3) => RowEncoding::V3,
            Some(_) => {
                p.add(
                    "store.encoding",
                    "must be 1, 2 or 3 (the row encoding written)",
                );
                d.encoding
            }
        },
        replicas,
        read_from,
        replica_max_lag: p.duration(
            "store.replica_max_lag",
            &raw.replica_max_lag,
            d.replica_max_lag,
        ),
    }
}

/// Replicas are Redis servers (`redis://` / `rediss://` with a host) of a Redis primary.
fn resolve_replicas(url: &str, replicas: &[String], read_from: ReadFrom, p: &mut Problems) {
    let is_redis = |u: &str| {
        let rest = u
            .strip_prefix("redis://")
            .or_else(|| u.strip_prefix("rediss://"));
        let host = rest.map(|r| r.rsplit('@').next().unwrap_or(r));
        let host = host.and_then(|h| h.split(['/', '#']).next());
        host.is_some_and(|h| {
            !h.is_empty()
                && h.rsplit_once(':')
                    .is_none_or(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok())
        })
    };
    let redis_primary = url.starts_with("redis://") || url.starts_with("rediss://");
    if !replicas.is_empty() && !redis_primary {
        p.add(
            "store.replicas",
            format!("replicas need a redis:// primary, but store.url is {url:?}"),
        );
    }
    for (i, r) in replicas.iter().enumerate() {
        if !is_redis(r.trim()) {
            p.add(
                format!("store.replicas[{i}]"),
                format!("{r:?} is not a Redis URL: use redis://host:port"),
            );
        }
    }
    if read_from == ReadFrom::Replica && replicas.is_empty() {
        p.add(
            "store.read_from",
            "\"replica\" needs at least one URL in store.replicas",
        );
    }
}

fn resolve_entities(raw: &[RawEntity], p: &mut Problems) -> Vec<Entity> {
    if raw.is_empty() {
        p.add("entities", "at least one entity must be declared");
    }
    let mut seen = HashSet::new();
    let mut join_keys = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, e)| {
            let path = format!("entities[{i}]");
            p.name(&format!("{path}.name"), &e.name);
            if !seen.insert(e.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("entity {:?} is declared twice", e.name),
                );
            }
            let join_key = e
                .join_key
                .clone()
                .unwrap_or_else(|| format!("{}_id", e.name));
            p.name(&format!("{path}.join_key"), &join_key);
            if !join_keys.insert(join_key.clone()) {
                p.add(
                    format!("{path}.join_key"),
                    format!("join key {join_key:?} is used by another entity"),
                );
            }
            let key_type = match e.key_type.as_deref().unwrap_or("string") {
                "string" => KeyType::String,
                "int64" => KeyType::Int64,
                other => {
                    p.add(
                        format!("{path}.key_type"),
                        format!("{other:?} is not a key type: use \"string\" or \"int64\""),
                    );
                    KeyType::String
                }
            };
            Entity {
                name: e.name.clone(),
                join_key,
                key_type,
                expected_count: e.expected_count,
                description: e.description.clone().unwrap_or_default(),
            }
        })
        .collect()
}

fn resolve_services(
    raw: &[RawService],
    groups: &[FeatureGroup],
    index: &HashMap<String, GroupId>,
    p: &mut Problems,
) -> Vec<FeatureService> {
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("feature_services[{i}]");
            p.name(&format!("{path}.name"), &s.name);
            if !seen.insert(s.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("service {:?} is declared twice", s.name),
                );
            }
            let mut features = Vec::new();
            for (j, reference) in s.features.iter().enumerate() {
                let fpath = format!("{path}.features[{j}]");
                let (group_name, feature_name) = match reference.split_once(':') {
                    Some((g, f)) => (g, Some(f)),
                    None => (reference.as_str(), None),
                };
                let Some(&gid) = index.get(group_name) else {
                    p.add(fpath, format!("no feature group named {group_name:?}"));
                    continue;
                };
                let group = &groups[gid];
                match feature_name {
                    None => features.extend((0..group.features.len()).map(|feature| FeatureRef {
                        group: gid,
                        feature,
                    })),
                    Some(name) => match group.feature_index(name) {
                        Some(feature) => features.push(FeatureRef {
                            group: gid,
                            feature,
                        }),
                        None => p.add(
                            fpath,
                            format!("group {group_name:?} has no feature named {name:?}"),
                        ),
                    },
                }
            }
            if s.features.is_empty() {
                p.add(
                    format!("{path}.features"),
                    "a service needs at least one feature",
                );
            }
            FeatureService {
                name: s.name.clone(),
                features,
                description: s.description.clone().unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::Registry;

    const GOOD: &str = r#"
[[entities]]
name = "user"
join_key = "user_id"

[[feature_groups]]
name = "velocity"
entity = "user"
ttl = "2h"
freshness_slo = "30s"
staleness_limit = "10m"
on_unsafe = "fail"

[[feature_groups.features]]
name = "tx_count_1h"
type = "int64"
default = 0

[[feature_groups.features]]
name = "emb"
type = "float_vector"
dimension = 2
default = [0.0, 0.0]

[[feature_services]]
name = "svc"
features = ["velocity:tx_count_1h"]
"#;

    #[test]
    fn a_good_registry_resolves() {
        let r = Registry::from_toml(GOOD).unwrap();
        let g = r.group("velocity").unwrap();
        assert_eq!(g.features.len(), 2);
        assert_eq!(g.on_unsafe, crate::UnsafePolicy::Fail);
        assert_eq!(r.service("svc").unwrap().features.len(), 1);
        assert_eq!(r.entity_by_join_key("user_id").unwrap().1.name, "user");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = r#"
[[entities]]
name = "user"

[[feature_groups]]
name = "velocity"
entity = "nobody"
freshness_slo = "soon"

[[feature_groups.features]]
name = "tx_count_1h"
type = "int64"
default = "abc"

[[feature_groups.features]]
name = "x"
type = "decimal"
"#;
        let err = Registry::from_toml(bad).unwrap_err();
        let text: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        let expect = [
            "feature_groups[0].entity: no entity named \"nobody\"",
            "feature_groups[0].ttl: is required",
            "feature_groups[0].freshness_slo: \"soon\" is not a duration",
            "feature_groups[0].features[0].default: expected int64, got \"abc\"",
            "feature_groups[0].features[1].type: \"decimal\" is not a feature type",
            "feature_groups[0].features[1].default: is required",
        ];
        for e in expect {
            assert!(
                text.iter().any(|t| t.starts_with(e)),
                "missing {e:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = Registry::from_toml("[project]\nnmae = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_fraud_example_is_valid_and_has_the_lessons_ten_features() {
        let text = include_str!("../../../examples/fraud/riffle.toml");
        let reg = crate::Registry::from_toml(text).unwrap_or_else(|e| panic!("{e}"));
        let svc = reg.service("fraud_v1").unwrap();
        let names: Vec<&str> = svc
            .features
            .iter()
            .map(|&f| reg.feature(f).name.as_str())
            .collect();
        for f in [
            "tx_count_1h",
            "tx_sum_1h",
            "tx_count_24h",
            "tx_sum_24h",
            "account_age_days",
            "avg_tx_90d",
            "distinct_merchants_7d",
            "credit_score_bucket",
            "is_premium",
            "last_login_ts",
        ] {
            assert!(names.contains(&f), "{f} missing from fraud_v1");
        }
        assert_eq!(names.len(), 10);
    }
}
