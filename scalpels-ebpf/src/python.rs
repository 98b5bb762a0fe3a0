//! The `python` tracer: a perf_event program sampling every CPU; when the interrupted thread
//! belongs to a target running CPython, it walks the thread's frames (offsets of that process's
//! CPython version, from userspace) into a ring-buffer sample. Off CPU: sched_switch notes when
//! a target thread blocks and when it runs again; back from the system call it blocked in, its
//! stack is taken, weighted by the time it was off CPU.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_user,
    },
    macros::{map, perf_event, raw_tracepoint, tracepoint},
    maps::{HashMap, RingBuf},
    programs::{PerfEventContext, RawTracePointContext, TracePointContext},
};
use tracers::{
    counters::Counter,
    python::{
        MAX_FRAMES, OFF_CPU_MAX, OffCpu, PROCS_MAX, PyFrame, PyProcess, PySample, PythonConfig,
        SAMPLES_BYTES, kind,
    },
};

use crate::{counters::bump, target::is_target, wakeup};

const _: () = assert!(MAX_FRAMES.is_power_of_two());

/// Samples of waits or calls at least this long wake the loader at once.
const PROMPT_AFTER_NS: u64 = 1_000_000;

#[map]
static PYTHON_PROCS: HashMap<u32, PyProcess> = HashMap::with_max_entries(PROCS_MAX, 0);

#[map]
static PYTHON_SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_BYTES, 0);

#[map]
static PYTHON_OFF_CPU: HashMap<u32, OffCpu> = HashMap::with_max_entries(OFF_CPU_MAX, 0);

#[unsafe(no_mangle)]
static PYTHON_CONFIG: PythonConfig = PythonConfig {
    task_fsbase: 0,
    pthread_specific: 0,
    depth: 0,
    switch_prev_state: 0,
    switch_next_pid: 0,
    _pad: 0,
    off_cpu_min_ns: u64::MAX,
};

#[inline(always)]
fn config() -> PythonConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&PYTHON_CONFIG) }
}

/// Reads a `T` at `base + offset` in the current process's memory.
#[inline(always)]
fn read_user<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: a checked read; an unmapped or paged-out address fails instead of faulting.
    unsafe { bpf_probe_read_user((base + u64::from(offset)) as *const T) }.ok()
}

/// The `PyThreadState*` of the current thread: its value for CPython's pthread key.
#[inline(always)]
fn thread_state(config: &PythonConfig, process: &PyProcess) -> Option<u64> {
    // SAFETY: helper without arguments; the offset comes from BTF.
    let task = unsafe { bpf_get_current_task() };
    let fsbase: u64 =
        unsafe { bpf_probe_read_kernel((task + u64::from(config.task_fsbase)) as *const u64) }
            .ok()?;
    let slot = config.pthread_specific + 16 * process.tss_key + 8;
    let tstate: u64 = read_user(fsbase, slot)?;
    (tstate != 0).then_some(tstate)
}

/// Walks the current thread's Python stack into a sample of `kind` weighing `weight_ns`, timed
/// `time_ns`. Whether a sample was sent: not for threads of processes not (yet) known to run
/// CPython, nor outside Python code.
#[inline(always)]
pub fn send_stack(pid_tgid: u64, kind: u32, weight_ns: u64, time_ns: u64) -> bool {
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: copied out of the map.
    let Some(process) = (unsafe { PYTHON_PROCS.get(&tgid) }).copied() else {
        return false;
    };
    let config = config();
    let Some(tstate) = thread_state(&config, &process) else {
        return false;
    };
    let Some(mut frame) = read_user::<u64>(tstate, process.tstate_frame) else {
        return false;
    };
    if process.cframe_current_frame != 0 && frame != 0 {
        frame = read_user(frame, process.cframe_current_frame - 1).unwrap_or(0);
    }
    if frame == 0 {
        return false;
    }
    let Some(mut entry) = PYTHON_SAMPLES.reserve::<PySample>(0) else {
        bump(Counter::PythonSamplesDropped);
        return false;
    };
    let sample = entry.as_mut_ptr();
    // The depth lives in the sample (ring-buffer memory), not in a register: the verifier then
    // sees one unknown depth per iteration instead of one path per combination of skipped
    // frames, and the walk verifies in linear time.
    // SAFETY: the reserved sample is ours until submitted.
    unsafe { (*sample).depth = 0 };
    for _ in 0..MAX_FRAMES {
        // SAFETY: as above.
        let depth = unsafe { (*sample).depth };
        if frame == 0 || depth >= config.depth {
            break;
        }
        let c_shim = process.frame_owner != 0
            && read_user::<u8>(frame, process.frame_owner - 1)
                .is_some_and(|owner| u32::from(owner) == process.owner_c_stack);
        if !c_shim {
            let (Some(code), Some(instr)) = (
                read_user::<u64>(frame, process.frame_code),
                read_user::<u64>(frame, process.frame_instr),
            ) else {
                break;
            };
            // The mask keeps the index provably in bounds for the verifier.
            let slot = depth as usize & (MAX_FRAMES - 1);
            // SAFETY: as above.
            unsafe {
                (*sample).frames[slot] = PyFrame { code, instr };
                (*sample).depth = depth + 1;
            }
        }
        frame = read_user(frame, process.frame_previous).unwrap_or(0);
    }
    // SAFETY: as above.
    let depth = unsafe { (*sample).depth };
    unsafe {
        (*sample).time_ns = time_ns;
        (*sample).weight_ns = weight_ns;
        (*sample).tgid = tgid;
        (*sample).tid = pid_tgid as u32;
        (*sample).kind = kind;
        (*sample).truncated = u32::from(frame != 0);
        (*sample)._pad = 0;
    }
    if depth == 0 {
        entry.discard(0);
        return false;
    }
    // After a long wait, wake the loader now: the process may be about to exit (a main thread
    // joining its workers), and its code objects can only be named while it lives.
    let flags = if weight_ns >= PROMPT_AFTER_NS {
        wakeup::BPF_RB_FORCE_WAKEUP
    } else {
        wakeup::flags(&PYTHON_SAMPLES, SAMPLES_BYTES)
    };
    entry.submit(flags);
    true
}

