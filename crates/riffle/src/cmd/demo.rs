//! `riffle demo [--listen ADDR] [--users N] [--data DIR]`: the fraud example, from any folder
//! with nothing installed. The registry is compiled in; the store is the embedded one in a
//! temporary directory (or `--data DIR`, kept). It loads a synthetic population with power-law
//! activity, serves it, prints example calls, and every second a background ticker moves the
//! fast groups of some users, so freshness and values visibly change. Ctrl-C stops it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_serve::ServeDeps;
use riffle_store::{OnlineStore, StoreUrl};
use riffle_stream::generator::Population;
use riffle_stream::writer::PipelinedWriter;

use crate::config;
use crate::exit::{runtime, usage, CmdResult};
use crate::progress;
use crate::shutdown;

/// The fraud example's registry, carried inside the binary.
const FRAUD_REGISTRY: &str = include_str!("../../../../examples/fraud/riffle.toml");

/// Users per store write while loading: big batches keep 100k users to seconds.
const USERS_PER_BATCH: u64 = 2_000;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "RIFFLE_LISTEN",
        default_value = "127.0.0.1:6566",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Synthetic users to load (u0 … uN-1; u0 is the most active).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub users: u64,
    /// Keep the embedded store in DIR instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Users (picked by the power law) whose velocity and session move every second.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub tick_users: usize,
}

pub async fn run(args: DemoArgs) -> CmdResult {
    if args.users == 0 {
        return Err(usage(anyhow!("--users must be at least 1")));
    }
    let registry = Registry::from_toml(FRAUD_REGISTRY)
        .context("the built-in fraud registry is invalid (a bug in this build)")
        .map_err(runtime)?;
    let registry = Arc::new(registry);
    // Bind first: a taken port is reported before any work.
    let listener = config::bind(&args.listen, "riffle demo").await?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")
        .map_err(runtime)?;

    let (dir, _temp) = match &args.data {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("riffle-demo-")
                .tempdir()
                .context("cannot create a temporary directory")
                .map_err(runtime)?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let store = config::open_url(&registry, &StoreUrl::Embedded(dir.clone())).await?;

    let population = Population::new(&registry, "user", args.users, args.seed)
        .context("cannot build the synthetic population")
        .map_err(runtime)?;
    let started = Instant::now();
    load_population(&store, &population).await?;
    let rows = args.users * population.groups().count() as u64;
    println!(
        "riffle demo: loaded {} users ({rows} rows, {} groups) into {} in {:.1} s",
        args.users,
        population.groups().count(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    print_banner(&addr.to_string(), args.users);

    let ticker = tokio::spawn(tick_forever(
        store.clone(),
        population,
        args.seed,
        args.tick_users,
    ));
    let deps = ServeDeps {
        registry: registry.clone(),
        store,
        cache_enabled: registry.serve.cache.enabled,
        write_token: None,
    };
    let served = riffle_serve::run(listener, deps, shutdown::signal()).await;
    ticker.abort();
    served
        .context("the server stopped with an error")
        .map_err(runtime)?;
    println!("riffle demo: stopped");
    Ok(())
}

/// Writes every user's rows, a few big batches in flight, with a progress bar.
async fn load_population(store: &Arc<OnlineStore>, population: &Population) -> CmdResult {
    let bar = progress::counter(population.len(), "users");
    let mut writer = PipelinedWriter::new(store.clone(), 4);
    let mut failure = None;
    let now = Timestamp::now();
    for batch in population.batches(USERS_PER_BATCH, now) {
        writer.submit(batch).await;
        for outcome in writer.take_completed() {
            bar.inc(outcome.last_line - outcome.first_line + 1);
            if let Err(e) = outcome.result {
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            break;
        }
    }
    for outcome in writer.finish().await {
        bar.inc(outcome.last_line - outcome.first_line + 1);
        if let Err(e) = outcome.result {
            failure.get_or_insert(e);
        }
    }
    bar.finish_and_clear();
    match failure {
        None => Ok(()),
        Some(e) => Err(runtime(
            anyhow::Error::new(e).context("loading the synthetic users failed"),
        )),
    }
}

/// Every second, some users (by the power law) make a transaction: their velocity and
/// session rows are rewritten with event time now.
async fn tick_forever(store: Arc<OnlineStore>, population: Population, seed: u64, picks: usize) {
    let mut ticker = population.ticker(seed);
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let rows = ticker.tick(&population, picks, Timestamp::now());
        match store.write(&rows).await {
            Ok(()) => tracing::debug!(rows = rows.len(), "demo tick written"),
            Err(e) => tracing::warn!(error = %e, "demo tick not written"),
        }
    }
}

fn print_banner(addr: &str, users: u64) {
    let base = format!("http://{addr}");
    let last = users.saturating_sub(1);
    println!(
        r#"riffle demo: serving the fraud example on {base}
  users u0 … u{last} (u0 is the most active; u_new does not exist: it gets the training defaults)
  every second some active users make a transaction: user_velocity and user_session move

Try:
  curl -s {base}/health
  curl -s {base}/v1/features/user/u1
  curl -s '{base}/v1/features/user/u1?groups=user_velocity,user_session'
  curl -s -X POST {base}/v1/features -H 'content-type: application/json' \
    -d '{{"entity": "user", "ids": ["u1", "u2", "u_new"], "groups": ["user_velocity", "user_profile"]}}'
  curl -s -X POST {base}/get-online-features -H 'content-type: application/json' \
    -d '{{"features": ["user_velocity:tx_count_1h", "user_velocity:tx_sum_1h", "user_profile:credit_score_bucket"], "entities": {{"user_id": ["u1", "u_new"]}}}}'
  curl -s {base}/metrics | grep '^riffle_' | head -20
  curl -s {base}/openapi.json

Ctrl-C stops the demo."#
    );
}
