//! The system-call hooks, userspace side: configures and attaches the raw `sys_enter` and
//! `sys_exit` programs of `scalpels-ebpf/src/hooks.rs`, which run the system-call work of the
//! syscalls, files, protocols and python (off-CPU) tracers.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData},
};
use tracers::hooks::{ARGS, CONFIG_GLOBAL, HooksConfig, ON_MAP, program, tracer};

use crate::{
    btf,
    cli::{Cli, Toggle},
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
        "python" if cli.python_off_cpu == Toggle::On => tracer::PYTHON_OFF_CPU,
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
    pub fn switch_on(&self, ebpf: &mut Ebpf, attached: &[&str], cli: &Cli) -> Result<()> {
        let on = attached.iter().fold(0, |bits, name| bits | bit(name, cli));
        let map = crate::ebpf::take_map(ebpf, ON_MAP)?;
        let mut switch: Array<MapData, u32> = Array::try_from(map)?;
        switch.set(0, on, 0).context("switching the hooks on")
    }
}
