//! The seed lesson's ten failure scenarios, as Riffle names them: the shared key between
//! the alert rules (`alerts`), which link to a scenario, and the runbook (`runbook`), which
//! has one section per scenario under the anchor [`Scenario::anchor`].

/// One of the lesson's ten "common failure scenarios", in the lesson's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// 1. p99 latency above its SLO (in-flight bound, shedding).
    HighLatency,
    /// 2. Feature staleness alert (ingest lag).
    Staleness,
    /// 3. High null/default rate (store memory, eviction).
    DefaultRate,
    /// 4. Circuit breaker open (store down).
    BreakerOpen,
    /// 5. Model predictions shifted (feature distribution drift).
    Drift,
    /// 6. Cache hit rate below 50 %.
    CacheHitRate,
    /// 7. Feature server out of memory (hot cache bound).
    ServerMemory,
    /// 8. Pipeline state/checkpoint failures (ingest cannot make its writes durable).
    IngestState,
    /// 9. Dead-letter volume spike (schema change not registered).
    DeadLetter,
    /// 10. Store partition or failover (errors and timeouts on store calls).
    StorePartition,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::HighLatency,
        Scenario::Staleness,
        Scenario::DefaultRate,
        Scenario::BreakerOpen,
        Scenario::Drift,
        Scenario::CacheHitRate,
        Scenario::ServerMemory,
        Scenario::IngestState,
        Scenario::DeadLetter,
        Scenario::StorePartition,
    ];

    /// 1 … 10, the lesson's numbering.
    pub fn number(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    /// The HTML anchor of the scenario's runbook section (`scenario-2-staleness`).
    pub fn anchor(self) -> String {
        let slug = match self {
            Scenario::HighLatency => "p99-latency",
            Scenario::Staleness => "staleness",
            Scenario::DefaultRate => "default-rate",
            Scenario::BreakerOpen => "breaker-open",
            Scenario::Drift => "drift",
            Scenario::CacheHitRate => "cache-hit-rate",
            Scenario::ServerMemory => "server-memory",
            Scenario::IngestState => "ingest-state",
            Scenario::DeadLetter => "dead-letter",
            Scenario::StorePartition => "store-partition",
        };
        format!("scenario-{}-{slug}", self.number())
    }

    /// The section title.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::HighLatency => "p99 latency above the SLO",
            Scenario::Staleness => "Feature staleness alert",
            Scenario::DefaultRate => "High default (null) rate in features",
            Scenario::BreakerOpen => "Circuit breaker open",
            Scenario::Drift => "Model predictions shifted",
            Scenario::CacheHitRate => "Cache hit rate below 50%",
            Scenario::ServerMemory => "Feature server out of memory",
            Scenario::IngestState => "Ingest cannot make its state durable",
            Scenario::DeadLetter => "Dead-letter volume spike",
            Scenario::StorePartition => "Store partition or failover",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_numbered_and_distinct() {
        let anchors: std::collections::HashSet<String> =
            Scenario::ALL.iter().map(|s| s.anchor()).collect();
        assert_eq!(anchors.len(), 10);
        assert_eq!(Scenario::Staleness.anchor(), "scenario-2-staleness");
        assert_eq!(Scenario::StorePartition.number(), 10);
    }
}
