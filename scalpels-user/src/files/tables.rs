//! Arrow schemas and batch builders of `file_io.parquet` and `file_io_events.parquet`.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, DurationNanosecondBuilder, Int32Builder, Int64Builder, RecordBatch,
        StringDictionaryBuilder, UInt32Builder, UInt64Array, UInt64Builder,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};

use crate::run::columns::{dictionary, duration, timestamp, timestamps};

/// `file_io.parquet`: one row per (interval, process, file, fd, operation) with calls.
pub fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("interval_start", timestamp(), false),
        Field::new("interval_end", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("fd", DataType::Int32, false),
        Field::new("path", dictionary(), true),
        Field::new("op", dictionary(), false),
        Field::new("calls", DataType::UInt64, false),
        Field::new("errors", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("total_latency", duration(), false),
        Field::new("max_latency", duration(), false),
        Field::new("device_number", dictionary(), false),
        Field::new("inode", DataType::UInt64, false),
    ]))
}

/// One interval's change of one key.
pub struct StatsRow {
    pub pid: u32,
    pub fd: u32,
    pub path: Option<String>,
    pub op: &'static str,
    pub calls: u64,
    pub errors: u64,
    pub bytes: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub device: String,
    pub inode: u64,
}

pub fn stats_batch(start: i64, end: i64, rows: &[StatsRow]) -> Result<RecordBatch> {
    let (mut starts, mut ends) = (timestamps(), timestamps());
    let mut pid = UInt32Builder::new();
    let mut fd = Int32Builder::new();
    let [mut path, mut op, mut device] =
        [(); 3].map(|_| StringDictionaryBuilder::<Int32Type>::new());
    let [mut calls, mut errors, mut bytes, mut inode] = [(); 4].map(|_| UInt64Builder::new());
    let [mut total, mut max] = [(); 2].map(|_| DurationNanosecondBuilder::new());
    for row in rows {
        starts.append_value(start);
        ends.append_value(end);
        pid.append_value(row.pid);
        fd.append_value(row.fd as i32);
        path.append_option(row.path.as_deref());
        op.append_value(row.op);
        calls.append_value(row.calls);
        errors.append_value(row.errors);
        bytes.append_value(row.bytes);
        total.append_value(row.total_ns as i64);
        max.append_value(row.max_ns as i64);
        device.append_value(&row.device);
        inode.append_value(row.inode);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(pid.finish()),
        Arc::new(fd.finish()),
        Arc::new(path.finish()),
        Arc::new(op.finish()),
        Arc::new(calls.finish()),
        Arc::new(errors.finish()),
        Arc::new(bytes.finish()),
        Arc::new(total.finish()),
        Arc::new(max.finish()),
        Arc::new(device.finish()),
        Arc::new(inode.finish()),
    ];
    Ok(RecordBatch::try_new(stats_schema(), columns)?)
}

/// `file_io_events.parquet`: slow fd operations, and every rename and unlink.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("start_time", timestamp(), false),
        Field::new("duration", duration(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("comm", dictionary(), false),
        Field::new("op", dictionary(), false),
        Field::new("fd", DataType::Int32, true),
        Field::new("path", dictionary(), true),
        Field::new("new_path", dictionary(), true),
        Field::new("ret", DataType::Int64, false),
        Field::new("python_stack_id", DataType::UInt64, true),
    ]))
}

/// One event, converted.
pub struct EventRow {
    /// UTC ns.
    pub start: i64,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub op: &'static str,
    pub fd: Option<u32>,
    pub path: Option<String>,
    pub new_path: Option<String>,
    pub ret: i64,
    /// The Python code that made the call (joins `python_stacks`).
    pub python_stack_id: Option<u64>,
}

pub fn events_batch(rows: &[EventRow]) -> Result<RecordBatch> {
    let mut start = timestamps();
    let mut duration = DurationNanosecondBuilder::new();
    let (mut pid, mut tid) = (UInt32Builder::new(), UInt32Builder::new());
    let [mut comm, mut op, mut path, mut new_path] =
        [(); 4].map(|_| StringDictionaryBuilder::<Int32Type>::new());
    let mut fd = Int32Builder::new();
    let mut ret = Int64Builder::new();
    for row in rows {
        start.append_value(row.start);
        duration.append_value(row.duration_ns as i64);
        pid.append_value(row.pid);
        tid.append_value(row.tid);
        comm.append_value(&row.comm);
        op.append_value(row.op);
        fd.append_option(row.fd.map(|fd| fd as i32));
        path.append_option(row.path.as_deref());
        new_path.append_option(row.new_path.as_deref());
        ret.append_value(row.ret);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(comm.finish()),
        Arc::new(op.finish()),
        Arc::new(fd.finish()),
        Arc::new(path.finish()),
        Arc::new(new_path.finish()),
        Arc::new(ret.finish()),
        Arc::new(
            rows.iter()
                .map(|r| r.python_stack_id)
                .collect::<UInt64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}
