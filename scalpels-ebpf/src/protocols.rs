//! The `protocols` tracer: the hooks (`crate::hooks`) run its entry and exit work for the
//! socket syscalls of target threads, found by number in `PROTO_SYSCALLS`. An fd counts only
//! when it is a socket of a target (task -> files -> fdtable -> file -> inode mode, offsets from BTF),
//! so regular files never pay for a payload copy. Each connection is an entry of a per-(process,
//! fd) table, announced once with both ends' addresses read from its `struct sock`; each
//! payload is streamed as a header and a bounded prefix of the bytes, at their true length.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user,
        generated,
    },
    macros::{map, tracepoint},
    maps::{Array, HashMap, LruHashMap, RingBuf},
    programs::TracePointContext,
};
use tracers::{
    counters::Counter,
    protocols::{
        ADDR_BYTES, CONNS_MAX, CloseEvent, ConnEvent, ConnKey, ConnState, DataHeader, DataScratch,
        EVENTS_BYTES, ExitEvent, Inflight, MAX_IOVECS, MAX_PAYLOAD, PROCS_MAX, ProtocolsConfig,
        SYSCALLS_MAX, SocketSyscall, SocketWalk, direction, family, kind, op, role,
        tls::{TlsCall, call as tls_call, payload},
    },
    python::kind as python_kind,
};

use crate::{
    counters::bump,
    fd::{self, read},
    hooks::Regs,
    python, target, wakeup,
};

mod sqlite;
mod tls;

#[map]
static PROTO_SYSCALLS: Array<SocketSyscall> = Array::with_max_entries(SYSCALLS_MAX, 0);

#[map]
static PROTO_CONNS: LruHashMap<ConnKey, ConnState> = LruHashMap::with_max_entries(CONNS_MAX, 0);

#[map]
static PROTO_PROCS: HashMap<u32, u8> = HashMap::with_max_entries(PROCS_MAX, 0);

/// One entry per CPU; the loader sets the count to the machine's CPUs.
#[map]
static PROTO_SCRATCH: Array<DataScratch> = Array::with_max_entries(1, 0);

#[map]
static PROTO_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

const NO_WALK: SocketWalk = SocketWalk {
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_inode: 0,
    file_private_data: 0,
    inode_mode: 0,
    socket_sk: 0,
    sk_family: 0,
    sk_type: 0,
    sk_daddr: 0,
    sk_rcv_saddr: 0,
    sk_dport: 0,
    sk_num: 0,
    sk_v6_daddr: 0,
    sk_v6_rcv_saddr: 0,
    unix_addr: 0,
    unix_peer: 0,
    unix_address_len: 0,
    unix_address_name: 0,
    sockaddr_un_path: 0,
    msghdr_iov: 0,
    msghdr_iovlen: 0,
    iovec_base: 0,
    iovec_len: 0,
    iovec_size: 0,
};

#[unsafe(no_mangle)]
static PROTOCOLS_CONFIG: ProtocolsConfig = ProtocolsConfig {
    payload_bytes: 0,
    _pad: 0,
    walk: NO_WALK,
};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const MSG_PEEK: u64 = 2;
const EINPROGRESS: i64 = 115;

#[inline(always)]
fn config() -> ProtocolsConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&PROTOCOLS_CONFIG) }
}

/// Reads a `T` at `base + offset` in the current process's memory.
#[inline(always)]
fn read_user<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: a checked read of user memory.
    unsafe { bpf_probe_read_user((base + u64::from(offset)) as *const T) }.ok()
}

/// The traced socket syscall numbered `nr`.
#[inline(always)]
fn syscall(nr: u32) -> Option<SocketSyscall> {
    let syscall = PROTO_SYSCALLS.get(nr).copied()?;
    (syscall.op != op::NONE).then_some(syscall)
}