/// On CPU: the thread the timer interrupted, if it is a target running Python.
#[perf_event]
pub fn python_sample(_ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != 0 && is_target(tgid) {
        // SAFETY: helper without arguments.
        send_stack(pid_tgid, kind::ON_CPU, 0, unsafe { bpf_ktime_get_ns() });
    }
    0
}

/// sched_switch, in the context of the task leaving the CPU: a target Python thread that
/// blocks starts an off-CPU period; the task coming in ends its own.
#[tracepoint(category = "sched", name = "sched_switch")]
pub fn python_switch(ctx: TracePointContext) -> u32 {
    let config = config();
    // SAFETY: helpers without arguments; offsets from the format file.
    let (now, prev_state, next_pid) = unsafe {
        (
            bpf_ktime_get_ns(),
            ctx.read_at::<i64>(config.switch_prev_state as usize)
                .unwrap_or(0),
            ctx.read_at::<i32>(config.switch_next_pid as usize)
                .unwrap_or(0),
        )
    };
    let next = next_pid as u32;
    if let Some(period) = PYTHON_OFF_CPU.get_ptr_mut(&next) {
        // SAFETY: the entry of a thread that is not running: only sched_switch writes it now.
        unsafe {
            if (*period).start_ns != 0 {
                (*period).total_ns += now.saturating_sub((*period).start_ns);
                (*period).start_ns = 0;
            }
        }
    }
    // prev_state 0 is TASK_RUNNING: preempted, not blocked.
    if prev_state == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    if let Some(period) = PYTHON_OFF_CPU.get_ptr_mut(&tid) {
        // SAFETY: the current thread's own entry.
        unsafe { (*period).start_ns = now };
        return 0;
    }
    // Every target thread, not only those of processes known to run CPython yet: a wait that
    // began before the loader found the interpreter is still sampled when it ends.
    if !is_target((pid_tgid >> 32) as u32) {
        return 0;
    }
    let period = OffCpu {
        start_ns: now,
        total_ns: 0,
    };
    let _ = PYTHON_OFF_CPU.insert(&tid, &period, 0);
    0
}

/// Entering a system call: a period left by a block outside system calls (a page fault) is
/// not this call's, and is dropped.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn python_syscall_enter(_ctx: RawTracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: presence test only.
    if unsafe { PYTHON_OFF_CPU.get(&tid) }.is_some() {
        let _ = PYTHON_OFF_CPU.remove(&tid);
    }
    0
}

/// Returning from a system call that blocked: its Python stack, weighted by the time off CPU.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn python_syscall_exit(_ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: copied out before removal.
    let Some(period) = (unsafe { PYTHON_OFF_CPU.get(&tid) }).copied() else {
        return 0;
    };
    let _ = PYTHON_OFF_CPU.remove(&tid);
    if period.total_ns >= config().off_cpu_min_ns {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        send_stack(pid_tgid, kind::OFF_CPU, period.total_ns, now);
    }
    0
}
