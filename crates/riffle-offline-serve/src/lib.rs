//! `riffle serve-offline`: Feast's remote offline store protocol (Arrow Flight, Feast 0.67's
//! `offline_store: type: remote`) in front of the training-set code, so a Feast user's
//! `get_historical_features(entity_df, features)` returns what `riffle training-set` writes:
//! the values `riffle serve` would have answered at every row's instant. Riffle's groups are
//! the feature views.
//!
//! [`command`] reads Feast's JSON commands, [`service`] is the Flight service,
//! [`historical`] answers `get_historical_features`, [`sources`] the data-source calls
//! `feast apply` makes, and [`error`] turns refusals into the gRPC statuses a client shows.
//!
//! The service is served as an axum router ([`router`]) through `riffle_listener`, like
//! every other Riffle listener, speaking HTTP/2 (gRPC's transport): the connection cap,
//! slow and idle clients closed, TLS (ALPN `h2`) with certificate reload, and graceful
//! shutdown are the listener's, not tonic's own server's.

#![forbid(unsafe_code)]

pub mod command;
pub mod error;
pub mod historical;
pub mod service;
pub mod sources;

use std::future::Future;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use riffle_auth::Gate;
use riffle_listener::{Listener, Protocol};
use riffle_registry::Registry;
use tonic::service::Routes;

pub use error::Refusal;
pub use service::OfflineService;

/// The largest message a client may send or receive: an entity frame of a few million rows
/// arrives as one message (gRPC's default is 4 MiB).
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// How the offline server runs.
#[derive(Clone)]
pub struct OfflineServeSettings {
    /// Calls computing at once; more wait their turn.
    pub max_concurrent: usize,
    /// Who may read history: the gRPC `authorization` metadata as a bearer token, and a
    /// read scope covering every group asked for.
    pub gate: Arc<Gate>,
}

/// The Flight service as an axum router: gRPC paths to the service, any other path answered
/// `UNIMPLEMENTED`. [`serve`] serves it; an owner with its own listener can too (over
/// HTTP/2: gRPC needs it).
pub fn router(registry: Arc<Registry>, settings: OfflineServeSettings) -> axum::Router {
    let offline = OfflineService::new(registry, settings.max_concurrent, settings.gate);
    let service = FlightServiceServer::new(offline)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Routes::new(service).prepare().into_axum_router()
}

/// Serves Feast's offline store API on `listener` until `shutdown` completes, then shuts
/// down gracefully (calls in flight finish within the listener's grace). The listener is
/// made to speak HTTP/2; its limits, TLS and metrics are the caller's.
///
/// # Errors
/// The listener's: its limits cannot work.
pub async fn serve(
    registry: Arc<Registry>,
    listener: Listener,
    settings: OfflineServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener
        .protocol(Protocol::Http2)
        .serve(router(registry, settings), shutdown)
        .await
}
