//! Arrow schemas and batch builders of `python_samples.parquet` and `python_stacks.parquet`.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, BooleanBuilder, DurationNanosecondBuilder, RecordBatch, StringDictionaryBuilder,
        UInt32Builder, UInt64Builder,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};

use super::code::Frame;
use crate::run::columns::{dictionary, duration, timestamp, timestamps};

/// `python_samples.parquet`: one row per sampled thread.
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("stack_id", DataType::UInt64, false),
        Field::new("kind", dictionary(), false),
        Field::new("weight", duration(), false),
        Field::new("truncated", DataType::Boolean, false),
    ]))
}

pub struct SampleRow {
    /// UTC ns.
    pub time: i64,
    pub pid: u32,
    pub tid: u32,
    pub stack_id: u64,
    pub kind: &'static str,
    pub weight_ns: i64,
    pub truncated: bool,
}

pub fn samples_batch(rows: &[SampleRow]) -> Result<RecordBatch> {
    let mut time = timestamps();
    let (mut pid, mut tid) = (UInt32Builder::new(), UInt32Builder::new());
    let mut stack = UInt64Builder::new();
    let mut kind = StringDictionaryBuilder::<Int32Type>::new();
    let mut weight = DurationNanosecondBuilder::new();
    let mut truncated = BooleanBuilder::new();
    for row in rows {
        time.append_value(row.time);
        pid.append_value(row.pid);
        tid.append_value(row.tid);
        stack.append_value(row.stack_id);
        kind.append_value(row.kind);
        weight.append_value(row.weight_ns);
        truncated.append_value(row.truncated);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(stack.finish()),
        Arc::new(kind.finish()),
        Arc::new(weight.finish()),
        Arc::new(truncated.finish()),
    ];
    Ok(RecordBatch::try_new(samples_schema(), columns)?)
}

/// `python_stacks.parquet`: one row per frame of each distinct stack; `level` 0 is the
/// innermost frame (where the sample landed), the outermost has the highest level.
pub fn stacks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("stack_id", DataType::UInt64, false),
        Field::new("level", DataType::UInt32, false),
        Field::new("function", dictionary(), false),
        Field::new("file", dictionary(), false),
        Field::new("line", DataType::UInt32, true),
    ]))
}

pub fn stacks_batch(stacks: &[(u64, Vec<Frame>)]) -> Result<RecordBatch> {
    let mut id = UInt64Builder::new();
    let mut level = UInt32Builder::new();
    let [mut function, mut file] = [(); 2].map(|_| StringDictionaryBuilder::<Int32Type>::new());
    let mut line = UInt32Builder::new();
    for (stack_id, frames) in stacks {
        for (depth, frame) in frames.iter().enumerate() {
            id.append_value(*stack_id);
            level.append_value(depth as u32);
            function.append_value(&frame.function);
            file.append_value(&frame.file);
            line.append_option(frame.line);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(level.finish()),
        Arc::new(function.finish()),
        Arc::new(file.finish()),
        Arc::new(line.finish()),
    ];
    Ok(RecordBatch::try_new(stacks_schema(), columns)?)
}

/// `python_calls.parquet` (`--python-calls`): one row per (interval, process, function) with
/// returns in the interval.
pub fn calls_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("interval_start", timestamp(), false),
        Field::new("interval_end", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("function", dictionary(), false),
        Field::new("file", dictionary(), false),
        Field::new("calls", DataType::UInt64, false),
        Field::new("total_time", duration(), false),
        Field::new("max_time", duration(), false),
    ]))
}

pub struct CallRow {
    pub pid: u32,
    pub function: String,
    pub file: String,
    pub calls: u64,
    pub total_ns: u64,
    /// The longest call of the run so far (per-CPU maxima cannot be split by interval).
    pub max_ns: u64,
}

pub fn calls_batch(start: i64, end: i64, rows: &[CallRow]) -> Result<RecordBatch> {
    let (mut starts, mut ends) = (timestamps(), timestamps());
    let mut pid = UInt32Builder::new();
    let mut function = StringDictionaryBuilder::<Int32Type>::new();
    let mut file = StringDictionaryBuilder::<Int32Type>::new();
    let mut calls = UInt64Builder::new();
    let (mut total, mut max) = (
        DurationNanosecondBuilder::new(),
        DurationNanosecondBuilder::new(),
    );
    for row in rows {
        starts.append_value(start);
        ends.append_value(end);
        pid.append_value(row.pid);
        function.append_value(&row.function);
        file.append_value(&row.file);
        calls.append_value(row.calls);
        total.append_value(row.total_ns as i64);
        max.append_value(row.max_ns as i64);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(pid.finish()),
        Arc::new(function.finish()),
        Arc::new(file.finish()),
        Arc::new(calls.finish()),
        Arc::new(total.finish()),
        Arc::new(max.finish()),
    ];
    Ok(RecordBatch::try_new(calls_schema(), columns)?)
}
