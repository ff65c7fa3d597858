//! The lesson's numbers the checklist judges by.

use std::time::Duration;

/// The lesson's ceiling for a store call's timeout.
pub const MAX_STORE_TIMEOUT: Duration = Duration::from_millis(50);
/// The lesson's safety factor over the minimum pool (`max = min × 1.5`).
pub const POOL_SAFETY: f64 = 1.5;
/// Records older than this are a warning.
pub const RECORD_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// The lesson's consumer-lag alert.
pub const LESSON_LAG: Duration = Duration::from_secs(300);
/// Share of entities the lesson calls hot (top 1 %).
pub const HOT_SHARE: f64 = 0.01;
