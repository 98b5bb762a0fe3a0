//! The connections of a run, as the kernel's events describe them: who made them, their
//! addresses, the bytes each way, when they opened and closed, and the parser their payloads
//! go to once their protocol is known.

use rustc_hash::FxHashMap;

use tracers::protocols::{ConnEvent, ConnKey, DataHeader, direction, role, tls::payload};
use wire::{
    detect::{self, Evidence, Protocol},
    stream::{Segment, Side, Unparsed},
};

use super::{
    ends::Ends,
    parsers::{self, Parse, Parsed},
    tables::ConnectionRow,
};
use crate::clock::Clock;

/// The traced process's end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    Unknown,
}

impl Role {
    pub const fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
            Role::Unknown => "unknown",
        }
    }

    /// The end whose bytes the traced process sends (a process of unknown role is taken for
    /// a client: services mostly talk to their databases and brokers).
    pub fn own_side(self) -> Side {
        match self {
            Role::Server => Side::Server,
            Role::Client | Role::Unknown => Side::Client,
        }
    }
}

/// One payload as the kernel streamed it (or the bytes it could not stream: empty, with
/// their length).
pub struct Payload {
    /// UTC ns at the syscall's return.
    pub time_ns: i64,
    pub tid: u32,
    /// [`direction`] for the traced process.
    pub way: u32,
    pub bytes: Vec<u8>,
    pub len: u64,
    pub python_stack_id: Option<u64>,
}

impl Payload {
    fn segment(&self, from: Side) -> Segment<'_> {
        Segment {
            time_ns: self.time_ns,
            tid: self.tid,
            from,
            bytes: &self.bytes,
            len: self.len,
            python_stack_id: self.python_stack_id,
        }
    }
}

/// Payloads kept while the protocol is unknown, at most: past them, the ports decide.
const MAX_UNDECIDED: usize = 16;
/// Enough of a stream's start for `detect` to recognise every protocol it knows.
const DETECT_BYTES: usize = 1024;

enum Stream {
    /// The protocol is not known yet: the first payloads, parsed once it is.
    Undecided(Vec<Payload>),
    Parsing(Box<dyn Parse>),
    /// No parser for this protocol: the bytes are only counted.
    Counted,
}

pub struct Connection {
    pub id: u64,
    pub pid: u32,
    pub fd: u32,
    /// The kernel's name for it (with pid and fd).
    kernel_id: u64,
    pub role: Role,
    pub ends: Ends,
    /// UTC ns; `None` when it was made before the kernel saw it.
    pub opened: Option<i64>,
    pub closed: Option<i64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub bytes_not_captured: u64,
    /// The kernel's cumulative counts of payload bytes it could not stream, as last reported.
    lost_sent: u64,
    lost_received: u64,
    /// `None` until the bytes (or the ports) tell.
    pub protocol: Option<Protocol>,
    /// Its payloads are TLS: the parsers get the plaintext of the SSL calls, and the bytes
    /// on the wire are only counted.
    pub tls: bool,
    /// Whether its first plaintext came.
    plaintext_began: bool,
    /// What parsers replaced when TLS began could not parse.
    unparsed_before_tls: Unparsed,
    stream: Stream,
    /// The thread and Python stack of the send that began the sends since the last receive.
    sending: Option<(u32, u64)>,
}

impl Connection {
    pub fn row(&self) -> ConnectionRow {
        ConnectionRow {
            conn_id: self.id,
            pid: self.pid,
            fd: self.fd,
            role: self.role.name(),
            family: self.ends.family,
            local_addr: self.ends.local.clone(),
            remote_addr: self.ends.remote.clone(),
            protocol: self.protocol.unwrap_or(Protocol::Unknown).as_str(),
            tls: self.tls,
            opened: self.opened,
            closed: self.closed,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            bytes_not_captured: self.bytes_not_captured,
        }
    }

    /// Takes the kernel's cumulative counts of bytes it could not stream; the bytes each way
    /// newly lost, as empty payloads of that length (timed `time_ns`). Of a TLS connection
    /// they are plaintext, not bytes on the wire, which its ciphertext's lengths count.
    pub fn lost(&mut self, sent: u64, received: u64, time_ns: i64) -> Vec<Payload> {
        let new_sent = sent.saturating_sub(self.lost_sent);
        let new_received = received.saturating_sub(self.lost_received);
        self.lost_sent = self.lost_sent.max(sent);
        self.lost_received = self.lost_received.max(received);
        if !self.tls {
            self.bytes_sent += new_sent;
            self.bytes_received += new_received;
        }
        self.bytes_not_captured += new_sent + new_received;
        [(direction::SEND, new_sent), (direction::RECV, new_received)]
            .into_iter()
            .filter(|&(_, len)| len > 0)
            .map(|(way, len)| Payload {
                time_ns,
                tid: 0,
                way,
                bytes: Vec::new(),
                len,
                python_stack_id: None,
            })
            .collect()
    }

