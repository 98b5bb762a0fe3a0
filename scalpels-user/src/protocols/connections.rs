//! The connections of a run, as the kernel's events describe them: who made them, their
//! addresses, the bytes each way, and when they opened and closed.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use tracers::protocols::{ConnEvent, ConnKey, DataHeader, direction, family, role};
use wire::stream::Side;

use super::{
    detect::{self, Protocol},
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
    fn own_side(self) -> Side {
        match self {
            Role::Server => Side::Server,
            Role::Client | Role::Unknown => Side::Client,
        }
    }
}

/// A connection's addresses, formatted as the table shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    pub family: &'static str,
    pub local: String,
    pub remote: String,
    pub local_port: u16,
    pub remote_port: u16,
}

fn address(sock_family: u16, bytes: &[u8], port: u16) -> String {
    match sock_family {
        family::INET => match <[u8; 4]>::try_from(bytes) {
            Ok(ip) => format!("{}:{port}", Ipv4Addr::from(ip)),
            Err(_) => String::new(),
        },
        family::INET6 => match <[u8; 16]>::try_from(bytes) {
            Ok(ip) => format!("[{}]:{port}", Ipv6Addr::from(ip)),
            Err(_) => String::new(),
        },
        // An abstract name starts with a NUL, shown as '@' like ss(8) does; a path may be
        // NUL-terminated within its length.
        _ => match bytes.split_first() {
            Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
            _ => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            }
        },
    }
}

impl Ends {
    pub fn of(event: &ConnEvent) -> Self {
        let local = &event.local[..usize::from(event.local_len).min(event.local.len())];
        let remote = &event.remote[..usize::from(event.remote_len).min(event.remote.len())];
        Self {
            family: match event.family {
                family::INET => "ipv4",
                family::INET6 => "ipv6",
                _ => "unix",
            },
            local: address(event.family, local, event.local_port),
            remote: address(event.family, remote, event.remote_port),
            local_port: event.local_port,
            remote_port: event.remote_port,
        }
    }

    /// Ends of a connection whose announcement was lost.
    fn unknown() -> Self {
        Self {
            family: "unknown",
            ..Self::default()
        }
    }
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
    /// `None` until the ports or the first bytes tell.
    pub protocol: Option<Protocol>,
}

/// Payload bytes of each direction the kernel could not stream, newly reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    pub sent: u64,
    pub received: u64,
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
            protocol: self.protocol.unwrap_or(Protocol::Unknown).name(),
            opened: self.opened,
            closed: self.closed,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            bytes_not_captured: self.bytes_not_captured,
        }
    }

    /// Takes the kernel's cumulative loss counts; what they add since the last report.
    pub fn lost(&mut self, sent: u64, received: u64) -> Lost {
        let new = Lost {
            sent: sent.saturating_sub(self.lost_sent),
            received: received.saturating_sub(self.lost_received),
        };
        self.lost_sent = self.lost_sent.max(sent);
        self.lost_received = self.lost_received.max(received);
        self.bytes_sent += new.sent;
        self.bytes_received += new.received;
        self.bytes_not_captured += new.sent + new.received;
        new
    }

    /// Counts one payload.
    pub fn account(&mut self, header: &DataHeader) {
        if header.direction == direction::SEND {
            self.bytes_sent += header.len;
        } else {
            self.bytes_received += header.len;
        }
        self.bytes_not_captured += header.len.saturating_sub(u64::from(header.captured));
    }

    /// The end that sent bytes going `way` ([`direction`]) for the traced process.
    pub fn side(&self, way: u32) -> Side {
        let own = self.role.own_side();
        match (way == direction::SEND, own) {
            (true, side) => side,
            (false, Side::Client) => Side::Server,
            (false, Side::Server) => Side::Client,
        }
    }

    /// Decides the protocol (and the role, when the kernel did not see the connection made)
    /// from the ports, else from the first bytes that went `way`. Stays undecided until some
    /// bytes are seen.
    pub fn decide(&mut self, way: u32, bytes: &[u8]) {
        if self.protocol.is_some() {
            return;
        }
        let (remote, local) = (
            detect::by_port(self.ends.remote_port),
            detect::by_port(self.ends.local_port),
        );
        if self.role == Role::Unknown {
            if remote.is_some() {
                self.role = Role::Client;
            } else if local.is_some() {
                self.role = Role::Server;
            }
        }
        let by_port = match self.role {
            Role::Client => remote,
            Role::Server => local,
            Role::Unknown => None,
        };
        if let Some(protocol) = by_port {
            self.protocol = Some(protocol);
            return;
        }
        if bytes.is_empty() {
            return;
        }
        let Some((protocol, from)) = detect::by_first_bytes(bytes) else {
            self.protocol = Some(Protocol::Unknown);
            return;
        };
        if self.role == Role::Unknown {
            let sent = way == direction::SEND;
            self.role = if sent == (from == Side::Client) {
                Role::Client
            } else {
                Role::Server
            };
        }
        self.protocol = Some(protocol);
    }
}

