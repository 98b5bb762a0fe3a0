//! Which protocol a connection speaks, and which end the traced process is, from the first
//! bytes each way and, failing those, the well-known server ports.

use wire::stream::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Mysql,
    Postgresql,
    Amqp,
    Http,
    Unknown,
}

impl Protocol {
    /// The name used in `connections.parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mysql => "mysql",
            Protocol::Postgresql => "postgresql",
            Protocol::Amqp => "amqp",
            Protocol::Http => "http",
            Protocol::Unknown => "unknown",
        }
    }
}

/// What is known of a connection when its protocol is guessed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Evidence<'a> {
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    /// The captured start of the first payload the traced process sent (empty if none yet).
    pub sent: &'a [u8],
    /// The captured start of the first payload it received.
    pub received: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guess {
    pub protocol: Protocol,
    /// Which end of the connection the traced process is, when the bytes or ports tell.
    pub traced_side: Option<Side>,
}

pub fn guess(evidence: &Evidence<'_>) -> Guess {
    let by_bytes = opening(evidence.sent)
        .or_else(|| opening(evidence.received).map(|(protocol, peer)| (protocol, other(peer))));
    if let Some((protocol, traced_side)) = by_bytes {
        return Guess {
            protocol,
            traced_side: Some(traced_side),
        };
    }
    let by_port = match (
        evidence.remote_port.and_then(by_port),
        evidence.local_port.and_then(by_port),
    ) {
        (Some(protocol), _) => Some((protocol, Side::Client)),
        (None, Some(protocol)) => Some((protocol, Side::Server)),
        (None, None) => None,
    };
    match by_port {
        Some((protocol, traced_side)) => Guess {
            protocol,
            traced_side: Some(traced_side),
        },
        None => Guess {
            protocol: Protocol::Unknown,
            traced_side: None,
        },
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

/// The protocol servers usually speak on `port`.
fn by_port(port: u16) -> Option<Protocol> {
    match port {
        3306 => Some(Protocol::Mysql),
        5432 => Some(Protocol::Postgresql),
        5672 => Some(Protocol::Amqp),
        80 | 8000..=8999 => Some(Protocol::Http),
        _ => None,
    }
}

const HTTP_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"PATCH ",
    b"OPTIONS ",
];

/// The protocol of bytes that open a conversation recognisably, and the end that sends them.
fn opening(bytes: &[u8]) -> Option<(Protocol, Side)> {
    if HTTP_METHODS.iter().any(|m| bytes.starts_with(m)) {
        return Some((Protocol::Http, Side::Client));
    }
    if bytes.starts_with(b"HTTP/1.") {
        return Some((Protocol::Http, Side::Server));
    }
    // AMQP's protocol header: "AMQP" 0 0 9 1.
    if bytes.starts_with(b"AMQP\0\0\x09\x01") {
        return Some((Protocol::Amqp, Side::Client));
    }
    // PostgreSQL's StartupMessage (protocol 3.0) or SSLRequest: a length, then a code.
    if let Some(code) = bytes.get(4..8) {
        let code = u32::from_be_bytes([code[0], code[1], code[2], code[3]]);
        if code == 196_608 || code == 80_877_103 {
            return Some((Protocol::Postgresql, Side::Client));
        }
    }
    // MySQL's initial handshake: a 3-byte length, sequence 0, protocol version 10, then the
    // NUL-terminated server version.
    if bytes.len() > 5 && bytes[3] == 0 && bytes[4] == 10 {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0]) as usize;
        if len + 4 >= bytes.len() && bytes[5..].contains(&0) {
            return Some((Protocol::Mysql, Side::Server));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sent: &[u8], received: &[u8], ports: (u16, u16)) -> Guess {
        guess(&Evidence {
            local_port: Some(ports.0),
            remote_port: Some(ports.1),
            sent,
            received,
        })
    }

    #[test]
    fn the_first_bytes_name_the_protocol_and_the_traced_end() {
        let client = |protocol| Guess {
            protocol,
            traced_side: Some(Side::Client),
        };
        let server = |protocol| Guess {
            protocol,
            traced_side: Some(Side::Server),
        };
        let ports = (40000, 45000);
        assert_eq!(
            of(b"GET /x HTTP/1.1\r\n", b"", ports),
            client(Protocol::Http)
        );
        assert_eq!(
            of(b"", b"GET /x HTTP/1.1\r\n", ports),
            server(Protocol::Http)
        );
        assert_eq!(
            of(b"HTTP/1.0 200 OK\r\n", b"", ports),
            server(Protocol::Http)
        );
        assert_eq!(of(b"AMQP\0\0\x09\x01", b"", ports), client(Protocol::Amqp));
        let startup = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(of(&startup, b"", ports), client(Protocol::Postgresql));
        let greeting = b"\x14\0\0\0\x0a11.4.2-MariaDB\0rest";
        assert_eq!(of(b"", greeting, ports), client(Protocol::Mysql));
        // Bytes that say nothing leave it to the ports.
        assert_eq!(of(b"hello", b"", (40000, 5672)), client(Protocol::Amqp));
        assert_eq!(of(b"hello", b"", (8774, 40000)), server(Protocol::Http));
        assert_eq!(of(b"hello", b"world", ports).protocol, Protocol::Unknown);
    }
}
