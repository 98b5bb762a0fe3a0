//! Checks and adjustments before anything is loaded into the kernel.

use std::fs;

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Tracing needs root, or CAP_BPF with CAP_PERFMON (or CAP_SYS_ADMIN on older kernels).
pub fn check_privileges() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    // SAFETY: no arguments.
    let euid = unsafe { libc::geteuid() };
    bail!(
        "scalpels-trace needs root to load eBPF programs (running as uid {euid} without \
         CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN): run it with sudo"
    )
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it there so big maps load.
/// Later kernels charge the memory cgroup instead, and the limit does not matter.
pub fn raise_memlock_limit() {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    if (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (5, 11) {
        return;
    }
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to a rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        eprintln!(
            "warning: could not lift RLIMIT_MEMLOCK ({}); large maps may fail to load on kernels before 5.11",
            std::io::Error::last_os_error()
        );
    }
}
