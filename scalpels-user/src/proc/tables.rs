//! Arrow schemas and batch builders of `proc_stats`, `system_stats`, `disk_stats` and
//! `net_stats`.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, DurationNanosecondBuilder, Float64Builder, RecordBatch, StringDictionaryBuilder,
        UInt32Builder, UInt64Array,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};

use super::{
    counters::Ticks,
    devices::{DiskCounters, NetCounters},
    process::{IoCounters, ProcessCounters, ProcessSample},
    system::SystemSample,
};
use crate::run::columns::{dictionary, duration, timestamp, timestamps};

/// A uint64 column of counter changes: its name, and the counter in a row.
type Counter<T> = (&'static str, fn(&T) -> u64);

/// Bounds of the interval a row's changes cover.
fn interval_fields() -> [Field; 2] {
    [
        Field::new("interval_start", timestamp(), false),
        Field::new("interval_end", timestamp(), false),
    ]
}

fn interval_columns(start: i64, end: i64, rows: usize) -> [ArrayRef; 2] {
    let (mut starts, mut ends) = (timestamps(), timestamps());
    for _ in 0..rows {
        starts.append_value(start);
        ends.append_value(end);
    }
    [Arc::new(starts.finish()), Arc::new(ends.finish())]
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    let mut all = interval_fields().to_vec();
    all.extend(fields);
    Arc::new(Schema::new(all))
}

fn batch(
    schema: SchemaRef,
    start: i64,
    end: i64,
    rows: usize,
    columns: Vec<ArrayRef>,
) -> Result<RecordBatch> {
    let mut all = interval_columns(start, end, rows).to_vec();
    all.extend(columns);
    Ok(RecordBatch::try_new(schema, all)?)
}

fn u64_column(values: impl Iterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(values.collect::<UInt64Array>())
}

/// Ticks (possibly unknown) as nanoseconds.
fn ticks_column(values: impl Iterator<Item = Option<u64>>, ticks: Ticks) -> ArrayRef {
    let mut column = DurationNanosecondBuilder::new();
    for value in values {
        column.append_option(value.map(|t| ticks.to_ns(t)));
    }
    Arc::new(column.finish())
}

/// One interval of one process: its gauges now, and what its counters grew by.
pub struct ProcessRow {
    pub pid: u32,
    pub now: ProcessSample,
    pub change: ProcessCounters,
}

/// Columns of `proc_stats` from `/proc/PID/io`, in order.
const IO_COLUMNS: [Counter<IoCounters>; 6] = [
    ("read_bytes", |io| io.read_bytes),
    ("write_bytes", |io| io.write_bytes),
    ("rchar", |io| io.rchar),
    ("wchar", |io| io.wchar),
    ("syscr", |io| io.syscr),
    ("syscw", |io| io.syscw),
];

/// `proc_stats.parquet`: one row per (interval, target process).
pub fn proc_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("pid", DataType::UInt32, false),
        Field::new("comm", dictionary(), false),
        Field::new("cmdline", dictionary(), true),
        Field::new("state", dictionary(), false),
        Field::new("threads", DataType::UInt32, false),
        Field::new("cpu_user", duration(), false),
        Field::new("cpu_system", duration(), false),
        Field::new("rss_bytes", DataType::UInt64, true),
        Field::new("vsize_bytes", DataType::UInt64, true),
        Field::new("pss_bytes", DataType::UInt64, true),
        Field::new("voluntary_ctxt_switches", DataType::UInt64, true),
        Field::new("nonvoluntary_ctxt_switches", DataType::UInt64, true),
        Field::new("fds", DataType::UInt32, true),
    ];
    fields.extend(
        IO_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::UInt64, true)),
    );
    fields.extend([
        Field::new("minor_faults", DataType::UInt64, false),
        Field::new("major_faults", DataType::UInt64, false),
    ]);
    schema(fields)
}

