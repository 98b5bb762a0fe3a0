//! When to wake the loader for ring-buffer data: only once a buffer is a quarter full. Below
//! that the loader's 50 ms tick drains it in batches, so a trickle of events costs no wake-up
//! per event (each one an interrupt for the traced task and a tiny batch for the loader); a burst
//! still wakes it long before the buffer fills.

use aya_ebpf::{bindings::BPF_RB_AVAIL_DATA, maps::RingBuf};

const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// Flags for submitting to `ring`, a ring buffer of `bytes` bytes.
#[inline(always)]
pub fn flags(ring: &RingBuf, bytes: u32) -> u64 {
    if ring.query(u64::from(BPF_RB_AVAIL_DATA)) >= u64::from(bytes / 4) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}
