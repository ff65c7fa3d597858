//! Writing a training set: the spine's columns as read, then one typed column per feature
//! (int64, float64, bool, utf8, list of float32) and, on request, its status, as one Parquet
//! file written beside its final name and renamed into place, so a reader never sees half.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use riffle_core::{FeatureType, FeatureValue, ValueStatus};

use crate::error::OfflineError;

/// One feature's column: its name, type and a value per spine row.
pub struct OutputColumn {
    pub name: String,
    pub ty: FeatureType,
    pub values: Vec<FeatureValue>,
    /// `Some` with `--with-status`.
    pub statuses: Option<Vec<ValueStatus>>,
    /// For a row answered as a pipeline behind (a spine's history cut-off): the other
    /// values it may have served, had its last flush taken in some of the events that
    /// arrived while its watermark stood at the cut-off. Not written; `riffle validate`
    /// accepts any of them as lag.
    pub alternatives: BTreeMap<usize, Vec<FeatureValue>>,
}

/// The spine's columns followed by `columns`, as one record batch.
pub fn batch(spine: &RecordBatch, columns: &[OutputColumn]) -> Result<RecordBatch, OfflineError> {
    let schema = spine.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = spine.columns().to_vec();
    for column in columns {
        let taken = |name: &str| fields.iter().any(|f| f.name() == name);
        if taken(&column.name) {
            return Err(OfflineError::Request(format!(
                "the spine already has a column {:?}: pass --full-feature-names or rename it",
                column.name
            )));
        }
        let array = typed(column.ty, &column.values);
        fields.push(Field::new(&column.name, array.data_type().clone(), true));
        arrays.push(array);
        if let Some(statuses) = &column.statuses {
            let name = format!("{}__status", column.name);
            let mut b = StringBuilder::new();
            for s in statuses {
                b.append_value(s.as_str());
            }
            fields.push(Field::new(
                name,
                datafusion::arrow::datatypes::DataType::Utf8,
                false,
            ));
            arrays.push(Arc::new(b.finish()));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| OfflineError::Request(format!("the training set's columns: {e}")))
}

/// A column of `ty` from served values (never `Null`: a default is served instead; a value
/// of another type, which the registry's checks rule out, is written as null).
fn typed(ty: FeatureType, values: &[FeatureValue]) -> ArrayRef {
    match ty {
        FeatureType::Int64 => {
            let mut b = Int64Builder::with_capacity(values.len());
            for v in values {
                b.append_option(match v {
                    FeatureValue::Int64(n) => Some(*n),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        FeatureType::Float64 => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in values {
                b.append_option(match v {
                    FeatureValue::Float64(f) => Some(*f),
                    FeatureValue::Int64(n) => Some(*n as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        FeatureType::Bool => {
            let mut b = BooleanBuilder::with_capacity(values.len());
            for v in values {
                b.append_option(match v {
                    FeatureValue::Bool(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        FeatureType::String => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    FeatureValue::String(s) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FeatureType::FloatVector { .. } => {
            let mut b = ListBuilder::new(Float32Builder::new());
            for v in values {
                match v {
                    FeatureValue::FloatVector(xs) => {
                        b.values().append_slice(xs);
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// Writes `batch` to `path` as Parquet: to a temporary file beside it, then renamed.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), OfflineError> {
    let failed = |e: &dyn std::fmt::Display| OfflineError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    let file = File::create(&partial).map_err(|e| failed(&e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| failed(&e))?;
    writer.write(batch).map_err(|e| failed(&e))?;
    writer.close().map_err(|e| failed(&e))?;
    std::fs::rename(&partial, path).map_err(|e| failed(&e))
}
