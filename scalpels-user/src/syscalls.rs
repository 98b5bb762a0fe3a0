//! The `syscalls` tracer, userspace side: configures the programs in
//! `scalpels-ebpf/src/syscalls.rs`, drains their statistics map every interval into per-interval
//! rows (differences of the kernel's cumulative counters), and streams slow calls.

mod names;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::os::fd::{AsFd as _, BorrowedFd};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, IterableMap as _, MapData, RingBuf},
};
use tracers::{
    histogram::HIST_SLOTS,
    syscalls::{
        CONFIG_GLOBAL, EVENTS_MAP, INTERVAL_MAP, STATS_MAP, SlowSyscallEvent, SyscallKey,
        SyscallStats, SyscallsConfig, program,
    },
};

use crate::{
    clock::Clock,
    map_batch,
    run::{columns, pending::Pending, table::TableWriter},
    stack_index::AwaitingStacks,
    tracer::{Env, Interval, Prepared, Tracer},
};
use tables::StatsRow;

/// The syscalls tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "syscalls tracer")]
#[group(skip)]
pub struct Options {
    /// System calls at least this long are recorded one by one in syscall_events (0, every
    /// call, to 1h).
    #[arg(long, value_parser = crate::options::slow_threshold, default_value = "10ms", value_name = "DURATION")]
    #[serde(rename = "slow_syscall_ns", serialize_with = "crate::options::nanos")]
    pub slow_syscall: std::time::Duration,
}

pub struct PreparedSyscalls {
    config: SyscallsConfig,
}

/// Sets the slow-call threshold.
pub fn prepare(env: &Env) -> Result<PreparedSyscalls> {
    Ok(PreparedSyscalls {
        config: SyscallsConfig {
            slow_ns: u64::try_from(env.cli.options.syscalls.slow_syscall.as_nanos())
                .unwrap_or(u64::MAX),
        },
    })
}

impl Prepared for PreparedSyscalls {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
    }

    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        // Its system-call work runs in the hooks (`crate::hooks`).
        crate::ebpf::attach_raw_tracepoints(ebpf, &[(program::EXEC, "sched_process_exec")])?;
        let take = crate::ebpf::take_map;
        Ok(Box::new(SyscallsTracer {
            stats: BpfHashMap::try_from(take(ebpf, STATS_MAP)?)?,
            interval_map: Array::try_from(take(ebpf, INTERVAL_MAP)?)?,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            previous: HashMap::new(),
            interval: 0,
            clock: env.clock,
            stats_table: env.table("syscalls", tables::stats_schema()),
            events_table: env.table("syscall_events", tables::events_schema()),
            waiting: AwaitingStacks::new(env.stacks),
            pending: Pending::default(),
            totals: BTreeMap::new(),
            processes: BTreeSet::new(),
        }))
    }
}

/// Whole-run totals of one syscall, for the summary.
#[derive(Default)]
struct Totals {
    calls: u64,
    errors: u64,
    total_ns: u64,
    max_ns: u64,
}

pub struct SyscallsTracer {
    stats: BpfHashMap<MapData, SyscallKey, SyscallStats>,
    interval_map: Array<MapData, u64>,
    events: RingBuf<MapData>,
    /// The kernel's cumulative values at the previous collection.
    previous: HashMap<SyscallKey, SyscallStats>,
    interval: u64,
    clock: Clock,
    stats_table: TableWriter,
    events_table: TableWriter,
    /// Slow calls waiting for their Python stack.
    waiting: AwaitingStacks<SlowSyscallEvent>,
    /// Slow calls with their stack, not yet written.
    pending: Pending<(SlowSyscallEvent, Option<u64>)>,
    totals: BTreeMap<u32, Totals>,
    processes: BTreeSet<u32>,
}

fn thread_is_alive(key: &SyscallKey) -> bool {
    std::path::Path::new(&format!("/proc/{}/task/{}", key.tgid, key.tid)).exists()
}

impl SyscallsTracer {
    /// Gathers the slow calls whose Python stack is known or not coming (`all`: every one) and
    /// writes those gathered when `due` or a whole batch.
    fn write_events(&mut self, all: bool, due: bool) -> Result<()> {
        self.pending.extend(self.waiting.ready(all));
        let Some(rows) = self.pending.take(due) else {
            return Ok(());
        };
        let (ready, stacks): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
        let clock = self.clock;
        let batch = tables::events_batch(&ready, &stacks, |ns| clock.to_utc_ns(ns))?;
        self.events_table.write(&batch)
    }

