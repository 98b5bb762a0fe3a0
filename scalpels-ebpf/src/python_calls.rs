//! `--python-calls`: uprobes on CPython's `python:function__entry` and `function__return`
//! USDT probes. Entry pushes the call's start time on the thread's stack; return pops it and
//! adds the call to its (process, file, function) statistics. Calls are counted at return, so
//! a call in progress when the run ends is not counted.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, PerCpuHashMap},
    programs::ProbeContext,
};
use tracers::{
    counters::Counter,
    python_calls::{
        ARGS_MAX, CallArgs, CallKey, CallStack, CallStats, STACK_DEPTH, STACKS_MAX, STATS_MAX,
    },
};

use crate::{counters::bump, target::is_target};

const _: () = assert!(STACK_DEPTH.is_power_of_two());

#[map]
static PYTHON_CALL_ARGS: HashMap<u32, CallArgs> = HashMap::with_max_entries(ARGS_MAX, 0);

#[map]
static PYTHON_CALL_STACKS: LruHashMap<u32, CallStack> = LruHashMap::with_max_entries(STACKS_MAX, 0);

#[map]
static PYTHON_CALL_EMPTY_STACK: PerCpuArray<CallStack> = PerCpuArray::with_max_entries(1, 0);

#[map]
static PYTHON_CALL_STATS: PerCpuHashMap<CallKey, CallStats> =
    PerCpuHashMap::with_max_entries(STATS_MAX, 0);

/// The 8-byte register at `offset` in the probe's `pt_regs`.
#[inline(always)]
fn register(ctx: &ProbeContext, offset: u32) -> Option<u64> {
    // SAFETY: a checked read inside the context's pt_regs; the offset comes from BTF.
    unsafe { bpf_probe_read_kernel((ctx.regs as *const u8).add(offset as usize) as *const u64) }
        .ok()
}

/// The armed process's probe arguments, if the current task is one.
#[inline(always)]
fn armed(tgid: u32) -> Option<CallArgs> {
    if !is_target(tgid) {
        return None;
    }
    // SAFETY: copied out of the map.
    unsafe { PYTHON_CALL_ARGS.get(&tgid) }.copied()
}

/// The current thread's call stack, created empty on its first call.
#[inline(always)]
fn thread_stack(tid: u32) -> Option<*mut CallStack> {
    if let Some(stack) = PYTHON_CALL_STACKS.get_ptr_mut(&tid) {
        return Some(stack);
    }
    let empty = PYTHON_CALL_EMPTY_STACK.get_ptr(0)?;
    // SAFETY: the template is never written, so it stays zeroed.
    if PYTHON_CALL_STACKS
        .insert(&tid, unsafe { &*empty }, BPF_NOEXIST as u64)
        .is_err()
    {
        return None;
    }
    PYTHON_CALL_STACKS.get_ptr_mut(&tid)
}

#[uprobe]
pub fn python_call_entry(_ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if armed((pid_tgid >> 32) as u32).is_none() {
        return 0;
    }
    let Some(stack) = thread_stack(pid_tgid as u32) else {
        bump(Counter::PythonCallsMapFull);
        return 0;
    };
    // SAFETY: the current thread's own entry; helper without arguments.
    unsafe {
        let depth = (*stack).depth;
        if (depth as usize) < STACK_DEPTH {
            (*stack).start_ns[depth as usize & (STACK_DEPTH - 1)] = bpf_ktime_get_ns();
        }
        (*stack).depth = depth.saturating_add(1);
    }
    0
}

#[uprobe]
pub fn python_call_return(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let Some(args) = armed(tgid) else {
        return 0;
    };
    let (Some(filename), Some(funcname)) =
        (register(&ctx, args.filename), register(&ctx, args.funcname))
    else {
        return 0;
    };
    // A return whose entry was not seen (the call began before the probes were armed) is
    // counted, untimed.
    let mut elapsed = 0;
    if let Some(stack) = PYTHON_CALL_STACKS.get_ptr_mut(&(pid_tgid as u32)) {
        // SAFETY: the current thread's own entry; helper without arguments.
        unsafe {
            let depth = (*stack).depth;
            if depth > 0 {
                let depth = depth - 1;
                (*stack).depth = depth;
                if (depth as usize) < STACK_DEPTH {
                    let start = (*stack).start_ns[depth as usize & (STACK_DEPTH - 1)];
                    elapsed = bpf_ktime_get_ns().saturating_sub(start);
                }
            }
        }
    }
    let key = CallKey {
        tgid,
        _pad: 0,
        filename,
        funcname,
    };
    if let Some(stats) = PYTHON_CALL_STATS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value; BPF programs do not preempt each other on one CPU.
        unsafe {
            (*stats).calls += 1;
            (*stats).total_ns += elapsed;
            if elapsed > (*stats).max_ns {
                (*stats).max_ns = elapsed;
            }
        }
        return 0;
    }
    let first = CallStats {
        calls: 1,
        total_ns: elapsed,
        max_ns: elapsed,
    };
    if PYTHON_CALL_STATS.insert(&key, &first, 0).is_err() {
        bump(Counter::PythonCallsMapFull);
    }
    0
}
