//! The `python` tracer, userspace side: finds CPython in target processes (`discover`),
//! tells the sampler in `scalpels-ebpf/src/python.rs` how to walk each one, and names the
//! sampled frames (`code`), deduplicating stacks into `python_stacks`. With `--python-calls`,
//! also counts every call through CPython's USDT probes (`calls`).

mod calls;
mod code;
mod discover;
mod linetable;
mod memory;
mod pthread;
mod stacks;
pub mod tables;
mod usdt;
mod versions;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
pub(crate) mod test_pythons;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    os::fd::{AsFd as _, BorrowedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, RingBuf},
    programs::{
        PerfEvent,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
    util::online_cpus,
};
use rustc_hash::{FxHashMap, FxHashSet};
use tracers::python::{
    CONFIG_GLOBAL, GENERATION_MAP, KEPT_FRAMES, MAX_WALK, PROCS_MAP, PyFrame, PyProcess, PySample,
    PyStackHeader, PythonConfig, SAMPLES_MAP, kind, record, switch_arg,
};

use crate::{
    btf,
    clock::Clock,
    options::{self, Toggle},
    run::{pending::Pending, table::TableWriter},
    stack_index::StackIndex,
    tracer::{Env, Interval, Prepared, Tracer},
};
use calls::PythonCalls;
use code::{Frame, Symbolizer, UNKNOWN_FUNCTION};
use discover::{Discoverer, Discovery, Interpreter};
use stacks::{KnownStack, Stacks};
use tables::SampleRow;
use versions::Layout;

/// How often processes not yet seen running CPython are looked at again: often, because a
/// command or a restarted service becomes Python a few milliseconds after its exec, and what
/// it does before it is found is not sampled.
const RETRY_EVERY: Duration = Duration::from_millis(10);
/// How long a target may go without CPython before it is left alone (until it is listed as a
/// target again, e.g. after an exec).
const GIVE_UP_AFTER: Duration = Duration::from_secs(3);
/// How often the kernel's stack keys change, so that each stack is sent (and its code objects
/// checked) again: a code object freed and another put at its address would otherwise keep
/// its stacks' old names.
const NEW_KEYS_EVERY: Duration = Duration::from_secs(60);

/// Most `--python-hz`: each sample walks a stack of a few µs; 1000 per second per CPU is
/// already a few tenths of a percent of every CPU.
pub const PYTHON_HZ_MAX: u64 = 1000;

/// `--python-off-cpu-every`: a duration from 1 µs to 1 s (the kernel scales a 32-bit random
/// draw by it).
fn off_cpu_every(s: &str) -> Result<Duration, String> {
    let max = Duration::from_nanos(tracers::python::OFF_CPU_EVERY_MAX_NS);
    options::duration_within(s, Duration::from_micros(1), max)
}

/// The python tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "python tracer")]
#[group(skip)]
pub struct Options {
    /// Stack samples per second of CPU time, per CPU (1 to 1000; for none, leave the python
    /// tracer out of --tracers).
    #[arg(long, default_value_t = 99, value_name = "HZ",
          value_parser = clap::value_parser!(u64).range(1..=PYTHON_HZ_MAX))]
    pub python_hz: u64,

    /// Frames walked per stack (1 to 1024). Of a stack deeper than 256 frames the innermost
    /// 192 and the outermost 64 are kept, with one `[truncated]` frame between; past this
    /// depth the root is lost and an outermost `[truncated]` frame says so.
    #[arg(long, default_value_t = MAX_WALK, value_name = "FRAMES",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WALK)))]
    pub python_depth: u32,

    /// Also take stacks of threads that block in system calls, weighted by the time they wait
    /// (wall-clock profile).
    #[arg(long, value_enum, default_value_t = Toggle::On, value_name = "on|off")]
    #[serde(serialize_with = "options::switch")]
    pub python_off_cpu: Toggle,

    /// Off-CPU waits at least this long are all taken, each weighing its length; a shorter one
    /// is taken with probability length / this and weighs this (an unbiased estimate of the
    /// time waited, at no more than one stack per this much waiting).
    #[arg(long, value_parser = off_cpu_every, default_value = "1ms", value_name = "DURATION")]
    #[serde(rename = "python_off_cpu_every_ns", serialize_with = "options::nanos")]
    pub python_off_cpu_every: Duration,

    /// Count every Python function call exactly (python_calls table), through CPython's USDT
    /// probes (system Pythons built --with-dtrace, up to 3.11). Costs about 1.5-2 µs per
    /// Python call in the traced processes.
    #[arg(long)]
    pub python_calls: bool,
}

