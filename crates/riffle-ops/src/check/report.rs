//! The judged checklist ([`Report`]) and how it is printed: JSON for scripts, and the
//! human table with each reason wrapped under its own column.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::item::{Item, Outcome};

/// The whole checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub project: String,
    /// The live target, when one was checked.
    pub live: Option<String>,
    pub items: Vec<Item>,
}

impl Report {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.items.iter().filter(|i| i.outcome == outcome).count()
    }

    pub fn failed(&self) -> bool {
        self.count(Outcome::Fail) > 0
    }
}

/// The report as JSON: `{project, live, ok, counts, items: [{id, section, title, outcome, reason}]}`.
pub fn to_json(report: &Report) -> Value {
    let items: Vec<Value> = report
        .items
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "section": i.section, "title": i.title,
                "outcome": i.outcome.as_str(), "reason": i.reason,
            })
        })
        .collect();
    json!({
        "project": report.project,
        "live": report.live,
        "ok": !report.failed(),
        "counts": {
            "pass": report.count(Outcome::Pass), "warn": report.count(Outcome::Warn),
            "fail": report.count(Outcome::Fail), "manual": report.count(Outcome::Manual),
        },
        "items": items,
    })
}

/// The human table: aligned columns, the reason wrapped under its own column.
pub fn table(report: &Report) -> String {
    const REASON: usize = 72;
    let id_w = report
        .items
        .iter()
        .map(|i| i.id.len())
        .max()
        .unwrap_or(2)
        .max(4);
    let title_w = report
        .items
        .iter()
        .map(|i| i.title.chars().count())
        .max()
        .unwrap_or(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "readiness of project {} ({})",
        report.project,
        report
            .live
            .as_deref()
            .map_or_else(|| "files only".to_owned(), |l| format!("live: {l}"))
    );
    let _ = writeln!(
        out,
        "{:>2}  {:<id_w$}  {:<title_w$}  {:<6}  REASON",
        "#", "ITEM", "CHECK", "RESULT"
    );
    let indent = 2 + 2 + id_w + 2 + title_w + 2 + 6 + 2;
    for (n, item) in report.items.iter().enumerate() {
        let lines = wrap(&item.reason, REASON);
        let _ = writeln!(
            out,
            "{:>2}  {:<id_w$}  {:<title_w$}  {:<6}  {}",
            n + 1,
            item.id,
            item.title,
            item.outcome.as_str(),
            lines.first().map(String::as_str).unwrap_or("")
        );
        for line in lines.iter().skip(1) {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    }
    let _ = writeln!(
        out,
        "{} pass, {} warn, {} fail, {} manual",
        report.count(Outcome::Pass),
        report.count(Outcome::Warn),
        report.count(Outcome::Fail),
        report.count(Outcome::Manual)
    );
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
    }
}
