//! `riffle validate`, the lesson's consistency validator: every value serve logged
//! (`[serve.logging]`) is recomputed offline at the instant it was served, by the
//! training-set code ([`crate::training_set::compute`]), and judged ([`verdict`]): equal,
//! different only because the pipeline was behind (equal to the offline value at the
//! watermark the server aged it by), served as untrustworthy by the server itself, or a real
//! mismatch. [`report`] sums it per feature; a group without history is reported as not
//! checked, never as mismatches.
//!
//! [`log`] reads the feature log.

pub mod log;
pub mod report;
pub mod verdict;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use riffle_core::{FeatureValue, Timestamp};
use riffle_registry::{FeatureGroup, Registry};

use crate::error::OfflineError;
use crate::read;
use crate::request::Selection;
use crate::spine::Spine;
use crate::training_set::{compute, history_location, FeatureRequest, Progress};
use log::Logged;
use report::{NotChecked, Report, Tally};
use verdict::judge;

/// What `riffle validate` is asked.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// The feature log: a folder, glob or URL of its Parquet files.
    pub log: String,
    /// The highest mismatch rate a feature may have and pass.
    pub max_mismatch: f64,
    /// Source name → its event history, overriding the registry's `offline`.
    pub events: HashMap<String, String>,
    /// Group name → its row history, overriding the registry's `offline`.
    pub history: HashMap<String, String>,
}

/// The spine's time column.
const TIME: &str = "event_timestamp";

/// Validates the feature log `request` names against the history `registry` declares,
/// at `now`.
pub async fn validate(
    registry: &Registry,
    request: &ValidateRequest,
    now: Timestamp,
    progress: &dyn Progress,
) -> Result<Report, OfflineError> {
    progress.phase("reading the feature log", 0, "rows");
    let ctx = read::ordered_context();
    let read = log::read(&ctx, &request.log).await?;
    let mut report = Report {
        log: request.log.clone(),
        files: read.files,
        values: read.values.len(),
        unusable: read.unusable,
        first_unusable: read.first_unusable,
        max_mismatch: request.max_mismatch,
        features: Vec::new(),
        not_checked: Vec::new(),
        passed: false,
    };
    let mut by_group: BTreeMap<String, Vec<Logged>> = BTreeMap::new();
    for value in read.values {
        by_group.entry(value.group.clone()).or_default().push(value);
    }
    for (name, values) in by_group {
        let Some(group) = registry.group(&name) else {
            report.not_checked.push(NotChecked {
                group: name,
                values: values.len(),
                reason: "no such group in the registry".into(),
            });
            continue;
        };
        if let Err(no_history) = history_location(registry, &features_of(group, request), group) {
            report.not_checked.push(NotChecked {
                group: name,
                values: values.len(),
                reason: no_history.to_string(),
            });
            continue;
        }
        let tallies = check_group(
            registry,
            group,
            &values,
            request,
            now,
            progress,
            &mut report,
        )
        .await?;
        for (feature, tally) in group.features.iter().zip(tallies) {
            if let Some(tally) = tally {
                report.features.push(tally.report(
                    format!("{}:{}", group.name, feature.name),
                    request.max_mismatch,
                ));
            }
        }
    }
    report.passed =
        report.features.iter().any(|f| f.compared > 0) && report.features.iter().all(|f| f.passed);
    Ok(report)
}

/// Every feature of `group`, with their statuses, from the history `request` names.
fn features_of(group: &FeatureGroup, request: &ValidateRequest) -> FeatureRequest {
    FeatureRequest {
        selection: Selection::Features(
            group
                .features
                .iter()
                .map(|f| format!("{}:{}", group.name, f.name))
                .collect(),
        ),
        with_status: true,
        full_feature_names: true,
        events: request.events.clone(),
        history: request.history.clone(),
    }
}

