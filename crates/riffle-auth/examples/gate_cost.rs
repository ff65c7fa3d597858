//! What the gate's own work costs one read request, timed directly rather than through a
//! server whose throughput on a shared machine varies more than the cost itself:
//! `bench/auth.sh` prints it beside the server's CPU time per request.
//!
//! Per request, as serve's guard and read handler do it: authenticate the `Authorization`
//! header (the token's SHA-256 looked up among the principals), put the caller in the
//! request's extensions, and check a read of the fraud example's two groups. The same with
//! the example's registry as is (no principal: every caller anonymous) is the baseline.
//!
//!     cargo run --release -p riffle-auth --example gate_cost [-- REQUESTS]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use axum::http::header::AUTHORIZATION;
use axum::http::{Extensions, HeaderMap, HeaderValue};
use riffle_auth::token::{digest, new_token};
use riffle_auth::{Gate, Route};
use riffle_registry::Registry;

const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2_000_000,
    };
    let token = new_token().map_err(|_| "no randomness for a token")?;
    let mut auth = String::new();
    for (name, scopes) in [
        ("fraud-model", "[\"read:service:fraud_v1\"]"),
        ("loader", "[\"write:user_profile\"]"),
        ("gateway", "[\"ingest:transactions\"]"),
        ("oncall", "[\"admin\", \"read\"]"),
    ] {
        let own = if name == "fraud-model" {
            token.clone()
        } else {
            new_token().map_err(|_| "no randomness")?
        };
        auth.push_str(&format!(
            "[[auth.principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n\n",
            digest(&own).to_hex()
        ));
    }
    let open = Arc::new(Registry::from_toml(FRAUD)?);
    let guarded = Arc::new(Registry::from_toml(&format!("{FRAUD}\n{auth}"))?);
    let groups = |r: &Registry| -> Result<Vec<usize>, String> {
        ["user_velocity", "user_profile"]
            .iter()
            .map(|g| r.group(g).map(|g| g.id).ok_or(format!("no group {g}")))
            .collect()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );

    let time = |gate: &Gate, groups: &[usize], headers: &HeaderMap| -> Result<f64, String> {
        let started = Instant::now();
        for _ in 0..requests {
            let caller = gate
                .authenticate(black_box(headers), Route::Read)
                .map_err(|d| format!("refused: {d:?}"))?;
            let mut extensions = Extensions::new();
            extensions.insert(caller);
            gate.may_read(caller, groups.iter().copied())
                .map_err(|d| format!("refused: {d:?}"))?;
            black_box(extensions);
        }
        Ok(started.elapsed().as_nanos() as f64 / f64::from(requests))
    };
    let open_gate = Gate::new(Arc::clone(&open), None, "serve");
    let guarded_gate = Gate::new(Arc::clone(&guarded), None, "serve");
    // Warm up both, then time them alternately, keeping the better of three.
    time(&open_gate, &groups(&open)?, &HeaderMap::new())?;
    time(&guarded_gate, &groups(&guarded)?, &headers)?;
    let (mut best_open, mut best_guarded) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        best_open = best_open.min(time(&open_gate, &groups(&open)?, &HeaderMap::new())?);
        best_guarded = best_guarded.min(time(&guarded_gate, &groups(&guarded)?, &headers)?);
    }
    println!("{best_open:.0} {best_guarded:.0}");
    Ok(())
}
