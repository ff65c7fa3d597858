//! The subcommands, one file each, and the flags they share.
//!
//! - [`serve`]: the HTTP feature server.
//! - [`load`]: bulk-load precomputed rows of one group from CSV or NDJSON.
//! - [`ingest`]: replay NDJSON events of a source through the window pipeline.
//! - [`lag`]: how far each source's ingest is behind, from its published watermarks.
//! - [`demo`]: the fraud example, self-contained: synthetic users, a server, moving values.

pub mod demo;
pub mod ingest;
pub mod lag;
pub mod load;
pub mod serve;

use clap::{Parser, Subcommand};

use crate::exit::CmdResult;

/// Riffle: a real-time ML feature server.
#[derive(Debug, Parser)]
#[command(name = "riffle", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve features over HTTP (Riffle's /v1 API and Feast's feature-server API).
    Serve(serve::ServeArgs),
    /// Bulk-load precomputed feature rows of one group from a CSV or NDJSON file.
    Load(load::LoadArgs),
    /// Replay NDJSON events of one source into window features, exactly-once in effect.
    Ingest(ingest::IngestArgs),
    /// How far ingest is behind per source, and the staleness it implies per group (exit 3 above the threshold).
    Lag(lag::LagArgs),
    /// Run the fraud example end to end: synthetic users on the embedded store, served.
    Demo(demo::DemoArgs),
}

pub async fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Lag(args) => lag::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}