pub struct PreparedPython {
    config: PythonConfig,
    hz: u64,
    off_cpu: bool,
    calls: bool,
}

/// Checks that the raw `sched_switch` tracepoint passes the arguments `python_switch` reads.
fn check_switch_args(vmlinux: &btf_rs::Btf) -> Result<()> {
    let args = btf::raw_tracepoint_arg_types(vmlinux, "sched_switch")?;
    if args != switch_arg::TYPES {
        bail!(
            "unsupported kernel: the sched_switch tracepoint's arguments are {args:?}, not \
             {:?} (Linux 5.18 and later): off-CPU stacks need them \
             (--python-off-cpu off samples on-CPU stacks only)",
            switch_arg::TYPES
        );
    }
    Ok(())
}

/// Learns where the thread pointer is (BTF) and where glibc keeps pthread keys (measured).
pub fn prepare(env: &Env) -> Result<PreparedPython> {
    let vmlinux = btf::load_vmlinux()?;
    let task_fsbase = btf::member_offset(&vmlinux, "task_struct", "thread")?
        + btf::member_offset(&vmlinux, "thread_struct", "fsbase")?;
    let off_cpu = env.cli.options.python.python_off_cpu.is_on();
    if off_cpu {
        check_switch_args(&vmlinux)?;
    }
    Ok(PreparedPython {
        config: PythonConfig {
            task_fsbase,
            pthread_specific: pthread::specific_offset()
                .context("locating glibc's pthread keys")?,
            depth: env.cli.options.python.python_depth.min(MAX_WALK),
            _pad: 0,
            off_cpu_every_ns: u64::try_from(env.cli.options.python.python_off_cpu_every.as_nanos())
                .unwrap_or(u64::MAX),
        },
        hz: env.cli.options.python.python_hz,
        off_cpu,
        calls: env.cli.options.python.python_calls,
    })
}

impl Prepared for PreparedPython {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
        if !self.calls {
            // Without --python-calls its maps cost no kernel memory.
            for map in calls::MAPS {
                loader.map_max_entries(map, 1);
            }
        }
    }

    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        let prog: &mut PerfEvent = ebpf
            .program_mut("python_sample")
            .context("eBPF object has no program python_sample")?
            .try_into()?;
        prog.load().context("loading python_sample")?;
        let cpus = online_cpus().map_err(|(path, e)| anyhow::anyhow!("reading {path}: {e}"))?;
        for cpu in cpus {
            prog.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(self.hz),
                false,
            )
            .with_context(|| format!("attaching the CPU-clock sampler on CPU {cpu}"))?;
        }
        if self.off_cpu {
            attach_off_cpu(ebpf)?;
        }
        let calls = if self.calls {
            Some(PythonCalls::attach(ebpf, env).context("setting up --python-calls")?)
        } else {
            None
        };
        let take = crate::ebpf::take_map;
        Ok(Box::new(PythonTracer {
            calls,
            procs: BpfHashMap::try_from(take(ebpf, PROCS_MAP)?)?,
            generation: Array::try_from(take(ebpf, GENERATION_MAP)?)?,
            new_keys_at: Instant::now() + NEW_KEYS_EVERY,
            stacks: Stacks::default(),
            stack_index: env.stacks.clone(),
            samples: RingBuf::try_from(take(ebpf, SAMPLES_MAP)?)?,
            weight_ns: (1_000_000_000 / self.hz.max(1)) as i64,
            clock: env.clock,
            discoverer: Discoverer::default(),
            interpreters: HashMap::new(),
            pending: BTreeMap::new(),
            found: BTreeMap::new(),
            unsupported: BTreeMap::new(),
            last_retry: Instant::now(),
            symbolizer: Symbolizer::default(),
            stacks_written: FxHashSet::default(),
            new_stacks: Vec::new(),
            pending_rows: Pending::default(),
            leaves: FxHashMap::default(),
            on_cpu: FxHashMap::default(),
            off_cpu: FxHashMap::default(),
            processes: BTreeSet::new(),
            samples_table: env.table("python_samples", tables::samples_schema()),
            stacks_table: env.table("python_stacks", tables::stacks_schema()),
        }))
    }
}

