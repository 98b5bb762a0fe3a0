//! The system-call hooks: one raw `sys_enter` and one raw `sys_exit` program that run the
//! syscalls, files, protocols and python (off-CPU) tracers' work for every system call of a
//! target thread, dispatching by system-call number. One program per system call of the
//! machine, one target test, one thread-state lookup, and no `syscalls:*` tracepoint record
//! formatted, however many of those tracers run.

use crate::{
    files::FdInflight,
    protocols::{Inflight, tls::TlsCall},
    syscalls::SyscallInflight,
};

/// The programs: raw tracepoints `sys_enter` and `sys_exit`.
pub mod program {
    pub const ENTER: &str = "hooks_enter";
    pub const EXIT: &str = "hooks_exit";
    pub const ALL: &[&str] = &[ENTER, EXIT];
}

/// Global (read-only after load) holding a [`HooksConfig`].
pub const CONFIG_GLOBAL: &str = "HOOKS_CONFIG";
/// Array with one `u32`: the [`tracer`] bits of the tracers that attached. A tracer prepared
/// but not attached has its bit in the config (its code is loaded) and not here (it is not run).
pub const ON_MAP: &str = "HOOKS_ON";
/// Task storage holding each target thread's [`ThreadCalls`].
pub const THREADS_MAP: &str = "HOOKS_THREADS";

/// Number of system-call arguments.
pub const ARGS: usize = 6;

/// The tracers the hooks run, as bits.
pub mod tracer {
    pub const SYSCALLS: u32 = 1;
    pub const FILES: u32 = 2;
    pub const PROTOCOLS: u32 = 4;
    /// The python tracer, with off-CPU stacks.
    pub const PYTHON_OFF_CPU: u32 = 8;

    /// The bit of tracer `name` (0 for those the hooks do not run).
    pub fn of(name: &str) -> u32 {
        match name {
            "syscalls" => SYSCALLS,
            "files" => FILES,
            "protocols" => PROTOCOLS,
            _ => 0,
        }
    }
}

/// Load-time configuration of the hooks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HooksConfig {
    /// The [`tracer`] bits of the tracers prepared for this run: the verifier drops the code
    /// of the others.
    pub tracers: u32,
    /// Byte offsets in `struct pt_regs` of the registers holding system-call arguments 1..=6
    /// (learned from BTF; on x86_64 di, si, dx, r10, r8, r9).
    pub arg_offsets: [u32; ARGS],
    pub _pad: u32,
}

/// What a target thread is in the middle of, kept in task-local storage: the system call,
/// and the file and socket operations of the files and protocols tracers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCalls {
    /// `nr` is that of the thread's latest system call, whichever tracers run.
    pub syscall: SyscallInflight,
    pub file: FdInflight,
    pub socket: Inflight,
    /// The thread's SSL call in progress (the protocols tracer's TLS probes).
    pub tls: TlsCall,
    /// Non-zero: the python tracer has an off-CPU period of this thread (it blocked since its
    /// last system-call entry), so the hooks look it up only then.
    pub python_blocked: u32,
    pub _pad: u32,
}

crate::user_pod!(HooksConfig, ThreadCalls);
