//! The arithmetic of cumulative kernel counters: their change over an interval, and clock ticks
//! as nanoseconds. Kept apart from the reading of /proc so it can be tested.

const NS_PER_SECOND: u128 = 1_000_000_000;

/// Change of a cumulative counter since `before`. Saturates: a counter that went back (the
/// kernel documents that `iowait` can; a re-created device starts over) counts as no change
/// rather than as a wrap to 2^64.
pub fn change(now: u64, before: u64) -> u64 {
    now.saturating_sub(before)
}

/// [`change`] of a counter that may not have been readable at either end.
pub fn change_of(now: Option<u64>, before: Option<u64>) -> Option<u64> {
    Some(change(now?, before?))
}

/// The kernel's clock tick (`USER_HZ`, `sysconf(_SC_CLK_TCK)`): the unit of CPU times and
/// process start times in /proc.
#[derive(Clone, Copy, Debug)]
pub struct Ticks {
    per_second: u64,
}

impl Ticks {
    pub fn of_this_system() -> Self {
        Self::per_second(procfs::ticks_per_second())
    }

    pub fn per_second(per_second: u64) -> Self {
        Self {
            per_second: per_second.max(1),
        }
    }

    pub fn to_ns(self, ticks: u64) -> i64 {
        let ns = u128::from(ticks) * NS_PER_SECOND / u128::from(self.per_second);
        i64::try_from(ns).unwrap_or(i64::MAX)
    }

    /// Whole ticks in `ns`, rounded down as the kernel does for process start times.
    pub fn in_ns(self, ns: u64) -> u64 {
        let ticks = u128::from(ns) * u128::from(self.per_second) / NS_PER_SECOND;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The clock tick since boot (`CLOCK_BOOTTIME`, the clock of process start times) now.
    pub fn since_boot(self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let ns = u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec).unwrap_or(0);
        self.in_ns(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_the_difference_and_never_wraps() {
        assert_eq!(change(150, 100), 50);
        assert_eq!(change(100, 100), 0);
        assert_eq!(change(90, 100), 0);
        assert_eq!(change_of(Some(7), Some(2)), Some(5));
        assert_eq!(change_of(None, Some(2)), None);
        assert_eq!(change_of(Some(7), None), None);
    }

    #[test]
    fn ticks_convert_with_the_real_rate() {
        let hz100 = Ticks::per_second(100);
        assert_eq!(hz100.to_ns(1), 10_000_000);
        assert_eq!(hz100.to_ns(250), 2_500_000_000);
        assert_eq!(hz100.in_ns(2_509_999_999), 250);
        let hz250 = Ticks::per_second(250);
        assert_eq!(hz250.to_ns(1), 4_000_000);
        assert_eq!(hz250.in_ns(1_000_000_000), 250);
        // A rate that does not divide a second: no rounding error accumulates.
        let hz300 = Ticks::per_second(300);
        assert_eq!(hz300.to_ns(300), 1_000_000_000);
        assert_eq!(hz300.to_ns(1), 3_333_333);
        assert_eq!(Ticks::per_second(100).to_ns(u64::MAX), i64::MAX);
    }

    #[test]
    fn this_system_ticks_at_its_user_hz() {
        let ticks = Ticks::of_this_system();
        // SAFETY: plain sysconf.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i64;
        assert_eq!(ticks.to_ns(hz as u64), 1_000_000_000);
        assert!(ticks.since_boot() > 0);
    }
}
