//! The HTTP feed of the pipeline: `POST /v1/events` on the ingest listener, for a source of
//! kind `http` (or `riffle ingest --http-events` over any source's schema).
//!
//! The body is one JSON object, a JSON array of objects, or NDJSON (`Content-Type:
//! application/x-ndjson`, one object per line). Each request becomes one
//! [`Feed::Acked`] item in the same bounded channel every input uses, and the answer waits
//! until a flush has made its records durable (rows, state and dead letters written):
//! a client that gets `200 {"accepted": n, "dead_lettered": m}` knows nothing is lost.
//!
//! - the caller must be let through by the auth gate with scope `ingest:<source>` (`401`,
//!   `403`, `429` otherwise, before the body is read); an accepted batch is audited;
//! - malformed items (a line that is not JSON, an object of the wrong schema, too late) are
//!   not errors: they go to the dead-letter sink with their reason and are counted in
//!   `dead_lettered`;
//! - a body that cannot be read as any of the three forms is `400` with the reason;
//! - a body over the limit is `413`;
//! - a full queue is `503` with `Retry-After: 1` at once (backpressure: memory stays
//!   bounded by the queue, never by the clients);
//! - a pipeline that stops (store failure, shutdown) before the records are durable, or
//!   that takes longer than the wait limit, is `503`: the records may or may not have been
//!   applied. Records carry offsets of one stream per process (like stdin), so a retry is
//!   not deduplicated against an earlier attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use riffle_auth::{Gate, Route};

use crate::feed::ack::Ack;
use crate::feed::item::{Feed, Record};
use crate::feed::stream_id::stdin_stream_id;
use crate::server::IngestStatus;

/// Largest body accepted by default (4 MiB).
pub const DEFAULT_MAX_BODY: usize = 4 << 20;
/// How long a request waits for its records to be durable by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// The stream id of this process's HTTP input (not deduplicated across runs).
pub fn http_stream_id() -> u64 {
    stdin_stream_id().rotate_left(17) ^ 0x4854_5450
}

/// The sending side of the HTTP input, shared by the request handlers.
pub struct HttpEvents {
    tx: mpsc::Sender<std::io::Result<Feed>>,
    stream: u64,
    /// The last offset given out; held while a request's records are queued so offsets
    /// reach the pipeline in order.
    last: Mutex<u64>,
    max_body: usize,
    max_wait: Duration,
    status: Arc<IngestStatus>,
    /// Who may send events, and the source they are events of.
    gate: Arc<Gate>,
    source: usize,
}

impl HttpEvents {
    /// The HTTP input and the pipeline's receiver; at most `capacity` requests queued;
    /// `access` is the gate callers pass and the source (an index into the registry's
    /// sources) whose `ingest` scope they need.
    pub fn channel(
        status: Arc<IngestStatus>,
        capacity: usize,
        max_body: usize,
        max_wait: Duration,
        access: (Arc<Gate>, usize),
    ) -> (Arc<Self>, mpsc::Receiver<std::io::Result<Feed>>) {
        let (gate, source) = access;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let events = Self {
            tx,
            stream: http_stream_id(),
            last: Mutex::new(0),
            max_body,
            max_wait,
            status,
            gate,
            source,
        };
        (Arc::new(events), rx)
    }

    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    /// `POST /v1/events`, to merge into the ingest listener's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/events", post(post_events))
            .with_state(self.clone())
    }

    /// Queues `payloads` as one acknowledged item, or says why not.
    fn queue(&self, payloads: Vec<Vec<u8>>, ack: Ack) -> Result<(), Refusal> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let n = payloads.len() as u64;
        let first = *last;
        let records = payloads
            .into_iter()
            .zip(first + 1..)
            .map(|(payload, offset)| Record {
                stream: self.stream,
                offset,
                partition: None,
                payload,
            })
            .collect();
        match self.tx.try_send(Ok(Feed::Acked(records, ack))) {
            Ok(()) => {
                *last = first + n;
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(Refusal::Busy),
            Err(TrySendError::Closed(_)) => Err(Refusal::Stopped),
        }
    }
}

enum Refusal {
    Busy,
    Stopped,
}

