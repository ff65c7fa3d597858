//! `riffle runbook`: not built yet.
