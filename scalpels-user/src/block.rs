//! The `block` tracer, userspace side: configures the programs in `scalpels-ebpf/src/block.rs`
//! with tracepoint field offsets, streams completed requests into `block_io`, and turns the
//! kernel's per-CPU cumulative statistics into per-interval rows of `block_io_stats`.

pub mod devices;
pub mod tables;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use std::os::fd::{AsFd as _, BorrowedFd};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuHashMap, RingBuf},
};
use tracers::{
    block::{
        BlockConfig, BlockFields, BlockIoEvent, BlockStats, BlockStatsKey, CONFIG_GLOBAL,
        EVENTS_MAP, STATS_MAP, op,
    },
    histogram::HIST_SLOTS,
};

use crate::{
    clock::Clock,
    options::{self, Toggle},
    run::{pending::Pending, table::TableWriter},
    tracefs,
    tracer::{Env, Interval, Prepared, Tracer},
};
use devices::DeviceNames;
use tables::StatsRow;

/// Where requests start: `block_io_start` (Linux 6.5+, every request), else the older
/// `block_rq_insert` (only requests that pass through a scheduler queue; the others are
/// seen from issue on).
const START_TRACEPOINTS: [&str; 2] = ["block_io_start", "block_rq_insert"];

/// The block tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "block tracer")]
#[group(skip)]
pub struct Options {
    /// Also record requests of processes that are not targets (for correlation).
    #[arg(long)]
    pub block_all: bool,

    /// One row per request in block_io (off: per-interval statistics only).
    #[arg(long, value_enum, default_value_t = Toggle::On, value_name = "on|off")]
    #[serde(serialize_with = "options::switch")]
    pub block_events: Toggle,
}

pub struct PreparedBlock {
    config: BlockConfig,
    start: &'static str,
}

fn fields(tracefs: &Path, event: &str, names: &[&str]) -> Result<BlockFields> {
    let offset = |field: &str| -> Result<u32> {
        if names.contains(&field) {
            tracefs::field_offset(tracefs, "block", event, field)
        } else {
            Ok(0)
        }
    };
    Ok(BlockFields {
        dev: offset("dev")?,
        sector: offset("sector")?,
        rwbs: offset("rwbs")?,
        nr_sector: offset("nr_sector")?,
        error: offset("error")?,
    })
}

/// Learns the block tracepoints' record layouts.
pub fn prepare(env: &Env) -> Result<PreparedBlock> {
    let events = env.tracefs.join("events/block");
    let start = START_TRACEPOINTS
        .into_iter()
        .find(|name| events.join(name).is_dir())
        .with_context(|| {
            format!(
                "{} has neither block_io_start nor block_rq_insert",
                events.display()
            )
        })?;
    Ok(PreparedBlock {
        config: BlockConfig {
            all: u32::from(env.cli.options.block.block_all),
            events: u32::from(env.cli.options.block.block_events.is_on()),
            start: fields(env.tracefs, start, &["dev", "sector"])?,
            issue: fields(env.tracefs, "block_rq_issue", &["dev", "sector"])?,
            complete: fields(
                env.tracefs,
                "block_rq_complete",
                &["dev", "sector", "rwbs", "nr_sector", "error"],
            )?,
        },
        start,
    })
}

impl Prepared for PreparedBlock {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
    }

    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        for (program, event) in [
            ("block_start", self.start),
            ("block_issue", "block_rq_issue"),
            ("block_done", "block_rq_complete"),
        ] {
            crate::ebpf::attach_tracepoint(ebpf, program, [("block", event)])?;
        }
        let take = crate::ebpf::take_map;
        Ok(Box::new(BlockTracer {
            all: self.config.all != 0,
            stats: PerCpuHashMap::try_from(take(ebpf, STATS_MAP)?)?,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            pending: Pending::default(),
            previous: BTreeMap::new(),
            clock: env.clock,
            names: DeviceNames::default(),
            events_table: env.table("block_io", tables::events_schema()),
            stats_table: env.table("block_io_stats", tables::stats_schema()),
            processes: BTreeSet::new(),
        }))
    }
}

pub struct BlockTracer {
    /// `--block-all`: every task's requests are recorded, not only the targets'.
    all: bool,
    stats: PerCpuHashMap<MapData, BlockStatsKey, BlockStats>,
    events: RingBuf<MapData>,
    /// Requests read, not yet written.
    pending: Pending<BlockIoEvent>,
    /// Cumulative values (summed over CPUs) at the previous collection.
    previous: BTreeMap<BlockStatsKey, BlockStats>,
    clock: Clock,
    names: DeviceNames,
    events_table: TableWriter,
    stats_table: TableWriter,
    processes: BTreeSet<u32>,
}

