//! Who may call a listener, as every command that opens one sets it up: the auth gate from
//! the registry's `[auth]` and the legacy write token (`serve.write_token_env`), checked
//! against the address the listener is bound to (no open door on a non-loopback address
//! without `--allow-unauthenticated`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::anyhow;
use clap::Args;
use riffle_auth::{check_exposure, Exposure, Gate};
use riffle_registry::Registry;

use crate::exit::{usage, Failure};

/// `--allow-unauthenticated`.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// Serve on a non-loopback address with no principal and no token (anyone who reaches
    /// it may read, write and send events): only behind a network that is trusted.
    #[arg(long)]
    pub allow_unauthenticated: bool,
}

/// The legacy write token: the value of the variable `serve.write_token_env` names.
pub fn legacy_token(registry: &Registry) -> Option<String> {
    std::env::var(&registry.serve.write_token_env)
        .ok()
        .filter(|t| !t.is_empty())
}

/// The gate of listener `listener` with its audit log open, for a listener whose address
/// needs no check (one serving only `/metrics` and `/health`); exit 2 when the audit log
/// cannot be opened.
pub fn open_gate(registry: &Arc<Registry>, listener: &'static str) -> Result<Arc<Gate>, Failure> {
    let token = legacy_token(registry);
    let gate = Gate::open(registry.clone(), token.as_deref(), listener).map_err(usage)?;
    Ok(Arc::new(gate))
}

/// The gate of listener `listener` (`serve`, `ingest`) bound at `addr`; exit 2 when it
/// would be an open door, or when the audit log cannot be opened.
pub fn gate(
    registry: &Arc<Registry>,
    listener: &'static str,
    addr: SocketAddr,
    args: &AccessArgs,
) -> Result<Arc<Gate>, Failure> {
    let gate = open_gate(registry, listener)?;
    match check_exposure(
        &format!("riffle {listener}"),
        addr,
        &gate,
        args.allow_unauthenticated,
    ) {
        Ok(Exposure::Guarded) => {}
        Ok(Exposure::OpenAllowed(warning)) => {
            eprintln!("warning: {warning}");
            tracing::warn!(%addr, listener, "listening unauthenticated on a non-loopback address");
        }
        Err(why) => return Err(usage(anyhow!(why))),
    }
    Ok(gate)
}
