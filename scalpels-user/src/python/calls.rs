//! `--python-calls`: exact Python call counts from CPython's USDT probes. Each interpreter
//! file with `python:function__entry`/`function__return` gets the two uprobes of
//! `scalpels-ebpf/src/python_calls.rs`; each process running it gets its probe semaphores
//! raised (the probes do nothing while they are zero) and lowered again at the end. The
//! kernel's cumulative per-function statistics become `python_calls` rows each interval.

use std::{
    collections::{BTreeMap, HashMap},
    fs::OpenOptions,
    os::{
        fd::{AsFd as _, OwnedFd},
        unix::fs::FileExt as _,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuHashMap},
    programs::{ProgramFd, UProbe},
};
use tracers::python_calls::{
    ARGS_MAP, CallArgs, CallKey, CallStats, EMPTY_STACK_MAP, STACKS_MAP, STATS_MAP,
};

use super::{
    discover::Interpreter,
    memory::ProcessMemory,
    tables::{self, CallRow},
    usdt::{self, Location, Probe},
};
use crate::{
    btf,
    proc::counters::Ticks,
    run::table::TableWriter,
    tracer::{Env, Interval},
    uprobe_link,
};

/// The maps of the kernel side.
pub const MAPS: [&str; 4] = [ARGS_MAP, STACKS_MAP, EMPTY_STACK_MAP, STATS_MAP];
/// The manifest note of a CPython without the probes (e.g. a pyenv build).
const NO_PROBES: &str = "no USDT probes: exact calls unavailable";
/// How often new functions are named: soon after their first return, because a process's
/// names can only be read while it lives.
const NAME_EVERY: Duration = Duration::from_millis(20);
/// CPython 3.11 fires `function__entry` per call only while `line` is enabled too (CPython
/// issue 98894), so its semaphore is raised with the function probes'.
const PROBES: [&str; 3] = ["function__entry", "function__return", "line"];

/// An interpreter file's probes, attached.
struct FileProbes {
    args: CallArgs,
    /// The semaphores to raise in each process (file virtual addresses).
    semaphores: Vec<u64>,
    /// The uprobe perf events: closing them detaches the programs.
    _links: [OwnedFd; 2],
}

pub struct PythonCalls {
    pmu: u32,
    entry: ProgramFd,
    ret: ProgramFd,
    /// `struct pt_regs` member -> offset (BTF).
    pt_regs: HashMap<&'static str, u32>,
    args: BpfHashMap<MapData, u32, CallArgs>,
    stats: PerCpuHashMap<MapData, CallKey, CallStats>,
    /// Interpreter files seen, with their probes attached, or why they have none usable.
    files: HashMap<PathBuf, Result<FileProbes, String>>,
    /// Processes whose semaphores were raised, at their addresses in the process.
    armed: BTreeMap<u32, Vec<u64>>,
    /// When each was armed, in clock ticks since boot (as /proc gives process start times).
    armed_at: BTreeMap<u32, u64>,
    ticks: Ticks,
    notes: BTreeMap<u32, String>,
    /// Cumulative statistics (summed over CPUs) at the previous collection.
    previous: HashMap<CallKey, CallStats>,
    /// (pid, address of a C string) -> the string.
    names: HashMap<(u32, u64), String>,
    last_naming: Instant,
    table: TableWriter,
}

const PT_REGS: [&str; 16] = [
    "ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15",
];

fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<ProgramFd> {
    let prog: &mut UProbe = ebpf
        .program_mut(name)
        .with_context(|| format!("eBPF object has no program {name}"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog.fd()?.try_clone()?)
}

fn open_memory(pid: u32) -> Result<std::fs::File> {
    let path = format!("/proc/{pid}/mem");
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {path}"))
}

fn read_semaphore(mem: &std::fs::File, pid: u32, addr: u64) -> Result<u16> {
    let mut value = [0; 2];
    mem.read_exact_at(&mut value, addr)
        .with_context(|| format!("reading the USDT semaphore at {addr:#x} of {pid}"))?;
    Ok(u16::from_ne_bytes(value))
}

/// Adds `delta` to the u16 semaphore at `addr` in process `pid`, never going below zero (a
/// counter wrapped to 65535 would leave the probes on for good).
fn add_to_semaphore(pid: u32, addr: u64, delta: i16) -> Result<()> {
    let mem = open_memory(pid)?;
    let value = read_semaphore(&mem, pid, addr)?.saturating_add_signed(delta);
    mem.write_all_at(&value.to_ne_bytes(), addr)
        .with_context(|| format!("writing the USDT semaphore at {addr:#x} of {pid}"))
}

/// Whether `pid` was forked, after its parent's semaphores were raised, from a parent whose
/// raise it then carries in its copy of the parent's memory (an exec would have reset them).
fn inherited_raise(pid: u32, armed_at: &BTreeMap<u32, u64>, semaphores: &[u64]) -> Option<bool> {
    let stat = procfs::process::Process::new(pid as i32)
        .ok()?
        .stat()
        .ok()?;
    let parent_armed = *armed_at.get(&u32::try_from(stat.ppid).ok()?)?;
    if stat.starttime < parent_armed {
        return Some(false);
    }
    let mem = open_memory(pid).ok()?;
    Some(
        semaphores
            .iter()
            .all(|&addr| read_semaphore(&mem, pid, addr).is_ok_and(|v| v > 0)),
    )
}

impl PythonCalls {
    pub fn attach(ebpf: &mut Ebpf, env: &Env) -> Result<Self> {
        let vmlinux = btf::load_vmlinux()?;
        let pt_regs = PT_REGS
            .into_iter()
            .map(|member| Ok((member, btf::member_offset(&vmlinux, "pt_regs", member)?)))
            .collect::<Result<_>>()?;
        let take = crate::ebpf::take_map;
        Ok(Self {
            pmu: uprobe_link::pmu_type()?,
            entry: load_program(ebpf, "python_call_entry")?,
            ret: load_program(ebpf, "python_call_return")?,
            pt_regs,
            args: BpfHashMap::try_from(take(ebpf, ARGS_MAP)?)?,
            stats: PerCpuHashMap::try_from(take(ebpf, STATS_MAP)?)?,
            files: HashMap::new(),
            armed: BTreeMap::new(),
            armed_at: BTreeMap::new(),
            ticks: Ticks::of_this_system(),
            notes: BTreeMap::new(),
            previous: HashMap::new(),
            names: HashMap::new(),
            last_naming: Instant::now(),
            table: env.table("python_calls", tables::calls_schema()),
        })
    }

    /// The register offset of a probe's pointer argument `index`.
    fn pointer_arg(&self, probe: &Probe, index: usize) -> Result<u32> {
        let Some(arg) = probe.args.get(index) else {
            bail!("{} has no argument {}", probe.name, index + 1);
        };
        match &arg.location {
            Location::Register(member) if arg.size == 8 => self
                .pt_regs
                .get(member)
                .copied()
                .with_context(|| format!("pt_regs has no {member}")),
            _ => bail!(
                "{} argument {} is not a pointer in a register: {arg:?}",
                probe.name,
                index + 1
            ),
        }
    }

    /// Attaches the programs to `file`'s probes (`path`: the file as the process sees it).
    fn probe_file(&self, path: &Path) -> Result<FileProbes, String> {
        let probes = usdt::probes(path).map_err(|e| format!("{e:#}"))?;
        let find = |name: &str| {
            probes
                .iter()
                .find(|p| p.provider == "python" && p.name == name)
        };
        let (Some(entry), Some(ret)) = (find(PROBES[0]), find(PROBES[1])) else {
            return Err(NO_PROBES.to_string());
        };
        let link = |probe: &Probe, program: &ProgramFd| {
            uprobe_link::attach(self.pmu, program.as_fd(), path, probe.file_offset)
        };
        let attached = (|| -> Result<FileProbes> {
            Ok(FileProbes {
                args: CallArgs {
                    filename: self.pointer_arg(ret, 0)?,
                    funcname: self.pointer_arg(ret, 1)?,
                },
                semaphores: PROBES.iter().filter_map(|n| find(n)?.semaphore).collect(),
                _links: [link(entry, &self.entry)?, link(ret, &self.ret)?],
            })
        })();
        attached.map_err(|e| format!("USDT probes unusable: {e:#}"))
    }

    /// Arms the probes in a process found running CPython.
    pub fn arm(&mut self, pid: u32, interpreter: &Interpreter) {
        if !self.files.contains_key(&interpreter.file) {
            // Through the process's root, so a container's file is the one it mapped.
            let relative = interpreter
                .file
                .strip_prefix("/")
                .unwrap_or(&interpreter.file);
            let path = Path::new(&format!("/proc/{pid}/root")).join(relative);
            let probes = self.probe_file(&path);
            self.files.insert(interpreter.file.clone(), probes);
        }
        let probes = match &self.files[&interpreter.file] {
            Ok(probes) => probes,
            Err(why) => {
                self.notes.insert(pid, why.clone());
                return;
            }
        };
        let args = probes.args;
        let addresses: Vec<u64> = probes
            .semaphores
            .iter()
            .map(|s| s.wrapping_add(interpreter.load_bias))
            .collect();
        // A worker forked from an armed service process already carries the raise: it is
        // adopted (and lowered at the end), not raised twice.
        let inherited = inherited_raise(pid, &self.armed_at, &addresses).unwrap_or(false);
        let armed = (|| -> Result<Vec<u64>> {
            self.args
                .insert(pid, args, 0)
                .context("registering the process's probe arguments")?;
            if !inherited {
                for &addr in &addresses {
                    add_to_semaphore(pid, addr, 1)?;
                }
            }
            Ok(addresses)
        })();
        match armed {
            Ok(raised) => {
                self.armed.insert(pid, raised);
                self.armed_at.insert(pid, self.ticks.since_boot());
            }
            Err(e) => {
                eprintln!("scalpels-trace: python: process {pid}: exact calls: {e:#}");
                self.notes
                    .insert(pid, format!("exact calls unavailable: {e:#}"));
            }
        }
    }

    /// Forgets an exited process.
    pub fn forget(&mut self, pid: u32) {
        self.armed.remove(&pid);
        self.armed_at.remove(&pid);
        let _ = self.args.remove(&pid);
    }

    fn name(&mut self, pid: u32, addr: u64) -> String {
        self.names
            .entry((pid, addr))
            .or_insert_with(|| {
                ProcessMemory::new(pid)
                    .read_c_str(addr)
                    .unwrap_or_else(|_| format!("<unreadable {addr:#x}>"))
            })
            .clone()
    }

    /// Names the functions that returned for the first time, while their process lives.
    pub fn name_new_functions(&mut self) {
        if self.last_naming.elapsed() < NAME_EVERY {
            return;
        }
        self.last_naming = Instant::now();
        let keys: Vec<CallKey> = self.stats.keys().filter_map(Result::ok).collect();
        for key in keys {
            if !self.names.contains_key(&(key.tgid, key.funcname)) {
                self.name(key.tgid, key.funcname);
                self.name(key.tgid, key.filename);
            }
        }
    }

    pub fn collect(&mut self, interval: &Interval<'_>) -> Result<()> {
        let mut changed = Vec::new();
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.context("reading the Python call statistics map")?;
            let mut now = CallStats::default();
            for s in per_cpu.iter() {
                now.calls += s.calls;
                now.total_ns += s.total_ns;
                now.max_ns = now.max_ns.max(s.max_ns);
            }
            let before = self.previous.insert(key, now).unwrap_or_default();
            if now.calls > before.calls {
                changed.push((key, now, before));
            }
        }
        let rows: Vec<CallRow> = changed
            .into_iter()
            .map(|(key, now, before)| CallRow {
                pid: key.tgid,
                function: self.name(key.tgid, key.funcname),
                file: self.name(key.tgid, key.filename),
                calls: now.calls - before.calls,
                total_ns: now.total_ns - before.total_ns,
                max_ns: now.max_ns,
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.table
            .write(&tables::calls_batch(interval.start, interval.end, &rows)?)
    }

    /// Lowers the semaphores of the processes still running.
    pub fn disarm(&mut self) {
        for (pid, semaphores) in std::mem::take(&mut self.armed) {
            for addr in semaphores {
                // A process that exited meanwhile has nothing to lower.
                let _ = add_to_semaphore(pid, addr, -1);
            }
        }
    }

    /// The ten most called functions, with their mean time.
    pub fn summary(&self) -> Vec<String> {
        let mut top: Vec<_> = self.previous.iter().collect();
        top.sort_by_key(|(_, stats)| std::cmp::Reverse(stats.calls));
        let mut lines = vec![format!(
            "  {:<50} {:>10} {:>12}",
            "function (exact calls)", "calls", "mean"
        )];
        lines.extend(top.into_iter().take(10).map(|(key, stats)| {
            let name = |addr| {
                self.names
                    .get(&(key.tgid, addr))
                    .map_or("?", String::as_str)
            };
            format!(
                "  {:<50} {:>10} {:>9.3} µs",
                format!("{} ({})", name(key.funcname), name(key.filename)),
                stats.calls,
                stats.total_ns as f64 / stats.calls.max(1) as f64 / 1e3
            )
        }));
        lines
    }

    pub fn notes(&self) -> &BTreeMap<u32, String> {
        &self.notes
    }

    pub fn rows(&self) -> u64 {
        self.table.rows()
    }

    pub fn table(&mut self) -> &mut TableWriter {
        &mut self.table
    }

    pub fn into_table(self) -> TableWriter {
        self.table
    }
}