    /// Counts one payload the kernel streamed: bytes on the wire (plain or ciphertext), or
    /// plaintext the parsers did not get all of.
    pub fn account(&mut self, header: &DataHeader) {
        if header.tls != payload::PLAIN {
            self.tls = true;
        }
        if header.tls == payload::PLAINTEXT {
            self.bytes_not_captured += header.len.saturating_sub(u64::from(header.captured));
            return;
        }
        // Ciphertext is only counted: its plaintext is what the parsers get.
        if header.direction == direction::SEND {
            self.bytes_sent += header.len;
        } else {
            self.bytes_received += header.len;
        }
        if header.tls == payload::PLAIN {
            self.bytes_not_captured += header.len.saturating_sub(u64::from(header.captured));
        }
    }

    /// The end that sent bytes going `way` ([`direction`]) for the traced process.
    fn side(&self, way: u32) -> Side {
        match (way == direction::SEND, self.role.own_side()) {
            (true, side) => side,
            (false, Side::Client) => Side::Server,
            (false, Side::Server) => Side::Client,
        }
    }

    /// The first plaintext of a connection whose protocol began in clear (MySQL's and
    /// PostgreSQL's TLS requests): its parser, which took the rest for encrypted, starts
    /// again from the plaintext, as on a connection older than the trace.
    pub fn tls_began(&mut self, time_ns: i64, out: &mut Parsed) {
        if std::mem::replace(&mut self.plaintext_began, true) {
            return;
        }
        let Stream::Parsing(parser) = &mut self.stream else {
            return;
        };
        let Some(fresh) = self.protocol.and_then(parsers::for_protocol) else {
            return;
        };
        parser.close(time_ns, out);
        let unparsed = parser.unparsed();
        self.unparsed_before_tls.messages += unparsed.messages;
        self.unparsed_before_tls.bytes += unparsed.bytes;
        self.stream = Stream::Parsing(fresh);
    }

    /// Parses one payload (or keeps it until the protocol is known); records go to `out`.
    pub fn push(&mut self, mut payload: Payload, out: &mut Parsed) {
        self.attribute_stack(&mut payload);
        let from = self.side(payload.way);
        match &mut self.stream {
            Stream::Undecided(pending) => {
                pending.push(payload);
                self.decide(false, out);
            }
            Stream::Parsing(parser) => parser.feed(&payload.segment(from), out),
            Stream::Counted => {}
        }
    }

    /// The kernel takes a Python stack only at the first send after a receive, where a
    /// request starts; the thread's next sends before a receive are that request's sequence
    /// (mysql-connector's COM_STMT_CLOSE, answered by nothing, then COM_STMT_PREPARE), so
    /// they carry its stack.
    fn attribute_stack(&mut self, payload: &mut Payload) {
        if payload.way != direction::SEND {
            if payload.len > 0 {
                self.sending = None;
            }
            return;
        }
        match (payload.python_stack_id, self.sending) {
            (Some(stack), _) => self.sending = Some((payload.tid, stack)),
            (None, Some((tid, stack))) if tid == payload.tid => {
                payload.python_stack_id = Some(stack);
            }
            (None, _) => {}
        }
    }

    /// Decides the protocol (and the role, when the kernel did not see the connection made)
    /// from the first bytes each way and the ports, once the bytes tell, both directions were
    /// seen, enough payloads waited, or `now` (the connection ended); then parses the
    /// payloads kept until then.
    fn decide(&mut self, now: bool, out: &mut Parsed) {
        let Stream::Undecided(pending) = &self.stream else {
            return;
        };
        let (sent, received) = (
            stream_start(pending, direction::SEND),
            stream_start(pending, direction::RECV),
        );
        let (local_port, remote_port) = self.ends.ports();
        let guess = detect::guess(&Evidence {
            local_port,
            remote_port,
            sent: sent.as_deref().unwrap_or_default(),
            received: received.as_deref().unwrap_or_default(),
        });
        let told = (sent.is_some() || received.is_some()) && guess.protocol != Protocol::Unknown;
        let seen_both = sent.is_some() && received.is_some();
        if !(now || told || seen_both || pending.len() >= MAX_UNDECIDED) {
            return;
        }
        if self.role == Role::Unknown {
            self.role = match guess.traced_side {
                Some(Side::Client) => Role::Client,
                Some(Side::Server) => Role::Server,
                None => Role::Unknown,
            };
        }
        self.protocol = Some(guess.protocol);
        let Stream::Undecided(pending) = std::mem::replace(&mut self.stream, Stream::Counted)
        else {
            return;
        };
        if let Some(mut parser) = parsers::for_protocol(guess.protocol) {
            for payload in &pending {
                parser.feed(&payload.segment(self.side(payload.way)), out);
            }
            self.stream = Stream::Parsing(parser);
        }
    }

