//! The benchmark baseline: the least an axum server can do per request (a fixed 300-byte
//! JSON body), on the same runtime settings as `riffle serve`. `bench/serve.sh` measures
//! Riffle against it in the same run, so figures are ratios that survive a noisy machine.
//!
//! Usage: `minimal_http 127.0.0.1:PORT`

use axum::routing::{get, post};
use axum::Router;

const BODY: &str = r#"{"entity":"user","id":"u12345","level":"healthy","values":{"tx_count_1h":{"value":3,"status":"fresh"},"tx_sum_1h":{"value":42.5,"status":"fresh"},"tx_count_24h":{"value":17,"status":"fresh"},"account_age_days":{"value":730,"status":"fresh"},"is_premium":{"value":true,"status":"fresh"},"pad":"xxxx"}}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6570".into());
    let app = Router::new()
        .route("/{*path}", get(|| async { BODY }))
        .route("/{*path}", post(|| async { BODY }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "minimal_http listening on {addr} ({} byte body)",
        BODY.len()
    );
    axum::serve(listener, app).await
}