pub fn proc_batch(start: i64, end: i64, rows: &[ProcessRow], ticks: Ticks) -> Result<RecordBatch> {
    let mut pid = UInt32Builder::new();
    let [mut comm, mut cmdline, mut state] =
        [(); 3].map(|_| StringDictionaryBuilder::<Int32Type>::new());
    let (mut threads, mut fds) = (UInt32Builder::new(), UInt32Builder::new());
    for row in rows {
        pid.append_value(row.pid);
        comm.append_value(&row.now.comm);
        cmdline.append_option(row.now.cmdline.as_deref());
        state.append_value(&row.now.state);
        threads.append_value(row.now.threads);
        fds.append_option(row.now.fds);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(pid.finish()),
        Arc::new(comm.finish()),
        Arc::new(cmdline.finish()),
        Arc::new(state.finish()),
        Arc::new(threads.finish()),
        ticks_column(rows.iter().map(|r| Some(r.change.cpu_user_ticks)), ticks),
        ticks_column(rows.iter().map(|r| Some(r.change.cpu_system_ticks)), ticks),
        u64_column(rows.iter().map(|r| r.now.rss_bytes)),
        u64_column(rows.iter().map(|r| r.now.vsize_bytes)),
        u64_column(rows.iter().map(|r| r.now.pss_bytes)),
        u64_column(rows.iter().map(|r| r.change.voluntary_ctxt_switches)),
        u64_column(rows.iter().map(|r| r.change.nonvoluntary_ctxt_switches)),
        Arc::new(fds.finish()),
    ];
    columns.extend(
        IO_COLUMNS
            .iter()
            .map(|(_, field)| u64_column(rows.iter().map(|r| r.change.io.as_ref().map(field)))),
    );
    columns.extend([
        u64_column(rows.iter().map(|r| Some(r.change.minor_faults))),
        u64_column(rows.iter().map(|r| Some(r.change.major_faults))),
    ]);
    batch(proc_schema(), start, end, rows.len(), columns)
}

/// CPU state columns of `system_stats`; the last four are null on kernels without them.
const CPU_COLUMNS: [(&str, bool); 8] = [
    ("cpu_user", false),
    ("cpu_nice", false),
    ("cpu_system", false),
    ("cpu_idle", false),
    ("cpu_iowait", true),
    ("cpu_irq", true),
    ("cpu_softirq", true),
    ("cpu_steal", true),
];

/// `system_stats.parquet`: one row per interval.
pub fn system_schema() -> SchemaRef {
    let mut fields: Vec<Field> = CPU_COLUMNS
        .iter()
        .map(|(name, nullable)| Field::new(*name, duration(), *nullable))
        .collect();
    fields.extend([
        Field::new("cpus", DataType::UInt32, false),
        Field::new("context_switches", DataType::UInt64, false),
        Field::new("processes_forked", DataType::UInt64, false),
        Field::new("procs_running", DataType::UInt32, true),
        Field::new("procs_blocked", DataType::UInt32, true),
        Field::new("mem_total", DataType::UInt64, false),
        Field::new("mem_free", DataType::UInt64, false),
        Field::new("mem_available", DataType::UInt64, true),
        Field::new("buffers", DataType::UInt64, false),
        Field::new("cached", DataType::UInt64, false),
        Field::new("swap_total", DataType::UInt64, false),
        Field::new("swap_free", DataType::UInt64, false),
        Field::new("load1", DataType::Float64, false),
        Field::new("load5", DataType::Float64, false),
        Field::new("load15", DataType::Float64, false),
    ]);
    schema(fields)
}

/// One row: `row` is a [`SystemSample::since`], counters as changes over the interval.
pub fn system_batch(start: i64, end: i64, row: &SystemSample, ticks: Ticks) -> Result<RecordBatch> {
    let cpu = row.cpu;
    let states = [
        Some(cpu.user),
        Some(cpu.nice),
        Some(cpu.system),
        Some(cpu.idle),
        cpu.iowait,
        cpu.irq,
        cpu.softirq,
        cpu.steal,
    ];
    let mut columns: Vec<ArrayRef> = states
        .into_iter()
        .map(|ticks_in_state| ticks_column(std::iter::once(ticks_in_state), ticks))
        .collect();
    let u32_value = |value: Option<u32>| -> ArrayRef {
        let mut column = UInt32Builder::new();
        column.append_option(value);
        Arc::new(column.finish())
    };
    let u64_value = |value: Option<u64>| u64_column(std::iter::once(value));
    let memory = row.memory;
    columns.extend([
        u32_value(Some(row.cpus)),
        u64_value(Some(row.context_switches)),
        u64_value(Some(row.processes_forked)),
        u32_value(row.procs_running),
        u32_value(row.procs_blocked),
        u64_value(Some(memory.total)),
        u64_value(Some(memory.free)),
        u64_value(memory.available),
        u64_value(Some(memory.buffers)),
        u64_value(Some(memory.cached)),
        u64_value(Some(memory.swap_total)),
        u64_value(Some(memory.swap_free)),
    ]);
    columns.extend(row.load.map(|load| {
        let mut column = Float64Builder::new();
        column.append_value(load);
        Arc::new(column.finish()) as ArrayRef
    }));
    batch(system_schema(), start, end, 1, columns)
}

