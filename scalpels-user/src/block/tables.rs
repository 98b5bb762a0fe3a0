//! Arrow schemas and batch builders of `block_io.parquet` and `block_io_stats.parquet`.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, BooleanBuilder, DurationNanosecondBuilder, Int32Builder, RecordBatch,
        StringDictionaryBuilder, UInt32Builder, UInt64Builder,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};
use tracers::block::{BlockIoEvent, flag, op};

use super::devices::{self, DeviceNames};
use crate::run::columns::{
    comm, dictionary, duration, histogram, histograms, timestamp, timestamps,
};

/// Boolean columns decoded from the kernel's `rwbs` flags.
const FLAG_COLUMNS: [(&str, u32); 5] = [
    ("sync", flag::SYNC),
    ("meta", flag::META),
    ("fua", flag::FUA),
    ("preflush", flag::PREFLUSH),
    ("readahead", flag::AHEAD),
];

/// `block_io.parquet`: one row per completed request.
pub fn events_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("start_time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("comm", dictionary(), false),
        Field::new("target", DataType::Boolean, false),
        Field::new("device", dictionary(), false),
        Field::new("device_number", dictionary(), false),
        Field::new("op", dictionary(), false),
    ];
    fields.extend(
        FLAG_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Boolean, false)),
    );
    fields.extend([
        Field::new("sector", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt32, false),
        Field::new("error", DataType::Int32, false),
        Field::new("latency", duration(), false),
        Field::new("queue_latency", duration(), false),
        Field::new("service_latency", duration(), false),
    ]);
    Arc::new(Schema::new(fields))
}

pub fn events_batch(
    events: &[BlockIoEvent],
    names: &mut DeviceNames,
    to_utc: impl Fn(u64) -> i64,
) -> Result<RecordBatch> {
    let mut start = timestamps();
    let (mut pid, mut tid) = (UInt32Builder::new(), UInt32Builder::new());
    let mut comms = StringDictionaryBuilder::<Int32Type>::new();
    let mut target = BooleanBuilder::new();
    let mut device = StringDictionaryBuilder::<Int32Type>::new();
    let mut number = StringDictionaryBuilder::<Int32Type>::new();
    let mut ops = StringDictionaryBuilder::<Int32Type>::new();
    let mut flags: Vec<BooleanBuilder> =
        FLAG_COLUMNS.iter().map(|_| BooleanBuilder::new()).collect();
    let mut sector = UInt64Builder::new();
    let mut bytes = UInt32Builder::new();
    let mut error = Int32Builder::new();
    let [mut latency, mut queue, mut service] = [(); 3].map(|_| DurationNanosecondBuilder::new());
    for e in events {
        start.append_value(to_utc(e.start_ns));
        pid.append_value(e.tgid);
        tid.append_value(e.tid);
        comms.append_value(comm(&e.comm));
        target.append_value(e.target != 0);
        device.append_value(names.name(e.dev));
        number.append_value(devices::number(e.dev));
        ops.append_value(op::name(e.op));
        for (builder, (_, bit)) in flags.iter_mut().zip(FLAG_COLUMNS) {
            builder.append_value(e.flags & bit != 0);
        }
        sector.append_value(e.sector);
        bytes.append_value(e.bytes);
        error.append_value(e.error);
        latency.append_value(e.done_ns.saturating_sub(e.start_ns) as i64);
        queue.append_value(e.issue_ns.saturating_sub(e.start_ns) as i64);
        service.append_value(e.done_ns.saturating_sub(e.issue_ns) as i64);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(comms.finish()),
        Arc::new(target.finish()),
        Arc::new(device.finish()),
        Arc::new(number.finish()),
        Arc::new(ops.finish()),
    ];
    columns.extend(flags.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend([
        Arc::new(sector.finish()) as ArrayRef,
        Arc::new(bytes.finish()),
        Arc::new(error.finish()),
        Arc::new(latency.finish()),
        Arc::new(queue.finish()),
        Arc::new(service.finish()),
    ]);
    Ok(RecordBatch::try_new(events_schema(), columns)?)
}

/// `block_io_stats.parquet`: one row per (interval, device, operation) with requests.
pub fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("interval_start", timestamp(), false),
        Field::new("interval_end", timestamp(), false),
        Field::new("device", dictionary(), false),
        Field::new("device_number", dictionary(), false),
        Field::new("op", dictionary(), false),
        Field::new("requests", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("errors", DataType::UInt64, false),
        Field::new("total_latency", duration(), false),
        Field::new("total_queue_latency", duration(), false),
        histogram("latency_hist"),
    ]))
}

/// One interval's change of one (device, operation).
pub struct StatsRow {
    pub dev: u32,
    pub op: u32,
    pub requests: u64,
    pub bytes: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub queue_ns: u64,
    pub hist: Vec<u64>,
}

pub fn stats_batch(
    start: i64,
    end: i64,
    rows: &[StatsRow],
    names: &mut DeviceNames,
) -> Result<RecordBatch> {
    let (mut starts, mut ends) = (timestamps(), timestamps());
    let mut device = StringDictionaryBuilder::<Int32Type>::new();
    let mut number = StringDictionaryBuilder::<Int32Type>::new();
    let mut ops = StringDictionaryBuilder::<Int32Type>::new();
    let [mut requests, mut bytes, mut errors] = [(); 3].map(|_| UInt64Builder::new());
    let [mut total, mut queue] = [(); 2].map(|_| DurationNanosecondBuilder::new());
    let mut hist = histograms();
    for row in rows {
        starts.append_value(start);
        ends.append_value(end);
        device.append_value(names.name(row.dev));
        number.append_value(devices::number(row.dev));
        ops.append_value(op::name(row.op));
        requests.append_value(row.requests);
        bytes.append_value(row.bytes);
        errors.append_value(row.errors);
        total.append_value(row.total_ns as i64);
        queue.append_value(row.queue_ns as i64);
        hist.values().append_slice(&row.hist);
        hist.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(device.finish()),
        Arc::new(number.finish()),
        Arc::new(ops.finish()),
        Arc::new(requests.finish()),
        Arc::new(bytes.finish()),
        Arc::new(errors.finish()),
        Arc::new(total.finish()),
        Arc::new(queue.finish()),
        Arc::new(hist.finish()),
    ];
    Ok(RecordBatch::try_new(stats_schema(), columns)?)
}