    /// The connection ended at `time_ns` (UTC), or the run did: parses what was kept, and
    /// flushes the parser. What it could not parse.
    pub fn finish(&mut self, time_ns: i64, out: &mut Parsed) -> Unparsed {
        self.decide(true, out);
        let mut unparsed = self.unparsed_before_tls;
        if let Stream::Parsing(parser) = &mut self.stream {
            parser.close(time_ns, out);
            let after = parser.unparsed();
            unparsed.messages += after.messages;
            unparsed.bytes += after.bytes;
        }
        unparsed
    }
}

/// The first bytes seen going `way`, joined across the payloads that carried them: a
/// client may read a message in pieces (mysql-connector reads a packet's 4-byte header, then
/// its body), and one piece alone tells nothing. Joining stops at bytes that were not
/// captured, since what follows them is not the continuation. `None` before any bytes.
fn stream_start(pending: &[Payload], way: u32) -> Option<Vec<u8>> {
    let mut payloads = pending
        .iter()
        .filter(|p| p.way == way)
        .skip_while(|p| p.bytes.is_empty());
    let mut last = payloads.next()?;
    let mut start = last.bytes.clone();
    for payload in payloads {
        let contiguous = last.bytes.len() as u64 == last.len;
        if !contiguous || start.len() >= DETECT_BYTES {
            break;
        }
        start.extend_from_slice(&payload.bytes);
        last = payload;
    }
    Some(start)
}

/// The open connections, by process and fd.
pub struct Book {
    open: FxHashMap<ConnKey, Connection>,
    next_id: u64,
    clock: Clock,
}

impl Book {
    pub fn new(clock: Clock) -> Self {
        Self {
            open: FxHashMap::default(),
            next_id: 1,
            clock,
        }
    }

    fn make(&mut self, key: ConnKey, kernel_id: u64, role: Role, ends: Ends) -> Connection {
        let id = self.next_id;
        self.next_id += 1;
        Connection {
            id,
            pid: key.tgid,
            fd: key.fd,
            kernel_id,
            role,
            ends,
            opened: None,
            closed: None,
            bytes_sent: 0,
            bytes_received: 0,
            bytes_not_captured: 0,
            lost_sent: 0,
            lost_received: 0,
            protocol: None,
            tls: false,
            plaintext_began: false,
            unparsed_before_tls: Unparsed::default(),
            stream: Stream::Undecided(Vec::new()),
            sending: None,
        }
    }

    /// Closes the connection open on `key`, if any, at `time_ns` (kernel time).
    fn end(&mut self, key: &ConnKey, time_ns: u64) -> Option<Connection> {
        let mut conn = self.open.remove(key)?;
        conn.closed = Some(self.clock.to_utc_ns(time_ns));
        Some(conn)
    }

    /// A connection the kernel announced; returns the one it replaces on the same fd (whose
    /// close was not seen: a `dup2` over it, or a lost event), closed.
    pub fn announced(&mut self, event: &ConnEvent) -> Option<Connection> {
        let key = ConnKey {
            tgid: event.tgid,
            fd: event.fd,
        };
        let replaced = self.end(&key, event.time_ns);
        let conn_role = match event.role {
            role::CLIENT => Role::Client,
            role::SERVER => Role::Server,
            _ => Role::Unknown,
        };
        let mut conn = self.make(key, event.conn, conn_role, Ends::of(event));
        if conn_role != Role::Unknown {
            conn.opened = Some(self.clock.to_utc_ns(event.time_ns));
        }
        self.open.insert(key, conn);
        replaced
    }

    /// The connection a payload belongs to (made up when its announcement was lost), and the
    /// one it replaces, closed; `None` for a payload of a connection already replaced.
    pub fn of_data(
        &mut self,
        header: &DataHeader,
    ) -> Option<(&mut Connection, Option<Connection>)> {
        let key = ConnKey {
            tgid: header.tgid,
            fd: header.fd,
        };
        let current = self.open.get(&key).map(|c| c.kernel_id);
        let mut replaced = None;
        match current {
            Some(id) if id == header.conn => {}
            Some(id) if id > header.conn => return None,
            _ => {
                replaced = self.end(&key, header.conn);
                let conn = self.make(key, header.conn, Role::Unknown, Ends::unknown());
                self.open.insert(key, conn);
            }
        }
        Some((self.open.get_mut(&key)?, replaced))
    }

