//! The `proc` tracer: no eBPF, it samples /proc every interval. Per target process
//! (`proc_stats`): CPU time, memory, context switches, file descriptors, I/O and page faults;
//! for the machine (`system_stats`, `disk_stats`, `net_stats`): CPU states, memory, load, and
//! per-disk and per-interface traffic. Counters become their change over each interval.

pub mod cmdline;
pub mod counters;
mod devices;
mod process;
mod system;
pub(crate) mod tables;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use anyhow::Result;
use aya::{Ebpf, EbpfLoader};

use crate::{
    run::table::TableWriter,
    tracer::{Env, Interval, Prepared, Tracer},
};
use counters::Ticks;
use devices::{DiskCounters, NetCounters};
use process::{Previous, Pss};
use system::SystemSample;
use tables::ProcessRow;

/// The proc tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "proc tracer")]
#[group(skip)]
pub struct Options {
    /// Store command lines as they are (default: the values of password-, token-, secret-
    /// and key-like options and the passwords in URLs are replaced by `***`).
    #[arg(long)]
    pub keep_cmdline: bool,
}

/// The machine's state when the tracer starts: the baseline of the first interval's rows.
pub struct PreparedProc {
    system: SystemSample,
    disks: BTreeMap<String, DiskCounters>,
    interfaces: BTreeMap<String, NetCounters>,
}

/// Reads the machine's files once: a /proc that cannot be read makes the tracer unavailable
/// rather than the run fail.
pub fn prepare(_env: &Env) -> Result<PreparedProc> {
    Ok(PreparedProc {
        system: SystemSample::read()?,
        disks: devices::read_disks()?,
        interfaces: devices::read_interfaces()?,
    })
}

impl Prepared for PreparedProc {
    fn set_globals<'a>(&'a self, _loader: &mut EbpfLoader<'a>) {}

    fn attach(self: Box<Self>, _ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        let ticks = Ticks::of_this_system();
        Ok(Box::new(ProcTracer {
            ticks,
            started_ticks: ticks.since_boot(),
            keep_cmdline: env.cli.options.proc.keep_cmdline,
            system: self.system,
            disks: self.disks,
            interfaces: self.interfaces,
            previous: BTreeMap::new(),
            watched: false,
            totals: BTreeMap::new(),
            processes: BTreeSet::new(),
            proc_table: env.table("proc_stats", tables::proc_schema()),
            system_table: env.table("system_stats", tables::system_schema()),
            disk_table: env.table("disk_stats", tables::disk_schema()),
            net_table: env.table("net_stats", tables::net_schema()),
        }))
    }
}

/// Whole-run figures of one process, for the summary.
#[derive(Default)]
struct Totals {
    comm: String,
    cpu_user_ticks: u64,
    cpu_system_ticks: u64,
    peak_rss_bytes: Option<u64>,
}

pub struct ProcTracer {
    ticks: Ticks,
    /// Clock ticks since boot when the tracer started: a process started since was traced all
    /// its life.
    started_ticks: u64,
    /// `--keep-cmdline`: command lines are stored with their secrets.
    keep_cmdline: bool,
    system: SystemSample,
    disks: BTreeMap<String, DiskCounters>,
    interfaces: BTreeMap<String, NetCounters>,
    /// Target processes at the previous collection, by pid.
    previous: BTreeMap<u32, Previous>,
    /// Whether the first targets were sampled (see `watch`).
    watched: bool,
    totals: BTreeMap<u32, Totals>,
    processes: BTreeSet<u32>,
    proc_table: TableWriter,
    system_table: TableWriter,
    disk_table: TableWriter,
    net_table: TableWriter,
}