/// The programs that take stacks of threads back from blocking.
fn attach_off_cpu(ebpf: &mut Ebpf) -> Result<()> {
    // Its system-call work runs in the hooks (`crate::hooks`).
    crate::ebpf::attach_raw_tracepoints(ebpf, &[("python_switch", "sched_switch")])
}

pub struct PythonTracer {
    /// Exact call counts (`--python-calls`).
    calls: Option<PythonCalls>,
    procs: BpfHashMap<MapData, u32, PyProcess>,
    /// The generation mixed into the kernel's stack keys.
    generation: Array<MapData, u64>,
    /// When the keys change next.
    new_keys_at: Instant,
    /// What the kernel's stack keys name.
    stacks: Stacks,
    /// Where stacks taken for other tracers' events are filed.
    stack_index: StackIndex,
    samples: RingBuf<MapData>,
    weight_ns: i64,
    clock: Clock,
    discoverer: Discoverer,
    /// Target processes running a CPython the sampler can walk.
    interpreters: HashMap<u32, Layout>,
    /// Targets not (yet) seen running CPython, and since when.
    pending: BTreeMap<u32, Instant>,
    /// Targets found running CPython: which, for the summary.
    found: BTreeMap<u32, String>,
    /// Targets running a CPython that cannot be read, and why.
    unsupported: BTreeMap<u32, String>,
    last_retry: Instant,
    symbolizer: Symbolizer,
    stacks_written: FxHashSet<u64>,
    /// Stacks seen for the first time since the last write.
    new_stacks: Vec<(u64, Vec<Frame>)>,
    /// Sample rows not yet written.
    pending_rows: Pending<SampleRow>,
    /// The innermost function of each stack id, for the summary.
    leaves: FxHashMap<u64, String>,
    /// Time on CPU (samples × period) per stack id, for the summary.
    on_cpu: FxHashMap<u64, u64>,
    /// Time off CPU per stack id, for the summary.
    off_cpu: FxHashMap<u64, u64>,
    processes: BTreeSet<u32>,
    samples_table: TableWriter,
    stacks_table: TableWriter,
}

/// What the sampler needs to walk a process's interpreter.
fn walk_of(interpreter: &Interpreter) -> PyProcess {
    let layout = &interpreter.layout;
    let (frame_owner, owner_c_stack) = match layout.frame_owner {
        Some(versions::FrameOwner::OwnerByte { offset, c_stack }) => {
            (offset + 1, u32::from(c_stack))
        }
        _ => (0, 0),
    };
    PyProcess {
        tss_key: interpreter.tss_key,
        tstate_frame: layout.tstate_frame,
        cframe_current_frame: layout.cframe_current_frame.map_or(0, |o| o + 1),
        frame_code: layout.frame_code,
        frame_previous: layout.frame_previous,
        frame_instr: layout.frame_instr,
        frame_owner,
        owner_c_stack,
        frame_bytes: layout.frame_bytes(),
        tstate_datastack_chunk: layout.datastack.map_or(0, |d| d.tstate_chunk),
        chunk_previous: layout.datastack.map_or(0, |d| d.chunk_previous),
        chunk_size: layout.datastack.map_or(0, |d| d.chunk_size),
        chunk_data: layout.datastack.map_or(0, |d| d.chunk_data),
    }
}

