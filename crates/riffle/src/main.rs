//! `riffle`: the command-line entry point. Glue only: parse flags, set up logging and TLS,
//! run one subcommand from [`cmd`], and turn its outcome into an exit code (the README's
//! "Commands": 0 ok, 1 runtime failure, 2 bad usage or invalid registry, 3 failed check).
mod access;
mod allocator;
mod cmd;
mod config;
mod exit;
mod kafka;
mod progress;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Clap prints usage errors itself and exits with 2, as §6 asks.
    let cli = cmd::Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // TLS to Redis (`rediss://`) needs a process-wide crypto provider; already set is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
