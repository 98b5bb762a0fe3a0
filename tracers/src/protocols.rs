//! The `protocols` tracer: the socket conversations of target processes. The kernel keeps a
//! table of their connections (per process and fd, with addresses read from the socket) and
//! streams a bounded prefix of every payload their socket syscalls move; userspace reassembles
//! each connection and hands it to the protocol parsers of the `wire` crate.

pub mod sqlite;
pub mod tls;

/// Array indexed by syscall number: the [`SocketSyscall`] each traced syscall is.
pub const SYSCALLS_MAP: &str = "PROTO_SYSCALLS";
/// LRU hash map [`ConnKey`] -> [`ConnState`]: the sockets of target processes in use.
pub const CONNS_MAP: &str = "PROTO_CONNS";
/// Hash map `u32 tgid` -> `u8`: processes with connections, whose exit is streamed.
pub const PROCS_MAP: &str = "PROTO_PROCS";
/// Array of one [`DataScratch`] per CPU (index: CPU id), where a data record is assembled
/// before it is copied, at its true length, into the ring buffer.
pub const SCRATCH_MAP: &str = "PROTO_SCRATCH";
/// Ring buffer of [`ConnEvent`], [`DataHeader`] + payload, [`CloseEvent`] and [`ExitEvent`]
/// (by `kind`).
pub const EVENTS_MAP: &str = "PROTO_EVENTS";
/// Global (read-only after load) holding a [`ProtocolsConfig`].
pub const CONFIG_GLOBAL: &str = "PROTOCOLS_CONFIG";

pub const SYSCALLS_MAX: u32 = 1024;
pub const CONNS_MAX: u32 = 65536;
pub const PROCS_MAX: u32 = 16384;
pub const EVENTS_BYTES: u32 = 16 << 20;
/// Most payload bytes copied per syscall (`--payload-bytes` may ask for fewer). A power of two.
pub const MAX_PAYLOAD: usize = 16384;
/// iovecs of a `readv`/`writev`/`sendmsg`/`recvmsg` copied from (later ones are counted only).
pub const MAX_IOVECS: u32 = 8;
/// Bytes of a socket address kept: an IPv4/IPv6 address, or a unix socket's `sun_path`.
pub const ADDR_BYTES: usize = 108;

/// What a traced syscall does; `NONE` for syscalls the tracer ignores.
pub mod op {
    pub const NONE: u32 = 0;
    pub const CONNECT: u32 = 1;
    pub const ACCEPT: u32 = 2;
    pub const CLOSE: u32 = 3;
    /// write, sendto: one buffer.
    pub const SEND: u32 = 4;
    /// writev: an iovec array.
    pub const SEND_IOV: u32 = 5;
    /// sendmsg: a `user_msghdr`.
    pub const SEND_MSG: u32 = 6;
    pub const RECV: u32 = 7;
    pub const RECV_IOV: u32 = 8;
    pub const RECV_MSG: u32 = 9;

    /// Whether the operation moves data, and which way.
    pub const fn direction(op: u32) -> u32 {
        match op {
            SEND | SEND_IOV | SEND_MSG => super::direction::SEND,
            RECV | RECV_IOV | RECV_MSG => super::direction::RECV,
            _ => 0,
        }
    }
}

/// Which way a payload went, seen from the traced process.
pub mod direction {
    pub const SEND: u32 = 1;
    pub const RECV: u32 = 2;
}

/// The traced process's end of a connection, as the kernel saw it made.
pub mod role {
    /// The socket existed before the kernel saw it (opened before the trace, inherited).
    pub const UNKNOWN: u32 = 0;
    /// `connect`ed by the traced process.
    pub const CLIENT: u32 = 1;
    /// `accept`ed by the traced process.
    pub const SERVER: u32 = 2;
}

/// Event kinds in [`EVENTS_MAP`]; every event starts with a `u32` kind.
pub mod kind {
    pub const CONN: u32 = 1;
    pub const DATA: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const EXIT: u32 = 4;
}

/// Address families kept (the kernel's `AF_*`); other sockets (netlink, ...) are ignored.
pub mod family {
    pub const UNIX: u16 = 1;
    pub const INET: u16 = 2;
    pub const INET6: u16 = 10;
}

/// How the hooks read one traced socket syscall: its operation, and which of its arguments
/// (1 to 6, from its tracefs format file; 0 when it has none) holds what.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketSyscall {
    pub op: u32,
    pub fd_arg: u32,
    /// The buffer, iovec array or `user_msghdr` pointer.
    pub buf_arg: u32,
    /// The buffer's size or the iovec count.
    pub count_arg: u32,
    /// `flags` of recvfrom/recvmsg (peeks are not data read).
    pub flags_arg: u32,
    pub _pad: u32,
}