/// The ten innermost functions with the most time, with their share.
fn top_functions(
    title: &str,
    times: &FxHashMap<u64, u64>,
    leaves: &FxHashMap<u64, String>,
) -> Vec<String> {
    let mut by_function: HashMap<&str, u64> = HashMap::new();
    for (id, ns) in times {
        let function = leaves.get(id).map_or(UNKNOWN_FUNCTION, String::as_str);
        *by_function.entry(function).or_default() += ns;
    }
    let total: u64 = by_function.values().sum();
    let mut top: Vec<_> = by_function.into_iter().collect();
    top.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
    let mut lines = vec![format!(
        "  {:<50} {:>10} {:>7}",
        format!("function {title} (innermost)"),
        "time",
        "share"
    )];
    lines.extend(top.into_iter().take(10).map(|(function, ns)| {
        format!(
            "  {:<50} {:>7.3} s {:>6.1}%",
            function,
            ns as f64 / 1e9,
            100.0 * ns as f64 / total.max(1) as f64
        )
    }));
    lines
}

/// A record of the python tracer's ring buffer.
enum Record {
    Stack(PyStackHeader, Vec<PyFrame>),
    Sample(PySample),
}

impl Record {
    fn decode(bytes: &[u8]) -> Option<Record> {
        let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        match kind {
            record::STACK if bytes.len() >= size_of::<PyStackHeader>() => {
                // SAFETY: the kernel wrote a PyStackHeader (tracers::python) here, then frames.
                let header = unsafe { bytes.as_ptr().cast::<PyStackHeader>().read_unaligned() };
                let frames = bytes[size_of::<PyStackHeader>()..]
                    .chunks_exact(size_of::<PyFrame>())
                    .take(KEPT_FRAMES)
                    // SAFETY: each chunk is one PyFrame the kernel wrote.
                    .map(|chunk| unsafe { chunk.as_ptr().cast::<PyFrame>().read_unaligned() })
                    .collect();
                Some(Record::Stack(header, frames))
            }
            record::SAMPLE if bytes.len() >= size_of::<PySample>() => {
                // SAFETY: the kernel wrote a PySample (tracers::python) here.
                Some(Record::Sample(unsafe {
                    bytes.as_ptr().cast::<PySample>().read_unaligned()
                }))
            }
            _ => None,
        }
    }
}

