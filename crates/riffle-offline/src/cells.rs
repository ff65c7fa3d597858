//! One cell of an Arrow column as the JSON value the same field would carry in an NDJSON
//! event or a `riffle load` row, so that a Parquet history is read by the very rules that
//! read the stream ([`riffle_ingest::decode`]) and bulk loads
//! ([`riffle_core::FeatureValue::from_json`]): one owner for how a value is typed.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Number, Value};

/// Cell `row` of `array` as JSON: numbers, booleans and text as themselves, a timestamp as
/// epoch milliseconds, a list as an array, null as null. `Err` names a type no feature or
/// event field can hold.
pub fn to_json(array: &dyn Array, row: usize) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let float = |f: f64| {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    };
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => timestamp_millis(array, *unit, row).into(),
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            list_to_json(list.as_ref())?
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>().value(row);
            list_to_json(list.as_ref())?
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list().value(row);
            list_to_json(list.as_ref())?
        }
        other => return Err(format!("a column of type {other} holds no feature value")),
    })
}

/// Row `row` of `batch` as the JSON object of its non-null cells in `columns` (indexes into
/// the batch), which is what the same event or row carries as NDJSON; and the cells left out
/// because no event field or feature can hold their type, named with why.
pub fn row_object(
    batch: &RecordBatch,
    row: usize,
    columns: &[usize],
) -> (Map<String, Value>, Vec<String>) {
    let schema = batch.schema();
    let mut object = Map::with_capacity(columns.len());
    let mut unreadable = Vec::new();
    for &c in columns {
        let name = schema.field(c).name();
        match to_json(batch.column(c).as_ref(), row) {
            Ok(Value::Null) => {}
            Ok(v) => {
                object.insert(name.clone(), v);
            }
            Err(e) => unreadable.push(format!("{name:?}: {e}")),
        }
    }
    (object, unreadable)
}

fn list_to_json(values: &dyn Array) -> Result<Value, String> {
    (0..values.len())
        .map(|i| to_json(values, i))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// A timestamp cell in epoch milliseconds (sub-millisecond parts are floored).
pub(crate) fn timestamp_millis(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .saturating_mul(1000),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .div_euclid(1000),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .value(row)
            .div_euclid(1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Float32Array, Int32Array, ListArray, StringArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::Float32Type;

    use super::*;

    #[test]
    fn cells_read_as_the_json_an_event_would_carry() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        assert_eq!(to_json(&ints, 0).unwrap(), Value::from(7));
        assert_eq!(to_json(&ints, 1).unwrap(), Value::Null);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["u1"]));
        assert_eq!(to_json(&text, 0).unwrap(), Value::from("u1"));
        let floats: ArrayRef = Arc::new(Float32Array::from(vec![0.5]));
        assert_eq!(to_json(&floats, 0).unwrap(), Value::from(0.5));
        let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_500_000_999_999i64]));
        assert_eq!(to_json(&ts, 0).unwrap(), Value::from(1_500_000));
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.5)]),
        ]));
        assert_eq!(to_json(&list, 0).unwrap(), serde_json::json!([1.0, 2.5]));
    }
}
