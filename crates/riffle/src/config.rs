//! Resolving what every command shares: the registry file (`--config`, `RIFFLE_CONFIG`), the
//! store (`--store`, `RIFFLE_STORE`, else the registry's `store.url`) and the listen address
//! (`--listen`, `RIFFLE_LISTEN`, else the registry's `serve.listen`). Flags win over the
//! environment (clap reads both), which wins over the registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use riffle_registry::{Registry, RegistryError};
use riffle_store::{OnlineStore, StoreLimits, StoreUrl};
use tokio::net::TcpListener;

use crate::exit::{runtime, usage, Failure};

/// `--config PATH`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The registry file.
    #[arg(
        long,
        env = "RIFFLE_CONFIG",
        default_value = "riffle.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,
}

/// Reads and validates the registry; every problem is listed, exit 2.
pub fn load_registry(path: &Path) -> Result<Arc<Registry>, Failure> {
    match Registry::load(path) {
        Ok(registry) => Ok(Arc::new(registry)),
        Err(RegistryError::Invalid(problems)) => {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            Err(usage(anyhow!(
                "registry {} has {} problem(s):\n{}",
                path.display(),
                problems.len(),
                list.join("\n")
            )))
        }
        // The message already names the cause; anyhow would print the source a second time.
        Err(e) => Err(usage(anyhow!("{e}"))),
    }
}

/// Opens the store named by `--store`, or the registry's. A bad URL is bad usage (exit 2);
/// a store that cannot be opened is a runtime failure (exit 1).
pub async fn open_store(
    registry: &Arc<Registry>,
    flag: Option<&str>,
) -> Result<Arc<OnlineStore>, Failure> {
    let text = flag.unwrap_or(&registry.store.url);
    let url = StoreUrl::parse(text).map_err(usage)?;
    open_url(registry, &url).await
}

pub async fn open_url(
    registry: &Arc<Registry>,
    url: &StoreUrl,
) -> Result<Arc<OnlineStore>, Failure> {
    let limits = StoreLimits::from_settings(&registry.store);
    let store = OnlineStore::open(url, registry.clone(), limits)
        .await
        .with_context(|| format!("cannot open store {}", url.redacted()))
        .map_err(runtime)?;
    Ok(Arc::new(store))
}

/// Binds `addr`, saying clearly when it is taken and what to do.
pub async fn bind(addr: &str, flag_hint: &str) -> Result<TcpListener, Failure> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let next = match addr.rsplit_once(':') {
                Some((host, port)) => match port.parse::<u16>() {
                    Ok(p) => format!("{host}:{}", p.wrapping_add(1)),
                    Err(_) => "127.0.0.1:6567".to_owned(),
                },
                None => "127.0.0.1:6567".to_owned(),
            };
            Err(runtime(anyhow!(
                "{addr} is already in use (is another riffle running?). Choose another address: {flag_hint} --listen {next}"
            )))
        }
        Err(e) => Err(usage(
            anyhow::Error::new(e).context(format!("cannot listen on {addr}")),
        )),
    }
}
