//! The `files` tracer, userspace side: configures the programs in `scalpels-ebpf/src/files.rs`
//! (which syscalls, where their fields are, how to walk from a task to an inode), names files
//! by path, and turns the kernel's per-CPU statistics into per-interval rows of `file_io`.

mod paths;
pub mod tables;

use std::{
    collections::{BTreeMap, BTreeSet},
    str::FromStr as _,
};

use std::os::fd::{AsFd as _, BorrowedFd};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, IterableMap as _, MapData, PerCpuHashMap, RingBuf},
};
use syscalls::Sysno;
use tracers::files::{
    CONFIG_GLOBAL, EVENTS_MAP, FileKey, FileOpenEvent, FilePathEvent, FileSlowEvent, FileStats,
    FileSyscall, FileWalk, FilesConfig, INTERVAL_MAP, STATS_MAP, SYSCALLS_MAP, kind, op,
};

use crate::{
    block::devices,
    btf,
    clock::Clock,
    map_batch,
    run::{columns::comm, pending::Pending, table::TableWriter},
    stack_index::AwaitingStacks,
    tracefs,
    tracer::{Env, Interval, Prepared, Tracer},
};
use paths::PathBook;
use tables::{EventRow, StatsRow};

/// The syscalls traced, by operation. Those this kernel lacks are skipped.
const SYSCALLS: &[(&str, u32)] = &[
    ("read", op::READ),
    ("pread64", op::READ),
    ("readv", op::READ),
    ("preadv", op::READ),
    ("preadv2", op::READ),
    ("write", op::WRITE),
    ("pwrite64", op::WRITE),
    ("writev", op::WRITE),
    ("pwritev", op::WRITE),
    ("pwritev2", op::WRITE),
    ("fsync", op::SYNC),
    ("fdatasync", op::SYNC),
    ("open", op::OPEN),
    ("creat", op::OPEN),
    ("openat", op::OPEN),
    ("openat2", op::OPEN),
    ("close", op::CLOSE),
    ("rename", op::RENAME),
    ("renameat", op::RENAME),
    ("renameat2", op::RENAME),
    ("unlink", op::UNLINK),
    ("unlinkat", op::UNLINK),
];

/// A traced syscall: its number, tracepoint name and record layout.
struct Traced {
    nr: u32,
    name: &'static str,
    spec: FileSyscall,
}

/// The files tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "files tracer")]
#[group(skip)]
pub struct Options {
    /// Operations at least this long are recorded one by one in file_io_events (0, every
    /// operation, to 1h).
    #[arg(long, value_parser = crate::options::slow_threshold, default_value = "10ms", value_name = "DURATION")]
    #[serde(rename = "slow_file_io_ns", serialize_with = "crate::options::nanos")]
    pub slow_file_io: std::time::Duration,
}

pub struct PreparedFiles {
    config: FilesConfig,
    traced: Vec<Traced>,
}

/// Learns the syscall record layouts (tracefs) and the task-to-inode walk (BTF).
pub fn prepare(env: &Env) -> Result<PreparedFiles> {
    let vmlinux = btf::load_vmlinux()?;
    // The walk from the current task to an fd's inode.
    let offset = |st: &str, member: &str| btf::member_offset(&vmlinux, st, member);
    let walk = FileWalk {
        task_files: offset("task_struct", "files")?,
        files_fdt: offset("files_struct", "fdt")?,
        fdtable_max_fds: offset("fdtable", "max_fds")?,
        fdtable_fd: offset("fdtable", "fd")?,
        file_inode: offset("file", "f_inode")?,
        inode_mode: offset("inode", "i_mode")?,
        inode_ino: offset("inode", "i_ino")?,
        inode_sb: offset("inode", "i_sb")?,
        sb_dev: offset("super_block", "s_dev")?,
        _pad: 0,
    };
    let mut traced = Vec::new();
    for &(name, operation) in SYSCALLS {
        let (Ok(sysno), Ok(fields)) = (
            Sysno::from_str(name),
            tracefs::syscall_format(env.tracefs, &format!("sys_enter_{name}")),
        ) else {
            continue;
        };
        traced.push(Traced {
            nr: sysno.id() as u32,
            name,
            spec: FileSyscall {
                op: operation,
                fd_arg: tracefs::arg_of_any(&fields, &["fd"]),
                path_arg: tracefs::arg_of_any(&fields, &["filename", "pathname", "oldname"]),
                path2_arg: tracefs::arg_of_any(&fields, &["newname"]),
            },
        });
    }
    if traced.is_empty() {
        bail!("this kernel has none of the syscalls:sys_enter_* tracepoints the files tracer uses");
    }
    Ok(PreparedFiles {
        config: FilesConfig {
            slow_ns: u64::try_from(env.cli.options.files.slow_file_io.as_nanos())
                .unwrap_or(u64::MAX),
            walk,
        },
        traced,
    })
}

