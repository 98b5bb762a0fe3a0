//! Reading a uprobe's registers: the probe's `struct pt_regs`, at offsets userspace learned
//! from BTF (the sqlite and TLS probes).

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// The 8-byte register at `offset` in the probe's `pt_regs`.
#[inline(always)]
pub fn register(regs: *const c_void, offset: u32) -> u64 {
    // SAFETY: a checked read inside the context's pt_regs; the offset comes from BTF.
    unsafe { bpf_probe_read_kernel((regs as *const u8).add(offset as usize) as *const u64) }
        .unwrap_or(0)
}
