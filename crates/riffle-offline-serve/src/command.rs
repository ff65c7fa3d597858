//! Feast's remote offline store commands: the JSON a Feast 0.67 client puts in a Flight
//! descriptor (`{"command_id": …, "api": …, …its parameters}`), read into a [`Command`].
//! Feast sends the same JSON whether it reads (`do_exchange`) or writes (`do_put`).

use serde::Deserialize;
use serde_json::Value;

/// One call of Feast's offline store API.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `get_historical_features`: the uploaded table is the entity frame (the spine).
    HistoricalFeatures(HistoricalFeatures),
    /// `validate_data_source`, which `feast apply` sends for every data source.
    ValidateDataSource { name: String },
    /// `get_table_column_names_and_types_from_data_source`, for Feast's schema inference.
    DataSourceColumns { name: String },
    /// An API Riffle does not answer (offline writes, `persist`, pulls of raw rows): its
    /// name, for the refusal.
    Unsupported(String),
}

/// The parameters of `get_historical_features`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoricalFeatures {
    /// `view:feature`, Feast's references; Riffle's groups are the feature views.
    pub feature_refs: Vec<String>,
    #[serde(default)]
    pub full_feature_names: bool,
    /// The Feast project the client belongs to.
    #[serde(default)]
    pub project: Option<String>,
    /// Set when the client's entity frame is a SQL query rather than a DataFrame.
    #[serde(default)]
    pub entity_df_sql: Option<String>,
}

/// Why a descriptor is not a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a Feast offline store command: {0}")]
pub struct BadCommand(String);

impl Command {
    /// Reads a Flight descriptor's command bytes.
    pub fn parse(bytes: &[u8]) -> Result<Command, BadCommand> {
        let json: Value =
            serde_json::from_slice(bytes).map_err(|e| BadCommand(format!("not JSON ({e})")))?;
        let api = json
            .get("api")
            .and_then(Value::as_str)
            .ok_or_else(|| BadCommand("no \"api\" field".into()))?;
        match api {
            "get_historical_features" => serde_json::from_value(json.clone())
                .map(Command::HistoricalFeatures)
                .map_err(|e| BadCommand(format!("get_historical_features: {e}"))),
            "validate_data_source" => Ok(Command::ValidateDataSource {
                name: data_source_name(&json)?,
            }),
            "get_table_column_names_and_types_from_data_source" => Ok(Command::DataSourceColumns {
                name: data_source_name(&json)?,
            }),
            other => Ok(Command::Unsupported(other.to_string())),
        }
    }
}

/// The data source's name in `data_source_proto`: Feast sends the source's protobuf as JSON
/// text (`str(DataSource)`).
fn data_source_name(json: &Value) -> Result<String, BadCommand> {
    let text = json
        .get("data_source_proto")
        .and_then(Value::as_str)
        .ok_or_else(|| BadCommand("no \"data_source_proto\" field".into()))?;
    let proto: Value = serde_json::from_str(text)
        .map_err(|e| BadCommand(format!("data_source_proto is not JSON ({e})")))?;
    proto
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| BadCommand("data_source_proto has no name".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn historical_features_are_read_with_their_parameters() {
        let command = br#"{"command_id": "c1", "api": "get_historical_features",
            "feature_view_names": ["user_velocity"], "feature_refs": ["user_velocity:tx_count_1h"],
            "project": "fixtures", "full_feature_names": true, "name_aliases": [null]}"#;
        assert_eq!(
            Command::parse(command).unwrap(),
            Command::HistoricalFeatures(HistoricalFeatures {
                feature_refs: vec!["user_velocity:tx_count_1h".into()],
                full_feature_names: true,
                project: Some("fixtures".into()),
                entity_df_sql: None,
            })
        );
    }

    #[test]
    fn data_sources_are_named_from_their_proto() {
        let proto =
            r#"{"type": "BATCH_FILE", "name": "tx_src", "timestampField": "event_timestamp"}"#;
        let command =
            serde_json::json!({"api": "validate_data_source", "data_source_proto": proto});
        assert_eq!(
            Command::parse(command.to_string().as_bytes()).unwrap(),
            Command::ValidateDataSource {
                name: "tx_src".into()
            }
        );
    }

    #[test]
    fn other_apis_are_named_and_garbage_is_refused() {
        assert_eq!(
            Command::parse(br#"{"api": "offline_write_batch"}"#).unwrap(),
            Command::Unsupported("offline_write_batch".into())
        );
        for bad in [
            &b"not json"[..],
            br#"{"no_api": 1}"#,
            br#"{"api": "validate_data_source"}"#,
        ] {
            assert!(
                Command::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let err = Command::parse(br#"{"api": "get_historical_features"}"#).unwrap_err();
        assert!(err.to_string().contains("feature_refs"), "{err}");
    }
}