impl Prepared for PreparedFiles {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
    }

    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        let take = crate::ebpf::take_map;
        let mut specs: Array<MapData, FileSyscall> = Array::try_from(take(ebpf, SYSCALLS_MAP)?)?;
        for t in &self.traced {
            specs
                .set(t.nr, t.spec, 0)
                .with_context(|| format!("configuring syscall {}", t.name))?;
        }
        Ok(Box::new(FilesTracer {
            stats: PerCpuHashMap::try_from(take(ebpf, STATS_MAP)?)?,
            cpus: aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?,
            interval_map: Array::try_from(take(ebpf, INTERVAL_MAP)?)?,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            previous: BTreeMap::new(),
            interval: 0,
            clock: env.clock,
            paths: PathBook::default(),
            stats_table: env.table("file_io", tables::stats_schema()),
            events_table: env.table("file_io_events", tables::events_schema()),
            totals: BTreeMap::new(),
            processes: BTreeSet::new(),
            watched: BTreeSet::new(),
            waiting: AwaitingStacks::new(env.stacks),
            pending: Pending::default(),
        }))
    }
}

/// Cumulative values of one key summed over CPUs, and its longest call in the interval.
#[derive(Clone, Copy, Default)]
struct Summed {
    calls: u64,
    errors: u64,
    bytes: u64,
    total_ns: u64,
    max_ns: u64,
}

fn sum_cpus(per_cpu: &[FileStats], interval: u64) -> Summed {
    let mut sum = Summed::default();
    for s in per_cpu {
        sum.calls += s.calls;
        sum.errors += s.errors;
        sum.bytes += s.bytes;
        sum.total_ns += s.total_ns;
        if s.max_interval == interval {
            sum.max_ns = sum.max_ns.max(s.max_ns);
        }
    }
    sum
}

pub struct FilesTracer {
    stats: PerCpuHashMap<MapData, FileKey, FileStats>,
    /// Possible CPUs: the values each statistics entry has.
    cpus: usize,
    interval_map: Array<MapData, u64>,
    events: RingBuf<MapData>,
    previous: BTreeMap<FileKey, Summed>,
    interval: u64,
    clock: Clock,
    paths: PathBook,
    stats_table: TableWriter,
    events_table: TableWriter,
    /// Whole-run totals per (path or inode, op), for the summary.
    totals: BTreeMap<(String, &'static str), Summed>,
    processes: BTreeSet<u32>,
    /// Targets whose open files were read when they became targets.
    watched: BTreeSet<u32>,
    /// Slow operations waiting for their Python stack.
    waiting: AwaitingStacks<EventRow>,
    /// Events with their stack, not yet written.
    pending: Pending<EventRow>,
}

/// The end of `path` in at most `width` characters (the file name is what tells files apart).
fn tail(path: &str, width: usize) -> String {
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= width {
        return path.to_owned();
    }
    let kept: String = chars[chars.len() - (width - 1)..].iter().collect();
    format!("…{kept}")
}

/// A NUL-terminated path from the kernel.
fn path_of(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]).into_owned())
}

impl FilesTracer {
    /// Gathers the events whose Python stack is known or not coming (`all`: every one) and
    /// writes those gathered when `due` or a whole batch.
    fn write_events(&mut self, all: bool, due: bool) -> Result<()> {
        self.pending.extend(
            self.waiting
                .ready(all)
                .into_iter()
                .map(|(row, python_stack_id)| EventRow {
                    python_stack_id,
                    ..row
                }),
        );
        let Some(rows) = self.pending.take(due) else {
            return Ok(());
        };
        self.events_table.write(&tables::events_batch(&rows)?)
    }

    /// The row of an operation that ended at `end_ns` (kernel time), without fd or paths.
    fn row(
        &self,
        end_ns: u64,
        duration_ns: u64,
        (pid, tid): (u32, u32),
        task: &[u8; 16],
        operation: u32,
        ret: i64,
    ) -> EventRow {
        EventRow {
            start: self.clock.to_utc_ns(end_ns.saturating_sub(duration_ns)),
            duration_ns,
            pid,
            tid,
            comm: comm(task),
            op: op::name(operation),
            fd: None,
            path: None,
            new_path: None,
            ret,
            python_stack_id: None,
        }
    }

