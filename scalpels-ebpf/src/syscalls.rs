//! The `syscalls` tracer: times every system call of target threads, aggregates count, errors,
//! total/max latency and a log2 histogram per (tgid, tid, syscall) in the kernel, and sends
//! calls slower than a threshold, with their arguments, through a ring buffer. Its work on
//! system calls runs in the hooks' programs (`crate::hooks`).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, RingBuf},
    programs::RawTracePointContext,
};
use tracers::{
    counters::Counter,
    histogram,
    python::kind as python_kind,
    syscalls::{
        ARGS, EVENTS_BYTES, STATS_MAX, SlowSyscallEvent, SyscallInflight, SyscallKey, SyscallStats,
        SyscallsConfig,
    },
};

use crate::{
    counters::bump,
    hooks::{HOOKS_THREADS, Regs},
    python, wakeup,
};

#[map]
static SYSCALL_STATS: HashMap<SyscallKey, SyscallStats> = HashMap::with_max_entries(STATS_MAX, 0);

#[map]
static SYSCALL_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map]
static SYSCALL_INTERVAL: Array<u64> = Array::with_max_entries(1, 0);

#[unsafe(no_mangle)]
static SYSCALLS_CONFIG: SyscallsConfig = SyscallsConfig { slow_ns: u64::MAX };

/// Initial value of a new statistics entry (lives in .rodata, not on the 512-byte stack).
static ZERO_STATS: SyscallStats = SyscallStats {
    count: 0,
    errors: 0,
    total_ns: 0,
    max_ns: 0,
    max_interval: 0,
    comm: [0; 16],
    hist: [0; histogram::HIST_SLOTS],
};

const BPF_NOEXIST: u64 = 1;
const MAX_ERRNO: i64 = 4095;

#[inline(always)]
fn config() -> SyscallsConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&SYSCALLS_CONFIG) }
}

/// Entry of a target thread's system call (run by the hooks): remember when it started.
#[inline(always)]
pub fn entered(inflight: &mut SyscallInflight) {
    // SAFETY: helper without arguments.
    inflight.start_ns = unsafe { bpf_ktime_get_ns() };
}

/// Exit of a target thread's system call (run by the hooks): account it.
#[inline(always)]
pub fn exited(inflight: &mut SyscallInflight, regs: Regs, ret: i64, pid_tgid: u64) {
    let SyscallInflight { start_ns, nr, exec } = *inflight;
    if start_ns == 0 {
        // A return without its entry: the thread was in this call when it became a target
        // (userspace gave it its state then), or before the hooks ran the tracer.
        bump(Counter::SyscallsCutAtStart);
        return;
    }
    // Accounted.
    inflight.start_ns = 0;
    // SAFETY: helper without arguments.
    let end_ns = unsafe { bpf_ktime_get_ns() };
    let duration_ns = end_ns.saturating_sub(start_ns);
    let key = SyscallKey {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        nr,
        exec,
    };
    account(&key, duration_ns, ret);
    if duration_ns >= config().slow_ns {
        send_slow_event(regs, &key, end_ns, duration_ns, ret);
    }
}

/// Adds one call to the key's cumulative statistics, creating the entry on first use.
#[inline(always)]
fn account(key: &SyscallKey, duration_ns: u64, ret: i64) {
    let stats = match SYSCALL_STATS.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            if SYSCALL_STATS.insert(key, &ZERO_STATS, BPF_NOEXIST).is_err() {
                bump(Counter::SyscallsStatsMapFull);
                return;
            }
            let Some(stats) = SYSCALL_STATS.get_ptr_mut(key) else {
                return;
            };
            // SAFETY: the entry was just created for this thread.
            unsafe { (*stats).comm = bpf_get_current_comm().unwrap_or_default() };
            stats
        }
    };
    let interval = SYSCALL_INTERVAL.get(0).copied().unwrap_or(0);
    // SAFETY: only this thread writes its own key; userspace only reads.
    let stats = unsafe { &mut *stats };
    stats.count += 1;
    stats.total_ns += duration_ns;
    if (-MAX_ERRNO..0).contains(&ret) {
        stats.errors += 1;
    }
    if stats.max_interval != interval {
        stats.max_interval = interval;
        stats.max_ns = duration_ns;
    } else if duration_ns > stats.max_ns {
        stats.max_ns = duration_ns;
    }
    if let Some(bucket) = stats.hist.get_mut(histogram::slot(duration_ns)) {
        *bucket += 1;
    }
}

/// Sends a slow call with its arguments, read from the saved registers.
#[inline(always)]
fn send_slow_event(regs: Regs, key: &SyscallKey, end_ns: u64, duration_ns: u64, ret: i64) {
    // The Python code that made the call, when the caller runs CPython and the python tracer
    // knows it.
    let pid_tgid = (u64::from(key.tgid) << 32) | u64::from(key.tid);
    let python_stack = python::send_stack(pid_tgid, python_kind::SYSCALL, duration_ns, end_ns);
    let Some(mut entry) = SYSCALL_EVENTS.reserve::<SlowSyscallEvent>(0) else {
        bump(Counter::SyscallEventsDropped);
        return;
    };
    let mut args = [0u64; ARGS];
    for (index, arg) in (1..).zip(args.iter_mut()) {
        *arg = regs.arg(index).unwrap_or(0);
    }
    entry.write(SlowSyscallEvent {
        end_ns,
        duration_ns,
        tgid: key.tgid,
        tid: key.tid,
        nr: key.nr,
        python_stack: u32::from(python_stack),
        ret,
        args,
        comm: bpf_get_current_comm().unwrap_or_default(),
    });
    entry.submit(wakeup::flags(&SYSCALL_EVENTS, EVENTS_BYTES));
}

/// A target thread ran a new program: its next calls go to entries named after it.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn syscalls_exec(_ctx: RawTracePointContext) -> i32 {
    if let Some(calls) = HOOKS_THREADS.current() {
        // SAFETY: the storage of the thread running this program.
        unsafe { (*calls).syscall.exec += 1 };
    }
    0
}