    /// The change of one key since the previous collection, if it made calls.
    fn delta(&self, key: &SyscallKey, now: &SyscallStats, interval: u64) -> Option<StatsRow> {
        let zero = SyscallStats::default();
        let before = self.previous.get(key).unwrap_or(&zero);
        let calls = now.count.checked_sub(before.count).filter(|&c| c > 0)?;
        let hist = (0..HIST_SLOTS)
            .map(|i| now.hist[i].saturating_sub(before.hist[i]))
            .collect();
        Some(StatsRow {
            pid: key.tgid,
            tid: key.tid,
            comm: columns::comm(&now.comm),
            nr: key.nr,
            calls,
            errors: now.errors.saturating_sub(before.errors),
            total_ns: now.total_ns.saturating_sub(before.total_ns),
            // The kernel restarts the maximum when a call ends in a newer interval.
            max_ns: if now.max_interval >= interval {
                now.max_ns
            } else {
                0
            },
            hist,
        })
    }
}

impl Tracer for SyscallsTracer {
    fn name(&self) -> &'static str {
        "syscalls"
    }

    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn poll_events(&mut self, due: bool) -> Result<()> {
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<SlowSyscallEvent>() {
                // SAFETY: the kernel wrote a SlowSyscallEvent (tracers::syscalls) here.
                let event = unsafe { item.as_ptr().cast::<SlowSyscallEvent>().read_unaligned() };
                let key = (event.python_stack != 0).then_some((event.tid, event.end_ns));
                self.waiting.push(event, key);
            }
        }
        self.write_events(false, due)
    }

    fn finish(&mut self) -> Result<()> {
        self.write_events(true, true)
    }

    fn collect_interval(&mut self, interval: &Interval<'_>) -> Result<()> {
        let number = self.interval;
        // Calls ending from now on start the next interval's maximum.
        self.interval += 1;
        self.interval_map
            .set(0, self.interval, 0)
            .context("advancing the syscalls interval")?;

        let mut rows = Vec::new();
        let mut gone = Vec::new();
        let entries = map_batch::lookup_all::<SyscallKey, SyscallStats>(self.stats.map(), 1, false)
            .context("reading the syscalls statistics map")?;
        for (key, now) in entries {
            let now = now[0];
            match self.delta(&key, &now, number) {
                Some(row) => {
                    self.processes.insert(key.tgid);
                    let totals = self.totals.entry(key.nr).or_default();
                    totals.calls += row.calls;
                    totals.errors += row.errors;
                    totals.total_ns += row.total_ns;
                    totals.max_ns = totals.max_ns.max(row.max_ns);
                    rows.push(row);
                }
                None if !thread_is_alive(&key) => gone.push(key),
                None => {}
            }
            self.previous.insert(key, now);
        }
        // Threads that exited and whose last calls were collected: free their entries.
        for key in gone {
            let _ = self.stats.remove(&key);
            self.previous.remove(&key);
        }
        self.stats_table
            .write(&tables::stats_batch(interval.start, interval.end, &rows)?)
    }

    fn events(&self) -> u64 {
        self.stats_table.rows() + self.events_table.rows()
    }

    fn processes(&self) -> &BTreeSet<u32> {
        &self.processes
    }

    fn tables(&mut self) -> Vec<&mut TableWriter> {
        vec![&mut self.stats_table, &mut self.events_table]
    }

    fn summary(&self) -> Vec<String> {
        let mut top: Vec<_> = self.totals.iter().collect();
        top.sort_by_key(|(_, t)| std::cmp::Reverse(t.total_ns));
        let mut lines = vec![format!(
            "  {:<20} {:>10} {:>8} {:>14} {:>12}",
            "syscall (top by time)", "calls", "errors", "total", "max"
        )];
        lines.extend(top.into_iter().take(10).map(|(nr, t)| {
            format!(
                "  {:<20} {:>10} {:>8} {:>14} {:>12}",
                names::name(*nr),
                t.calls,
                t.errors,
                format!("{:.3} ms", t.total_ns as f64 / 1e6),
                format!("{:.3} ms", t.max_ns as f64 / 1e6),
            )
        }));
        lines
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        vec![self.stats_table, self.events_table]
    }
}