/// Recomputes `group` at every logged instant, caught up and as far behind as the served
/// row's basis, and judges each logged value; per feature, its tally (`None`: never
/// logged).
async fn check_group(
    registry: &Registry,
    group: &FeatureGroup,
    values: &[Logged],
    request: &ValidateRequest,
    now: Timestamp,
    progress: &dyn Progress,
    report: &mut Report,
) -> Result<Vec<Option<Tally>>, OfflineError> {
    let mut instants: Vec<Instant<'_>> = Vec::new();
    let mut seen: HashSet<Instant<'_>> = HashSet::new();
    for v in values {
        for key in asked(v) {
            if seen.insert(key) {
                instants.push(key);
            }
        }
    }
    let entity = registry.entity_of(group);
    let mut spine = Spine::from_batch(
        "the feature log",
        spine_batch(&entity.join_key, &instants)?,
        TIME,
        now,
    )?;
    spine.history_until = instants.iter().map(|(_, _, until)| *until).collect();
    let features = features_of(group, request);
    let answered = compute(registry, &features, spine, progress).await?;
    let row_of: HashMap<Instant<'_>, usize> = instants
        .iter()
        .enumerate()
        .map(|(row, key)| (*key, row))
        .collect();

    let mut tallies: Vec<Option<Tally>> = group.features.iter().map(|_| None).collect();
    for v in values {
        let Some(f) = group.feature_index(&v.feature) else {
            report.unusable += 1;
            report.first_unusable.get_or_insert_with(|| {
                format!("group {:?} has no feature {:?}", group.name, v.feature)
            });
            continue;
        };
        let served = match FeatureValue::from_json(group.features[f].ty, &v.value) {
            Ok(served) => served,
            Err(e) => {
                report.unusable += 1;
                report.first_unusable.get_or_insert_with(|| {
                    format!("{}:{} value {}: {e}", group.name, v.feature, v.value)
                });
                continue;
            }
        };
        let column = &answered.columns[f];
        let row = row_of[&(v.entity_id.as_str(), v.at, None)];
        let status = column.statuses.as_ref().map(|s| s[row]);
        let offline = &column.values[row];
        let behind: Vec<&FeatureValue> = asked(v)
            .skip(1)
            .flat_map(|key| {
                let row = row_of[&key];
                std::iter::once(&column.values[row])
                    .chain(column.alternatives.get(&row).into_iter().flatten())
            })
            .collect();
        let verdict = judge(
            &served,
            &v.status,
            (offline, status.unwrap_or(riffle_core::ValueStatus::Fresh)),
            &behind,
        );
        tallies[f].get_or_insert_with(Tally::default).add(
            verdict,
            &v.entity_id,
            v.at,
            &served,
            offline,
        );
    }
    Ok(tallies)
}

/// An entity's id, an instant, and the instant its history is cut off at (`None`: caught up).
type Instant<'a> = (&'a str, Timestamp, Option<Timestamp>);

/// What one logged value is recomputed as: first a caught-up pipeline at the served
/// instant; then, for a row served from behind (its basis before the instant), a pipeline
/// whose watermark was the basis (with each of the values it may have had, by where its
/// last flush fell: `OutputColumn::alternatives`), its windows moved to the served
/// instant (ingest's clock moves on while it lags) or still where they were at the basis
/// (the row as written, served before the next flush moved them).
fn asked(v: &Logged) -> impl Iterator<Item = Instant<'_>> {
    let id = v.entity_id.as_str();
    let behind = v.basis.filter(|b| *b < v.at);
    std::iter::once((id, v.at, None)).chain(
        behind
            .into_iter()
            .flat_map(move |b| [(id, v.at, Some(b)), (id, b, Some(b))]),
    )
}

/// The spine of `instants`: the join key as text and the instant.
fn spine_batch(join_key: &str, instants: &[Instant<'_>]) -> Result<RecordBatch, OfflineError> {
    let mut keys = StringBuilder::new();
    let mut times = TimestampMillisecondBuilder::new().with_timezone("UTC");
    for (id, t, _) in instants {
        keys.append_value(id);
        times.append_value(t.millis());
    }
    let schema = Schema::new(vec![
        Field::new(join_key, DataType::Utf8, false),
        Field::new(
            TIME,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![Arc::new(keys.finish()), Arc::new(times.finish())];
    RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|e| OfflineError::Request(format!("the feature log's instants: {e}")))
}
