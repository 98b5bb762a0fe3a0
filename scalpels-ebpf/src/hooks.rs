//! The system-call hooks: raw `sys_enter` and `sys_exit` programs that run the syscalls,
//! files, protocols and python (off-CPU) tracers' work for target threads, dispatching by
//! system-call number. Each of those tracers attached to tracepoints of its own cost every
//! system call of the machine a run of each of its programs, and the classic
//! `syscalls:sys_enter_*` ones a record formatted first; here the machine's other threads pay
//! one task-storage lookup (and, on entry, the target test), and target threads one lookup of
//! what they are in the middle of, whichever tracers run.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{btf_map, map, raw_tracepoint},
    maps::Array,
    programs::RawTracePointContext,
};
use tracers::{
    counters::Counter,
    hooks::{ARGS, HooksConfig, ThreadCalls, tracer},
};

use crate::{
    counters::bump,
    files, protocols, python, syscalls,
    target::is_target,
    task_storage::{Slot, TaskStorage},
};

/// What each target thread is in the middle of: task-local, found without hashing, freed with
/// the thread. Only target threads have one, so its lookup is also the target test.
#[btf_map]
pub static HOOKS_THREADS: TaskStorage<ThreadCalls> = TaskStorage::new();

#[map]
static HOOKS_ON: Array<u32> = Array::with_max_entries(1, 0);

#[unsafe(no_mangle)]
static HOOKS_CONFIG: HooksConfig = HooksConfig {
    tracers: 0,
    arg_offsets: [0; ARGS],
    _pad: 0,
};

#[inline(always)]
fn config() -> HooksConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&HOOKS_CONFIG) }
}

/// The registers a system call saved on entry, where its arguments are.
#[derive(Clone, Copy)]
pub struct Regs(u64);

impl Regs {
    /// Argument `index` (1 to 6; `None` for 0, which means "none" in the tracers' tables).
    #[inline(always)]
    pub fn arg(self, index: u32) -> Option<u64> {
        let slot = index.wrapping_sub(1) as usize;
        if slot >= ARGS {
            return None;
        }
        // Read in place with the slot masked in the same register: the verifier does not carry
        // the comparison above over to a copy of the value, nor allow a variable offset into
        // the stack copy `config()` would make.
        // SAFETY: within HOOKS_CONFIG (the mask keeps the read inside `arg_offsets` and `_pad`).
        let offset = unsafe {
            core::ptr::read_volatile(
                (&raw const HOOKS_CONFIG.arg_offsets)
                    .cast::<u32>()
                    .add(slot & 7),
            )
        };
        // SAFETY: a checked read of the saved user registers, at an offset from BTF.
        unsafe { bpf_probe_read_kernel((self.0 + u64::from(offset)) as *const u64) }.ok()
    }
}

/// The tracers to run, as [`tracer`] bits: those prepared (a constant of the loaded program,
/// so the verifier drops the code of the others) and attached.
#[derive(Clone, Copy)]
struct Running {
    attached: u32,
}

impl Running {
    #[inline(always)]
    fn now() -> Self {
        Self {
            attached: HOOKS_ON.get(0).copied().unwrap_or(0),
        }
    }

    #[inline(always)]
    fn runs(self, bit: u32) -> bool {
        config().tracers & bit != 0 && self.attached & bit != 0
    }
}

/// raw_syscalls:sys_enter(struct pt_regs *regs, long id).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn hooks_enter(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // The target test first: the machine's other threads pay for nothing more.
    let slot = HOOKS_THREADS.of_target(|| is_target((pid_tgid >> 32) as u32));
    let running = Running::now();
    let calls = match slot {
        Slot::Value(calls) => calls,
        Slot::NotTarget => return 0,
        Slot::NoMemory => {
            // Every tracer that runs here misses this thread's call.
            for (bit, counter) in [
                (tracer::SYSCALLS, Counter::SyscallsInflightMapFull),
                (tracer::FILES, Counter::FilesInflightMapFull),
                (tracer::PROTOCOLS, Counter::ProtocolsInflightMapFull),
            ] {
                if running.runs(bit) {
                    bump(counter);
                }
            }
            return 0;
        }
    };
    let regs = Regs(ctx.arg(0));
    let nr = ctx.arg::<u64>(1) as u32;
    // SAFETY: the storage of the thread running this program, which only it uses.
    let calls = unsafe { &mut *calls };
    calls.syscall.nr = nr;
    if running.runs(tracer::PYTHON_OFF_CPU) {
        python::syscall_entered(calls);
    }
    if running.runs(tracer::SYSCALLS) {
        syscalls::entered(&mut calls.syscall);
    }
    if running.runs(tracer::FILES) {
        files::entered(nr, regs, &mut calls.file);
    }
    if running.runs(tracer::PROTOCOLS) {
        protocols::entered(
            nr,
            regs,
            (pid_tgid >> 32) as u32,
            &mut calls.socket,
            &mut calls.tls,
        );
    }
    0
}

/// raw_syscalls:sys_exit(struct pt_regs *regs, long ret).
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn hooks_exit(ctx: RawTracePointContext) -> i32 {
    let Some(calls) = HOOKS_THREADS.current() else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let running = Running::now();
    let regs = Regs(ctx.arg(0));
    let ret: i64 = ctx.arg(1);
    // SAFETY: as in `hooks_enter`.
    let calls = unsafe { &mut *calls };
    let nr = calls.syscall.nr;
    if running.runs(tracer::PYTHON_OFF_CPU) {
        python::syscall_returned(calls, pid_tgid);
    }
    if running.runs(tracer::SYSCALLS) {
        syscalls::exited(&mut calls.syscall, regs, ret, pid_tgid);
    }
    if running.runs(tracer::FILES) {
        files::exited(nr, ret, pid_tgid, &mut calls.file);
    }
    if running.runs(tracer::PROTOCOLS) {
        protocols::exited(nr, ret, pid_tgid, &mut calls.socket, &mut calls.tls);
    }
    0
}
