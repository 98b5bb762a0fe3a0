//! The `syscalls` tracer: times every system call of target threads, aggregates count, errors,
//! total/max latency and a log2 histogram per (tgid, tid, syscall) in the kernel, and sends
//! calls slower than a threshold, with their arguments, through a ring buffer.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::{btf_map, map, raw_tracepoint},
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
    python,
    target::is_target,
    task_storage::{Slot, TaskStorage},
    wakeup,
};

#[map]
static SYSCALL_STATS: HashMap<SyscallKey, SyscallStats> = HashMap::with_max_entries(STATS_MAX, 0);

/// The call each target thread is in: task-local, so that the two lookups of every system call
/// cost no hashing, and freed with the thread.
#[btf_map]
static SYSCALL_INFLIGHT: TaskStorage<SyscallInflight> = TaskStorage::new();

#[map]
static SYSCALL_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map]
static SYSCALL_INTERVAL: Array<u64> = Array::with_max_entries(1, 0);

#[unsafe(no_mangle)]
static SYSCALLS_CONFIG: SyscallsConfig = SyscallsConfig {
    slow_ns: u64::MAX,
    arg_offsets: [0; ARGS],
    python_off_cpu: 0,
    _pad: 0,
};

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

/// raw_syscalls:sys_enter(struct pt_regs *regs, long id): remember when the call started.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscalls_enter(ctx: RawTracePointContext) -> i32 {
    let inflight =
        match SYSCALL_INFLIGHT.of_target(|| is_target((bpf_get_current_pid_tgid() >> 32) as u32)) {
            Slot::Value(inflight) => inflight,
            Slot::NotTarget => return 0,
            Slot::NoMemory => {
                bump(Counter::SyscallsInflightMapFull);
                return 0;
            }
        };
    if config().python_off_cpu != 0 {
        python::syscall_entered();
    }
    let nr = ctx.arg::<u64>(1) as u32;
    // SAFETY: helper without arguments.
    let start_ns = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the storage of the thread running this program.
    unsafe {
        (*inflight).start_ns = start_ns;
        (*inflight).nr = nr;
    }
    0
}

/// raw_syscalls:sys_exit(struct pt_regs *regs, long ret): account the call.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn syscalls_exit(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // Only target threads have an in-flight entry: this lookup is also the target test.
    let Some(inflight) = SYSCALL_INFLIGHT.current() else {
        return 0;
    };
    if config().python_off_cpu != 0 {
        python::syscall_returned(pid_tgid);
    }
    // SAFETY: the entry belongs to this thread.
    let SyscallInflight { start_ns, nr, exec } = unsafe { *inflight };
    if start_ns == 0 {
        return 0;
    }
    // SAFETY: as above; marks the call as accounted.
    unsafe { (*inflight).start_ns = 0 };
    // SAFETY: helper without arguments.
    let end_ns = unsafe { bpf_ktime_get_ns() };
    let duration_ns = end_ns.saturating_sub(start_ns);
    let ret: i64 = ctx.arg(1);
    let key = SyscallKey {
        tgid: (pid_tgid >> 32) as u32,
        tid,
        nr,
        exec,
    };
    account(&key, duration_ns, ret);
    if duration_ns >= config().slow_ns {
        send_slow_event(&ctx, &key, end_ns, duration_ns, ret);
    }
    0
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
fn send_slow_event(
    ctx: &RawTracePointContext,
    key: &SyscallKey,
    end_ns: u64,
    duration_ns: u64,
    ret: i64,
) {
    // The Python code that made the call, when the caller runs CPython and the python tracer
    // knows it.
    let pid_tgid = (u64::from(key.tgid) << 32) | u64::from(key.tid);
    let python_stack = python::send_stack(pid_tgid, python_kind::SYSCALL, duration_ns, end_ns);
    let Some(mut entry) = SYSCALL_EVENTS.reserve::<SlowSyscallEvent>(0) else {
        bump(Counter::SyscallEventsDropped);
        return;
    };
    let regs: u64 = ctx.arg(0);
    let offsets = config().arg_offsets;
    let mut args = [0u64; ARGS];
    for (arg, offset) in args.iter_mut().zip(offsets) {
        // SAFETY: reads of the saved user registers at offsets learned from BTF.
        *arg =
            unsafe { bpf_probe_read_kernel((regs + u64::from(offset)) as *const u64) }.unwrap_or(0);
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
    if let Some(inflight) = SYSCALL_INFLIGHT.current() {
        // SAFETY: the storage of the thread running this program.
        unsafe { (*inflight).exec += 1 };
    }
    0
}