    /// Converts one ring-buffer record (an open is remembered, the others become rows, with
    /// the key of the Python stack the kernel took for them, if it did).
    fn event(&mut self, bytes: &[u8]) -> Option<(EventRow, Option<(u32, u64)>)> {
        let record_kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        match record_kind {
            kind::OPEN if bytes.len() >= size_of::<FileOpenEvent>() => {
                // SAFETY: the kernel wrote a FileOpenEvent here (its kind says so).
                let e = unsafe { bytes.as_ptr().cast::<FileOpenEvent>().read_unaligned() };
                let given = path_of(&e.path).unwrap_or_default();
                self.paths.opened(e.tgid, e.fd, e.file, &given);
                None
            }
            kind::SLOW if bytes.len() >= size_of::<FileSlowEvent>() => {
                // SAFETY: as above, a FileSlowEvent.
                let e = unsafe { bytes.as_ptr().cast::<FileSlowEvent>().read_unaligned() };
                self.paths.resolve(e.tgid, &e.file);
                let row = EventRow {
                    fd: Some(e.fd),
                    path: self.paths.get(&e.file).map(str::to_owned),
                    ..self.row(
                        e.end_ns,
                        e.duration_ns,
                        (e.tgid, e.tid),
                        &e.comm,
                        e.op,
                        e.ret,
                    )
                };
                Some((row, (e.python_stack != 0).then_some((e.tid, e.end_ns))))
            }
            kind::PATH if bytes.len() >= size_of::<FilePathEvent>() => {
                // SAFETY: as above, a FilePathEvent.
                let e = unsafe { bytes.as_ptr().cast::<FilePathEvent>().read_unaligned() };
                let row = EventRow {
                    path: path_of(&e.path),
                    new_path: path_of(&e.path2),
                    ..self.row(
                        e.end_ns,
                        e.duration_ns,
                        (e.tgid, e.tid),
                        &e.comm,
                        e.op,
                        e.ret,
                    )
                };
                Some((row, None))
            }
            _ => None,
        }
    }
}

impl Tracer for FilesTracer {
    fn name(&self) -> &'static str {
        "files"
    }

    fn watch(&mut self, pids: &BTreeSet<u32>) {
        for &pid in pids {
            if self.watched.insert(pid) {
                self.paths.scan(pid);
            }
        }
    }

    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn poll_events(&mut self, due: bool) -> Result<()> {
        let mut records = Vec::new();
        while let Some(item) = self.events.next() {
            records.push(item.to_vec());
        }
        for record in &records {
            if let Some((row, stack_key)) = self.event(record) {
                self.waiting.push(row, stack_key);
            }
        }
        self.write_events(false, due)
    }

    fn finish(&mut self) -> Result<()> {
        self.write_events(true, true)
    }

    fn collect_interval(&mut self, interval: &Interval) -> Result<()> {
        // Opens since the last poll name the files counted below.
        self.poll_events(false)?;
        self.paths.forget_scans();
        let number = self.interval;
        self.interval += 1;
        self.interval_map
            .set(0, self.interval, 0)
            .context("advancing the files interval")?;
        let mut rows = Vec::new();
        let entries =
            map_batch::lookup_all::<FileKey, FileStats>(self.stats.map(), self.cpus, true)
                .context("reading the files statistics map")?;
        for (key, per_cpu) in entries {
            let now = sum_cpus(&per_cpu, number);
            let before = self.previous.insert(key, now).unwrap_or_default();
            let Some(calls) = now.calls.checked_sub(before.calls).filter(|&c| c > 0) else {
                continue;
            };
            self.paths.resolve(key.tgid, &key.file);
            self.processes.insert(key.tgid);
            let row = StatsRow {
                pid: key.tgid,
                fd: key.fd,
                path: self.paths.get(&key.file).map(str::to_owned),
                op: op::name(key.op),
                calls,
                errors: now.errors.saturating_sub(before.errors),
                bytes: now.bytes.saturating_sub(before.bytes),
                total_ns: now.total_ns.saturating_sub(before.total_ns),
                max_ns: now.max_ns,
                device: devices::number(key.file.dev),
                inode: key.file.ino,
            };
            let name = row
                .path
                .clone()
                .unwrap_or_else(|| format!("inode {}", row.inode));
            let totals = self.totals.entry((name, row.op)).or_default();
            totals.calls += row.calls;
            totals.bytes += row.bytes;
            totals.total_ns += row.total_ns;
            rows.push(row);
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
            "  {:<40} {:<6} {:>8} {:>12} {:>12}",
            "file (top by time)", "op", "calls", "MiB", "total"
        )];
        lines.extend(top.into_iter().take(10).map(|((path, op), t)| {
            format!(
                "  {:<40} {:<6} {:>8} {:>12.2} {:>9.3} ms",
                tail(path, 40),
                op,
                t.calls,
                t.bytes as f64 / (1 << 20) as f64,
                t.total_ns as f64 / 1e6
            )
        }));
        lines
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        vec![self.stats_table, self.events_table]
    }
}