/// A connection as the kernel names it: an fd of a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: u32,
}

/// A socket of a target process in use.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnState {
    /// Kernel time the entry was made: with the key, names the connection in every event.
    pub conn: u64,
    /// The `struct file` the fd pointed to: a different one means the fd was reused.
    pub file: u64,
    /// Payload bytes of each direction whose event the ring buffer could not take, since the
    /// entry was made.
    pub lost_sent: u64,
    pub lost_received: u64,
    pub role: u32,
    /// Direction of the last payload: a send after a receive starts a request, whose Python
    /// stack is taken.
    pub last_direction: u32,
    /// Non-zero once an SSL call of the process was seen on it: its bytes on the wire are
    /// ciphertext, and its plaintext comes from the TLS probes ([`tls`]).
    pub tls: u32,
    pub _pad: u32,
}

/// A socket syscall in progress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inflight {
    pub start_ns: u64,
    /// The connection's [`ConnState::conn`] (data syscalls).
    pub conn: u64,
    /// Buffer, iovec array or `user_msghdr` (user pointer).
    pub buf: u64,
    /// Buffer size or iovec count.
    pub count: u64,
    pub fd: u32,
    pub op: u32,
}

/// A connection the kernel started to follow, with both ends' addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnEvent {
    pub kind: u32,
    pub tgid: u32,
    pub fd: u32,
    pub role: u32,
    pub conn: u64,
    pub time_ns: u64,
    /// [`family`] of the socket.
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u16,
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    /// Valid bytes of `local` and `remote`: 4 (IPv4), 16 (IPv6), the path length (unix; an
    /// abstract name starts with a NUL), 0 (unbound).
    pub local_len: u16,
    pub remote_len: u16,
    pub _pad: u32,
    pub local: [u8; ADDR_BYTES],
    pub remote: [u8; ADDR_BYTES],
}

/// The fixed part of a data record; the copied payload follows it in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHeader {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub fd: u32,
    pub conn: u64,
    /// Kernel monotonic time at the syscall's return.
    pub end_ns: u64,
    pub duration_ns: u64,
    /// Bytes the syscall moved.
    pub len: u64,
    /// [`ConnState::lost_sent`] and `lost_received` when this record was made.
    pub lost_sent: u64,
    pub lost_received: u64,
    /// Payload bytes that follow (at most `len`).
    pub captured: u32,
    pub direction: u32,
    /// Non-zero: a Python stack sample was sent with this `tid` and `end_ns` as its time.
    pub python_stack: u32,
    /// [`tls::payload`]: plain socket bytes, TLS ciphertext (not copied), or TLS plaintext.
    pub tls: u32,
}

/// Where a data record is assembled: the header, then room for the copied payload. Twice
/// [`MAX_PAYLOAD`], because the verifier bounds an iovec's offset and its length apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataScratch {
    pub header: DataHeader,
    pub payload: [u8; 2 * MAX_PAYLOAD],
}

/// An fd of a connection was closed (or found reused for something that is not a socket).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseEvent {
    pub kind: u32,
    pub tgid: u32,
    pub fd: u32,
    pub _pad: u32,
    pub conn: u64,
    pub time_ns: u64,
    pub lost_sent: u64,
    pub lost_received: u64,
}

/// A process with connections exited: the sockets it did not close are closed now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitEvent {
    pub kind: u32,
    pub tgid: u32,
    pub time_ns: u64,
}

/// Byte offsets of the kernel structs walked from the current task to an fd's socket, and of
/// the user ABI structs of the vectored syscalls (from BTF).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketWalk {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    pub file_private_data: u32,
    pub inode_mode: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_type: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// `unix_sock.addr` (its own bound address) and `unix_sock.peer`.
    pub unix_addr: u32,
    pub unix_peer: u32,
    /// `unix_address.len` and `unix_address.name` (a `sockaddr_un`).
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    pub sockaddr_un_path: u32,
    pub msghdr_iov: u32,
    pub msghdr_iovlen: u32,
    pub iovec_base: u32,
    pub iovec_len: u32,
    pub iovec_size: u32,
}

/// Load-time configuration of the protocols tracer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtocolsConfig {
    /// Payload bytes copied per syscall, at most [`MAX_PAYLOAD`].
    pub payload_bytes: u32,
    pub _pad: u32,
    pub walk: SocketWalk,
}

crate::user_pod!(
    SocketSyscall,
    ConnKey,
    ConnState,
    Inflight,
    ConnEvent,
    DataHeader,
    CloseEvent,
    ExitEvent,
    ProtocolsConfig
);
