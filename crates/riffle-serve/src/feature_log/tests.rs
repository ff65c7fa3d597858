//! The feature log's files: rotation by rows and by age, the temporary name and the rename,
//! the schema of what is written, and failures that lose rows without panicking.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use riffle_core::{EntityId, FeatureValue, Timestamp, ValueStatus};
use riffle_registry::Registry;
use tokio::time::Instant;

use super::files::LogFiles;
use super::record::{FeatureServed, GroupServed, Record};
use super::schema;
use crate::watermarks::Basis;

const REGISTRY: &str = r#"
[serve.logging]
sample_rate = 1.0
path = "unused"

[[entities]]
name = "user"
join_key = "user_id"

[[feature_groups]]
name = "g"
entity = "user"
version = 2
ttl = "1h"
freshness_slo = "30s"
staleness_limit = "10m"
features = [
  { name = "n", type = "int64", default = 0 },
  { name = "v", type = "float_vector", dimension = 2, default = [0.0, 0.0] },
]
"#;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_toml(REGISTRY).unwrap())
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap()
}

/// A record of entity `id` with both features of `g`, `n` = `n`.
fn record(id: &str, n: i64) -> Record {
    Record {
        at: at(1_800_000_000_000),
        endpoint: "/get-online-features",
        service: Some(Arc::from("svc")),
        entity: 0,
        id: EntityId::new(id).unwrap(),
        groups: vec![GroupServed {
            group: 0,
            status: ValueStatus::Stale,
            event_ts: Some(at(1_799_999_900_000)),
            age_ms: Some(45_000),
            basis: Some(Basis::Watermark(at(1_799_999_955_000))),
            features: vec![
                FeatureServed {
                    feature: 0,
                    value: FeatureValue::Int64(n),
                    status: ValueStatus::Stale,
                },
                FeatureServed {
                    feature: 1,
                    value: FeatureValue::FloatVector(vec![0.5, -1.0]),
                    status: ValueStatus::Stale,
                },
            ],
        }],
    }
}

/// A batch of `rows` rows (two per record), `n` numbering the records from 0.
fn rows(registry: &Registry, rows: usize) -> RecordBatch {
    let records: Vec<Record> = (0..rows / 2).map(|i| record("u1", i as i64)).collect();
    schema::batch(registry, &records).unwrap()
}

/// [`LogFiles::write`], returning the files it completed.
fn write(
    files: &mut LogFiles,
    batch: &RecordBatch,
    now: Instant,
) -> Result<Vec<super::files::Completed>, super::files::Failure> {
    let mut completed = Vec::new();
    files.write(batch, now, &mut completed).map(|()| completed)
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files
}

fn partial_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".parquet.partial")
        })
        .count()
}

