//! Loss counters: every event or aggregate the kernel side could not keep is counted here.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use tracers::counters::Counter;

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Adds one to `counter` on this CPU.
#[inline(always)]
pub fn bump(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; BPF programs do not preempt each other on one CPU.
        unsafe { *value += 1 };
    }
}