/// The `struct file *` behind `fd` of the current task.
#[inline(always)]
fn fd_file(fd: u32, walk: &SocketWalk) -> Option<u64> {
    fd::file(
        fd,
        walk.task_files,
        walk.files_fdt,
        walk.fdtable_max_fds,
        walk.fdtable_fd,
    )
}

/// The `struct sock *` of `file`, if it is a socket.
#[inline(always)]
fn socket_sock(file: u64, walk: &SocketWalk) -> Option<u64> {
    let inode: u64 = read(file, walk.file_inode)?;
    let mode: u16 = read(inode, walk.inode_mode)?;
    if mode & S_IFMT != S_IFSOCK {
        return None;
    }
    let socket: u64 = read(file, walk.file_private_data)?;
    let sk: u64 = read(socket, walk.socket_sk)?;
    (sk != 0).then_some(sk)
}

/// Starts following the socket `sk` behind `key`: a table entry, and an event with its
/// addresses. Its connection id, or `None` for families not followed.
#[inline(always)]
fn follow(key: &ConnKey, file: u64, sk: u64, conn_role: u32, now: u64) -> Option<u64> {
    let walk = config().walk;
    let sock_family: u16 = read(sk, walk.sk_family)?;
    if !matches!(sock_family, family::UNIX | family::INET | family::INET6) {
        return None;
    }
    let state = ConnState {
        conn: now,
        file,
        lost_sent: 0,
        lost_received: 0,
        role: conn_role,
        last_direction: 0,
        tls: 0,
        _pad: 0,
    };
    // An LRU map: a full table forgets its least used connection rather than failing.
    let _ = PROTO_CONNS.insert(key, &state, 0);
    // SAFETY: presence test only.
    if unsafe { PROTO_PROCS.get(&key.tgid) }.is_none()
        && PROTO_PROCS.insert(&key.tgid, &1, 0).is_err()
    {
        bump(Counter::ProtocolsProcsMapFull);
    }
    send_conn(key, sk, sock_family, &state, &walk);
    Some(now)
}

