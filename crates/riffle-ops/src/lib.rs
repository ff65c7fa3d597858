//! The operator toolkit: the seed lesson's readiness checklist, runbook, SLO table and cost
//! rule turned into things a person runs before launch and during an incident. The `riffle`
//! binary's `loadtest`, `check`, `drill`, `cost`, `alerts`, `runbook` and `baseline`
//! subcommands are thin wrappers over these modules.
//!
//! - [`scenario`]: the lesson's ten failure scenarios, the key shared by alerts and runbook.
//! - [`alerts`]: Prometheus alerting rules from the registry; [`dashboard`]: Grafana JSON.
//! - [`runbook`]: the ten scenarios written for this deployment (Markdown).
//! - [`check`]: the 20-item readiness checklist (and two security items), from files and the
//!   live deployment.
//! - [`lag`]: `riffle lag`'s report: published watermarks and the consumer group, per
//!   partition, judged against the lag threshold.
//! - [`loadtest`]: realistic traffic against a running server, judged against the SLOs.
//! - [`drill`]: the store broken on purpose under traffic, and the fallback path judged.
//! - [`cost`]: Redis memory per entity from sampled keys, projected to 2× entities.
//! - [`drift`]: the baseline of served feature values that serve's drift metrics compare
//!   against.
//! - [`http_client`]: the one HTTP client builder of the commands above (https with
//!   `--cacert`).
//! - [`probe`]: the one Prometheus text reader and the one plain Redis client the commands
//!   above read a running deployment with.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod check;
pub mod cost;
pub mod dashboard;
pub mod drift;
pub mod drill;
pub mod http_client;
pub mod lag;
pub mod loadtest;
pub mod probe;
pub mod runbook;
pub mod scenario;
