//! `riffle serve`: the HTTP feature server.
//!
//! (Being built: see the module list once filled in.)
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;

use riffle_registry::Registry;
use riffle_store::OnlineStore;

/// Everything the server needs, built by the caller (the CLI or a test).
pub struct ServeDeps {
    pub registry: Arc<Registry>,
    pub store: Arc<OnlineStore>,
    /// `false` turns the hot cache off (`--no-cache`).
    pub cache_enabled: bool,
    /// Bearer token required for writes (and reads when the registry says so). `None`: open.
    pub write_token: Option<String>,
}

/// Serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    deps: ServeDeps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, deps);
    shutdown.await;
    Ok(())
}
