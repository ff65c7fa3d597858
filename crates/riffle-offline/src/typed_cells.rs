//! Arrow cells read straight into the typed values of a group's row history — its entity id,
//! its time, its feature values — without building the JSON of [`crate::cells`] first.
//!
//! The rules stay where they are: a history cell means what
//! `FeatureValue::from_json(ty, &cells::to_json(cell))` makes of it. The shortcuts here are
//! only the cases where the answer is plain (an `Int64` column read as an int64 feature, text
//! within the length limit as a string, finite floats, a vector of the declared dimension with
//! every element finite, …); every other cell — nulls inside a list, a float with a fraction
//! for an int feature, a non-finite float, text too long, any rejection — goes through the
//! JSON path itself, so it is typed and worded exactly as before. The tests read the same
//! cells both ways.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use riffle_core::{
    FeatureType, FeatureValue, Timestamp, TimestampError, ValueError, MAX_STRING_LEN,
};
use serde_json::Value;

use crate::cells;

/// Cell `row` of `array` as a value of type `ty`: what
/// `FeatureValue::from_json(ty, &cells::to_json(array, row)?)` gives (the outer `Err` is
/// `to_json`'s: a cell of a type no feature holds).
pub fn value(
    array: &dyn Array,
    row: usize,
    ty: FeatureType,
) -> Result<Result<FeatureValue, ValueError>, String> {
    if array.is_null(row) {
        return Ok(Ok(FeatureValue::Null));
    }
    let plain = match ty {
        FeatureType::Int64 => int(array, row).map(FeatureValue::Int64),
        FeatureType::Float64 => match array.data_type() {
            // A non-finite float is JSON null (`cells::to_json`), so `Null`.
            DataType::Float64 => Some(finite_or_null(
                array.as_primitive::<Float64Type>().value(row),
            )),
            DataType::Float32 => Some(finite_or_null(f64::from(
                array.as_primitive::<Float32Type>().value(row),
            ))),
            _ => None,
        },
        FeatureType::Bool => match array.data_type() {
            DataType::Boolean => Some(FeatureValue::Bool(array.as_boolean().value(row))),
            _ => None,
        },
        FeatureType::String => text(array, row)
            .filter(|s| s.len() <= MAX_STRING_LEN)
            .map(|s| FeatureValue::String(s.to_owned())),
        FeatureType::FloatVector { dim } => vector(array, row, dim as usize),
    };
    match plain {
        Some(v) => Ok(Ok(v)),
        None => Ok(FeatureValue::from_json(ty, &cells::to_json(array, row)?)),
    }
}

/// Cell `row` of `array` as an event time: what `Timestamp::from_json(&cells::to_json(…)?)`
/// gives (the outer `Err` is `to_json`'s).
pub fn time(array: &dyn Array, row: usize) -> Result<Result<Timestamp, TimestampError>, String> {
    let millis = match array.data_type() {
        _ if array.is_null(row) => None,
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().value(row)),
        DataType::Timestamp(unit, _) => Some(cells::timestamp_millis(array, *unit, row)),
        _ => None,
    };
    match millis {
        Some(ms) => Ok(Timestamp::from_millis(ms)),
        None => Ok(Timestamp::from_json(&cells::to_json(array, row)?)),
    }
}

/// Cell `row` of `array` as the text of an entity id: a string as itself, an integer in
/// decimal; `Err` is the cell as JSON when it is neither.
pub fn id(array: &dyn Array, row: usize) -> Result<String, Result<Value, String>> {
    if !array.is_null(row) {
        if let Some(s) = text(array, row) {
            return Ok(s.to_owned());
        }
        if let Some(i) = int(array, row) {
            return Ok(i.to_string());
        }
    }
    match cells::to_json(array, row) {
        Ok(Value::String(s)) => Ok(s),
        Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(other),
    }
}

fn finite_or_null(f: f64) -> FeatureValue {
    if f.is_finite() {
        FeatureValue::Float64(f)
    } else {
        FeatureValue::Null
    }
}

/// An integer cell that fits an `i64`.
fn int(array: &dyn Array, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => i64::try_from(array.as_primitive::<UInt64Type>().value(row)).ok()?,
        _ => return None,
    })
}

