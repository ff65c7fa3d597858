//! Checklist items of the lesson's "Operations" section that a machine can judge: the
//! runbook, the incident-response SLOs to confirm, the cost model at 2× entities.

use riffle_registry::Registry;

use super::input::CheckInput;
use super::item::{item, manual_item, Item, Outcome, OPERATIONS};
use super::record::record_item;
use super::wording::cmd;
use crate::alerts::{self};
use crate::runbook::{runbook, RunbookInput};
use crate::scenario::Scenario;

pub(super) fn runbook_item(input: &CheckInput<'_>) -> Item {
    let text = runbook(&RunbookInput {
        registry: input.registry,
        config_path: &input.config_path.display().to_string(),
    });
    let missing_sections: Vec<usize> = Scenario::ALL
        .iter()
        .filter(|s| !text.contains(&format!("<a id=\"{}\"></a>", s.anchor())))
        .map(|s| s.number())
        .collect();
    let unlinked: Vec<&'static str> = alerts::rules(input.registry)
        .into_iter()
        .flat_map(|g| g.rules)
        .filter(|r| !text.contains(&format!("<a id=\"{}\"></a>", r.scenario.anchor())))
        .map(|r| r.alert)
        .collect();
    let ok = missing_sections.is_empty() && unlinked.is_empty();
    item(
        "runbook",
        OPERATIONS,
        "Runbook for each failure mode",
        if ok { Outcome::Pass } else { Outcome::Fail },
        if ok {
            format!("`{} --out RUNBOOK.md` writes the ten scenarios for this deployment; every alert links to its section. Confirm it is published where runbook_url points and on-call has read it.", cmd(input, "runbook"))
        } else {
            format!("runbook lacks scenarios {missing_sections:?}; alerts without a section: {unlinked:?}")
        },
    )
}

pub(super) fn incident_response(input: &CheckInput<'_>) -> Item {
    let slos: Vec<String> = input
        .registry
        .groups
        .iter()
        .map(|g| format!("{} {:.3}%", g.name, g.availability_slo * 100.0))
        .collect();
    manual_item(
        "incident_response",
        "Pager rotation, escalation, recovery SLA",
        &format!("Confirm a pager rotation receives the severity=critical alerts, an escalation path, and a recovery SLA consistent with the availability SLOs ({}).", slos.join(", ")),
    )
}

pub(super) fn cost_2x(input: &CheckInput<'_>) -> Item {
    let reg: &Registry = input.registry;
    let undeclared: Vec<&str> = reg
        .entities
        .iter()
        .filter(|e| e.expected_count.is_none())
        .map(|e| e.name.as_str())
        .collect();
    let mut it = record_item(
        "cost_2x",
        OPERATIONS,
        "Cost model at 2x entity count",
        &input.cost,
        input.now,
        Outcome::Warn,
        format!("{} --store URL", cmd(input, "cost")),
    );
    if !undeclared.is_empty() {
        it.outcome = it.outcome.max(Outcome::Warn);
        it.reason = format!(
            "{} Entities without expected_count: {}.",
            it.reason,
            undeclared.join(", ")
        );
    }
    it
}
