//! What the `files` and `protocols` tracers share: checked kernel reads, the walk from an fd
//! of the current task to its `struct file` (offsets from BTF, passed in by the loader).

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: a checked kernel read; a bad address fails instead of faulting.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.ok()
}

/// The `struct file *` behind `fd` of the current task, walking task -> files -> fdtable ->
/// fd array with the offsets of `task_struct.files`, `files_struct.fdt`, `fdtable.max_fds`
/// and `fdtable.fd`.
#[inline(always)]
pub fn file(
    fd: u32,
    task_files: u32,
    files_fdt: u32,
    fdtable_max_fds: u32,
    fdtable_fd: u32,
) -> Option<u64> {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task, task_files)?;
    let fdt: u64 = read(files, files_fdt)?;
    let max_fds: u32 = read(fdt, fdtable_max_fds)?;
    if fd >= max_fds {
        return None;
    }
    let fd_array: u64 = read(fdt, fdtable_fd)?;
    let file: u64 = read(fd_array, fd.checked_mul(8)?)?;
    (file != 0).then_some(file)
}
