//! The operator toolkit: the seed lesson's readiness checklist, runbook, SLO table and cost
//! rule turned into things a person runs before launch and during an incident. The `riffle`
//! binary's `loadtest`, `check`, `drill`, `cost`, `alerts`, `runbook` and `baseline`
//! subcommands are thin wrappers over these modules.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod check;
pub mod cost;
pub mod drift;
pub mod drill;
pub mod loadtest;
pub mod runbook;
