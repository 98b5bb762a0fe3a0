//! Syscall names from the kernel's own syscall table (the `syscalls` crate is generated from the
//! kernel sources' `syscall_*.tbl` for each architecture).

use syscalls::Sysno;

/// The name of syscall `nr` on this architecture, or `syscall_<nr>` for numbers the table lacks.
pub fn name(nr: u32) -> String {
    Sysno::new(nr as usize)
        .map(|s| s.name().to_owned())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn x86_64_numbers_have_kernel_names() {
        assert_eq!(name(0), "read");
        assert_eq!(name(39), "getpid");
        assert_eq!(name(110), "getppid");
        assert_eq!(name(257), "openat");
        assert_eq!(name(435), "clone3");
        assert_eq!(name(100_000), "syscall_100000");
    }
}