/// Splits a body into event payloads, or says why it cannot be read.
pub fn split_body(body: &[u8], ndjson: bool) -> Result<Vec<Vec<u8>>, String> {
    if ndjson {
        let items: Vec<Vec<u8>> = body
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(items);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON ({e}); send a JSON object, a JSON array of objects, or NDJSON with Content-Type: application/x-ndjson"
        )
    })?;
    match value {
        Value::Object(_) => Ok(vec![body.to_vec()]),
        Value::Array(items) => Ok(items
            .iter()
            // Serialising a parsed value cannot fail.
            .map(|item| serde_json::to_vec(item).unwrap_or_default())
            .collect()),
        other => Err(format!(
            "expected a JSON object or an array of objects, got {}",
            kind_of(&other)
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| {
            matches!(
                t.as_str(),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl"
            )
        })
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn post_events(
    State(events): State<Arc<HttpEvents>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let gate = &events.gate;
    let allowed = gate
        .authenticate(&headers, Route::Ingest)
        .and_then(|caller| gate.may_ingest(caller, events.source).map(|()| caller));
    let response = match allowed {
        Ok(caller) => {
            let (response, accepted) = handle(&events, &headers, body).await;
            if let Some(n) = accepted {
                let source = gate.source_name(events.source);
                gate.audit_done(caller, "ingest", source, n);
            }
            response
        }
        Err(denial) => denial.into_response(),
    };
    events
        .status
        .metrics
        .http_request(response.status().as_u16());
    response
}

/// The answer to a request already let through, and the events accepted (on a `200`
/// after the flush).
async fn handle(events: &HttpEvents, headers: &HeaderMap, body: Body) -> (Response, Option<u64>) {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} bytes: send smaller batches",
                events.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > events.max_body) {
        return (too_large(), None);
    }
    let bytes = match to_bytes(body, events.max_body).await {
        Ok(bytes) => bytes,
        Err(_) => return (too_large(), None),
    };
    let payloads = match split_body(&bytes, is_ndjson(headers)) {
        Ok(payloads) => payloads,
        Err(reason) => return (error(StatusCode::BAD_REQUEST, reason), None),
    };
    if payloads.is_empty() {
        let response = (
            StatusCode::OK,
            Json(json!({ "accepted": 0, "dead_lettered": 0 })),
        );
        return (response.into_response(), Some(0));
    }
    let (ack, done) = Ack::new();
    match events.queue(payloads, ack) {
        Ok(()) => {}
        Err(Refusal::Busy) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ingest queue is full: retry after a second",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return (response, None);
        }
        Err(Refusal::Stopped) => {
            return (
                error(StatusCode::SERVICE_UNAVAILABLE, "ingest is stopping"),
                None,
            );
        }
    }
    let failed = match tokio::time::timeout(events.max_wait, done).await {
        Ok(Ok(outcome)) => {
            let accepted = outcome.applied + outcome.already_applied;
            let body = json!({ "accepted": accepted, "dead_lettered": outcome.dead_lettered });
            return ((StatusCode::OK, Json(body)).into_response(), Some(accepted));
        }
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline stopped before these events were durable: they may or may not have been applied",
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "these events were not durable within {} s (the store is slow): they may still be applied",
                events.max_wait.as_secs()
            ),
        ),
    };
    (failed, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_registry::IngestSettings;

    /// A gate with no credential: the handler's own answers are tested here.
    fn open_gate() -> (Arc<Gate>, usize) {
        let registry = Arc::new(riffle_testkit::fixtures::generator_registry());
        (Arc::new(Gate::new(registry, None, "ingest")), 0)
    }

    fn ndjson() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers
    }

    #[tokio::test]
    async fn a_full_queue_is_a_503_with_retry_after_and_an_unanswered_one_times_out() {
        let status = Arc::new(IngestStatus::new("tx", &IngestSettings::default(), 1));
        // One slot, and nobody drains it: the pipeline is stuck.
        let (events, mut rx) =
            HttpEvents::channel(status, 1, 1 << 10, Duration::from_millis(50), open_gate());
        let first = handle(&events, &ndjson(), Body::from("{\"a\":1}\n{\"a\":2}"))
            .await
            .0;
        assert_eq!(
            first.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "not durable in time"
        );
        let second = handle(&events, &ndjson(), Body::from("{\"a\":3}")).await.0;
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[header::RETRY_AFTER], "1");
        let big = handle(&events, &ndjson(), Body::from(vec![b'x'; 2048]))
            .await
            .0;
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Only the first request was queued, with offsets 1 and 2.
        let Some(Ok(Feed::Acked(records, _))) = rx.recv().await else {
            panic!("the first request is queued");
        };
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1, 2]);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn an_answered_ack_is_a_200_with_the_counts() {
        let status = Arc::new(IngestStatus::new("tx", &IngestSettings::default(), 4));
        let (events, mut rx) =
            HttpEvents::channel(status, 4, 1 << 10, Duration::from_secs(5), open_gate());
        let pipeline = tokio::spawn(async move {
            if let Some(Ok(Feed::Acked(records, ack))) = rx.recv().await {
                ack.send(crate::feed::ack::AckOutcome {
                    applied: records.len() as u64 - 1,
                    already_applied: 0,
                    dead_lettered: 1,
                });
            }
        });
        let response = handle(&events, &ndjson(), Body::from("{}\nnot json\n{}"))
            .await
            .0;
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), 1 << 10).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"accepted": 2, "dead_lettered": 1}));
        pipeline.await.unwrap();
    }

    #[test]
    fn bodies_split_into_payloads() {
        let one = split_body(br#"{"a": 1}"#, false).unwrap();
        assert_eq!(one, vec![br#"{"a": 1}"#.to_vec()]);
        let many = split_body(br#"[{"a":1}, 2, {"b":"x"}]"#, false).unwrap();
        assert_eq!(
            many,
            vec![
                br#"{"a":1}"#.to_vec(),
                b"2".to_vec(),
                br#"{"b":"x"}"#.to_vec()
            ]
        );
        let lines = split_body(b"{\"a\":1}\r\n\nnot json\n  \n{\"b\":2}", true).unwrap();
        assert_eq!(
            lines,
            vec![
                b"{\"a\":1}".to_vec(),
                b"not json".to_vec(),
                b"{\"b\":2}".to_vec()
            ]
        );
        assert!(split_body(b"{\"a\":", false)
            .unwrap_err()
            .contains("not JSON"));
        assert!(split_body(b"42", false).unwrap_err().contains("a number"));
    }
}