fn sum_cpus(per_cpu: &[BlockStats]) -> BlockStats {
    let mut sum = BlockStats::default();
    for s in per_cpu {
        sum.requests += s.requests;
        sum.bytes += s.bytes;
        sum.errors += s.errors;
        sum.total_ns += s.total_ns;
        sum.queue_ns += s.queue_ns;
        for (total, n) in sum.hist.iter_mut().zip(s.hist) {
            *total += n;
        }
    }
    sum
}

fn delta(key: &BlockStatsKey, now: &BlockStats, before: &BlockStats) -> Option<StatsRow> {
    let requests = now
        .requests
        .checked_sub(before.requests)
        .filter(|&n| n > 0)?;
    Some(StatsRow {
        dev: key.dev,
        op: key.op,
        requests,
        bytes: now.bytes.saturating_sub(before.bytes),
        errors: now.errors.saturating_sub(before.errors),
        total_ns: now.total_ns.saturating_sub(before.total_ns),
        queue_ns: now.queue_ns.saturating_sub(before.queue_ns),
        hist: (0..HIST_SLOTS)
            .map(|i| now.hist[i].saturating_sub(before.hist[i]))
            .collect(),
    })
}

impl BlockTracer {
    /// Gathers the requests in the ring buffer for `block_io` (those of tasks that are not
    /// targets only with `others`) and writes those gathered when `due` or a whole batch.
    fn read_events(&mut self, others: bool, due: bool) -> Result<()> {
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<BlockIoEvent>() {
                // SAFETY: the kernel wrote a BlockIoEvent (tracers::block) here.
                let event = unsafe { item.as_ptr().cast::<BlockIoEvent>().read_unaligned() };
                if event.target != 0 {
                    self.processes.insert(event.tgid);
                } else if !others {
                    continue;
                }
                self.pending.push(event);
            }
        }
        let Some(batch) = self.pending.take(due) else {
            return Ok(());
        };
        let clock = self.clock;
        let batch = tables::events_batch(&batch, &mut self.names, |ns| clock.to_utc_ns(ns))?;
        self.events_table.write(&batch)
    }
}

impl Tracer for BlockTracer {
    fn name(&self) -> &'static str {
        "block"
    }

    /// With `--block-all`, the requests of other tasks since attach are dropped (a service
    /// found as it started is a target already: its requests are kept), and the statistics,
    /// everyone's, count from now. Without it, the kernel recorded only targets.
    fn begin(&mut self) -> Result<()> {
        if !self.all {
            return Ok(());
        }
        self.read_events(false, true)?;
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.context("reading the block statistics map")?;
            self.previous.insert(key, sum_cpus(&per_cpu));
        }
        Ok(())
    }

    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn poll_events(&mut self, due: bool) -> Result<()> {
        self.read_events(true, due)
    }

    fn collect_interval(&mut self, interval: &Interval<'_>) -> Result<()> {
        let mut rows = Vec::new();
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.context("reading the block statistics map")?;
            let now = sum_cpus(&per_cpu);
            let before = self.previous.get(&key).copied().unwrap_or_default();
            rows.extend(delta(&key, &now, &before));
            self.previous.insert(key, now);
        }
        let batch = tables::stats_batch(interval.start, interval.end, &rows, &mut self.names)?;
        self.stats_table.write(&batch)
    }

    fn events(&self) -> u64 {
        self.events_table.rows() + self.stats_table.rows()
    }

    fn processes(&self) -> &BTreeSet<u32> {
        &self.processes
    }

    fn tables(&mut self) -> Vec<&mut TableWriter> {
        vec![&mut self.events_table, &mut self.stats_table]
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "  {:<12} {:<8} {:>10} {:>12} {:>12}",
            "device", "op", "requests", "MiB", "mean"
        )];
        let mut names = DeviceNames::default();
        for (key, s) in &self.previous {
            lines.push(format!(
                "  {:<12} {:<8} {:>10} {:>12.2} {:>9.3} ms",
                names.name(key.dev),
                op::name(key.op),
                s.requests,
                s.bytes as f64 / (1 << 20) as f64,
                s.total_ns as f64 / s.requests.max(1) as f64 / 1e6,
            ));
        }
        lines
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        vec![self.events_table, self.stats_table]
    }
}