impl PythonTracer {
    /// Looks for CPython in the pending targets.
    fn discover_pending(&mut self) -> Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_retry) < RETRY_EVERY {
            return Ok(());
        }
        self.last_retry = now;
        let pending: Vec<(u32, Instant)> = self.pending.iter().map(|(&p, &t)| (p, t)).collect();
        for (pid, since) in pending {
            let found = match self.discoverer.discover(pid) {
                Ok(found) => found,
                // Gone, or not readable: nothing to sample.
                Err(_) => Discovery::NotPython,
            };
            match found {
                Discovery::Found(interpreter) => {
                    if let Some(calls) = &mut self.calls {
                        calls.arm(pid, &interpreter);
                    }
                    self.procs
                        .insert(pid, walk_of(&interpreter), 0)
                        .context("registering a CPython process with the sampler")?;
                    let (major, minor) = interpreter.version;
                    let found = format!("CPython {major}.{minor} ({})", interpreter.file.display());
                    self.found.insert(pid, found);
                    self.interpreters.insert(pid, interpreter.layout);
                    self.pending.remove(&pid);
                }
                Discovery::Unsupported(reason) => {
                    eprintln!("scalpels-trace: python: process {pid}: unsupported {reason}");
                    self.unsupported.insert(pid, reason);
                    self.pending.remove(&pid);
                }
                Discovery::NotPython if now.duration_since(since) > GIVE_UP_AFTER => {
                    self.pending.remove(&pid);
                }
                Discovery::NotPython => {}
            }
        }
        Ok(())
    }

    /// Names a stack the kernel sent for the first time in this generation.
    fn add_stack(&mut self, header: &PyStackHeader, frames: &[PyFrame]) {
        let (known, named) = match self.interpreters.get(&header.tgid) {
            Some(layout) => {
                let codes = frames.iter().map(|frame| frame.code);
                self.symbolizer.check(header.tgid, layout, codes);
                let name = stacks::namer(&mut self.symbolizer, header.tgid, layout);
                self.stacks.add(header, frames, name)
            }
            // Its process exited and was forgotten before its last stack was read.
            None => self.stacks.add(header, frames, |_| code::unknown_frame()),
        };
        if self.stacks_written.insert(known.id) {
            if let Some(leaf) = named.first() {
                self.leaves.insert(known.id, leaf.function.clone());
            }
            self.new_stacks.push((known.id, named));
        }
    }

    fn sample_row(&mut self, sample: &PySample, stack: KnownStack) -> SampleRow {
        let (kind, weight_ns) = match sample.kind {
            kind::OFF_CPU => {
                *self.off_cpu.entry(stack.id).or_default() += sample.weight_ns;
                ("off_cpu", sample.weight_ns as i64)
            }
            kind::SYSCALL => {
                self.stack_index
                    .insert(sample.tid, sample.time_ns, stack.id);
                ("syscall", sample.weight_ns as i64)
            }
            _ => {
                *self.on_cpu.entry(stack.id).or_default() += self.weight_ns as u64;
                ("on_cpu", self.weight_ns)
            }
        };
        SampleRow {
            time: self.clock.to_utc_ns(sample.time_ns),
            pid: sample.tgid,
            tid: sample.tid,
            stack_id: stack.id,
            kind,
            weight_ns,
            truncated: stack.truncated,
        }
    }

    /// Gathers the rows of `ready` samples; when `due` or a whole batch has gathered, writes
    /// the stacks named since the last write, then the rows.
    fn write(&mut self, ready: Vec<(PySample, KnownStack)>, due: bool) -> Result<()> {
        for (sample, stack) in ready {
            let row = self.sample_row(&sample, stack);
            self.processes.insert(row.pid);
            self.pending_rows.push(row);
        }
        let rows = self.pending_rows.take(due);
        let mut stacks_written = Ok(());
        if rows.is_some() || due {
            let stacks = std::mem::take(&mut self.new_stacks);
            if !stacks.is_empty() {
                stacks_written =
                    tables::stacks_batch(&stacks).and_then(|b| self.stacks_table.write(&b));
            }
        }
        // The samples are written (or counted as lost) whatever became of the stacks.
        let samples_written = match rows {
            Some(rows) => tables::samples_batch(&rows).and_then(|b| self.samples_table.write(&b)),
            None => Ok(()),
        };
        stacks_written.and(samples_written)
    }

    /// Changes the kernel's stack keys: every stack is sent and named again once.
    fn new_keys(&mut self) -> Result<()> {
        let generation = self.stacks.next_generation();
        self.generation
            .set(0, generation, 0)
            .context("changing the generation of Python stack keys")?;
        self.new_keys_at = Instant::now() + NEW_KEYS_EVERY;
        Ok(())
    }
}

