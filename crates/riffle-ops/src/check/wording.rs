//! How reasons write what they cite: durations as the registry writes them ([`d`]),
//! measured ones coarsely ([`coarse`]) or in milliseconds ([`ms`]), and the `riffle`
//! command a reason asks the operator to run ([`cmd`]).

use std::time::Duration;

use riffle_registry::format_duration;

use super::input::CheckInput;

/// A duration as the registry writes it (`1m`, `50ms`).
pub(super) fn d(x: Duration) -> String {
    format_duration(x)
}

/// A measured duration in days and hours from a day up (`31d 12h`), else to the second.
pub(super) fn coarse(x: Duration) -> String {
    let s = x.as_secs();
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
    } else {
        d(Duration::from_secs(s))
    }
}

/// A duration in milliseconds, to two decimals below 10 ms.
pub(super) fn ms(x: Duration) -> String {
    let v = x.as_secs_f64() * 1000.0;
    if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

/// `riffle <rest> --config <the registry path as given>`.
pub(super) fn cmd(input: &CheckInput<'_>, rest: &str) -> String {
    format!("riffle {rest} --config {}", input.config_path.display())
}
