//! Who may reach a listener and how, as every command that opens one sets it up: the auth
//! gate from the registry's `[auth]` and the legacy write token (`serve.write_token_env`),
//! checked against the address the listener is bound to (no open door on a non-loopback
//! address without `--allow-unauthenticated`); and the listener itself, with TLS
//! (`--tls-cert`/`--tls-key` or the section's `tls_cert`/`tls_key`, reloaded when the files
//! change) and the section's connection limits (serve-offline, which has no section, the
//! defaults).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use riffle_auth::{check_exposure, Exposure, Gate};
use riffle_listener::{Limits, Listener, Tls};
use riffle_registry::{ListenerSettings, Registry};
use tokio::net::TcpListener;

use crate::exit::{usage, Failure};

/// `--allow-unauthenticated`, `--tls-cert`, `--tls-key`.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// Serve on a non-loopback address with no principal and no token (anyone who reaches
    /// it may read, write and send events): only behind a network that is trusted.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Speak TLS with this certificate chain (PEM), reloaded when the file changes
    /// (default: the section's `tls_cert`, for a command whose listener has one).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM) (default: the section's `tls_key`, likewise).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// How often the certificate files are checked for a renewal.
const TLS_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// A bound socket as a listener: TLS from the flags or `settings`, the section's limits
/// (its open-file limit raised first, so the connection cap derived from it is as large as
/// the system allows). Also says whether it speaks TLS. Exit 2 when a certificate or key
/// cannot be used.
pub fn listener(
    socket: TcpListener,
    settings: &ListenerSettings,
    args: &AccessArgs,
) -> Result<(Listener, bool), Failure> {
    if let Err(e) = riffle_listener::raise_nofile_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let mut limits = Limits {
        header_read_timeout: settings.header_read_timeout,
        max_header_bytes: settings.max_header_bytes,
        ..Limits::default()
    };
    if let Some(n) = settings.max_connections {
        limits.max_connections = n;
    }
    let files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => settings.tls.clone(),
    };
    let tls = match files {
        Some((cert, key)) => {
            let tls = Arc::new(Tls::from_pem_files(cert, key).map_err(usage)?);
            // Detached: it ends by itself once the listener drops the last `Arc<Tls>`.
            drop(tls.watch(TLS_RELOAD_EVERY));
            Some(tls)
        }
        None => None,
    };
    let secure = tls.is_some();
    Ok((Listener::new(socket).limits(limits).tls(tls), secure))
}

/// The legacy write token: the value of the variable `serve.write_token_env` names.
pub fn legacy_token(registry: &Registry) -> Option<String> {
    std::env::var(&registry.serve.write_token_env)
        .ok()
        .filter(|t| !t.is_empty())
}

/// The gate of listener `listener` with its audit log open, for a listener whose address
/// needs no check (one serving only `/metrics` and `/health`); exit 2 when the audit log
/// cannot be opened or `auth.jwt.jwks` cannot be read.
pub async fn open_gate(
    registry: &Arc<Registry>,
    listener: &'static str,
) -> Result<Arc<Gate>, Failure> {
    let token = legacy_token(registry);
    let gate = Gate::open(registry.clone(), token.as_deref(), listener)
        .await
        .map_err(usage)?;
    Ok(Arc::new(gate))
}

/// The gate of listener `listener` (`serve`, `ingest`, `serve-offline`) bound at `addr`; exit 2 when it
/// would be an open door, or when the audit log or the JWKS cannot be read.
pub async fn gate(
    registry: &Arc<Registry>,
    listener: &'static str,
    addr: SocketAddr,
    args: &AccessArgs,
) -> Result<Arc<Gate>, Failure> {
    let gate = open_gate(registry, listener).await?;
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
