//! Converts the kernel's monotonic timestamps (`bpf_ktime_get_ns`) to UTC wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

/// The offset between CLOCK_REALTIME and CLOCK_MONOTONIC, measured once at start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    realtime_minus_monotonic_ns: i64,
}

fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl Clock {
    /// Measures the offset, keeping the tightest of a few (monotonic, realtime, monotonic)
    /// bracketings so a preemption between two reads does not skew every timestamp.
    pub fn calibrate() -> Self {
        let (offset, _) = (0..8)
            .map(|_| {
                let before = read(libc::CLOCK_MONOTONIC);
                let real = read(libc::CLOCK_REALTIME);
                let after = read(libc::CLOCK_MONOTONIC);
                (real - (before + (after - before) / 2), after - before)
            })
            .min_by_key(|&(_, width)| width)
            .expect("eight samples");
        Self::from_offset(offset)
    }

    pub const fn from_offset(realtime_minus_monotonic_ns: i64) -> Self {
        Self {
            realtime_minus_monotonic_ns,
        }
    }

    /// UTC nanoseconds since the Unix epoch of a kernel monotonic timestamp.
    pub fn to_utc_ns(self, monotonic_ns: u64) -> i64 {
        monotonic_ns as i64 + self.realtime_minus_monotonic_ns
    }
}

/// UTC nanoseconds since the Unix epoch, now.
pub fn utc_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_the_offset() {
        let clock = Clock::from_offset(1_700_000_000_000_000_000);
        assert_eq!(clock.to_utc_ns(5), 1_700_000_000_000_000_005);
    }

    #[test]
    fn calibrated_clock_agrees_with_system_time() {
        let clock = Clock::calibrate();
        let converted = clock.to_utc_ns(read(libc::CLOCK_MONOTONIC) as u64);
        assert!(
            (converted - utc_now_ns()).abs() < 5_000_000,
            "off by more than 5 ms"
        );
    }
}
