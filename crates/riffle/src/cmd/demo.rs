//! `riffle demo [--listen ADDR] [--users N] [--rate R] [--data DIR]`: the fraud example,
//! from any folder with nothing installed. The registry is compiled in; the store is the
//! embedded one in a temporary directory (or `--data DIR`, kept). It bulk-loads a synthetic
//! population (power-law activity) for the batch groups (historical, embeddings, profile),
//! backfills half an hour of synthetic transactions through the real pipeline, then runs
//! the real ingest process in-process (`riffle_ingest::process`: generator → decode →
//! windows → rows and state in the store) for the stream groups (velocity, session) at
//! `--rate` events per second, serves everything, and prints example calls. Everything it
//! loads, backfills and generates is kept as history and every value served is logged
//! ([`registry`], [`history`]), so `riffle training-set` and `riffle validate` can be
//! tried on it at once, by the commands it prints. The
//! pipeline's own `/metrics` and `/health` listen on `ingest.listen` (another free port
//! when that one is taken). Ctrl-C stops it: the pipeline flushes, the servers drain.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Args;
use riffle_auth::Gate;
use riffle_core::Timestamp;
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::process::{
    GeneratorInput, IngestProcess, Input, ProcessError, ProcessOptions, Quiet,
};
use riffle_ingest::writer::{Batch, PipelinedWriter};
use riffle_registry::GroupId;
use riffle_serve::ServeDeps;
use riffle_store::{OnlineStore, StoreUrl};
use riffle_synth::Population;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config;
use crate::exit::{runtime, usage, CmdResult};
use crate::progress;
use crate::shutdown;

mod history;
mod registry;

use registry::SOURCE;

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
    /// Synthetic transactions per second fed through the ingest pipeline (bursts of 5–10×
    /// for a few seconds every minute; 2% from users never seen before).
    #[arg(long, default_value_t = 2000.0, value_name = "R")]
    pub rate: f64,
}

pub async fn run(args: DemoArgs) -> CmdResult {
    if args.users == 0 {
        return Err(usage(anyhow!("--users must be at least 1")));
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(usage(anyhow!(
            "--rate must be a positive number of events per second"
        )));
    }
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
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(runtime)?;
    // Absolute: the registry written beside the data names its history by these paths.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
        .map_err(runtime)?;
    let demo = registry::demo_registry(&dir).map_err(runtime)?;
    // A log left by an earlier demo in the same folder was served from another history.
    let _ = std::fs::remove_dir_all(&demo.log);
    let registry = Arc::new(demo.registry.clone());
    let store = config::open_url(&registry, &StoreUrl::Embedded(dir.clone())).await?;

    let source = registry
        .sources
        .iter()
        .position(|s| s.name == SOURCE)
        .context("the built-in fraud registry has no transactions source (a bug in this build)")
        .map_err(runtime)?;
    // Groups the pipeline computes: not bulk-loaded.
    let streamed: HashSet<GroupId> = registry
        .groups
        .iter()
        .filter(|g| g.source == Some(source))
        .map(|g| g.id)
        .collect();
    let population = Population::new(&registry, "user", args.users, args.seed)
        .context("cannot build the synthetic population")
        .map_err(runtime)?;
    let started = Instant::now();
    let mut kept = history::GroupRows::create(&registry)?;
    load_population(&store, &population, &streamed, &mut kept).await?;
    kept.finish()?;
    let batch_groups = population.groups().count() - streamed.len();
    println!(
        "riffle demo: loaded {} users ({} rows, {batch_groups} batch groups) into {} in {:.1} s",
        args.users,
        args.users * batch_groups as u64,
        dir.display(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let history = history::prepare(
        &demo, &registry, source, &store, &dir, args.users, args.seed,
    )
    .await?;
    println!(
        "riffle demo: backfilled {} events of the last 30 min through the pipeline in {:.1} s (history: {})",
        history.count,
        started.elapsed().as_secs_f64(),
        history.events.display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown::signal().await;
            let _ = stop_tx.send(true);
        }
    });

    let ingest_listener = bind_ingest(&registry.ingest.listen).await?;
    let ingest_addr = ingest_listener
        .local_addr()
        .context("cannot read the ingest address")
        .map_err(runtime)?;
    let process = IngestProcess::open(ProcessOptions {
        registry: registry.clone(),
        source,
        input: Input::Generator(GeneratorInput {
            rate: args.rate,
            entities: args.users,
            seed: args.seed,
            max_events: None,
            archive: Some(history.events.clone()),
        }),
        dead_letter: DeadLetterTarget::File(dir.join(format!("dead-letter-{SOURCE}.ndjson"))),
        listener: Some(riffle_listener::Listener::new(ingest_listener)),
        gate: Arc::new(Gate::new(registry.clone(), None, "ingest")),
    })
    .map_err(|e| match e {
        ProcessError::Generator(e) => {
            runtime(anyhow::Error::new(e).context("cannot build the event generator"))
        }
        ProcessError::Thread(e) => {
            runtime(anyhow::Error::new(e).context("cannot start the event generator"))
        }
        other => runtime(other),
    })?;
    print_banner(
        &addr.to_string(),
        &ingest_addr.to_string(),
        args.users,
        args.rate,
        &history,
    );

    let deps = ServeDeps {
        registry: registry.clone(),
        store: store.clone(),
        cache_enabled: registry.serve.cache.enabled,
        gate: Arc::new(Gate::new(registry.clone(), None, "serve")),
    };
    let ingest = async {
        let result = process
            .run(store, Some(Box::pin(stopped())), &mut Quiet)
            .await;
        if result.is_err() {
            // A failed pipeline ends the demo rather than serving values that stopped moving.
            let _ = stop_tx.send(true);
        }
        result
    };
    let (ingested, served) = tokio::join!(ingest, riffle_serve::run(listener, deps, stopped()));
    served
        .context("the server stopped with an error")
        .map_err(runtime)?;
    match ingested {
        Ok(summary) => println!(
            "riffle demo: ingested {} events ({} applied, {} rows written)",
            summary.events_read, summary.applied, summary.rows_written
        ),
        Err(e) => {
            return Err(runtime(
                anyhow::Error::new(e).context("the ingest pipeline stopped with an error"),
            ))
        }
    }
    println!("riffle demo: stopped");
    Ok(())
}

