//! Column types every table uses, so all tables agree: UTC nanosecond timestamps, nanosecond
//! durations, dictionary-encoded strings, and log2 latency histograms.

use std::sync::Arc;

use arrow::{
    array::{ListBuilder, TimestampNanosecondBuilder, UInt64Builder},
    datatypes::{DataType, Field, TimeUnit},
};

pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

pub fn duration() -> DataType {
    DataType::Duration(TimeUnit::Nanosecond)
}

pub fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

pub fn timestamps() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// A `latency_hist` column: the log2 buckets of `tracers::histogram`.
pub fn histogram(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false))),
        false,
    )
}

pub fn histograms() -> ListBuilder<UInt64Builder> {
    ListBuilder::new(UInt64Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::UInt64, false)))
}

/// A task name as the kernel gives it (NUL-padded).
pub fn comm(bytes: &[u8; 16]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
