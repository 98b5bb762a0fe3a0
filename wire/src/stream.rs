//! What the protocol parsers see of a connection: the bytes each side sent, in order, as the
//! traced process's socket syscalls moved them, and what they produce from them.
//!
//! The kernel copies a bounded prefix of each syscall's payload, so a `Segment` may hold fewer
//! bytes than were sent (`bytes.len() < len`). Parsers skip the missing bytes by length where
//! the protocol frames them, and otherwise resynchronise at the next request; what they cannot
//! parse they count, never panic on.

/// Which end of the connection sent the bytes. The capture layer decides it from how the
/// socket was made (`connect` = the traced process is the client, `accept` = the server) or,
/// for sockets older than the trace, from the well-known port or the first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// One socket syscall's worth of a connection's stream.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Kernel time of the syscall's return, as UTC ns.
    pub time_ns: i64,
    /// The thread of the traced process that made the syscall.
    pub tid: u32,
    pub from: Side,
    /// The copied prefix of the payload.
    pub bytes: &'a [u8],
    /// How many bytes the syscall really moved (`>= bytes.len()`).
    pub len: u64,
    /// The Python stack of the thread at the syscall, when the python tracer is on.
    pub python_stack_id: Option<u64>,
}

impl Segment<'_> {
    /// Bytes sent but not copied (beyond the capture prefix).
    pub fn missing(&self) -> u64 {
        self.len - self.bytes.len() as u64
    }
}

/// What a parser could not make sense of, for the manifest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unparsed {
    /// Messages or frames it recognised but could not decode, or gave up on.
    pub messages: u64,
    /// Bytes it skipped while out of step with the protocol's framing.
    pub bytes: u64,
}

/// A protocol's view of one connection. One value per connection; `feed` is called with the
/// segments of both directions in the order the syscalls returned.
pub trait ConnectionParser {
    type Record;
    /// Consumes one segment and appends the records it completed.
    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<Self::Record>);
    /// The connection closed (or the run ended) at `time_ns`: appends what is still pending
    /// (a request without a response is a record with no latency).
    fn close(&mut self, time_ns: i64, out: &mut Vec<Self::Record>);
    fn unparsed(&self) -> Unparsed;
}
