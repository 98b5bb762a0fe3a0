//! Arrow schemas and batch builders of `syscalls.parquet` and `syscall_events.parquet`.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, DurationNanosecondBuilder, Int64Builder, RecordBatch, StringDictionaryBuilder,
        UInt32Builder, UInt64Array, UInt64Builder,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};
use tracers::syscalls::{ARGS, SlowSyscallEvent};

use super::names;
use crate::run::columns::{
    comm, dictionary, duration, histogram, histograms, timestamp, timestamps,
};

/// `syscalls.parquet`: one row per (interval, thread, syscall) with calls in the interval.
pub fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("interval_start", timestamp(), false),
        Field::new("interval_end", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("comm", dictionary(), false),
        Field::new("syscall", dictionary(), false),
        Field::new("syscall_nr", DataType::UInt32, false),
        Field::new("calls", DataType::UInt64, false),
        Field::new("errors", DataType::UInt64, false),
        Field::new("total_latency", duration(), false),
        Field::new("max_latency", duration(), false),
        histogram("latency_hist"),
    ]))
}

/// One interval's change of one (thread, syscall) key.
pub struct StatsRow {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub nr: u32,
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub hist: Vec<u64>,
}

pub fn stats_batch(start: i64, end: i64, rows: &[StatsRow]) -> Result<RecordBatch> {
    let (mut starts, mut ends) = (timestamps(), timestamps());
    let (mut pid, mut tid, mut nr) = (
        UInt32Builder::new(),
        UInt32Builder::new(),
        UInt32Builder::new(),
    );
    let mut comm = StringDictionaryBuilder::<Int32Type>::new();
    let mut syscall = StringDictionaryBuilder::<Int32Type>::new();
    let (mut calls, mut errors) = (UInt64Builder::new(), UInt64Builder::new());
    let (mut total, mut max) = (
        DurationNanosecondBuilder::new(),
        DurationNanosecondBuilder::new(),
    );
    let mut hist = histograms();
    for row in rows {
        starts.append_value(start);
        ends.append_value(end);
        pid.append_value(row.pid);
        tid.append_value(row.tid);
        comm.append_value(&row.comm);
        syscall.append_value(names::name(row.nr));
        nr.append_value(row.nr);
        calls.append_value(row.calls);
        errors.append_value(row.errors);
        total.append_value(row.total_ns as i64);
        max.append_value(row.max_ns as i64);
        hist.values().append_slice(&row.hist);
        hist.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(comm.finish()),
        Arc::new(syscall.finish()),
        Arc::new(nr.finish()),
        Arc::new(calls.finish()),
        Arc::new(errors.finish()),
        Arc::new(total.finish()),
        Arc::new(max.finish()),
        Arc::new(hist.finish()),
    ];
    Ok(RecordBatch::try_new(stats_schema(), columns)?)
}

/// `syscall_events.parquet`: one row per call slower than `--slow-syscall`.
pub fn events_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("start_time", timestamp(), false),
        Field::new("duration", duration(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("comm", dictionary(), false),
        Field::new("syscall", dictionary(), false),
        Field::new("syscall_nr", DataType::UInt32, false),
        Field::new("ret", DataType::Int64, false),
    ];
    fields.extend((0..ARGS).map(|i| Field::new(format!("arg{i}"), DataType::UInt64, false)));
    fields.push(Field::new("python_stack_id", DataType::UInt64, true));
    Arc::new(Schema::new(fields))
}

/// Builds a batch of slow calls; `to_utc` converts kernel monotonic ns.
pub fn events_batch(
    events: &[SlowSyscallEvent],
    python_stacks: &[Option<u64>],
    to_utc: impl Fn(u64) -> i64,
) -> Result<RecordBatch> {
    let mut start = timestamps();
    let mut duration = DurationNanosecondBuilder::new();
    let (mut pid, mut tid, mut nr) = (
        UInt32Builder::new(),
        UInt32Builder::new(),
        UInt32Builder::new(),
    );
    let mut comm_names = StringDictionaryBuilder::<Int32Type>::new();
    let mut syscall = StringDictionaryBuilder::<Int32Type>::new();
    let mut ret = Int64Builder::new();
    let mut args: Vec<UInt64Builder> = (0..ARGS).map(|_| UInt64Builder::new()).collect();
    for event in events {
        start.append_value(to_utc(event.end_ns.saturating_sub(event.duration_ns)));
        duration.append_value(event.duration_ns as i64);
        pid.append_value(event.tgid);
        tid.append_value(event.tid);
        comm_names.append_value(comm(&event.comm));
        syscall.append_value(names::name(event.nr));
        nr.append_value(event.nr);
        ret.append_value(event.ret);
        for (builder, value) in args.iter_mut().zip(event.args) {
            builder.append_value(value);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(comm_names.finish()),
        Arc::new(syscall.finish()),
        Arc::new(nr.finish()),
        Arc::new(ret.finish()),
    ];
    columns.extend(args.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(
        python_stacks.iter().copied().collect::<UInt64Array>(),
    ));
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}
