//! Columns of query results as plain Rust values, whatever Arrow type the engine chose
//! (dictionaries, string views, durations, any integer width).

use anyhow::{Context as _, Result};
use arrow::{
    array::{Array, ArrayRef, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{DataType, Float64Type, Int64Type, UInt64Type},
};

fn columns(batches: &[RecordBatch], name: &str, to: &DataType) -> Result<Vec<ArrayRef>> {
    batches
        .iter()
        .map(|batch| {
            let column = batch
                .column_by_name(name)
                .with_context(|| format!("query result has no column {name}"))?;
            cast(column, to).with_context(|| format!("column {name} as {to}"))
        })
        .collect()
}

pub fn strings(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for array in columns(batches, name, &DataType::Utf8)? {
        out.extend(
            array
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_owned)),
        );
    }
    Ok(out)
}

/// Integers, durations (ns) and timestamps (ns) as i64.
pub fn ints(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for array in columns(batches, name, &DataType::Int64)? {
        out.extend(array.as_primitive::<Int64Type>().iter());
    }
    Ok(out)
}

pub fn floats(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for array in columns(batches, name, &DataType::Float64)? {
        out.extend(array.as_primitive::<Float64Type>().iter());
    }
    Ok(out)
}

/// A list column (histograms) as counts; a null list reads as empty.
pub fn count_lists(batches: &[RecordBatch], name: &str) -> Result<Vec<Vec<u64>>> {
    let to = DataType::new_list(DataType::UInt64, true);
    let mut out = Vec::new();
    for array in columns(batches, name, &to)? {
        let lists = array.as_list::<i32>();
        for row in 0..lists.len() {
            out.push(if lists.is_valid(row) {
                lists
                    .value(row)
                    .as_primitive::<UInt64Type>()
                    .iter()
                    .map(Option::unwrap_or_default)
                    .collect()
            } else {
                Vec::new()
            });
        }
    }
    Ok(out)
}

/// A list column of durations or integers as i64 values (nulls dropped).
pub fn int_lists(batches: &[RecordBatch], name: &str) -> Result<Vec<Vec<i64>>> {
    let to = DataType::new_list(DataType::Int64, true);
    let mut out = Vec::new();
    for array in columns(batches, name, &to)? {
        let lists = array.as_list::<i32>();
        for row in 0..lists.len() {
            out.push(if lists.is_valid(row) {
                lists
                    .value(row)
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .collect()
            } else {
                Vec::new()
            });
        }
    }
    Ok(out)
}
