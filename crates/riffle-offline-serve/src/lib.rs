//! `riffle serve-offline`: Feast's remote offline store protocol (Arrow Flight, Feast 0.67's
//! `offline_store: type: remote`) in front of the training-set code, so a Feast user's
//! `get_historical_features(entity_df, features)` returns what `riffle training-set` writes:
//! the values `riffle serve` would have answered at every row's instant. Riffle's groups are
//! the feature views.
//!
//! [`command`] reads Feast's JSON commands, [`service`] is the Flight service,
//! [`historical`] answers `get_historical_features`, [`sources`] the data-source calls
//! `feast apply` makes, and [`error`] turns refusals into the gRPC statuses a client shows.

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
use riffle_registry::Registry;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

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

/// Serves Feast's offline store API on `listener` until `shutdown` completes.
pub async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    settings: OfflineServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let offline = OfflineService::new(registry, settings.max_concurrent, settings.gate);
    let service = FlightServiceServer::new(offline)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