impl Tracer for PythonTracer {
    fn name(&self) -> &'static str {
        "python"
    }

    fn watch(&mut self, pids: &BTreeSet<u32>) {
        let now = Instant::now();
        for &pid in pids {
            if !self.interpreters.contains_key(&pid) && !self.unsupported.contains_key(&pid) {
                self.pending.entry(pid).or_insert(now);
            }
        }
        // Look at new targets at once: a service's processes are already running.
        self.last_retry = now - RETRY_EVERY;
    }

    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        Some(self.samples.as_fd())
    }

    fn poll_events(&mut self, due: bool) -> Result<()> {
        self.discover_pending()?;
        self.symbolizer.next_batch();
        if let Some(calls) = &mut self.calls {
            calls.name_new_functions();
        }
        let mut records = Vec::new();
        while let Some(item) = self.samples.next() {
            records.extend(Record::decode(&item));
        }
        let mut ready = Vec::new();
        for record in records {
            match record {
                Record::Stack(header, frames) => self.add_stack(&header, &frames),
                Record::Sample(sample) => ready.extend(self.stacks.resolve(sample)),
            }
        }
        ready.extend(self.stacks.arrived(false));
        self.write(ready, due)
    }

    fn collect_interval(&mut self, interval: &Interval) -> Result<()> {
        if let Some(calls) = &mut self.calls {
            calls.collect(interval)?;
        }
        // Processes that exited: forget them (their pids may be reused).
        let gone: Vec<u32> = self
            .interpreters
            .keys()
            .copied()
            .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        // Their pids may be reused by processes whose stacks would get the same keys.
        if !gone.is_empty() || Instant::now() >= self.new_keys_at {
            self.new_keys()?;
        }
        for pid in gone {
            self.interpreters.remove(&pid);
            self.symbolizer.forget(pid);
            let _ = self.procs.remove(&pid);
            if let Some(calls) = &mut self.calls {
                calls.forget(pid);
            }
        }
        Ok(())
    }

    fn events(&self) -> u64 {
        self.samples_table.rows() + self.calls.as_ref().map_or(0, PythonCalls::rows)
    }

    fn processes(&self) -> &BTreeSet<u32> {
        &self.processes
    }

    fn tables(&mut self) -> Vec<&mut TableWriter> {
        let mut tables = vec![&mut self.samples_table, &mut self.stacks_table];
        tables.extend(self.calls.as_mut().map(PythonCalls::table));
        tables
    }

    fn notes(&self) -> BTreeMap<u32, String> {
        let unsupported = self
            .unsupported
            .iter()
            .map(|(&pid, reason)| (pid, format!("unsupported {reason}")));
        let mut notes: BTreeMap<u32, String> = self
            .found
            .iter()
            .map(|(&pid, found)| (pid, found.clone()))
            .chain(unsupported)
            .collect();
        for (&pid, note) in self.calls.iter().flat_map(|c| c.notes()) {
            notes
                .entry(pid)
                .and_modify(|n| *n = format!("{n}; {note}"))
                .or_insert_with(|| note.clone());
        }
        notes
    }

    fn summary(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .found
            .iter()
            .map(|(pid, found)| format!("  process {pid}: {found}"))
            .chain(
                self.unsupported
                    .iter()
                    .map(|(pid, reason)| format!("  process {pid}: unsupported {reason}")),
            )
            .collect();
        for (title, times) in [("on CPU", &self.on_cpu), ("off CPU", &self.off_cpu)] {
            lines.extend(top_functions(title, times, &self.leaves));
        }
        lines.extend(self.calls.iter().flat_map(PythonCalls::summary));
        lines
    }

    fn unparsed(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([("samples_without_stack".to_owned(), self.stacks.lost)])
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(calls) = &mut self.calls {
            calls.disarm();
        }
        let ready = self.stacks.arrived(true);
        self.write(ready, true)
    }

    /// The stacks named in the closed run are not in the new one's python_stacks: they are
    /// named again, the kernel sending each once more under new keys.
    fn rotated(&mut self) -> Result<()> {
        self.stacks_written.clear();
        self.new_keys()
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        let mut tables = vec![self.samples_table, self.stacks_table];
        tables.extend(self.calls.map(PythonCalls::into_table));
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_cpu_sampling_periods_are_bounded() {
        assert_eq!(off_cpu_every("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(off_cpu_every("0.5"), Ok(Duration::from_millis(500)));
        assert!(off_cpu_every("0").is_err());
        assert!(off_cpu_every("2s").is_err());
    }
}
