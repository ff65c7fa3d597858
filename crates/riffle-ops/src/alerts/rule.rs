//! An alerting rule as Prometheus loads it ([`Rule`], in a [`RuleGroup`]), with the
//! [`Severity`] label and the [`Scenario`] of the runbook section it links to.

use std::time::Duration;

use crate::scenario::Scenario;

/// How urgent an alert is (the `severity` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Wake someone: served values are wrong, slow or failing now.
    Critical,
    /// Look during working hours: a bound is near or a rate drifts.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub alert: &'static str,
    pub expr: String,
    /// How long the condition must hold (`for:`).
    pub hold: Duration,
    pub severity: Severity,
    /// Static labels besides `severity` (`group`, `source`, `p99_slo`).
    pub labels: Vec<(&'static str, String)>,
    pub summary: String,
    pub description: String,
    pub scenario: Scenario,
}

impl Rule {
    /// `runbook_url` annotation: `base#anchor`.
    pub fn runbook_url(&self, base: &str) -> String {
        format!("{base}#{}", self.scenario.anchor())
    }

    /// Every label of a firing alert that the rule itself sets (severity first).
    pub fn static_labels(&self) -> Vec<(&'static str, String)> {
        let mut all = vec![("severity", self.severity.as_str().to_owned())];
        all.extend(self.labels.iter().cloned());
        all
    }
}

/// A Prometheus rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}
