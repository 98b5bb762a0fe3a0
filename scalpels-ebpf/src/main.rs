//! Scalpels' eBPF programs: one module per tracer, plus the helpers they share.
#![no_std]
#![no_main]

mod block;
mod counters;
mod fd;
mod files;
mod hooks;
mod protocols;
mod python;
mod python_calls;
mod syscalls;
mod target;
mod task_storage;
mod uprobe_regs;
mod wakeup;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// Several helpers used here (bpf_probe_read_kernel, ring buffers) are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