/// Counter columns of `disk_stats`, in order.
const DISK_COLUMNS: [Counter<DiskCounters>; 4] = [
    ("reads", |c| c.reads),
    ("writes", |c| c.writes),
    ("read_bytes", |c| c.read_bytes),
    ("write_bytes", |c| c.write_bytes),
];

/// `disk_stats.parquet`: one row per (interval, disk), idle loop and RAM disks left out.
pub fn disk_schema() -> SchemaRef {
    let mut fields = vec![Field::new("device", dictionary(), false)];
    fields.extend(
        DISK_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::UInt64, false)),
    );
    fields.push(Field::new("io_time", duration(), false));
    schema(fields)
}

pub fn disk_batch(start: i64, end: i64, rows: &[(String, DiskCounters)]) -> Result<RecordBatch> {
    let mut device = StringDictionaryBuilder::<Int32Type>::new();
    let mut io_time = DurationNanosecondBuilder::new();
    for (name, change) in rows {
        device.append_value(name);
        io_time.append_value(
            i64::try_from(change.io_time_ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
        );
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(device.finish())];
    columns.extend(
        DISK_COLUMNS
            .iter()
            .map(|(_, field)| u64_column(rows.iter().map(|(_, c)| Some(field(c))))),
    );
    columns.push(Arc::new(io_time.finish()));
    batch(disk_schema(), start, end, rows.len(), columns)
}

/// Counter columns of `net_stats`, in order.
const NET_COLUMNS: [Counter<NetCounters>; 8] = [
    ("rx_bytes", |c| c.rx_bytes),
    ("rx_packets", |c| c.rx_packets),
    ("tx_bytes", |c| c.tx_bytes),
    ("tx_packets", |c| c.tx_packets),
    ("rx_errors", |c| c.rx_errors),
    ("tx_errors", |c| c.tx_errors),
    ("rx_dropped", |c| c.rx_dropped),
    ("tx_dropped", |c| c.tx_dropped),
];

/// `net_stats.parquet`: one row per (interval, network interface).
pub fn net_schema() -> SchemaRef {
    let mut fields = vec![Field::new("interface", dictionary(), false)];
    fields.extend(
        NET_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::UInt64, false)),
    );
    schema(fields)
}

pub fn net_batch(start: i64, end: i64, rows: &[(String, NetCounters)]) -> Result<RecordBatch> {
    let mut interface = StringDictionaryBuilder::<Int32Type>::new();
    for (name, _) in rows {
        interface.append_value(name);
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(interface.finish())];
    columns.extend(
        NET_COLUMNS
            .iter()
            .map(|(_, field)| u64_column(rows.iter().map(|(_, c)| Some(field(c))))),
    );
    batch(net_schema(), start, end, rows.len(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_match_their_schemas_with_and_without_nulls() {
        let ticks = Ticks::per_second(100);
        let process = |pid, io| ProcessRow {
            pid,
            now: ProcessSample {
                start_ticks: 1,
                comm: "nova-api".into(),
                cmdline: (pid == 1).then(|| "python3 /usr/bin/nova-api".into()),
                state: "S".into(),
                threads: 4,
                rss_bytes: Some(1 << 20),
                vsize_bytes: None,
                pss_bytes: None,
                fds: Some(9),
                counters: ProcessCounters::default(),
            },
            change: ProcessCounters {
                cpu_user_ticks: 3,
                io,
                ..ProcessCounters::default()
            },
        };
        let rows = [process(1, Some(IoCounters::default())), process(2, None)];
        let batch = proc_batch(10, 20, &rows, ticks).expect("proc_stats batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column_by_name("wchar").unwrap().null_count(), 1);
        assert_eq!(batch.column_by_name("cmdline").unwrap().null_count(), 1);

        let system = system_batch(10, 20, &SystemSample::default(), ticks).expect("system_stats");
        assert_eq!(system.num_rows(), 1);
        assert_eq!(system.column_by_name("cpu_steal").unwrap().null_count(), 1);

        let disks = [("vda".to_owned(), DiskCounters::default())];
        assert_eq!(
            disk_batch(10, 20, &disks).expect("disk_stats").num_rows(),
            1
        );
        let interfaces = [("eth0".to_owned(), NetCounters::default())];
        assert_eq!(
            net_batch(10, 20, &interfaces)
                .expect("net_stats")
                .num_rows(),
            1
        );
        assert_eq!(proc_batch(10, 20, &[], ticks).expect("empty").num_rows(), 0);
    }
}
