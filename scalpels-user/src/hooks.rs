//! The system-call hooks, userspace side: configures and attaches the raw `sys_enter` and
//! `sys_exit` programs of `scalpels-ebpf/src/hooks.rs`, which run the system-call work of the
//! syscalls, files, protocols and python (off-CPU) tracers.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData},
};
use tracers::hooks::{
    ARGS, CONFIG_GLOBAL, HooksConfig, ON_MAP, THREADS_MAP, ThreadCalls, program, tracer,
};

use crate::{
    btf,
    cli::Cli,
    thread_storage::{self, ThreadStorage},
};

/// Registers holding system-call arguments 1..=6 in x86_64's `struct pt_regs` (the only
/// architecture Scalpels supports so far).
const ARG_REGISTERS: [&str; ARGS] = ["di", "si", "dx", "r10", "r8", "r9"];

/// The hooks of a run whose tracers include some that work on system calls.
pub struct Hooks {
    config: HooksConfig,
}

/// Whether tracer `name` works through the hooks in a run with these options.
pub fn serves(name: &str, cli: &Cli) -> bool {
    bit(name, cli) != 0
}

/// The [`tracer`] bit of tracer `name` in a run with these options.
fn bit(name: &str, cli: &Cli) -> u32 {
    match name {
        "python" if cli.options.python.python_off_cpu.is_on() => tracer::PYTHON_OFF_CPU,
        other => tracer::of(other),
    }
}

impl Hooks {
    /// The hooks for the tracers prepared for this run (catalogue names), with the pt_regs
    /// layout from BTF; `None` when none of them works on system calls.
    pub fn prepare(tracers: &[&str], cli: &Cli) -> Result<Option<Self>> {
        let bits = tracers.iter().fold(0, |bits, name| bits | bit(name, cli));
        if bits == 0 {
            return Ok(None);
        }
        let vmlinux = btf::load_vmlinux()?;
        let mut arg_offsets = [0u32; ARGS];
        for (offset, register) in arg_offsets.iter_mut().zip(ARG_REGISTERS) {
            *offset = btf::member_offset(&vmlinux, "pt_regs", register)?;
        }
        Ok(Some(Self {
            config: HooksConfig {
                tracers: bits,
                arg_offsets,
                _pad: 0,
            },
        }))
    }

    pub fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
    }

    /// Loads and attaches the programs, running no tracer yet. Before the tracers attach:
    /// the programs use their maps, which the tracers take out of the object.
    pub fn attach(&self, ebpf: &mut Ebpf) -> Result<()> {
        crate::ebpf::attach_raw_tracepoints(
            ebpf,
            &[(program::ENTER, "sys_enter"), (program::EXIT, "sys_exit")],
        )
    }

    /// Runs the hooks for `attached`, the tracers that attached (catalogue names).
    pub fn switch_on(&self, ebpf: &mut Ebpf, attached: &[&str], cli: &Cli) -> Result<Switch> {
        let on = attached.iter().fold(0, |bits, name| bits | bit(name, cli));
        let map = crate::ebpf::take_map(ebpf, ON_MAP)?;
        let mut switch: Array<MapData, u32> = Array::try_from(map)?;
        switch.set(0, on, 0).context("switching the hooks on")?;
        let threads = match crate::ebpf::take_map(ebpf, THREADS_MAP)? {
            Map::Unsupported(map) => ThreadStorage::new(map),
            _ => bail!("{THREADS_MAP} is not a task storage map"),
        };
        Ok(Switch {
            switch,
            on,
            threads,
        })
    }
}

/// The system-call number of a thread marked by [`Switch::mark_threads`] until its first
/// system call enters (the hooks set the number of every call that enters).
const NOT_ENTERED: u32 = u32::MAX;

/// Whether thread `tid` of `pid` is blocked in a system call (`/proc/PID/task/TID/syscall`
/// starts with its number; `-1` in user space, `running` on a CPU).
fn blocked_in_syscall(pid: u32, tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<i64>().ok())
        .is_some_and(|nr| nr >= 0)
}

/// The running hooks: what they run, and what target threads are in the middle of.
///
/// The edges of a run are accounted: a thread already in a system call when its process
/// becomes a target is given its (empty) state first, so that call's return is counted as
/// cut at the start (the kernel's `calls_cut_at_start`); when the run ends the hooks are
/// switched off before the last collection, and the calls target threads are still in are
/// counted as cut at the end.
pub struct Switch {
    switch: Array<MapData, u32>,
    on: u32,
    threads: ThreadStorage<ThreadCalls>,
}

impl Switch {
    /// Gives every thread of process `pid` its state, before the process becomes a target.
    pub fn mark_threads(&self, pid: u32) -> Result<()> {
        let mut marked = ThreadCalls::default();
        marked.syscall.nr = NOT_ENTERED;
        for tid in thread_storage::threads(pid) {
            self.threads
                .insert_new(tid, marked)
                .with_context(|| format!("marking thread {tid} of process {pid}"))?;
        }
        Ok(())
    }

    /// Switches the hooks off and counts the system calls the threads of `pids` are in the
    /// middle of (0 unless the syscalls tracer ran).
    pub fn stop(&mut self, pids: &BTreeSet<u32>) -> Result<u64> {
        self.switch
            .set(0, 0, 0)
            .context("switching the hooks off")?;
        if self.on & tracer::SYSCALLS == 0 {
            return Ok(0);
        }
        let mut in_flight = 0;
        for &pid in pids {
            for tid in thread_storage::threads(pid) {
                let calls = self
                    .threads
                    .get(tid)
                    .with_context(|| format!("reading the state of thread {tid}"))?;
                let Some(calls) = calls else { continue };
                // Entered during the run and not returned; or in a call since before the run
                // (no entry seen), which the kernel shows as the call it is blocked in.
                if calls.syscall.start_ns != 0
                    || (calls.syscall.nr == NOT_ENTERED && blocked_in_syscall(pid, tid))
                {
                    in_flight += 1;
                }
            }
        }
        Ok(in_flight)
    }
}
