//! Decisions counted per principal: `<prefix>_auth_decisions_total{principal, outcome}`
//! (`riffle_auth_…` in serve's `/metrics`, `riffle_ingest_auth_…` in ingest's), label
//! values only from the registry's principal names and `[auth.jwt.roles]` (`jwt:<role>`,
//! and `jwt` for a JWT with no mapped role), plus `anonymous` for an open route and
//! `unknown` for a credential no principal has or a JWT not believed, so no caller can grow the series. Only
//! the outcomes that can happen to each are exported; the counters are created once and
//! counting is one atomic add. Also `<prefix>_auth_audit_dropped_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The outcomes counted.
pub const OUTCOMES: [&str; 7] = [
    "allowed",
    "no_token",
    "malformed_token",
    "unknown_token",
    "invalid_token",
    "forbidden",
    "rate_limited",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    principal: String,
    outcome: &'static str,
}

/// The counters, by principal index (then `anonymous`, then `unknown`) and outcome.
pub struct AuthMetrics {
    family: Family<Labels, Counter>,
    counters: Vec<[Counter; OUTCOMES.len()]>,
    pub audit_dropped: Counter,
}

impl AuthMetrics {
    /// Counters for `principals` (names, in the gate's order), then `jwt` (the labels of
    /// `[auth.jwt]`'s callers: `jwt:<role>` per role, then `jwt`; none without it).
    pub fn new(principals: &[&str], jwt: &[&str]) -> AuthMetrics {
        let family = Family::<Labels, Counter>::default();
        let known = principals
            .iter()
            .map(|name| (*name, ["allowed", "forbidden", "rate_limited"].as_slice()));
        let roles = jwt
            .iter()
            .map(|name| (*name, ["allowed", "forbidden"].as_slice()));
        let refused: &[&str] = if jwt.is_empty() {
            &["no_token", "malformed_token", "unknown_token"]
        } else {
            &[
                "no_token",
                "malformed_token",
                "unknown_token",
                "invalid_token",
            ]
        };
        let others = [
            ("anonymous", ["allowed", "forbidden"].as_slice()),
            ("unknown", refused),
        ];
        let counters = known
            .chain(roles)
            .chain(others)
            .map(|(name, possible)| {
                OUTCOMES.map(|outcome| {
                    if possible.contains(&outcome) {
                        let labels = Labels {
                            principal: name.to_owned(),
                            outcome,
                        };
                        family.get_or_create(&labels).clone()
                    } else {
                        // Never counted: not exported.
                        Counter::default()
                    }
                })
            })
            .collect();
        AuthMetrics {
            family,
            counters,
            audit_dropped: Counter::default(),
        }
    }

    /// Counts one decision about caller slot `who` (a principal index, or
    /// [`AuthMetrics::anonymous`], [`AuthMetrics::unknown`]).
    pub fn count(&self, who: usize, outcome: &str) {
        let slot = OUTCOMES.iter().position(|o| *o == outcome);
        if let (Some(row), Some(slot)) = (self.counters.get(who), slot) {
            row[slot].inc();
        }
    }

    pub fn anonymous(&self) -> usize {
        self.counters.len() - 2
    }

    pub fn unknown(&self) -> usize {
        self.counters.len() - 1
    }

    /// Adds the metrics to `registry` (whose prefix names the listener).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "auth_decisions",
            "Requests let through or refused, by principal and outcome",
            self.family.clone(),
        );
        registry.register(
            "auth_audit_dropped",
            "Audit lines dropped because the audit writer's queue was full",
            self.audit_dropped.clone(),
        );
    }
}
