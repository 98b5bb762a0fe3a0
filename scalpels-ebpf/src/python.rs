//! The `python` tracer: a perf_event program sampling every CPU; when the interrupted thread
//! belongs to a target running CPython, it walks the thread's frames (offsets of that process's
//! CPython version, from userspace) into a ring-buffer sample.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_user,
    },
    macros::{map, perf_event},
    maps::{HashMap, RingBuf},
    programs::PerfEventContext,
};
use tracers::{
    counters::Counter,
    python::{
        MAX_FRAMES, PROCS_MAX, PyFrame, PyProcess, PySample, PythonConfig, SAMPLES_BYTES, kind,
    },
};

use crate::{counters::bump, target::is_target, wakeup};

const _: () = assert!(MAX_FRAMES.is_power_of_two());

#[map]
static PYTHON_PROCS: HashMap<u32, PyProcess> = HashMap::with_max_entries(PROCS_MAX, 0);

#[map]
static PYTHON_SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_BYTES, 0);

#[unsafe(no_mangle)]
static PYTHON_CONFIG: PythonConfig = PythonConfig {
    task_fsbase: 0,
    pthread_specific: 0,
    depth: 0,
    _pad: 0,
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
    let fsbase: u64 = unsafe {
        bpf_probe_read_kernel((task + u64::from(config.task_fsbase)) as *const u64)
    }
    .ok()?;
    let slot = config.pthread_specific + 16 * process.tss_key + 8;
    let tstate: u64 = read_user(fsbase, slot)?;
    (tstate != 0).then_some(tstate)
}

#[perf_event]
pub fn python_sample(_ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == 0 || !is_target(tgid) {
        return 0;
    }
    // SAFETY: copied out of the map.
    let Some(process) = (unsafe { PYTHON_PROCS.get(&tgid) }).copied() else {
        return 0;
    };
    let config = config();
    let Some(tstate) = thread_state(&config, &process) else {
        return 0;
    };
    let Some(mut frame) = read_user::<u64>(tstate, process.tstate_frame) else {
        return 0;
    };
    if process.cframe_current_frame != 0 && frame != 0 {
        frame = read_user(frame, process.cframe_current_frame - 1).unwrap_or(0);
    }
    if frame == 0 {
        return 0;
    }
    let Some(mut entry) = PYTHON_SAMPLES.reserve::<PySample>(0) else {
        bump(Counter::PythonSamplesDropped);
        return 0;
    };
    let sample = entry.as_mut_ptr();
    let mut depth = 0u32;
    for _ in 0..MAX_FRAMES {
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
            // SAFETY: the reserved sample is ours until submitted.
            unsafe { (*sample).frames[slot] = PyFrame { code, instr } };
            depth += 1;
        }
        frame = read_user(frame, process.frame_previous).unwrap_or(0);
    }
    // SAFETY: as above.
    unsafe {
        (*sample).time_ns = bpf_ktime_get_ns();
        (*sample).tgid = tgid;
        (*sample).tid = pid_tgid as u32;
        (*sample).kind = kind::ON_CPU;
        (*sample).depth = depth;
        (*sample).truncated = u32::from(frame != 0);
        (*sample)._pad = 0;
    }
    if depth == 0 {
        entry.discard(0);
    } else {
        entry.submit(wakeup::flags(&PYTHON_SAMPLES, SAMPLES_BYTES));
    }
    0
}
