//! What the feature-log tests share: reading a log folder's Parquet files back into rows.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// One logged row, as read back.
#[derive(Debug, Clone)]
pub struct Row {
    pub request_time: i64,
    pub endpoint: String,
    pub service: Option<String>,
    pub id: String,
    pub group: String,
    pub group_status: String,
    pub event_ts: Option<i64>,
    pub age_ms: Option<i64>,
    pub basis: Option<String>,
    pub watermark: Option<i64>,
    pub feature: String,
    pub value: Value,
    pub status: String,
}

pub fn read_log(dir: &Path) -> (Vec<PathBuf>, Vec<Row>) {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("log folder")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let mut rows = Vec::new();
    for path in &paths {
        let file = File::open(path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a complete Parquet file")
            .build()
            .expect("reader");
        for batch in reader {
            rows.extend(rows_of(&batch.expect("batch")));
        }
    }
    (paths, rows)
}

fn rows_of(b: &RecordBatch) -> Vec<Row> {
    let text = |name: &str, i: usize| {
        let c = b.column_by_name(name).expect(name).as_string::<i32>();
        c.is_valid(i).then(|| c.value(i).to_owned())
    };
    let time = |name: &str, i: usize| {
        let c = b
            .column_by_name(name)
            .expect(name)
            .as_primitive::<TimestampMillisecondType>();
        c.is_valid(i).then(|| c.value(i))
    };
    let int = |name: &str, i: usize| {
        let c = b
            .column_by_name(name)
            .expect(name)
            .as_primitive::<Int64Type>();
        c.is_valid(i).then(|| c.value(i))
    };
    (0..b.num_rows())
        .map(|i| Row {
            request_time: time("request_time", i).expect("always set"),
            endpoint: text("endpoint", i).expect("always set"),
            service: text("feature_service", i),
            id: text("entity_id", i).expect("always set"),
            group: text("group", i).expect("always set"),
            group_status: text("group_status", i).expect("always set"),
            event_ts: time("event_timestamp", i),
            age_ms: int("age_ms", i),
            basis: text("freshness_basis", i),
            watermark: time("watermark", i),
            feature: text("feature", i).expect("always set"),
            value: serde_json::from_str(&text("value", i).expect("always set"))
                .expect("value is JSON"),
            status: text("status", i).expect("always set"),
        })
        .collect()
}
