//! Attaches an already loaded uprobe program to a file offset, at any time during the run.
//! aya attaches only through `&mut UProbe` inside the `Ebpf` object, which tracers give up
//! after attach; interpreters are found later, so this opens the uprobe perf event itself
//! and hands it the program's fd, as aya does.

use std::{
    ffi::CString,
    fs,
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use anyhow::{Context as _, Result, bail};

use crate::btf;

const PMU_TYPE: &str = "/sys/bus/event_source/devices/uprobe/type";
/// Which bit of `config` makes the probe a return probe ("config:N").
const RETPROBE_FORMAT: &str = "/sys/bus/event_source/devices/uprobe/format/retprobe";
/// `_IOW('$', 8, __u32)` and `_IO('$', 0)` from linux/perf_event.h.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// `struct perf_event_attr` up to `config2` (PERF_ATTR_SIZE_VER1), the fields a probe uses.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// For the uprobe PMU: the path of the probed file.
    config1: u64,
    /// For the uprobe PMU: the probe's offset in that file.
    config2: u64,
}

/// The x86-64 `struct pt_regs` members of the integer arguments, in order.
const ARG_REGISTERS: [&str; 6] = ["di", "si", "dx", "cx", "r8", "r9"];

/// Where a uprobe program finds the probed function's registers: byte offsets in
/// `struct pt_regs`, from BTF.
pub struct Registers {
    /// Integer arguments 1..=6.
    pub args: [u32; 6],
    /// The return value.
    pub ret: u32,
    pub sp: u32,
    pub ip: u32,
}

/// The registers of a probed function, from the kernel's BTF.
pub fn registers() -> Result<Registers> {
    if !cfg!(target_arch = "x86_64") {
        bail!("the uprobes read x86-64 registers");
    }
    let vmlinux = btf::load_vmlinux()?;
    let offset = |member: &str| btf::member_offset(&vmlinux, "pt_regs", member);
    let mut args = [0; 6];
    for (slot, member) in args.iter_mut().zip(ARG_REGISTERS) {
        *slot = offset(member)?;
    }
    Ok(Registers {
        args,
        ret: offset("ax")?,
        sp: offset("sp")?,
        ip: offset("ip")?,
    })
}

/// The uprobe PMU's type number.
pub fn pmu_type() -> Result<u32> {
    let text = fs::read_to_string(PMU_TYPE).with_context(|| format!("reading {PMU_TYPE}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("parsing {PMU_TYPE}"))
}

/// The `config` of a return probe: the bit the uprobe PMU's format names.
pub fn retprobe_config() -> Result<u64> {
    let text = fs::read_to_string(RETPROBE_FORMAT)
        .with_context(|| format!("reading {RETPROBE_FORMAT}"))?;
    let bit: u32 = text
        .trim()
        .strip_prefix("config:")
        .and_then(|bit| bit.parse().ok())
        .with_context(|| format!("parsing {RETPROBE_FORMAT}: {text:?}"))?;
    Ok(1 << bit)
}

/// Runs `program` whenever any process executes `file` at `offset`; until the returned fd is
/// closed.
pub fn attach(pmu: u32, program: BorrowedFd, file: &Path, offset: u64) -> Result<OwnedFd> {
    open(pmu, 0, program, file, offset)
}

/// Runs `program` whenever the function at `offset` of `file` returns, in any process
/// (`config`: [`retprobe_config`]); until the returned fd is closed.
pub fn attach_return(
    pmu: u32,
    config: u64,
    program: BorrowedFd,
    file: &Path,
    offset: u64,
) -> Result<OwnedFd> {
    open(pmu, config, program, file, offset)
}

fn open(pmu: u32, config: u64, program: BorrowedFd, file: &Path, offset: u64) -> Result<OwnedFd> {
    let path = CString::new(file.as_os_str().as_bytes())
        .with_context(|| format!("{} has a NUL in its path", file.display()))?;
    let attr = PerfEventAttr {
        kind: pmu,
        size: size_of::<PerfEventAttr>() as u32,
        config,
        config1: path.as_ptr() as u64,
        config2: offset,
        ..Default::default()
    };
    // SAFETY: `attr` and the path it points to outlive the call. pid -1 with CPU 0 is how a
    // probe event for every process is opened; its BPF program runs on every CPU.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1,
            0,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("opening a uprobe on {} at {offset:#x}", file.display()));
    }
    // SAFETY: a new fd that nothing else owns.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for (request, arg, what) in [
        (
            PERF_EVENT_IOC_SET_BPF,
            program.as_raw_fd(),
            "attaching the program to",
        ),
        (PERF_EVENT_IOC_ENABLE, 0, "enabling"),
    ] {
        // SAFETY: perf-event ioctls on our own fd, with an integer argument.
        if unsafe { libc::ioctl(event.as_raw_fd(), request, arg) } < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!("{what} the uprobe on {} at {offset:#x}", file.display())
            });
        }
    }
    Ok(event)
}