    /// The connection the kernel saw closed, closed; `None` if it was already replaced.
    pub fn closed(&mut self, key: &ConnKey, kernel_id: u64, time_ns: u64) -> Option<Connection> {
        if self.open.get(key)?.kernel_id != kernel_id {
            return None;
        }
        self.end(key, time_ns)
    }

    /// The connections of an exited process, closed at its exit.
    pub fn exited(&mut self, tgid: u32, time_ns: u64) -> Vec<Connection> {
        let keys: Vec<ConnKey> = self
            .open
            .keys()
            .filter(|k| k.tgid == tgid)
            .copied()
            .collect();
        keys.iter()
            .filter_map(|key| self.end(key, time_ns))
            .collect()
    }

    /// Every connection still open (when the run ends), left open.
    pub fn drain(&mut self) -> Vec<Connection> {
        let mut all: Vec<Connection> = self.open.drain().map(|(_, c)| c).collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracers::protocols::family;

    fn announcement(conn_role: u32, local_port: u16, remote_port: u16) -> ConnEvent {
        ConnEvent {
            kind: 1,
            tgid: 10,
            fd: 3,
            role: conn_role,
            conn: 100,
            time_ns: 100,
            family: family::INET,
            sock_type: 1,
            local_port,
            remote_port,
            local_len: 4,
            remote_len: 4,
            _pad: 0,
            local: [0; 108],
            remote: [0; 108],
        }
    }

    /// A book that was told of connection 100 on fd 3 of process 10, from port 45678.
    fn book_with(conn_role: u32, remote_port: u16) -> Book {
        let mut book = Book::new(Clock::from_offset(0));
        book.announced(&announcement(conn_role, 45678, remote_port));
        book
    }

    /// A payload header of that connection.
    fn data() -> DataHeader {
        DataHeader {
            tgid: 10,
            fd: 3,
            conn: 100,
            ..DataHeader::default()
        }
    }

    fn payload(way: u32, bytes: &[u8]) -> Payload {
        Payload {
            time_ns: 1,
            tid: 10,
            way,
            bytes: bytes.to_vec(),
            len: bytes.len() as u64,
            python_stack_id: None,
        }
    }

    #[test]
    fn a_reused_fd_closes_the_connection_it_replaces() {
        let mut book = Book::new(Clock::from_offset(0));
        assert!(
            book.announced(&announcement(role::CLIENT, 40000, 3306))
                .is_none()
        );
        let header = DataHeader {
            len: 5,
            captured: 5,
            direction: direction::SEND,
            ..data()
        };
        let (conn, replaced) = book.of_data(&header).unwrap();
        assert!(replaced.is_none());
        conn.account(&header);
        // A payload of a newer connection on the same fd, whose announcement was lost.
        let newer = DataHeader {
            conn: 200,
            ..header
        };
        let (conn, replaced) = book.of_data(&newer).unwrap();
        assert_eq!(
            (conn.id, conn.role, conn.ends.family),
            (2, Role::Unknown, "unknown")
        );
        let replaced = replaced.unwrap();
        assert_eq!((replaced.id, replaced.bytes_sent), (1, 5));
        assert_eq!(replaced.closed, Some(200));
        // A late payload of the replaced one is not counted anywhere.
        assert!(book.of_data(&header).is_none());
        let key = ConnKey { tgid: 10, fd: 3 };
        assert!(book.closed(&key, 100, 300).is_none());
        assert_eq!(book.closed(&key, 200, 300).map(|c| c.id), Some(2));
    }

    #[test]
    fn the_first_bytes_decide_protocol_and_role_of_a_connection_older_than_the_trace() {
        let mut book = book_with(role::UNKNOWN, 9999);
        let (conn, _) = book.of_data(&data()).unwrap();
        let mut parsed = Parsed::default();
        conn.push(
            payload(direction::RECV, b"GET /x HTTP/1.1\r\n\r\n"),
            &mut parsed,
        );
        assert_eq!(
            (conn.role, conn.protocol, conn.opened),
            (Role::Server, Some(Protocol::Http), None)
        );
        conn.push(
            payload(direction::SEND, b"HTTP/1.1 204 No Content\r\n\r\n"),
            &mut parsed,
        );
        let requests: Vec<_> = parsed
            .http
            .iter()
            .map(|r| (r.path.as_str(), r.status))
            .collect();
        assert_eq!(requests, [("/x", Some(204))]);
    }

    #[test]
    fn payloads_kept_until_the_protocol_is_known_are_parsed() {
        let mut book = book_with(role::CLIENT, 33061);
        let (conn, _) = book.of_data(&data()).unwrap();
        let mut parsed = Parsed::default();
        // Bytes the kernel could not stream tell nothing: kept until bytes come.
        for gap in conn.lost(0, 100, 1) {
            conn.push(gap, &mut parsed);
        }
        assert_eq!(conn.protocol, None);
        // A query (on a connection whose start was missed) and its OK, 3 rows affected.
        let query = b"\x10\0\0\0\x03DELETE FROM t x";
        conn.push(payload(direction::SEND, query), &mut parsed);
        assert_eq!(conn.protocol, Some(Protocol::Mysql));
        let ok = b"\x07\0\0\x01\0\x03\0\x02\0\0\0";
        conn.push(payload(direction::RECV, ok), &mut parsed);
        conn.finish(2, &mut parsed);
        let statements: Vec<_> = parsed
            .sql
            .iter()
            .map(|r| (r.statement.as_str(), r.rows))
            .collect();
        assert_eq!(statements, [("DELETE FROM t x", Some(3))]);
    }

    #[test]
    fn a_greeting_read_in_pieces_tells_the_protocol_but_not_across_lost_bytes() {
        let mut body = b"\x0a10.11.19-MariaDB\0".to_vec();
        body.resize(60, 0);
        let header = [body.len() as u8, 0, 0, 0];
        let mut protocols = Vec::new();
        for lost in [false, true] {
            let mut book = book_with(role::CLIENT, 33061);
            let (conn, _) = book.of_data(&data()).unwrap();
            let mut parsed = Parsed::default();
            // mysql-connector reads a packet's header, then its body.
            conn.push(payload(direction::RECV, &header), &mut parsed);
            assert_eq!(conn.protocol, None);
            if lost {
                for gap in conn.lost(0, 7, 1) {
                    conn.push(gap, &mut parsed);
                }
            }
            conn.push(payload(direction::RECV, &body), &mut parsed);
            conn.finish(2, &mut parsed);
            protocols.push(conn.protocol);
        }
        assert_eq!(protocols, [Some(Protocol::Mysql), Some(Protocol::Unknown)]);
    }

    #[test]
    fn sends_before_a_receive_carry_the_stack_of_the_first() {
        let mut book = book_with(role::CLIENT, 3306);
        let (conn, _) = book.of_data(&data()).unwrap();
        let mut parsed = Parsed::default();
        let with_stack = |bytes: &[u8], stack| Payload {
            python_stack_id: stack,
            ..payload(direction::SEND, bytes)
        };
        // COM_STMT_CLOSE (no response), then a query sent before anything was received.
        conn.push(
            with_stack(b"\x05\0\0\0\x19\x01\0\0\0", Some(7)),
            &mut parsed,
        );
        conn.push(with_stack(b"\x09\0\0\0\x03SELECT 1", None), &mut parsed);
        conn.push(
            payload(direction::RECV, b"\x07\0\0\x01\0\0\0\x02\0\0\0"),
            &mut parsed,
        );
        // After the response, a send without a stack has none.
        conn.push(with_stack(b"\x09\0\0\0\x03SELECT 2", None), &mut parsed);
        conn.finish(2, &mut parsed);
        let stacks: Vec<_> = parsed
            .sql
            .iter()
            .map(|r| (r.operation, r.statement.as_str(), r.python_stack_id))
            .collect();
        assert_eq!(
            stacks,
            [
                ("close", "", Some(7)),
                ("query", "SELECT 1", Some(7)),
                ("query", "SELECT 2", None)
            ]
        );
    }

    #[test]
    fn payloads_wait_for_the_protocol_and_lost_bytes_are_counted() {
        let mut book = book_with(role::CLIENT, 9999);
        let (conn, _) = book.of_data(&data()).unwrap();
        let mut parsed = Parsed::default();
        // Bytes that were lost tell nothing: the protocol waits for bytes.
        for gap in conn.lost(0, 10, 1) {
            conn.push(gap, &mut parsed);
        }
        assert_eq!(
            (conn.protocol, conn.bytes_received, conn.bytes_not_captured),
            (None, 10, 10)
        );
        conn.push(payload(direction::SEND, b"hello"), &mut parsed);
        assert_eq!(conn.protocol, None);
        conn.push(payload(direction::RECV, b"world"), &mut parsed);
        assert_eq!(conn.protocol, Some(Protocol::Unknown));
        assert_eq!(conn.finish(2, &mut parsed), Unparsed::default());
    }
}