fn text(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

/// A list of `dim` finite, non-null floats, as a vector (`f32`, as from_json narrows).
fn vector(array: &dyn Array, row: usize, dim: usize) -> Option<FeatureValue> {
    let items = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(row),
        DataType::LargeList(_) => array.as_list::<i64>().value(row),
        DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(row),
        _ => return None,
    };
    if items.len() != dim || items.null_count() > 0 {
        return None;
    }
    let floats: Vec<f32> = match items.data_type() {
        DataType::Float32 => items.as_primitive::<Float32Type>().values().to_vec(),
        // As from_json: the f64 narrowed to f32.
        DataType::Float64 => (items.as_primitive::<Float64Type>().values().iter())
            .map(|&f| f as f32)
            .collect(),
        _ => return None,
    };
    let finite = match items.data_type() {
        DataType::Float64 => {
            (items.as_primitive::<Float64Type>().values().iter()).all(|f| f.is_finite())
        }
        _ => floats.iter().all(|f| f.is_finite()),
    };
    finite.then_some(FeatureValue::FloatVector(floats))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
        Int64Array, LargeStringArray, ListArray, StringArray, TimestampMicrosecondArray,
        UInt64Array,
    };
    use datafusion::arrow::datatypes::Field;

    use super::*;

    /// The JSON path: what a cell meant before the shortcuts.
    fn by_json(
        array: &dyn Array,
        row: usize,
        ty: FeatureType,
    ) -> Result<Result<FeatureValue, ValueError>, String> {
        Ok(FeatureValue::from_json(ty, &cells::to_json(array, row)?))
    }

    fn same_both_ways(array: &ArrayRef, ty: FeatureType) {
        for row in 0..array.len() {
            let (typed, json) = (
                value(array.as_ref(), row, ty),
                by_json(array.as_ref(), row, ty),
            );
            // Debug, so a float compares by its bits (a negative zero is not a zero).
            assert_eq!(
                format!("{typed:?}"),
                format!("{json:?}"),
                "row {row} as {ty:?}"
            );
        }
    }

    #[test]
    fn cells_type_as_the_json_path_types_them() {
        let long = "x".repeat(MAX_STRING_LEN + 1);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(7), None, Some(i64::MIN)])),
            Arc::new(Int32Array::from(vec![Some(-3), None])),
            Arc::new(UInt64Array::from(vec![1, u64::MAX, 1 << 60])),
            Arc::new(Float64Array::from(vec![
                Some(0.1 + 0.2),
                Some(3.0),
                Some(3.5),
                Some(-0.0),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(1e300),
                None,
            ])),
            Arc::new(Float32Array::from(vec![0.1f32, f32::NAN, 2.0])),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(StringArray::from(vec![
                Some("gold"),
                Some("7"),
                None,
                Some(&long),
            ])),
            Arc::new(LargeStringArray::from(vec!["é"])),
            Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
                Some(vec![Some(1.0), Some(0.1)]),
                Some(vec![Some(1.0), None]),
                Some(vec![Some(1.0), Some(f32::NAN)]),
                Some(vec![Some(1.0)]),
                None,
            ])),
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
                Some(vec![Some(0.1), Some(1e300)]),
                Some(vec![Some(0.1), Some(0.2)]),
                Some(vec![Some(f64::INFINITY), Some(0.2)]),
            ])),
            Arc::new(
                FixedSizeListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    2,
                    Arc::new(Float32Array::from(vec![0.5, -1.5, 2.5, 3.5])),
                    None,
                )
                .unwrap(),
            ),
            Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456])),
        ];
        let types = [
            FeatureType::Int64,
            FeatureType::Float64,
            FeatureType::Bool,
            FeatureType::String,
            FeatureType::FloatVector { dim: 2 },
            FeatureType::FloatVector { dim: 1 },
        ];
        for column in &columns {
            for ty in types {
                same_both_ways(column, ty);
            }
        }
    }

    #[test]
    fn times_and_ids_read_as_the_json_path_reads_them() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(1_700_000_000_000),
                Some(-1),
                None,
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_700_000_000_123_456,
                -1,
            ])),
            Arc::new(StringArray::from(vec![
                Some("2024-01-01T00:00:00Z"),
                Some("u1"),
                None,
            ])),
            Arc::new(Float64Array::from(vec![1.5])),
            Arc::new(UInt64Array::from(vec![u64::MAX])),
        ];
        for column in &columns {
            for row in 0..column.len() {
                let json = cells::to_json(column.as_ref(), row);
                let by_json = json.clone().map(|v| Timestamp::from_json(&v));
                assert_eq!(
                    format!("{:?}", time(column.as_ref(), row)),
                    format!("{by_json:?}"),
                    "time, row {row}"
                );
                let by_json = match json {
                    Ok(Value::String(s)) => Ok(s),
                    Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                    other => Err(other),
                };
                assert_eq!(id(column.as_ref(), row), by_json, "id, row {row}");
            }
        }
    }
}
