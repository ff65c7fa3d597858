//! Resolved serve and store settings, with Riffle's defaults.

use std::path::PathBuf;
use std::time::Duration;

/// How `riffle serve` behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    pub listen: String,
    /// Most entities in one request.
    pub max_batch: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests handled at once; beyond it requests are shed with 503 at once.
    pub max_concurrent_requests: usize,
    /// Environment variable that holds the bearer token for writes (and reads when
    /// `read_requires_token`). No variable or an empty one: no token required.
    pub write_token_env: String,
    pub read_requires_token: bool,
    pub cache: CacheSettings,
    pub breaker: BreakerSettings,
    /// `[serve.logging]`: `None` logs nothing (and costs the read path nothing).
    pub logging: Option<LoggingSettings>,
    pub listener: ListenerSettings,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6566".into(),
            max_batch: 1000,
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 4096,
            write_token_env: "RIFFLE_WRITE_TOKEN".into(),
            read_requires_token: false,
            cache: CacheSettings::default(),
            breaker: BreakerSettings::default(),
            logging: None,
            listener: ListenerSettings::default(),
        }
    }
}

/// How a listener (serve's, ingest's) takes connections: TLS, and the limits that keep
/// slow or hostile clients from holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSettings {
    /// The certificate chain and private key files (PEM); `None`: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A client that has not sent a whole request head within this is disconnected (also
    /// how long an idle keep-alive connection is kept).
    pub header_read_timeout: Duration,
    /// Connections open at once; `None`: derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// The largest request head; beyond it 431.
    pub max_header_bytes: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            max_connections: None,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The feature log (`[serve.logging]`): the values served to a sample of entities, chosen
/// by a stable hash of the entity id, written as Parquet files for the consistency
/// validator.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingSettings {
    /// Share of entity ids whose every read is logged, in (0, 1].
    pub sample_rate: f64,
    /// The local folder the files go to (created if missing).
    pub path: PathBuf,
    /// A file is completed once it holds this many rows.
    pub rotate_rows: u64,
    /// ... or once it has been open this long.
    pub rotate_after: Duration,
    /// Records (one sampled entity of one request) waiting for the writer; beyond it they
    /// are dropped and counted, never waited for.
    pub queue: usize,
}

impl LoggingSettings {
    pub const DEFAULT_ROTATE_ROWS: u64 = 1_000_000;
    pub const DEFAULT_ROTATE_AFTER: Duration = Duration::from_secs(600);
    pub const DEFAULT_QUEUE: usize = 10_000;
}

/// The in-process hot cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Most (entity, group) rows held.
    pub max_entries: u64,
    /// Default time a row stays cached (a group's `cache_ttl` overrides it).
    pub ttl: Duration,
    /// Time a "not in the store" answer stays cached.
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 100_000,
            ttl: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(1),
        }
    }
}

/// The circuit breaker in front of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Failures within `window` that open the breaker.
    pub failure_threshold: u32,
    pub window: Duration,
    /// Time the breaker stays open before letting a trial call through (half-open).
    pub reset_timeout: Duration,
    /// Successful trial calls in half-open that close it again.
    pub success_threshold: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(10),
            reset_timeout: Duration::from_secs(5),
            success_threshold: 2,
        }
    }
}

/// How the online store is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    /// `embedded:PATH`, `redis://…`, `rediss://…`.
    pub url: String,
    /// Per-call timeout; the lesson's rule is 50 ms at most.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Store calls in flight at once; beyond it calls fail fast to the fallback.
    pub max_in_flight: usize,
    /// Fraction of a key's TTL added at random, so keys written together do not expire
    /// together.
    pub ttl_jitter: f64,
    /// Row encoding written; readers accept every version whatever this says.
    pub encoding: RowEncoding,
    /// Read replicas of a Redis primary (`redis://…` URLs); writes always go to the primary.
    pub replicas: Vec<String>,
    /// Where serving reads go.
    pub read_from: ReadFrom,
    /// A replica lagging more than this is not read from.
    pub replica_max_lag: Duration,
}

/// Where serving reads go (`[store] read_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// Every read goes to the primary (`store.url`).
    #[default]
    Primary,
    /// Reads go to the nearest healthy replica (smallest measured round trip), else the
    /// primary.
    Replica,
}

/// The row encoding a deployment writes (`[store] encoding = 1 | 2 | 3`). The older ones
/// exist so a rolling upgrade can keep writing rows the not-yet-upgraded readers
/// understand: version 1 for readers older than version 2, version 2 for readers that do
/// not know version 3 (which is version 2 plus the Kafka partition a stream row's events
/// arrive on; a row without a partition is written as version 2 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowEncoding {
    V1,
    V2,
    #[default]
    V3,
}

impl RowEncoding {
    /// The version byte that leads every row of this encoding that carries a partition
    /// (without one, [`RowEncoding::V3`] writes version 2).
    pub fn version(self) -> u8 {
        match self {
            RowEncoding::V1 => 1,
            RowEncoding::V2 => 2,
            RowEncoding::V3 => 3,
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "embedded:./riffle-data".into(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(500),
            max_in_flight: 512,
            ttl_jitter: 0.1,
            encoding: RowEncoding::default(),
            replicas: Vec::new(),
            read_from: ReadFrom::Primary,
            replica_max_lag: Duration::from_secs(5),
        }
    }
}
