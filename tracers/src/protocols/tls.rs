//! TLS, part of the `protocols` tracer: uprobes on the `libssl` (OpenSSL 3 and 1.1) that
//! target processes load see each `SSL_read`/`SSL_write` (and their `_ex` forms) in plaintext,
//! which goes to the same parsers as a plain socket's bytes. A call is tied to its socket by
//! the socket system call the thread makes inside it (the hooks see it: that connection's
//! bytes on the wire are ciphertext from then on, counted and not parsed), else by the fd an
//! earlier call or `SSL_set_fd` gave the SSL object. `SSL_do_handshake` is probed too, so
//! that the handshake's ciphertext is known for what it is.

/// LRU hash map [`SslKey`] -> `u32` fd: the socket each SSL object of a target was seen on.
pub const FDS_MAP: &str = "TLS_FDS";
/// Global (read-only after load) holding a [`TlsConfig`].
pub const CONFIG_GLOBAL: &str = "TLS_CONFIG";

pub const FDS_MAX: u32 = 65536;
/// [`TlsCall::fd`] before the call met its socket.
pub const NO_FD: u32 = u32::MAX;

/// The uprobe programs, by the function they go on; `RETURN` is the uretprobe of every one.
pub mod program {
    pub const READ: &str = "tls_read";
    pub const READ_EX: &str = "tls_read_ex";
    pub const WRITE: &str = "tls_write";
    pub const WRITE_EX: &str = "tls_write_ex";
    pub const HANDSHAKE: &str = "tls_handshake";
    pub const SET_FD: &str = "tls_set_fd";
    pub const FREE: &str = "tls_free";
    pub const RETURN: &str = "tls_return";
    pub const ALL: &[&str] = &[
        READ, READ_EX, WRITE, WRITE_EX, HANDSHAKE, SET_FD, FREE, RETURN,
    ];
}

/// What a thread's SSL call is; `NONE` outside one.
pub mod call {
    pub const NONE: u32 = 0;
    /// `SSL_read(ssl, buf, num)`: returns the bytes read.
    pub const READ: u32 = 1;
    /// `SSL_read_ex(ssl, buf, num, *readbytes)`: returns 1 and stores the bytes read.
    pub const READ_EX: u32 = 2;
    pub const WRITE: u32 = 3;
    pub const WRITE_EX: u32 = 4;
    pub const HANDSHAKE: u32 = 5;

    /// Whether the call moves plaintext, and which way ([`super::super::direction`]).
    pub const fn direction(call: u32) -> u32 {
        match call {
            READ | READ_EX => super::super::direction::RECV,
            WRITE | WRITE_EX => super::super::direction::SEND,
            _ => 0,
        }
    }
}

/// What [`super::DataHeader::tls`] says of a payload.
pub mod payload {
    /// Bytes of a socket that is not known to carry TLS.
    pub const PLAIN: u32 = 0;
    /// Bytes on the wire of a TLS connection: counted, not copied.
    pub const CIPHERTEXT: u32 = 1;
    /// What an `SSL_read`/`SSL_write` of that connection moved, in plaintext.
    pub const PLAINTEXT: u32 = 2;
}

/// An SSL object of a process (`SSL *`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SslKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

/// A thread's SSL call in progress (user pointers), kept with its system calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCall {
    pub ssl: u64,
    pub buf: u64,
    /// `num`: the buffer's size.
    pub num: u64,
    /// `_ex` forms: where the bytes moved are stored.
    pub moved_out: u64,
    pub start_ns: u64,
    /// When the last socket system call inside this one returned (0 before one did): a write's
    /// bytes left then, which is the time of its plaintext (its own return comes later, after
    /// the return probe's trap, and may come after the peer has read them).
    pub wire_end_ns: u64,
    /// [`call`].
    pub call: u32,
    /// The socket a system call inside this one was made on; [`NO_FD`] until then.
    pub fd: u32,
}

/// Load-time configuration: where a probe finds the function's arguments and return value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Byte offsets in `struct pt_regs` of integer arguments 1..=6 (x86-64: di, si, dx, cx,
    /// r8, r9), from BTF.
    pub args: [u32; 6],
    /// Of the return value (`ax`).
    pub ret: u32,
    pub _pad: u32,
}

crate::user_pod!(SslKey, TlsCall, TlsConfig);