/// The open connections, by process and fd.
pub struct Book {
    open: HashMap<ConnKey, Connection>,
    next_id: u64,
    clock: Clock,
}

impl Book {
    pub fn new(clock: Clock) -> Self {
        Self {
            open: HashMap::new(),
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

    fn event(sock_family: u16, local: &[u8], remote: &[u8]) -> ConnEvent {
        let mut event = ConnEvent {
            kind: 1,
            tgid: 10,
            fd: 3,
            role: role::CLIENT,
            conn: 100,
            time_ns: 100,
            family: sock_family,
            sock_type: 1,
            local_port: 40000,
            remote_port: 3306,
            local_len: local.len() as u16,
            remote_len: remote.len() as u16,
            _pad: 0,
            local: [0; 108],
            remote: [0; 108],
        };
        event.local[..local.len()].copy_from_slice(local);
        event.remote[..remote.len()].copy_from_slice(remote);
        event
    }

    #[test]
    fn addresses_are_formatted_per_family() {
        let ends = Ends::of(&event(family::INET, &[127, 0, 0, 1], &[10, 1, 2, 3]));
        assert_eq!(
            (ends.family, ends.local.as_str(), ends.remote.as_str()),
            ("ipv4", "127.0.0.1:40000", "10.1.2.3:3306")
        );
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        let ends = Ends::of(&event(family::INET6, &loopback, &loopback));
        assert_eq!(ends.remote, "[::1]:3306");
        let ends = Ends::of(&event(family::UNIX, b"", b"/run/mysqld/mysqld.sock\0"));
        assert_eq!(
            (ends.family, ends.local.as_str(), ends.remote.as_str()),
            ("unix", "", "/run/mysqld/mysqld.sock")
        );
        assert_eq!(
            Ends::of(&event(family::UNIX, b"\0abstract", b"")).local,
            "@abstract"
        );
    }

    #[test]
    fn a_reused_fd_closes_the_connection_it_replaces() {
        let mut book = Book::new(Clock::from_offset(0));
        assert!(book.announced(&event(family::INET, &[0; 4], &[0; 4])).is_none());
        let header = DataHeader {
            tgid: 10,
            fd: 3,
            conn: 100,
            len: 5,
            captured: 5,
            direction: direction::SEND,
            ..DataHeader::default()
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
        assert_eq!((conn.id, conn.role), (2, Role::Unknown));
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
    fn unknown_roles_are_decided_by_port_then_by_first_bytes() {
        let mut book = Book::new(Clock::from_offset(0));
        let mut pre_existing = event(family::INET, &[0; 4], &[0; 4]);
        pre_existing.role = role::UNKNOWN;
        book.announced(&pre_existing);
        let header = DataHeader {
            tgid: 10,
            fd: 3,
            conn: 100,
            direction: direction::RECV,
            ..DataHeader::default()
        };
        let (conn, _) = book.of_data(&header).unwrap();
        conn.decide(direction::RECV, b"");
        assert_eq!(
            (conn.role, conn.protocol, conn.opened),
            (Role::Client, Some(Protocol::Mysql), None)
        );
        assert_eq!(conn.side(direction::RECV), Side::Server);

        pre_existing.remote_port = 45678;
        pre_existing.local_port = 9999;
        pre_existing.fd = 4;
        book.announced(&pre_existing);
        let (conn, _) = book.of_data(&DataHeader { fd: 4, ..header }).unwrap();
        conn.decide(direction::RECV, b"");
        assert_eq!(conn.protocol, None);
        conn.decide(direction::RECV, b"GET / HTTP/1.1\r\n");
        assert_eq!((conn.role, conn.protocol), (Role::Server, Some(Protocol::Http)));
        assert_eq!(conn.side(direction::SEND), Side::Server);
    }
}
