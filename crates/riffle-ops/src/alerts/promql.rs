//! How the rules write PromQL: numbers of seconds, quoted label values, and the share of a
//! group's values served as training defaults (used by the default-rate rule).

use std::time::Duration;

use super::thresholds::DEFAULT_STATUSES_REGEX;

/// Seconds as PromQL wants a number.
pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// A label value inside a PromQL selector.
pub(super) fn q(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Share of a group's values served as training defaults over `range`, `offset` ago.
pub(super) fn served_default_share(group: &str, range: &str, offset: Option<&str>) -> String {
    let at = offset.map(|o| format!(" offset {o}")).unwrap_or_default();
    format!(
        "sum(rate(riffle_values_served_total{{group={g},status=~\"{DEFAULT_STATUSES_REGEX}\"}}[{range}]{at})) / sum(rate(riffle_values_served_total{{group={g}}}[{range}]{at}))",
        g = q(group)
    )
}
