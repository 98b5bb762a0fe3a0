//! Task-local storage maps (`BPF_MAP_TYPE_TASK_STORAGE`) from userspace, which aya does not
//! wrap: a thread's value is read and written with a pidfd of the thread as the key.

use std::{
    io,
    marker::PhantomData,
    mem::size_of,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
};

use aya::{Pod, maps::MapData};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_NOEXIST: u64 = 1;
/// `pidfd_open` of a thread rather than a process (Linux 6.9).
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// The element part of the kernel's `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

pub struct ThreadStorage<V> {
    map: MapData,
    _value: PhantomData<V>,
}

impl<V: Pod + Default> ThreadStorage<V> {
    pub fn new(map: MapData) -> Self {
        Self {
            map,
            _value: PhantomData,
        }
    }

    /// Thread `tid`'s value, if it has one (`None` too when the thread is gone).
    pub fn get(&self, tid: u32) -> io::Result<Option<V>> {
        let Some(pidfd) = thread_pidfd(tid)? else {
            return Ok(None);
        };
        let mut value = V::default();
        match self.call(BPF_MAP_LOOKUP_ELEM, &pidfd, &mut value, 0) {
            Ok(()) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives thread `tid` `value` unless it has one already (or is gone).
    pub fn insert_new(&self, tid: u32, mut value: V) -> io::Result<()> {
        let Some(pidfd) = thread_pidfd(tid)? else {
            return Ok(());
        };
        match self.call(BPF_MAP_UPDATE_ELEM, &pidfd, &mut value, BPF_NOEXIST) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
            _ => Ok(()),
        }
    }

    fn call(
        &self,
        command: libc::c_long,
        pidfd: &OwnedFd,
        value: &mut V,
        flags: u64,
    ) -> io::Result<()> {
        let key: i32 = pidfd.as_raw_fd();
        let mut attr = ElemAttr {
            map_fd: self.map.fd().as_fd().as_raw_fd() as u32,
            _pad: 0,
            key: std::ptr::from_ref(&key) as u64,
            value: std::ptr::from_mut(value) as u64,
            flags,
        };
        // SAFETY: `attr` points at a key and a value of the map's sizes, alive for the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                std::ptr::from_mut(&mut attr),
                size_of::<ElemAttr>(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A pidfd of thread `tid`; `None` when it is gone, or when the kernel (before 6.9) gives
/// pidfds of thread-group leaders only and `tid` is not one.
fn thread_pidfd(tid: u32) -> io::Result<Option<OwnedFd>> {
    let open = |flags: libc::c_uint| {
        // SAFETY: plain system call; the descriptor it returns is ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor, owned by nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    match open(PIDFD_THREAD).or_else(|e| match e.raw_os_error() {
        // No PIDFD_THREAD: a leader's pidfd is its thread's.
        Some(libc::EINVAL) => open(0),
        _ => Err(e),
    }) {
        Ok(fd) => Ok(Some(fd)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ESRCH | libc::ENOENT | libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The threads of process `pid` (none when it is gone).
pub fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}
