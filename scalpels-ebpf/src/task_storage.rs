//! Task-local storage (`BPF_MAP_TYPE_TASK_STORAGE`): a value per thread that the kernel keeps
//! with the thread's `task_struct`, finds without hashing, and frees when the thread exits.
//! Per-thread state looked up on every system call costs a fraction of a hash-map lookup this
//! way. aya-ebpf defines this kind of map for sockets, inodes and cgroups but not for tasks; the
//! definition follows theirs: a BTF map, whose type, key and value the loader reads from the
//! object's BTF. The kernel sizes these maps (a value per thread that has one): the catalogue's
//! maps, which the loader shrinks for tracers that do not run, leave them out.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get},
};

/// Declared with `#[btf_map]`; the fields only describe the map to the loader.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders the loader reads from BTF; they are never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    #[inline(always)]
    fn get(&self, flags: u32) -> Option<*mut T> {
        // SAFETY: the current task's BTF pointer, as the helper requires; a null value with
        // F_CREATE creates a zeroed one.
        let value = unsafe {
            bpf_task_storage_get(
                ptr::from_ref(self).cast_mut().cast::<c_void>(),
                bpf_get_current_task_btf(),
                ptr::null_mut(),
                u64::from(flags),
            )
        };
        (!value.is_null()).then_some(value.cast::<T>())
    }

    /// The current thread's value, if it has one.
    #[inline(always)]
    pub fn current(&self) -> Option<*mut T> {
        self.get(0)
    }

    /// The current thread's value, created zeroed if it had none; `None` only when the kernel
    /// could not allocate it.
    #[inline(always)]
    pub fn current_or_zeroed(&self) -> Option<*mut T> {
        self.get(BPF_LOCAL_STORAGE_GET_F_CREATE)
    }

    /// The value of the current thread if it is a target: one it has already (having storage
    /// means it was a target before, so `is_target`, a hash lookup, is not asked), else a new
    /// zeroed one when `is_target()` says so.
    #[inline(always)]
    pub fn of_target(&self, is_target: impl FnOnce() -> bool) -> Slot<T> {
        if let Some(value) = self.current() {
            return Slot::Value(value);
        }
        if !is_target() {
            return Slot::NotTarget;
        }
        match self.current_or_zeroed() {
            Some(value) => Slot::Value(value),
            None => Slot::NoMemory,
        }
    }
}

/// What [`TaskStorage::of_target`] found.
pub enum Slot<T> {
    Value(*mut T),
    NotTarget,
    /// A target whose value the kernel could not allocate.
    NoMemory,
}