/// Announces a connection; written in place, the event being too large for the stack.
#[inline(always)]
fn send_conn(key: &ConnKey, sk: u64, sock_family: u16, state: &ConnState, walk: &SocketWalk) {
    let Some(mut entry) = PROTO_EVENTS.reserve::<ConnEvent>(0) else {
        bump(Counter::ProtocolsEventsDropped);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: the reserved entry is ours until submitted; every field is written.
    unsafe {
        (*event).kind = kind::CONN;
        (*event).tgid = key.tgid;
        (*event).fd = key.fd;
        (*event).role = state.role;
        (*event).conn = state.conn;
        (*event).time_ns = state.conn;
        (*event).family = sock_family;
        (*event).sock_type = read(sk, walk.sk_type).unwrap_or(0);
        (*event)._pad = 0;
        (*event).local_port = 0;
        (*event).remote_port = 0;
        (*event).local_len = 0;
        (*event).remote_len = 0;
        (*event).local = [0; ADDR_BYTES];
        (*event).remote = [0; ADDR_BYTES];
        match sock_family {
            family::INET | family::INET6 => {
                let (local, remote, bytes) = if sock_family == family::INET {
                    (walk.sk_rcv_saddr, walk.sk_daddr, 4)
                } else {
                    (walk.sk_v6_rcv_saddr, walk.sk_v6_daddr, 16)
                };
                let _ = generated::bpf_probe_read_kernel(
                    (*event).local.as_mut_ptr().cast(),
                    bytes,
                    (sk + u64::from(local)) as *const _,
                );
                let _ = generated::bpf_probe_read_kernel(
                    (*event).remote.as_mut_ptr().cast(),
                    bytes,
                    (sk + u64::from(remote)) as *const _,
                );
                (*event).local_len = bytes as u16;
                (*event).remote_len = bytes as u16;
                (*event).local_port = read(sk, walk.sk_num).unwrap_or(0);
                (*event).remote_port = u16::from_be(read(sk, walk.sk_dport).unwrap_or(0));
            }
            _ => {
                (*event).local_len = unix_path(sk, (*event).local.as_mut_ptr(), walk);
                let peer: u64 = read(sk, walk.unix_peer).unwrap_or(0);
                if peer != 0 {
                    (*event).remote_len = unix_path(peer, (*event).remote.as_mut_ptr(), walk);
                }
            }
        }
    }
    entry.submit(wakeup::flags(&PROTO_EVENTS, EVENTS_BYTES));
}

/// Copies the path a unix socket is bound to into `dst` (`ADDR_BYTES` long); its length.
#[inline(always)]
fn unix_path(sk: u64, dst: *mut u8, walk: &SocketWalk) -> u16 {
    let address: u64 = read(sk, walk.unix_addr).unwrap_or(0);
    if address == 0 {
        return 0;
    }
    // The length covers the whole sockaddr_un: family, then path.
    let whole: u32 = read(address, walk.unix_address_len).unwrap_or(0);
    let len = u64::from(whole).saturating_sub(u64::from(walk.sockaddr_un_path));
    if len == 0 || len > ADDR_BYTES as u64 {
        return 0;
    }
    let src = address + u64::from(walk.unix_address_name) + u64::from(walk.sockaddr_un_path);
    // SAFETY: a checked kernel read of at most ADDR_BYTES into a buffer of that size.
    let ok =
        unsafe { generated::bpf_probe_read_kernel(dst.cast(), len as u32, src as *const _) } == 0;
    if ok { len as u16 } else { 0 }
}

/// Stops following the connection behind `key`, if any.
#[inline(always)]
fn forget(key: &ConnKey, now: u64) {
    // SAFETY: copied out before removal.
    let Some(state) = (unsafe { PROTO_CONNS.get(key) }).copied() else {
        return;
    };
    let _ = PROTO_CONNS.remove(key);
    send_close(key, &state, now);
}

#[inline(always)]
fn send_close(key: &ConnKey, state: &ConnState, now: u64) {
    let Some(mut entry) = PROTO_EVENTS.reserve::<CloseEvent>(0) else {
        bump(Counter::ProtocolsEventsDropped);
        return;
    };
    entry.write(CloseEvent {
        kind: kind::CLOSE,
        tgid: key.tgid,
        fd: key.fd,
        _pad: 0,
        conn: state.conn,
        time_ns: now,
        lost_sent: state.lost_sent,
        lost_received: state.lost_received,
    });
    entry.submit(wakeup::flags(&PROTO_EVENTS, EVENTS_BYTES));
}

/// Entry of a target thread's system call (run by the hooks): a socket call on an fd worth
/// following is remembered in `call`; one made inside the thread's SSL call `tls` ties that
/// call to the socket, whose bytes are ciphertext from then on.
#[inline(always)]
pub fn entered(nr: u32, regs: Regs, tgid: u32, call: &mut Inflight, tls: &mut TlsCall) {
    // A call that never returned (the thread exec'd or was killed in it) is not this one.
    call.op = op::NONE;
    let Some(syscall) = syscall(nr) else {
        return;
    };
    let Some(fd) = regs.arg(syscall.fd_arg) else {
        return;
    };
    let key = ConnKey {
        tgid,
        fd: fd as u32,
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut inflight = Inflight {
        start_ns: now,
        conn: 0,
        buf: 0,
        count: 0,
        fd: key.fd,
        op: syscall.op,
    };
    match syscall.op {
        op::CLOSE => {
            forget(&key, now);
            return;
        }
        op::CONNECT | op::ACCEPT => {
            *call = inflight;
            return;
        }
        _ => {}
    }
    if syscall.flags_arg != 0
        && regs
            .arg(syscall.flags_arg)
            .is_some_and(|flags| flags & MSG_PEEK != 0)
    {
        return;
    }
    let config = config();
    let Some(file) = fd_file(key.fd, &config.walk) else {
        return;
    };
    // SAFETY: copied out of the map.
    let known = unsafe { PROTO_CONNS.get(&key) }.copied();
    inflight.conn = match known {
        Some(state) if state.file == file => state.conn,
        _ => {
            let Some(sk) = socket_sock(file, &config.walk) else {
                // The fd is no longer the socket it was: that connection is over.
                if known.is_some() {
                    forget(&key, now);
                }
                return;
            };
            // A socket older than the trace, inherited, or behind a reused fd.
            let Some(conn) = follow(&key, file, sk, role::UNKNOWN, now) else {
                return;
            };
            conn
        }
    };
    if tls.call != tls_call::NONE {
        tls.fd = key.fd;
        if let Some(state) = PROTO_CONNS.get_ptr_mut(&key) {
            // SAFETY: a flag of this process's connection entry.
            unsafe { (*state).tls = 1 };
        }
    }
    inflight.buf = regs.arg(syscall.buf_arg).unwrap_or(0);
    inflight.count = regs.arg(syscall.count_arg).unwrap_or(0);
    *call = inflight;
}

/// Exit of a target thread's system call numbered `nr` (run by the hooks): a new connection,
/// or a followed socket's payload (inside the SSL call `tls`, its ciphertext).
#[inline(always)]
pub fn exited(nr: u32, ret: i64, pid_tgid: u64, call: &mut Inflight, tls: &mut TlsCall) {
    let inflight = *call;
    if inflight.op == op::NONE {
        return;
    }
    call.op = op::NONE;
    if syscall(nr).is_none_or(|syscall| syscall.op != inflight.op) {
        return;
    }
    match inflight.op {
        op::CONNECT | op::ACCEPT => opened(&inflight, ret, (pid_tgid >> 32) as u32),
        _ => moved_data(&inflight, ret, pid_tgid, tls),
    }
}

/// Exit of `connect`/`accept`/`accept4`: a new connection, client or server side.
#[inline(always)]
fn opened(inflight: &Inflight, ret: i64, tgid: u32) {
    let (fd, conn_role) = match inflight.op {
        // A non-blocking connect is in progress: the connection is made, whatever comes of it.
        op::CONNECT if ret == 0 || ret == -EINPROGRESS => (inflight.fd, role::CLIENT),
        op::ACCEPT if ret >= 0 => (ret as u32, role::SERVER),
        _ => return,
    };
    let walk = config().walk;
    let Some(file) = fd_file(fd, &walk) else {
        return;
    };
    let Some(sk) = socket_sock(file, &walk) else {
        return;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    follow(&ConnKey { tgid, fd }, file, sk, conn_role, now);
}

/// Exit of a data syscall on a followed socket: stream the payload (of a TLS connection,
/// only its length: the plaintext comes from the SSL call around it).
#[inline(always)]
fn moved_data(inflight: &Inflight, ret: i64, pid_tgid: u64, tls: &mut TlsCall) {
    if ret <= 0 {
        return;
    }
    let key = ConnKey {
        tgid: (pid_tgid >> 32) as u32,
        fd: inflight.fd,
    };
    let Some(state) = PROTO_CONNS.get_ptr_mut(&key) else {
        return;
    };
    // SAFETY: the entry may be replaced by another thread of the process; a torn read only
    // misattributes one payload of a connection being reused, which the id check catches.
    let current = unsafe { *state };
    if current.conn != inflight.conn {
        return;
    }
    // SAFETY: helper without arguments.
    let end_ns = unsafe { bpf_ktime_get_ns() };
    if tls.call != tls_call::NONE && tls.fd == inflight.fd {
        tls.wire_end_ns = end_ns;
    }
    let kind = if current.tls != 0 {
        payload::CIPHERTEXT
    } else {
        payload::PLAIN
    };
    stream(state, inflight, ret as u64, pid_tgid, kind, end_ns);
}

/// Return of an SSL read or write on `fd` that moved `moved` bytes of plaintext: streamed on
/// that connection.
#[inline(always)]
fn plaintext(pid_tgid: u64, fd: u32, tls: &TlsCall, moved: u64) {
    let key = ConnKey {
        tgid: (pid_tgid >> 32) as u32,
        fd,
    };
    let Some(state) = PROTO_CONNS.get_ptr_mut(&key) else {
        bump(Counter::TlsNoSocket);
        return;
    };
    // SAFETY: as in `moved_data`.
    let conn = unsafe {
        (*state).tls = 1;
        (*state).conn
    };
    let data_op = if tls_call::direction(tls.call) == direction::SEND {
        op::SEND
    } else {
        op::RECV
    };
    let inflight = Inflight {
        start_ns: tls.start_ns,
        conn,
        buf: tls.buf,
        count: tls.num,
        fd,
        op: data_op,
    };
    // A write's plaintext is timed when its ciphertext left; a read's when the program had it.
    let end_ns = if data_op == op::SEND && tls.wire_end_ns != 0 {
        tls.wire_end_ns
    } else {
        // SAFETY: helper without arguments.
        unsafe { bpf_ktime_get_ns() }
    };
    stream(
        state,
        &inflight,
        moved,
        pid_tgid,
        payload::PLAINTEXT,
        end_ns,
    );
}

/// Streams `len` bytes the call `inflight` moved on the connection whose entry is `state`, at
/// `end_ns`: the copied prefix (none for TLS ciphertext), with the Python stack of a request's
/// first send; bytes the ring buffer could not take are counted on the connection.
#[inline(always)]
fn stream(
    state: *mut ConnState,
    inflight: &Inflight,
    len: u64,
    pid_tgid: u64,
    tls: u32,
    end_ns: u64,
) {
    // SAFETY: as in `moved_data`.
    let current = unsafe { *state };
    let data_direction = op::direction(inflight.op);
    let ciphertext = tls == payload::CIPHERTEXT;
    let duration_ns = end_ns.saturating_sub(inflight.start_ns);
    // A request starts with the first send after a receive: the Python code that sent it.
    let python_stack = !ciphertext
        && data_direction == direction::SEND
        && current.role != role::SERVER
        && current.last_direction != direction::SEND
        && python::send_stack(pid_tgid, python_kind::SYSCALL, duration_ns, end_ns);
    let header = DataHeader {
        kind: kind::DATA,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        fd: inflight.fd,
        conn: inflight.conn,
        end_ns,
        duration_ns,
        len,
        lost_sent: current.lost_sent,
        lost_received: current.lost_received,
        captured: 0,
        direction: data_direction,
        python_stack: u32::from(python_stack),
        tls,
    };
    if ciphertext {
        // Its bytes are counted; what the parsers need is the plaintext. A lost record loses
        // no plaintext, so it is only counted as a drop.
        if PROTO_EVENTS
            .output::<DataHeader>(&header, wakeup::flags(&PROTO_EVENTS, EVENTS_BYTES))
            .is_err()
        {
            bump(Counter::ProtocolsEventsDropped);
        }
        return;
    }
    let sent = send_data(&header, inflight, &config());
    // SAFETY: as above.
    unsafe {
        (*state).last_direction = data_direction;
        if !sent {
            if data_direction == direction::SEND {
                (*state).lost_sent += len;
            } else {
                (*state).lost_received += len;
            }
        }
    }
}

/// Copies the payload's prefix after `header` in this CPU's scratch, then the record at its
/// true length into the ring buffer. Whether it was sent.
#[inline(always)]
fn send_data(header: &DataHeader, inflight: &Inflight, config: &ProtocolsConfig) -> bool {
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(scratch) = PROTO_SCRATCH.get_ptr_mut(cpu) else {
        bump(Counter::ProtocolsEventsDropped);
        return false;
    };
    let limit = (config.payload_bytes as u64).min(MAX_PAYLOAD as u64);
    let want = header.len.min(limit);
    // SAFETY: the scratch of this CPU is ours: programs do not preempt each other on one CPU.
    let payload = unsafe { (*scratch).payload.as_mut_ptr() };
    let captured = match inflight.op {
        // A datagram read with MSG_TRUNC returns its whole length, which may exceed the buffer.
        op::SEND | op::RECV => copy(payload, inflight.buf, want.min(inflight.count)),
        op::SEND_IOV | op::RECV_IOV => {
            copy_iovecs(payload, inflight.buf, inflight.count, want, &config.walk)
        }
        _ => {
            let walk = &config.walk;
            match (
                read_user::<u64>(inflight.buf, walk.msghdr_iov),
                read_user::<u64>(inflight.buf, walk.msghdr_iovlen),
            ) {
                (Some(iov), Some(count)) => copy_iovecs(payload, iov, count, want, walk),
                _ => 0,
            }
        }
    };
    let captured = captured.min(MAX_PAYLOAD as u64);
    // SAFETY: as above.
    unsafe {
        (*scratch).header = DataHeader {
            captured: captured as u32,
            ..*header
        };
    }
    let size = size_of::<DataHeader>() + captured as usize;
    // SAFETY: `size` is at most the header and MAX_PAYLOAD bytes of the scratch.
    let record = unsafe { core::slice::from_raw_parts(scratch.cast::<u8>(), size) };
    if PROTO_EVENTS
        .output::<[u8]>(record, wakeup::flags(&PROTO_EVENTS, EVENTS_BYTES))
        .is_err()
    {
        bump(Counter::ProtocolsEventsDropped);
        return false;
    }
    true
}

/// Copies `len` bytes (at most [`MAX_PAYLOAD`]) of user memory at `src` to `dst`; how many.
#[inline(always)]
fn copy(dst: *mut u8, src: u64, len: u64) -> u64 {
    let len = len.min(MAX_PAYLOAD as u64);
    // SAFETY: a checked read of at most MAX_PAYLOAD bytes into a buffer twice that size.
    let ret = unsafe { generated::bpf_probe_read_user(dst.cast(), len as u32, src as *const _) };
    if ret == 0 { len } else { 0 }
}

/// Copies the first `want` bytes described by the `count` iovecs at `iov`; how many.
#[inline(always)]
fn copy_iovecs(dst: *mut u8, iov: u64, count: u64, want: u64, walk: &SocketWalk) -> u64 {
    let mut done: u64 = 0;
    for i in 0..MAX_IOVECS {
        if u64::from(i) >= count || done >= want || done >= MAX_PAYLOAD as u64 {
            break;
        }
        let vec = iov + u64::from(i * walk.iovec_size);
        let (Some(base), Some(len)) = (
            read_user::<u64>(vec, walk.iovec_base),
            read_user::<u64>(vec, walk.iovec_len),
        ) else {
            break;
        };
        // The bounds the verifier checks: an offset below MAX_PAYLOAD, a length at most that.
        let offset = done & (MAX_PAYLOAD as u64 - 1);
        let copied = copy(
            // SAFETY: within the scratch payload, which is 2 * MAX_PAYLOAD long.
            unsafe { dst.add(offset as usize) },
            base,
            len.min(want - done),
        );
        if copied == 0 && len != 0 {
            break;
        }
        done += copied;
    }
    done
}

/// A process with connections exited (its last thread): its sockets are closed.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn protocols_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // SAFETY: presence test only.
    if unsafe { PROTO_PROCS.get(&tgid) }.is_none() || !target::process_exits(&ctx, tgid, tid) {
        return 0;
    }
    let _ = PROTO_PROCS.remove(&tgid);
    let Some(mut entry) = PROTO_EVENTS.reserve::<ExitEvent>(0) else {
        bump(Counter::ProtocolsEventsDropped);
        return 0;
    };
    entry.write(ExitEvent {
        kind: kind::EXIT,
        tgid,
        // SAFETY: helper without arguments.
        time_ns: unsafe { bpf_ktime_get_ns() },
    });
    entry.submit(wakeup::flags(&PROTO_EVENTS, EVENTS_BYTES));
    0
}
