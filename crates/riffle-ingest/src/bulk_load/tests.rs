//! Loads into a real embedded store (and a Redis nobody listens on), read back.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use riffle_core::FeatureValue;
use riffle_registry::Registry;
use riffle_store::{EntityRead, OnlineStore, RowRead, StoreLimits, StoreUrl};

use super::*;

fn fraud() -> Registry {
    riffle_testkit::fixtures::fraud_registry()
}

async fn embedded(dir: &Path) -> Arc<OnlineStore> {
    let registry = Arc::new(fraud());
    let limits = StoreLimits::from_settings(&registry.store);
    Arc::new(
        OnlineStore::open(&StoreUrl::Embedded(dir.into()), registry, limits)
            .await
            .unwrap(),
    )
}

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

async fn profile(store: &OnlineStore, id: &str) -> Option<Vec<FeatureValue>> {
    let gid = store.registry().group("user_profile").unwrap().id;
    let reads = [EntityRead {
        entity: 0,
        id,
        groups: &[gid],
    }];
    match store.read(&reads).await.unwrap().remove(0).remove(0) {
        RowRead::Found(row) => Some(row.values),
        _ => None,
    }
}

const WITH_BAD_ROWS: &str = "user_id,account_age_days,credit_score_bucket,is_premium
u1,730,4,true
u2,abc,7,false
u3,3650,1,true
,1,1,true
u5,1,1
u6,10,,maybe
u7,20,2,false
";

#[tokio::test]
async fn bad_rows_are_skipped_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir.path().join("db")).await;
    let path = file(dir.path(), "p.csv", WITH_BAD_ROWS);
    let summary = load_file(
        store.clone(),
        &path,
        &LoadOptions::new("user_profile"),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(summary.rows_read, 7);
    assert_eq!(summary.rows_written, 3);
    assert_eq!(summary.rows_skipped, 4);
    let lines: Vec<u64> = summary.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 5, 6, 7]);
    assert!(summary.errors[0]
        .reason
        .starts_with("account_age_days: expected int64"));
    assert!(summary.errors[1]
        .reason
        .contains("user_id: entity id is empty"));
    assert!(summary.errors[2]
        .reason
        .contains("3 field(s) where the header has 4"));
    assert!(summary.errors[3].reason.starts_with("is_premium"));
    assert!(summary.succeeded(), "{:?}", summary.failure());
    assert_eq!(
        profile(&store, "u1").await,
        Some(vec![
            FeatureValue::Int64(730),
            FeatureValue::Int64(4),
            FeatureValue::Bool(true)
        ])
    );
    assert_eq!(profile(&store, "u2").await, None);
    assert!(profile(&store, "u7").await.is_some());
}

#[tokio::test]
async fn strict_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir.path().join("db")).await;
    let path = file(dir.path(), "p.csv", WITH_BAD_ROWS);
    let mut options = LoadOptions::new("user_profile");
    options.strict = true;
    let summary = load_file(store.clone(), &path, &options, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.rows_written, 0);
    assert!(summary.rows_skipped >= 1);
    assert_eq!(summary.errors[0].line, 3);
    let failure = summary.failure().unwrap();
    assert!(failure.contains("first at line 3"), "{failure}");
    assert!(failure.contains("nothing was written"), "{failure}");
    assert_eq!(
        profile(&store, "u1").await,
        None,
        "valid rows are not written either"
    );
    assert_eq!(profile(&store, "u3").await, None);

    // The same file without its bad rows loads whole.
    let good: String = WITH_BAD_ROWS
        .lines()
        .enumerate()
        .filter(|(i, _)| !summary.errors.iter().any(|e| e.line == *i as u64 + 1))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let path = file(dir.path(), "good.csv", &good);
    let summary = load_file(store.clone(), &path, &options, &NoProgress)
        .await
        .unwrap();
    assert!(summary.failure().is_none(), "{:?}", summary.failure());
    assert!(summary.rows_written > 0);
    assert!(profile(&store, "u1").await.is_some());
}

#[tokio::test]
async fn header_problems_stop_the_load_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir.path().join("db")).await;
    let path = file(
        dir.path(),
        "p.csv",
        "user_id,account_age_days,typo\nu1,1,2\n",
    );
    let err = load_file(store, &path, &LoadOptions::new("user_profile"), &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"typo\" is not a feature"), "{text}");
    assert!(text.contains("credit_score_bucket, is_premium"), "{text}");
}

#[tokio::test]
async fn ndjson_with_timestamps_and_duplicate_ids_last_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir.path().join("db")).await;
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "{{\"user_id\": \"u1\", \"account_age_days\": {i}, \"credit_score_bucket\": 1, \"is_premium\": false, \"event_timestamp\": 1795694400000}}\n"
        ));
    }
    text.push_str("\n{\"user_id\": \"u2\"}\n");
    let path = file(dir.path(), "p.jsonl", &text);
    let mut options = LoadOptions::new("user_profile");
    options.batch_size = 3;
    options.max_in_flight = 8;
    let summary = load_file(store.clone(), &path, &options, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.format, Format::Ndjson);
    assert_eq!((summary.rows_read, summary.rows_written), (51, 50));
    assert_eq!(summary.errors[0].line, 52);
    assert_eq!(
        profile(&store, "u1").await.unwrap()[0],
        FeatureValue::Int64(49)
    );
}

#[tokio::test]
async fn a_failed_store_names_the_lines_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(fraud());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = StoreUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
    let limits = StoreLimits::from_settings(&registry.store);
    let store = Arc::new(OnlineStore::open(&url, registry, limits).await.unwrap());
    let mut text = String::from("user_id,account_age_days,credit_score_bucket,is_premium\n");
    for i in 0..100 {
        text.push_str(&format!("u{i},1,1,true\n"));
    }
    let path = file(dir.path(), "p.csv", &text);
    let mut options = LoadOptions::new("user_profile");
    options.batch_size = 10;
    let summary = load_file(store, &path, &options, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.rows_written, 0);
    assert!(!summary.failed_batches.is_empty());
    assert_eq!(summary.failed_batches[0].first_line, 2);
    let unread = summary.rows_read - summary.rows_not_written - summary.rows_written;
    assert_eq!(unread, summary.rows_skipped);
    assert!(summary.failure().unwrap().contains("not written"));
    if let Some(line) = summary.unread_after_line {
        assert!(line < 101);
    } else {
        assert_eq!(summary.rows_read, 100);
    }
}

#[test]
fn formats_are_detected_from_the_extension() {
    assert_eq!(Format::detect(Path::new("a.CSV")), Some(Format::Csv));
    assert_eq!(Format::detect(Path::new("a.jsonl")), Some(Format::Ndjson));
    assert_eq!(Format::detect(Path::new("a.json")), Some(Format::Ndjson));
    assert_eq!(Format::detect(Path::new("a.parquet")), None);
    assert_eq!("ndjson".parse::<Format>().unwrap(), Format::Ndjson);
    assert!("xml".parse::<Format>().is_err());
}
