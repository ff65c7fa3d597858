//! `riffle token new NAME --scope S… [--rate N] [--config PATH]`: a fresh bearer token for a
//! new principal, printed once on stderr (for the person running it), and on stdout the
//! `[[auth.principals]]` entry for the registry or `auth.principals_file`, which keeps only
//! the token's SHA-256 (so `riffle token new … >> principals.toml` appends the entry alone). Each scope is
//! checked against the registry, as loading it would (exit 2 for an unknown group, service
//! or source).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use riffle_auth::token;

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// A fresh token for principal NAME, and its registry entry.
    New(NewTokenArgs),
}

#[derive(Debug, Args)]
pub struct NewTokenArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The principal's name, as audit lines and metrics will give it.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// What it may do (repeatable): read, read:GROUP, read:service:SERVICE, write,
    /// write:GROUP, ingest, ingest:SOURCE, admin, metrics.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<String>,
    /// Requests per second beyond which it gets 429.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
}

pub async fn run(args: TokenArgs) -> CmdResult {
    match args.action {
        TokenAction::New(args) => new(args),
    }
}

fn new(args: NewTokenArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    for scope in &args.scopes {
        registry
            .parse_scope(scope)
            .map_err(|why| usage(anyhow!("--scope {scope}: {why}")))?;
    }
    if let Some(rate) = args.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(usage(anyhow!("--rate {rate}: must be above 0")));
    }
    let entry = principal_entry(&args, &registry)?;
    let secret = token::new_token().map_err(|_| runtime(anyhow!("no secure random source")))?;
    let entry = entry.replace(DIGEST_SLOT, &token::digest(&secret).to_hex());
    eprintln!(
        "The token of {:?}, shown once: give it to its owner and keep it secret. Riffle keeps only its SHA-256 (the entry on stdout).",
        args.name
    );
    eprintln!("{secret}");
    println!(
        "# riffle token new {}: for the registry or auth.principals_file",
        args.name
    );
    print!("{entry}");
    Ok(())
}

const DIGEST_SLOT: &str = "{digest}";

/// The TOML entry, its digest left as [`DIGEST_SLOT`]; checked by loading it as a
/// principals file would be.
fn principal_entry(
    args: &NewTokenArgs,
    registry: &riffle_registry::Registry,
) -> Result<String, crate::exit::Failure> {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let scopes: Vec<String> = args.scopes.iter().map(|s| quoted(s.trim())).collect();
    let mut entry = format!(
        "[[auth.principals]]\nname = {}\ntoken_sha256 = \"{DIGEST_SLOT}\"\nscopes = [{}]\n",
        quoted(&args.name),
        scopes.join(", ")
    );
    if let Some(rate) = args.rate {
        entry.push_str(&format!("rate = {rate}\n"));
    }
    registry
        .check_principal_entry(&entry.replace(DIGEST_SLOT, &"0".repeat(64)))
        .map_err(|e| usage(anyhow!("{e}")))?;
    Ok(entry)
}
