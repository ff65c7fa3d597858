//! `riffle serve-offline` through the real binary and a real Flight client (arrow-flight on
//! tonic), served by the shared listener layer: in plain gRPC it answers; with
//! `--tls-cert`/`--tls-key` a client trusting the test CA is answered (ALPN `h2`), one
//! trusting another CA is refused, and a plain-text client gets no answer and not a byte; a
//! non-loopback address with no credential is refused at start unless
//! `--allow-unauthenticated`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use common::certs::{install, mint_ca};
use common::{fraud_config, Running, TestCommand};
use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::Code;

/// `riffle serve-offline` on the fraud example at a free loopback port, with `extra`
/// arguments, in `cmd`'s directory: the process, its port and its log.
fn start(cmd: &mut TestCommand, extra: &[&str]) -> (Running, u16, PathBuf) {
    let port = riffle_testkit::free_port();
    let log = cmd.dir().join("serve-offline.log");
    let child = cmd
        .args(["serve-offline", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(fraud_config())
        .args(extra)
        .spawn_logged(&log);
    (Running(child), port, log)
}

/// A channel to the server: plain (`ca: None`) or TLS trusting only the CA in file `ca`.
async fn channel(port: u16, ca: Option<&Path>) -> Result<Channel, tonic::transport::Error> {
    let endpoint = match ca {
        None => Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap(),
        Some(ca) => {
            let pem = std::fs::read(ca).unwrap();
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pem))
                .domain_name("localhost");
            Channel::from_shared(format!("https://127.0.0.1:{port}"))
                .unwrap()
                .tls_config(tls)?
        }
    };
    endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// `list_flights` on a new connection: how many flights (always none), or why there was no
/// answer.
async fn list_flights(port: u16, ca: Option<&Path>) -> Result<usize, String> {
    let channel = channel(port, ca).await.map_err(|e| format!("{e:?}"))?;
    let mut client = FlightClient::new(channel);
    let flights = client
        .list_flights("")
        .await
        .map_err(|e| format!("{e:?}"))?;
    flights
        .try_collect::<Vec<_>>()
        .await
        .map(|f| f.len())
        .map_err(|e| format!("{e:?}"))
}

/// Feast's `get_historical_features` for one user, as auth.rs sends it: the gRPC status of
/// the answer (the example declares no history, so it is a refusal from the service).
async fn historical(port: u16, ca: &Path) -> (Code, String) {
    let mut client = FlightClient::new(channel(port, Some(ca)).await.unwrap());
    let command = serde_json::json!({
        "api": "get_historical_features",
        "feature_refs": ["user_velocity:tx_count_1h"],
        "project": "fraud",
    });
    let users: ArrayRef = Arc::new(StringArray::from(vec!["u1"]));
    let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000]));
    let frame =
        RecordBatch::try_from_iter([("user_id", users), ("event_timestamp", times)]).unwrap();
    let upload = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(command.to_string())))
        .build(futures::stream::iter([Ok(frame)]));
    let result = match client.do_exchange(upload).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Err(FlightError::Tonic(status)) => (status.code(), status.message().to_owned()),
        other => panic!("expected the service's refusal, got {other:?}"),
    }
}

/// Waits up to 60 s for the server to answer `list_flights`.
async fn wait_until_answering(port: u16, ca: Option<&Path>, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match list_flights(port, ca).await {
            Ok(0) => return,
            Ok(n) => panic!("{n} flights listed; the server keeps none"),
            Err(why) => assert!(
                Instant::now() < deadline,
                "serve-offline never answered ({why}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_grpc_is_answered() {
    let mut cmd = TestCommand::new();
    let (_running, port, log) = start(&mut cmd, &[]);
    wait_until_answering(port, None, &log).await;
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains(&format!("on grpc://127.0.0.1:{port} ")),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_test_ca_is_answered_and_plain_text_is_not() {
    let mut cmd = TestCommand::new();
    let dir = cmd.dir().to_path_buf();
    install(&dir, &mint_ca("first CA"), "first");
    let stranger = mint_ca("another CA");
    std::fs::write(dir.join("ca-another.pem"), stranger.pem()).unwrap();
    let (_running, port, log) = start(&mut cmd, &["--tls-cert", "tls.crt", "--tls-key", "tls.key"]);
    let ca = dir.join("ca-first.pem");
    wait_until_answering(port, Some(&ca), &log).await;
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains(&format!("on grpc+tls://127.0.0.1:{port} ")),
        "{printed}"
    );

    // A streaming call, reaching the service's own code (past the gate: no [auth]).
    let (code, message) = historical(port, &ca).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("riffle serve-offline"), "{message}");

    // A client trusting another CA is refused.
    let refused = list_flights(port, Some(&dir.join("ca-another.pem"))).await;
    assert!(refused.is_err(), "{refused:?}");

    // A plain-text gRPC client gets no answer.
    let plain = tokio::time::timeout(Duration::from_secs(15), list_flights(port, None))
        .await
        .expect("a plain-text client was left hanging");
    assert!(plain.is_err(), "plain text answered: {plain:?}");

    // Nor a byte: HTTP/2's preface to the TLS port is closed unanswered.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(got.is_empty(), "plain text got {} bytes", got.len());
}

#[test]
fn a_non_loopback_address_without_credentials_needs_allow_unauthenticated() {
    let (_, stderr) = TestCommand::new()
        .args(["serve-offline", "--listen", "0.0.0.0:0", "--config"])
        .arg(fraud_config())
        .expect_code(2);
    assert!(stderr.contains("not loopback"), "{stderr}");
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");

    let mut cmd = TestCommand::new();
    let log = cmd.dir().join("serve-offline.log");
    let child = cmd
        .args(["serve-offline", "--listen", "0.0.0.0:0", "--config"])
        .arg(fraud_config())
        .arg("--allow-unauthenticated")
        .spawn_logged(&log);
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        if printed.contains("riffle serve-offline: project fraud on grpc://0.0.0.0:") {
            assert!(printed.contains("open to the network"), "{printed}");
            break;
        }
        assert!(Instant::now() < deadline, "never started:\n{printed}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
