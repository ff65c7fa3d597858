//! The Arrow Flight service Feast's remote offline store talks to. Feast 0.67 reads through
//! one `do_exchange` stream (the descriptor's command, then the entity frame up; the result
//! down) and writes through `do_put`; nothing is kept between calls, so any number of
//! servers can stand behind one address. Every call passes the auth gate first (the bearer
//! token in the gRPC `authorization` metadata; a historical read needs a read scope over
//! every group it asks for). Every other Flight call is refused by name.

use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use futures::future;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use riffle_auth::{Caller, Gate, Route};
use riffle_core::Timestamp;
use riffle_offline::request::{self, Selection};
use riffle_registry::Registry;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use crate::command::Command;
use crate::error::Refusal;
use crate::{historical, sources};

/// The offline server: the registry it answers from, who may call it, and how many calls
/// may compute at once.
pub struct OfflineService {
    registry: Arc<Registry>,
    gate: Arc<Gate>,
    /// Calls that compute (read history, replay windows) wait here, so a burst of training
    /// set requests queues instead of holding every history in memory at once.
    computing: Semaphore,
}

impl OfflineService {
    pub fn new(registry: Arc<Registry>, max_concurrent: usize, gate: Arc<Gate>) -> Self {
        OfflineService {
            registry,
            gate,
            computing: Semaphore::new(max_concurrent.max(1)),
        }
    }

    /// Who is calling, from the gRPC metadata (where Feast's client puts its bearer token).
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let headers = request.metadata().clone().into_headers();
        self.gate
            .authenticate(&headers, Route::Read)
            .map_err(|denial| Status::from(Refusal::Denied(denial)))
    }

    /// Answers a read command with the table uploaded beside it; `caller` must be allowed
    /// to read every group a historical read asks for.
    async fn read(
        &self,
        caller: Caller,
        command: Command,
        upload: RecordBatch,
    ) -> Result<RecordBatch, Refusal> {
        match command {
            Command::HistoricalFeatures(request) => {
                let selection = Selection::Features(request.feature_refs.clone());
                let columns = request::columns(&self.registry, &selection, false)
                    .map_err(|e| Refusal::Request(e.to_string()))?;
                self.gate
                    .may_read(caller, columns.iter().map(|c| c.feature.group))
                    .map_err(Refusal::Denied)?;
                let _permit = self
                    .computing
                    .acquire()
                    .await
                    .map_err(|e| Refusal::Internal(e.to_string()))?;
                historical::answer(&self.registry, &request, upload, Timestamp::now()).await
            }
            Command::DataSourceColumns { name } => sources::columns(&self.registry, &name),
            Command::ValidateDataSource { .. } => Err(Refusal::Request(
                "validate_data_source is a write (do_put), not a read".into(),
            )),
            Command::Unsupported(api) => Err(unsupported(&api)),
        }
    }

    /// Carries out a write command.
    fn write(&self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::ValidateDataSource { name } => sources::validate(&self.registry, &name),
            Command::Unsupported(api) => Err(unsupported(&api)),
            _ => Err(Refusal::Request(
                "a read (get_historical_features, column listing) sent as a write: use do_exchange"
                    .into(),
            )),
        }
    }
}

fn unsupported(api: &str) -> Refusal {
    Refusal::Unsupported(format!(
        "{api} is not served: Riffle's offline history is what its registry declares \
         (`offline` on sources and groups), written by ingest and load, not through Feast"
    ))
}

/// Reads an upload: the command in its first message's descriptor, then its table (an empty
/// table when nothing but the schema came).
async fn upload(mut data: Streaming<FlightData>) -> Result<(Command, RecordBatch), Status> {
    let first = data
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("riffle serve-offline: an empty stream"))?;
    let descriptor = first.flight_descriptor.clone().ok_or_else(|| {
        Status::invalid_argument("riffle serve-offline: the first message has no descriptor")
    })?;
    let command = Command::parse(&descriptor.cmd)
        .map_err(|e| Status::invalid_argument(format!("riffle serve-offline: {e}")))?;
    // A client may open an exchange with a message that carries only the descriptor
    // (pyarrow does); messages without an IPC header hold no Arrow data and are skipped.
    let all = stream::once(async { Ok(first) })
        .chain(data)
        .try_filter(|message| future::ready(!message.data_header.is_empty()))
        .map_err(FlightError::from);
    let mut decoded = FlightRecordBatchStream::new_from_flight_data(all);
    let mut batches = Vec::new();
    while let Some(batch) = decoded.try_next().await? {
        batches.push(batch);
    }
    let schema = decoded
        .schema()
        .cloned()
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let table = concat_batches(&schema, &batches)
        .map_err(|e| Status::invalid_argument(format!("riffle serve-offline: the upload: {e}")))?;
    Ok((command, table))
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

fn refused<T>(call: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "riffle serve-offline: {call} is not part of Feast's remote offline store protocol \
         as Feast 0.67 speaks it (do_exchange reads, do_put writes)"
    )))
}

#[tonic::async_trait]
impl FlightService for OfflineService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;
    type DoExchangeStream = Stream<FlightData>;

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let caller = self.caller(&request)?;
        let (command, table) = upload(request.into_inner()).await?;
        let answer = self.read(caller, command, table).await.map_err(|refusal| {
            tracing::warn!(%refusal, "refused a read");
            Status::from(refusal)
        })?;
        let encoded = FlightDataEncoderBuilder::new()
            .build(stream::once(async move { Ok(answer) }))
            .map_err(Status::from);
        Ok(Response::new(encoded.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.caller(&request)?;
        let (command, _) = upload(request.into_inner()).await?;
        self.write(command).map_err(|refusal| {
            tracing::warn!(%refusal, "refused a write");
            Status::from(refusal)
        })?;
        Ok(Response::new(stream::empty().boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        refused("handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        // Nothing is kept between calls, so there is never a flight to list.
        Ok(Response::new(stream::empty().boxed()))
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        refused("get_flight_info")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        refused("poll_flight_info")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        refused("get_schema")
    }

    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        refused("do_get")
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        refused("do_action")
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(stream::empty().boxed()))
    }
}
