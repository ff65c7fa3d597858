//! The registry file as written: plain serde structs, unknown fields rejected. Values whose
//! meaning depends on other fields (defaults, durations) stay loose here and are checked in
//! `resolve`, so that every problem can be reported at once.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    #[serde(default)]
    pub project: RawProject,
    #[serde(default)]
    pub serve: RawServe,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub entities: Vec<RawEntity>,
    #[serde(default)]
    pub feature_groups: Vec<RawGroup>,
    #[serde(default)]
    pub feature_services: Vec<RawService>,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub auth: RawAuth,
}

impl RawRegistry {
    /// Parses registry text as written, without validating or filling in defaults: for tools
    /// that ask what a file declares explicitly (`riffle check`: which SLOs were declared).
    pub fn from_toml(text: &str) -> Result<Self, crate::RegistryError> {
        toml::from_str(text).map_err(|e| crate::RegistryError::Syntax(e.to_string()))
    }
}

/// How `riffle ingest` batches and bounds its work.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    pub flush_interval: Option<String>,
    pub flush_max_events: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub listen: Option<String>,
    pub lag_threshold: Option<String>,
    pub max_stall: Option<String>,
    pub rejoin_after: Option<String>,
    /// TLS: the certificate chain and private key (PEM), reloaded when they change.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// A client that has not sent a whole request head within this is disconnected.
    pub header_read_timeout: Option<String>,
    /// Connections open at once (default: from the open-file limit).
    pub max_connections: Option<usize>,
    /// The largest request head accepted (431 beyond it).
    pub max_header_bytes: Option<usize>,
}

/// An event source. Kind-specific keys sit beside the common ones and are checked against
/// `kind` when resolving.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: String,
    pub entity: String,
    pub kind: String,
    pub description: Option<String>,
    pub key_field: Option<String>,
    pub time_field: Option<String>,
    pub allowed_lateness: Option<String>,
    pub max_future: Option<String>,
    #[serde(default)]
    pub fields: Vec<RawSourceField>,
    pub dead_letter: Option<String>,
    /// Where the source's event history lives (training sets).
    pub offline: Option<String>,
    // kafka
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub group_id: Option<String>,
    // file
    pub path: Option<String>,
    // generator
    pub rate: Option<f64>,
    pub entities: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceField {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Expected peak requests per second: sizes the in-flight bound check and load tests.
    pub peak_rps: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    pub listen: Option<String>,
    pub max_batch: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    /// Name of the environment variable holding the bearer token for writes.
    pub write_token_env: Option<String>,
    /// Also require the token for reads.
    pub read_requires_token: Option<bool>,
    /// TLS: the certificate chain and private key (PEM), reloaded when they change.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// A client that has not sent a whole request head within this is disconnected.
    pub header_read_timeout: Option<String>,
    /// Connections open at once (default: from the open-file limit).
    pub max_connections: Option<usize>,
    /// The largest request head accepted (431 beyond it).
    pub max_header_bytes: Option<usize>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub breaker: RawBreaker,
    /// `[serve.logging]`: absent, nothing is logged.
    pub logging: Option<RawLogging>,
}

/// `[serve.logging]`: a sample of the values served, as Parquet files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub sample_rate: Option<f64>,
    pub path: Option<String>,
    pub rotate_rows: Option<u64>,
    pub rotate_after: Option<String>,
    pub queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub max_entries: Option<u64>,
    pub ttl: Option<String>,
    pub negative_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failure_threshold: Option<u32>,
    pub window: Option<String>,
    pub reset_timeout: Option<String>,
    pub success_threshold: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub max_in_flight: Option<usize>,
    pub ttl_jitter: Option<f64>,
    pub encoding: Option<u8>,
    pub replicas: Option<Vec<String>>,
    pub read_from: Option<String>,
    pub replica_max_lag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    pub name: String,
    pub join_key: Option<String>,
    pub key_type: Option<String>,
    pub expected_count: Option<u64>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    pub entity: String,
    pub version: Option<u32>,
    pub description: Option<String>,
    pub ttl: Option<String>,
    pub freshness_slo: Option<String>,
    pub staleness_limit: Option<String>,
    pub p99_slo: Option<String>,
    pub availability_slo: Option<toml::Value>,
    pub on_unsafe: Option<String>,
    pub cache_ttl: Option<String>,
    /// Name of a Feast push source that writes this group (`POST /push`).
    pub push_source: Option<String>,
    /// Event source whose events this group's aggregations are computed from.
    pub source: Option<String>,
    /// Where a group without a source keeps its rows' history (training sets).
    pub offline: Option<String>,
    #[serde(default)]
    pub features: Vec<RawFeature>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub dimension: Option<u32>,
    pub default: Option<toml::Value>,
    pub description: Option<String>,
    /// count, sum, mean, min, max, last, distinct_count (stream groups only).
    pub aggregation: Option<String>,
    /// Event field the aggregation reads (every aggregation but count).
    pub field: Option<String>,
    /// Sliding window length (`30m`, `1h`, `7d`).
    pub window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: String,
    /// `group` (every feature of it) or `group:feature`.
    pub features: Vec<String>,
    pub description: Option<String>,
}

/// `[auth]`: principals and the settings every listener shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub principals: Vec<RawPrincipal>,
    /// A TOML file of more `[[auth.principals]]`, kept out of the registry.
    pub principals_file: Option<String>,
    pub protect_metrics: Option<bool>,
    pub allow_unauthenticated: Option<bool>,
    pub audit_log: Option<String>,
    pub audit_rotate_bytes: Option<u64>,
    pub audit_keep: Option<u32>,
    /// JWT bearer tokens from an identity provider.
    pub jwt: Option<RawJwt>,
}

/// `[auth.jwt]`: tokens an identity provider signs, their roles mapped to scopes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// A JWKS file (relative to the registry's folder) or an `https://` URL.
    pub jwks: String,
    pub issuer: String,
    pub audience: String,
    /// A dotted path to the roles in the claims (`resource_access.feast.roles`).
    pub roles_claim: String,
    /// `[auth.jwt.roles]`: `role = ["scope", ...]`.
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[[auth.principals]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipal {
    pub name: String,
    pub token_sha256: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub rate: Option<f64>,
}

/// The file `auth.principals_file` names: `[[auth.principals]]` as in the registry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipalsFile {
    #[serde(default)]
    pub auth: RawPrincipalsOnly,
}

/// The `[auth]` of a principals file: principals only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipalsOnly {
    #[serde(default)]
    pub principals: Vec<RawPrincipal>,
}
