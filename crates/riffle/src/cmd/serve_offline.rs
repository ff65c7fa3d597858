//! `riffle serve-offline --config PATH [--listen 127.0.0.1:8815] [--max-concurrent 2]
//! [--tls-cert PATH --tls-key PATH] [--allow-unauthenticated]`: Feast's remote offline store
//! (Arrow Flight) answered by the training-set code (`riffle_offline_serve`). A Feast repo
//! with `offline_store: type: remote` pointed here gets Riffle's point-in-time values from
//! `get_historical_features`. Callers pass the same auth gate as serve's (a bearer token in
//! the gRPC metadata, a read scope over the groups asked for), and connections the same
//! listener layer (`riffle_listener`, built by `access::listener`) in HTTP/2: the connection
//! cap, slow and idle clients closed, and TLS with `--tls-cert`/`--tls-key` (ALPN `h2`,
//! reloaded when the files change; Feast: `scheme: https`, `cert:` the CA). The registry
//! has no section for this listener: its limits are the defaults.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use riffle_offline_serve::OfflineServeSettings;
use riffle_registry::ListenerSettings;

use crate::access::{self, AccessArgs};
use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};
use crate::shutdown;

#[derive(Debug, Args)]
pub struct ServeOfflineArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (Feast's default offline server port is 8815).
    #[arg(long, default_value = "127.0.0.1:8815", env = "RIFFLE_OFFLINE_LISTEN")]
    pub listen: String,
    /// Requests computed at once; more wait their turn (each holds its histories in memory).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: ServeOfflineArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    if args.max_concurrent == 0 {
        return Err(usage(anyhow!("--max-concurrent must be at least 1")));
    }
    let listener = config::bind(&args.listen, "riffle serve-offline").await?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")
        .map_err(runtime)?;
    // The exposure check needs the address actually bound (`--listen :0` included).
    let gate = access::gate(&registry, "serve-offline", addr, &args.access).await?;
    let (listener, tls) = access::listener(listener, &ListenerSettings::default(), &args.access)?;
    let (scheme, feast) = if tls {
        ("grpc+tls", "scheme: https, cert: <your CA>, ")
    } else {
        ("grpc", "")
    };
    println!(
        "riffle serve-offline: project {} on {scheme}://{addr} (Feast: offline_store: {{type: remote, {feast}host: {}, port: {}}})",
        registry.project,
        addr.ip(),
        addr.port()
    );
    for group in &registry.groups {
        let history = match group.source {
            Some(s) => registry.sources[s].offline.as_deref(),
            None => group.offline.as_deref(),
        };
        match history {
            Some(at) => println!("  {:<24} history {at}", group.name),
            None => println!(
                "  {:<24} no history declared: asking for it is refused",
                group.name
            ),
        }
    }
    let settings = OfflineServeSettings {
        max_concurrent: args.max_concurrent,
        gate,
    };
    riffle_offline_serve::serve(
        Arc::clone(&registry),
        listener,
        settings,
        shutdown::signal(),
    )
    .await
    .context("the offline server stopped with an error")
    .map_err(runtime)
}
