//! Log2 latency histograms, filled in the kernel and read back in userspace.

/// Slots of a latency histogram. Slot 0 counts zero-length durations, slot `i` counts durations
/// in `[2^(i-1), 2^i)` nanoseconds; the last slot also takes everything longer (2^38 ns ≈ 275 s).
pub const HIST_SLOTS: usize = 40;

/// The histogram slot of a duration in nanoseconds.
///
/// Written without `leading_zeros` so it compiles to a few branch-free shifts on BPF, which has
/// no count-leading-zeros instruction.
#[inline(always)]
pub fn slot(ns: u64) -> usize {
    if ns == 0 {
        return 0;
    }
    let mut v = ns;
    let mut log = 0u32;
    for shift in [32u32, 16, 8, 4, 2, 1] {
        if v >> shift != 0 {
            v >>= shift;
            log += shift;
        }
    }
    let slot = log as usize + 1;
    if slot < HIST_SLOTS {
        slot
    } else {
        HIST_SLOTS - 1
    }
}

/// The smallest duration (ns) that lands in `slot`.
pub fn slot_lower_bound_ns(slot: usize) -> u64 {
    if slot == 0 { 0 } else { 1u64 << (slot - 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_powers_of_two() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(1), 1);
        assert_eq!(slot(2), 2);
        assert_eq!(slot(3), 2);
        assert_eq!(slot(4), 3);
        assert_eq!(slot(1023), 10);
        assert_eq!(slot(1024), 11);
        assert_eq!(slot(u64::MAX), HIST_SLOTS - 1);
        for s in 1..HIST_SLOTS - 1 {
            assert_eq!(slot(slot_lower_bound_ns(s)), s);
            assert_eq!(slot(slot_lower_bound_ns(s + 1) - 1), s);
        }
    }
}
