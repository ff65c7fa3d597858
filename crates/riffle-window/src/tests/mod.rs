//! The engine's tests, beside it: its contract case by case ([`engine`]), property tests
//! against a deliberately simple [`oracle`] on random event streams ([`against_oracle`]),
//! and snapshots that round-trip and refuse what they cannot read ([`snapshot`]).

mod against_oracle;
mod engine;
mod oracle;
mod snapshot;
