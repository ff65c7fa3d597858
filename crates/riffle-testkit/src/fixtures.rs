//! Registries that tests across the workspace share, so each is written once.
//!
//! - [`FRAUD_TOML`] / [`fraud_registry`]: the seed lesson's reference workload
//!   (`examples/fraud/riffle.toml`, the file `riffle demo` carries).
//! - [`GENERATOR_TOML`] / [`generator_registry`]: one `user` entity, a generator source
//!   `transactions` with a field of each type, and one group counting its events per hour.
//! - [`ONE_GROUP_TOML`]: project `t`, one `user` entity and one batch group `fast` of one
//!   `int64` feature `n`: what a store test needs to write and read a row.
//! - [`SHORT_WINDOWS_TOML`]: a file source `tx` (`ts`, `amount`) feeding group `g` with
//!   seconds-long windows (1 s tiles), so decay and expiry are seen within a test.
//! - [`HOURLY_COUNT_TOML`]: a file source `transactions` (`event_time`, `amount`) feeding
//!   group `tx`, one `n_1h` count with freshness, latency and availability SLOs.
//!
//! Tests that need a variant take one of these and `str::replace` the line that differs,
//! asserting that the replacement happened, rather than writing the registry again.

use riffle_registry::Registry;

/// The fraud example's registry, as shipped.
pub const FRAUD_TOML: &str = include_str!("../../../examples/fraud/riffle.toml");

/// [`FRAUD_TOML`], resolved.
pub fn fraud_registry() -> Registry {
    Registry::from_toml(FRAUD_TOML).expect("the fraud example registry is valid")
}

/// A generator source with one field of each type and a one-hour count over it.
pub const GENERATOR_TOML: &str = r#"
[project]
name = "t"

[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "transactions"
entity = "user"
kind = "generator"
rate = 500
entities = 10000
time_field = "event_time"
fields = [
  { name = "amount", type = "float64" },
  { name = "merchant_id", type = "string" },
  { name = "country", type = "string" },
  { name = "card_present", type = "bool" },
]

[[feature_groups]]
name = "tx"
entity = "user"
source = "transactions"
ttl = "2h"
freshness_slo = "1m"
features = [
  { name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" },
]
"#;

/// [`GENERATOR_TOML`], resolved.
pub fn generator_registry() -> Registry {
    Registry::from_toml(GENERATOR_TOML).expect("the generator test registry is valid")
}

/// One `user` entity and one batch group `fast` holding an `int64` feature `n`, in project
/// `t` (keys `t:{user:<id>}`, field `fast@1`).
pub const ONE_GROUP_TOML: &str = r#"
[project]
name = "t"
[[entities]]
name = "user"
[[feature_groups]]
name = "fast"
entity = "user"
ttl = "1h"
freshness_slo = "30s"
features = [{ name = "n", type = "int64", default = 0 }]
"#;

/// Seconds-long windows (1 s tiles): a file source `tx` (time field `ts`, field `amount`)
/// feeding group `g` with `n_4s` (count over 4 s) and `sum_8s` (sum of `amount` over 8 s).
pub const SHORT_WINDOWS_TOML: &str = r#"
[project]
name = "follow"

[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "tx"
entity = "user"
kind = "file"
path = "events.ndjson"
time_field = "ts"
fields = [{ name = "amount", type = "float64" }]

[[feature_groups]]
name = "g"
entity = "user"
source = "tx"
ttl = "1h"
freshness_slo = "1m"
features = [
  { name = "n_4s", type = "int64", default = 0, aggregation = "count", window = "4s" },
  { name = "sum_8s", type = "float64", default = 0.0, aggregation = "sum", field = "amount", window = "8s" },
]
"#;

/// A file source `transactions` (time field `event_time`, field `amount`) feeding group
/// `tx`: `n_1h` counts events per hour; freshness SLO 30 s, p99 SLO 10 ms, availability
/// 99.9 %.
pub const HOURLY_COUNT_TOML: &str = r#"
[project]
name = "lagged"

[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "transactions"
entity = "user"
kind = "file"
path = "events.ndjson"
time_field = "event_time"
fields = [{ name = "amount", type = "float64" }]

[[feature_groups]]
name = "tx"
entity = "user"
source = "transactions"
ttl = "2h"
freshness_slo = "30s"
p99_slo = "10ms"
availability_slo = "99.9%"
features = [{ name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" }]
"#;

/// `text` with `from` replaced by `to`, panicking when `from` is not in it (a fixture that
/// changed under a test must fail the test, not quietly stop varying it).
pub fn with(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the fixture no longer contains {from:?}: update the test"
    );
    text.replace(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_resolves() {
        for text in [
            FRAUD_TOML,
            GENERATOR_TOML,
            ONE_GROUP_TOML,
            SHORT_WINDOWS_TOML,
            HOURLY_COUNT_TOML,
        ] {
            if let Err(e) = Registry::from_toml(text) {
                panic!("{e}\n{text}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "no longer contains")]
    fn with_refuses_a_line_that_is_not_there() {
        with(ONE_GROUP_TOML, "no such line", "x");
    }
}