impl ProcTracer {
    /// One row per target process that has a baseline. A process that left the targets by
    /// exiting still gets its last row while it is a zombie (a command that does all its work
    /// within one interval would otherwise have none); reaped processes are skipped.
    fn process_rows(&mut self, pids: &BTreeSet<u32>) -> Vec<ProcessRow> {
        let mut rows = Vec::new();
        let mut seen = BTreeMap::new();
        let exited: Vec<u32> = self
            .previous
            .keys()
            .filter(|pid| !pids.contains(pid))
            .copied()
            .collect();
        let read_at = Instant::now();
        for pid in pids.iter().copied().chain(exited) {
            let was_target = self.previous.get(&pid);
            let pss = Previous::pss_due(was_target, read_at);
            let Some(mut now) = process::sample(pid, self.keep_cmdline, pss) else {
                continue;
            };
            if !pids.contains(&pid) && was_target.is_none_or(|p| p.start_ticks != now.start_ticks) {
                // The pid now belongs to another process.
                continue;
            }
            let totals = self.totals.entry(pid).or_default();
            totals.comm.clone_from(&now.comm);
            totals.peak_rss_bytes = totals.peak_rss_bytes.max(now.rss_bytes);
            let before = process::baseline(was_target, &now, self.started_ticks);
            let pss = process::carry_pss(was_target, &mut now, read_at);
            seen.insert(
                pid,
                Previous {
                    start_ticks: now.start_ticks,
                    counters: now.counters,
                    pss,
                },
            );
            if let Some(before) = before {
                let change = now.counters.since(&before);
                totals.cpu_user_ticks += change.cpu_user_ticks;
                totals.cpu_system_ticks += change.cpu_system_ticks;
                self.processes.insert(pid);
                rows.push(ProcessRow { pid, now, change });
            }
        }
        // Processes no longer targets (or gone) are forgotten.
        self.previous = seen;
        rows
    }
}

impl Tracer for ProcTracer {
    fn name(&self) -> &'static str {
        "proc"
    }

    /// The machine's counters are read again: its first rows count from the run's start, not
    /// from when the tracer was prepared. (A process is counted from its birth when it started
    /// after the tracer was attached, as the kernel's counters of it are.)
    fn begin(&mut self) -> Result<()> {
        self.system = SystemSample::read()?;
        self.disks = devices::read_disks()?;
        self.interfaces = devices::read_interfaces()?;
        Ok(())
    }

    /// The processes that are targets when the trace starts are sampled now, so their first
    /// interval has a row too.
    fn watch(&mut self, pids: &BTreeSet<u32>) {
        if std::mem::replace(&mut self.watched, true) {
            return;
        }
        for &pid in pids {
            // A baseline only: its PSS would be read again for the first row.
            if let Some(now) = process::sample(pid, self.keep_cmdline, Pss::Skip) {
                let previous = Previous {
                    start_ticks: now.start_ticks,
                    counters: now.counters,
                    pss: None,
                };
                self.previous.insert(pid, previous);
            }
        }
    }

    fn poll_events(&mut self, _due: bool) -> Result<()> {
        Ok(())
    }

    fn collect_interval(&mut self, interval: &Interval<'_>) -> Result<()> {
        let (start, end) = (interval.start, interval.end);
        let rows = self.process_rows(interval.pids);
        let batch = tables::proc_batch(start, end, &rows, self.ticks)?;
        self.proc_table.write(&batch)?;

        let system = SystemSample::read()?;
        let batch = tables::system_batch(start, end, &system.since(&self.system), self.ticks)?;
        self.system_table.write(&batch)?;
        self.system = system;

        let disks = devices::read_disks()?;
        let batch = tables::disk_batch(start, end, &devices::disk_changes(&self.disks, &disks))?;
        self.disk_table.write(&batch)?;
        self.disks = disks;

        let interfaces = devices::read_interfaces()?;
        let changes = devices::interface_changes(&self.interfaces, &interfaces);
        self.net_table
            .write(&tables::net_batch(start, end, &changes)?)?;
        self.interfaces = interfaces;
        Ok(())
    }

    fn events(&self) -> u64 {
        self.proc_table.rows()
            + self.system_table.rows()
            + self.disk_table.rows()
            + self.net_table.rows()
    }

    fn processes(&self) -> &BTreeSet<u32> {
        &self.processes
    }

    fn tables(&mut self) -> Vec<&mut TableWriter> {
        vec![
            &mut self.proc_table,
            &mut self.system_table,
            &mut self.disk_table,
            &mut self.net_table,
        ]
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "  {:>8} {:<16} {:>12} {:>12} {:>12}",
            "pid", "comm", "cpu user", "cpu system", "peak RSS"
        )];
        let seconds = |ticks| self.ticks.to_ns(ticks) as f64 / 1e9;
        for (pid, t) in &self.totals {
            let rss = t.peak_rss_bytes.map_or_else(
                || "-".to_owned(),
                |bytes| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64),
            );
            lines.push(format!(
                "  {pid:>8} {:<16} {:>10.2} s {:>10.2} s {rss:>12}",
                t.comm,
                seconds(t.cpu_user_ticks),
                seconds(t.cpu_system_ticks),
            ));
        }
        lines
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        vec![
            self.proc_table,
            self.system_table,
            self.disk_table,
            self.net_table,
        ]
    }
}
