//! Registries that tests across the workspace share, so each is written once.
//!
//! - [`FRAUD_TOML`] / [`fraud_registry`]: the seed lesson's reference workload
//!   (`examples/fraud/riffle.toml`, the file `riffle demo` carries).
//! - [`GENERATOR_TOML`] / [`generator_registry`]: one `user` entity, a generator source
//!   `transactions` with a field of each type, and one group counting its events per hour.

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
