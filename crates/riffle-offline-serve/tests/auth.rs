//! The offline server passes the same auth gate as serve: a Flight client (arrow-flight's,
//! over a real gRPC connection) without a token is refused as unauthenticated, a token
//! without a read scope over every group asked for as permission denied naming the scope,
//! and a token with it gets past the gate (to the next refusal: the example declares no
//! history).

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use riffle_auth::token::digest;
use riffle_auth::Gate;
use riffle_offline_serve::OfflineServeSettings;
use riffle_registry::Registry;
use tonic::Code;

const FRAUD: &str = include_str!("../../../examples/fraud/riffle.toml");

fn registry() -> Arc<Registry> {
    let principal = |name: &str, token: &str, scopes: &str| {
        format!(
            "[[auth.principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n",
            digest(token).to_hex()
        )
    };
    let text = format!(
        "{FRAUD}\n{}\n{}",
        principal("fraud-model", "model-token", r#"["read:service:fraud_v1"]"#),
        principal(
            "profile-loader",
            "loader-token",
            r#"["write:user_profile"]"#
        ),
    );
    Arc::new(Registry::from_toml(&text).unwrap())
}

/// `get_historical_features` of `features` for one user, with `token`: the gRPC status code
/// and message of the refusal (the test never expects an answer).
async fn historical(addr: &str, token: Option<&str>, features: &[&str]) -> (Code, String) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightClient::new(channel);
    if let Some(token) = token {
        client
            .add_header("authorization", &format!("Bearer {token}"))
            .unwrap();
    }
    let command = serde_json::json!({
        "api": "get_historical_features",
        "feature_refs": features,
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
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn historical_reads_need_a_read_scope_over_every_group() {
    let registry = registry();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings = OfflineServeSettings {
        max_concurrent: 1,
        gate: Arc::new(Gate::new(registry.clone(), None, "serve-offline")),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(riffle_offline_serve::serve(
        registry,
        riffle_listener::Listener::new(listener),
        settings,
        async {
            let _ = stopped.await;
        },
    ));

    let velocity = ["user_velocity:tx_count_1h"];
    let (code, message) = historical(&addr, None, &velocity).await;
    assert_eq!(code, Code::Unauthenticated, "{message}");
    let (code, _) = historical(&addr, Some("a-guess"), &velocity).await;
    assert_eq!(code, Code::Unauthenticated);

    let (code, message) = historical(&addr, Some("loader-token"), &velocity).await;
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("read:user_velocity"), "{message}");

    // A read is allowed only whole: one group outside the service refuses it.
    let mixed = [
        "user_velocity:tx_count_1h",
        "user_embeddings:user_embedding",
    ];
    let (code, message) = historical(&addr, Some("model-token"), &mixed).await;
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("read:user_embeddings"), "{message}");

    // Within the scope the gate lets it through; the example declares no history.
    let (code, message) = historical(&addr, Some("model-token"), &velocity).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(!message.contains("scope"), "{message}");
    for secret in ["model-token", "loader-token"] {
        assert!(!message.contains(secret));
    }

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