/// Writes every user's rows, a few big batches in flight, with a progress bar.
async fn load_population(
    store: &Arc<OnlineStore>,
    population: &Population,
    skip: &HashSet<GroupId>,
    kept: &mut history::GroupRows,
) -> CmdResult {
    let bar = progress::counter(population.len(), "users");
    let mut writer = PipelinedWriter::new(store.clone(), 4);
    let mut failure = None;
    let now = Timestamp::now();
    for mut batch in population.batches(USERS_PER_BATCH, now) {
        batch.rows.retain(|r| !skip.contains(&r.group));
        kept.keep(&batch.rows)?;
        writer
            .submit(Batch {
                index: batch.index,
                first_line: batch.first,
                last_line: batch.last,
                rows: batch.rows,
            })
            .await;
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

/// `ingest.listen`, or any free port when it is taken (another riffle may be running).
async fn bind_ingest(addr: &str) -> Result<TcpListener, crate::exit::Failure> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen for the ingest metrics")
            .map_err(runtime),
    }
}

fn print_banner(addr: &str, ingest: &str, users: u64, rate: f64, history: &history::History) {
    let base = format!("http://{addr}");
    let last = users.saturating_sub(1);
    let training_set = history.training_set_command();
    let validate = history.validate_command();
    println!(
        r#"riffle demo: serving the fraud example on {base}
  users u0 … u{last} (u0 is the most active; u_new does not exist: it gets the training defaults)
  {rate} transactions/s (bursts of 5–10×, 2% from new users) flow generator → ingest pipeline → store:
  user_velocity and user_session are computed from them; the other groups were bulk-loaded
  ingest metrics on http://{ingest}/metrics, health on http://{ingest}/health

Try:
  curl -s {base}/health
  curl -s '{base}/v1/features/user/u0?groups=user_velocity,user_session'
  curl -s {base}/v1/features/user/u1
  curl -s -X POST {base}/v1/features -H 'content-type: application/json' \
    -d '{{"entity": "user", "ids": ["u1", "u2", "u_new"], "groups": ["user_velocity", "user_profile"]}}'
  curl -s -X POST {base}/get-online-features -H 'content-type: application/json' \
    -d '{{"features": ["user_velocity:tx_count_1h", "user_velocity:tx_sum_1h", "user_profile:credit_score_bucket"], "entities": {{"user_id": ["u1", "u_new"]}}}}'
  curl -s {base}/metrics | grep '^riffle_' | head -20
  curl -s http://{ingest}/metrics | grep '^riffle_ingest_'
  curl -s {base}/openapi.json

The same features as of past instants, recomputed from the history kept by the code
that serves them (while the demo runs):
  {training_set}

Every value served is logged; the consistency validator recomputes each at the instant it
was served and says, per feature, whether serving and training agree (the log completes a
file every 10 s; try a few calls above first):
  {validate}

Ctrl-C stops the demo."#
    );
}
