//! TLS plaintext, probed in the libssl of target processes (see `tracers::protocols::tls`):
//! an SSL call's entry notes it in the thread's hook storage, where the socket system calls it
//! makes find it (`super::entered` ties the call to the socket); its return streams what it
//! read or wrote as a plaintext payload of that connection.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext},
};
use tracers::{
    counters::Counter,
    protocols::tls::{FDS_MAX, NO_FD, SslKey, TlsCall, TlsConfig, call},
};

use crate::{
    counters::bump, hooks::HOOKS_THREADS, target::is_target, task_storage::Slot,
    uprobe_regs::register,
};

#[map]
static TLS_FDS: LruHashMap<SslKey, u32> = LruHashMap::with_max_entries(FDS_MAX, 0);

#[unsafe(no_mangle)]
static TLS_CONFIG: TlsConfig = TlsConfig {
    args: [0; 6],
    ret: 0,
    _pad: 0,
};

#[inline(always)]
fn config() -> TlsConfig {
    // SAFETY: a read of our own global; volatile so the loader's value is read.
    unsafe { core::ptr::read_volatile(&TLS_CONFIG) }
}

/// Argument `index` (0-based) of the probed function.
#[inline(always)]
fn arg(regs: *const c_void, config: &TlsConfig, index: usize) -> u64 {
    config
        .args
        .get(index)
        .map_or(0, |&offset| register(regs, offset))
}

/// The SSL object `ssl` of the current process.
#[inline(always)]
fn ssl_key(pid_tgid: u64, ssl: u64) -> SslKey {
    SslKey {
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        ssl,
    }
}

/// Entry of an SSL call of kind `kind`: noted in the thread's storage if it is a target.
#[inline(always)]
fn begin(regs: *const c_void, kind: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let calls = match HOOKS_THREADS.of_target(|| is_target((pid_tgid >> 32) as u32)) {
        Slot::Value(calls) => calls,
        Slot::NotTarget => return 0,
        Slot::NoMemory => {
            bump(Counter::ProtocolsInflightMapFull);
            return 0;
        }
    };
    let config = config();
    let extended = matches!(kind, call::READ_EX | call::WRITE_EX);
    let tls = TlsCall {
        ssl: arg(regs, &config, 0),
        buf: arg(regs, &config, 1),
        num: arg(regs, &config, 2),
        moved_out: if extended { arg(regs, &config, 3) } else { 0 },
        // SAFETY: helper without arguments.
        start_ns: unsafe { bpf_ktime_get_ns() },
        wire_end_ns: 0,
        call: kind,
        fd: NO_FD,
    };
    // SAFETY: the storage of the thread running this program, which only it uses.
    unsafe { (*calls).tls = tls };
    0
}

/// `int SSL_read(SSL *ssl, void *buf, int num)`
#[uprobe]
pub fn tls_read(ctx: ProbeContext) -> u32 {
    begin(ctx.regs as *const c_void, call::READ)
}

/// `int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)`
#[uprobe]
pub fn tls_read_ex(ctx: ProbeContext) -> u32 {
    begin(ctx.regs as *const c_void, call::READ_EX)
}

/// `int SSL_write(SSL *ssl, const void *buf, int num)`
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    begin(ctx.regs as *const c_void, call::WRITE)
}

/// `int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)`
#[uprobe]
pub fn tls_write_ex(ctx: ProbeContext) -> u32 {
    begin(ctx.regs as *const c_void, call::WRITE_EX)
}

/// `int SSL_do_handshake(SSL *ssl)`: its bytes on the wire are ciphertext too.
#[uprobe]
pub fn tls_handshake(ctx: ProbeContext) -> u32 {
    begin(ctx.regs as *const c_void, call::HANDSHAKE)
}

/// `int SSL_set_fd(SSL *ssl, int fd)`: the socket of an SSL object made during the run.
#[uprobe]
pub fn tls_set_fd(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if HOOKS_THREADS.current().is_none() && !is_target((pid_tgid >> 32) as u32) {
        return 0;
    }
    let regs = ctx.regs as *const c_void;
    let config = config();
    let fd = arg(regs, &config, 1) as u32;
    // An LRU map: a full one forgets the least used SSL object, found again by its calls.
    let _ = TLS_FDS.insert(&ssl_key(pid_tgid, arg(regs, &config, 0)), &fd, 0);
    0
}

/// `void SSL_free(SSL *ssl)`: its address may be another SSL object's next.
#[uprobe]
pub fn tls_free(ctx: ProbeContext) -> u32 {
    if HOOKS_THREADS.current().is_none() {
        return 0;
    }
    let ssl = arg(ctx.regs as *const c_void, &config(), 0);
    let _ = TLS_FDS.remove(&ssl_key(bpf_get_current_pid_tgid(), ssl));
    0
}

/// Return of any of the calls above: the plaintext it moved, streamed on its connection.
#[uretprobe]
pub fn tls_return(ctx: RetProbeContext) -> u32 {
    let Some(calls) = HOOKS_THREADS.current() else {
        return 0;
    };
    // SAFETY: the storage of the thread running this program, which only it uses.
    let tls = unsafe { (*calls).tls };
    if tls.call == call::NONE {
        return 0;
    }
    // SAFETY: as above.
    unsafe { (*calls).tls.call = call::NONE };
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = ssl_key(pid_tgid, tls.ssl);
    let fd = if tls.fd != NO_FD {
        let _ = TLS_FDS.insert(&key, &tls.fd, 0);
        Some(tls.fd)
    } else {
        // SAFETY: copied out of the map.
        unsafe { TLS_FDS.get(&key) }.copied()
    };
    let ret = register(ctx.regs as *const c_void, config().ret) as i64 as i32;
    let moved = match tls.call {
        call::READ | call::WRITE if ret > 0 => ret as u64,
        call::READ_EX | call::WRITE_EX if ret == 1 => {
            // SAFETY: a checked read of the caller's size_t.
            unsafe { bpf_probe_read_user(tls.moved_out as *const u64) }.unwrap_or(0)
        }
        _ => 0,
    };
    if moved == 0 {
        return 0;
    }
    let Some(fd) = fd else {
        bump(Counter::TlsNoSocket);
        return 0;
    };
    super::plaintext(pid_tgid, fd, &tls, moved);
    0
}
