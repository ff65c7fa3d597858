//! [`Problems`]: the collector that lets resolving report *every* problem at once. Each
//! resolver (`resolve.rs`, `resolve_group.rs`, `resolve_source.rs`) adds what it finds
//! with its path and goes on with a default; the checks they share (names, durations) live
//! here, so each is written once.

use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::{Problem, RegistryError};

/// Collects problems while resolving.
#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// `Ok` when nothing was found, else every problem, in the order found.
    pub(crate) fn into_result(self) -> Result<(), RegistryError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Invalid(self.0))
        }
    }

    /// Parses an optional duration at `path`, falling back to `default`.
    pub(crate) fn duration(
        &mut self,
        path: &str,
        raw: &Option<String>,
        default: Duration,
    ) -> Duration {
        match raw {
            None => default,
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    self.add(path, "must be greater than zero");
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.add(path, e);
                    default
                }
            },
        }
    }

    /// [`Problems::duration`] where zero is a value of its own (a feature turned off).
    pub(crate) fn duration_or_zero(
        &mut self,
        path: &str,
        raw: &Option<String>,
        default: Duration,
    ) -> Duration {
        match raw {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|e| {
                self.add(path, e);
                default
            }),
        }
    }

    pub(crate) fn required_duration(&mut self, path: &str, raw: &Option<String>) -> Duration {
        if raw.is_none() {
            self.add(path, "is required (a duration such as \"30s\" or \"2h\")");
        }
        self.duration(path, raw, Duration::from_secs(1))
    }

    pub(crate) fn name(&mut self, path: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if !ok {
            self.add(
                path,
                format!(
                    "{name:?} is not a valid name: use 1-64 letters, digits, '_' or '-', starting with a letter"
                ),
            );
        }
    }
}