fn read(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn ints(batches: &[RecordBatch], column: &str) -> Vec<Option<i64>> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column_by_name(column)
                .unwrap()
                .as_primitive::<Int64Type>();
            (0..col.len())
                .map(|i| col.is_valid(i).then(|| col.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(column).unwrap().as_string::<i32>();
            (0..col.len())
                .map(|i| col.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn files_rotate_at_exactly_rotate_rows_and_appear_only_when_complete() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log/nested");
    let mut files = LogFiles::new(log_dir.clone(), 5, Duration::from_secs(3600));
    let now = Instant::now();

    // 12 rows: two files of 5 complete, 2 rows stay in the open (hidden) file.
    let done = write(&mut files, &rows(&registry, 12), now).unwrap();
    assert_eq!(done.iter().map(|c| c.rows).collect::<Vec<_>>(), [5, 5]);
    assert_eq!(parquet_files(&log_dir).len(), 2, "the folder was created");
    assert_eq!(partial_files(&log_dir), 1);
    assert_eq!(files.open_rows(), 2);

    // 4 more: the open file reaches 5 and completes; 1 row opens a new one.
    let done = write(&mut files, &rows(&registry, 4), now).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(files.open_rows(), 1);

    // Graceful shutdown: the last file is completed and renamed, nothing partial is left.
    let last = files.finish().unwrap().unwrap();
    assert_eq!(last.rows, 1);
    assert_eq!(partial_files(&log_dir), 0);
    assert_eq!(files.finish().unwrap(), None, "nothing open any more");

    // Names sort by time (and sequence): reading them in name order gives the rows in
    // the order written.
    let paths = parquet_files(&log_dir);
    assert_eq!(paths.len(), 4);
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("served-")), "{names:?}");
    let all: Vec<RecordBatch> = paths.iter().flat_map(|p| read(p)).collect();
    let per_file: Vec<usize> = paths
        .iter()
        .map(|p| read(p).iter().map(RecordBatch::num_rows).sum())
        .collect();
    assert_eq!(per_file, [5, 5, 5, 1]);
    let values = strings(&all, "value");
    let expected: Vec<String> = (0..6)
        .chain(0..2)
        .flat_map(|i| [i.to_string(), "[0.5,-1.0]".to_owned()])
        .collect();
    assert_eq!(values, expected);
}

#[test]
fn a_file_open_rotate_after_is_completed() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let mut files = LogFiles::new(dir.path().to_owned(), 1_000, Duration::from_secs(10));
    let t0 = Instant::now();
    assert_eq!(files.rotate_if_due(t0).unwrap(), None, "nothing open");
    write(&mut files, &rows(&registry, 4), t0).unwrap();
    assert_eq!(
        files.rotate_if_due(t0 + Duration::from_secs(9)).unwrap(),
        None
    );
    assert!(parquet_files(dir.path()).is_empty());
    let done = files
        .rotate_if_due(t0 + Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(done.rows, 4);
    assert_eq!(parquet_files(dir.path()), [done.path]);
    // The next write opens a new file, aged from its own opening.
    write(
        &mut files,
        &rows(&registry, 2),
        t0 + Duration::from_secs(11),
    )
    .unwrap();
    assert_eq!(
        files.rotate_if_due(t0 + Duration::from_secs(20)).unwrap(),
        None
    );
}

#[test]
fn the_schema_is_typed_and_carries_what_was_answered() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let mut files = LogFiles::new(dir.path().to_owned(), 1_000, Duration::from_secs(60));
    write(&mut files, &rows(&registry, 2), Instant::now()).unwrap();
    let done = files.finish().unwrap().unwrap();
    let batches = read(&done.path);
    let schema = batches[0].schema();
    assert_eq!(schema.as_ref(), schema::schema().as_ref());
    let ts = |column: &str| {
        let col = batches[0]
            .column_by_name(column)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        (0..col.len()).map(|i| col.value(i)).collect::<Vec<_>>()
    };
    assert_eq!(ts("request_time"), [1_800_000_000_000; 2]);
    assert_eq!(ts("event_timestamp"), [1_799_999_900_000; 2]);
    assert_eq!(ts("watermark"), [1_799_999_955_000; 2]);
    assert_eq!(ints(&batches, "age_ms"), [Some(45_000); 2]);
    assert_eq!(ints(&batches, "group_version"), [Some(2); 2]);
    assert_eq!(strings(&batches, "entity_id"), ["u1", "u1"]);
    assert_eq!(strings(&batches, "join_key"), ["user_id", "user_id"]);
    assert_eq!(strings(&batches, "feature"), ["n", "v"]);
    assert_eq!(
        strings(&batches, "feature_type"),
        ["int64", "float_vector[2]"]
    );
    assert_eq!(strings(&batches, "status"), ["stale", "stale"]);
    assert_eq!(strings(&batches, "group_status"), ["stale", "stale"]);
    assert_eq!(
        strings(&batches, "freshness_basis"),
        ["watermark", "watermark"]
    );
    assert_eq!(strings(&batches, "feature_service"), ["svc", "svc"]);
    assert_eq!(strings(&batches, "endpoint"), ["/get-online-features"; 2]);
}

#[test]
fn a_folder_that_cannot_be_written_loses_rows_without_panicking() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be: every create fails.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let mut files = LogFiles::new(blocked.join("log"), 5, Duration::from_secs(60));
    for _ in 0..2 {
        let failure = write(&mut files, &rows(&registry, 4), Instant::now()).unwrap_err();
        assert_eq!(failure.rows_lost, 4);
        assert!(
            failure
                .error
                .to_string()
                .contains("creating the log folder"),
            "{}",
            failure.error
        );
    }
    assert_eq!(files.finish().unwrap(), None);
}
