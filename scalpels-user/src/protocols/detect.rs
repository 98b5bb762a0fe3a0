//! Which protocol a connection speaks, and which end the traced process is when the kernel did
//! not see the connection made: from the well-known ports, else from the first bytes.

use wire::stream::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Mysql,
    Postgresql,
    Amqp,
    Http,
    Unknown,
}

impl Protocol {
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Mysql => "mysql",
            Protocol::Postgresql => "postgresql",
            Protocol::Amqp => "amqp",
            Protocol::Http => "http",
            Protocol::Unknown => "unknown",
        }
    }
}

/// The protocol servers usually speak on `port`.
pub fn by_port(port: u16) -> Option<Protocol> {
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

/// What a client's first bytes say: a protocol and that they are a client's.
fn client_opening(bytes: &[u8]) -> Option<Protocol> {
    if HTTP_METHODS.iter().any(|m| bytes.starts_with(m)) {
        return Some(Protocol::Http);
    }
    // AMQP's protocol header: "AMQP" 0 0 9 1.
    if bytes.starts_with(b"AMQP\0\0\x09\x01") {
        return Some(Protocol::Amqp);
    }
    // PostgreSQL's StartupMessage (protocol 3.0) or SSLRequest: length, then a code.
    if bytes.len() >= 8 {
        let code = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if code == 196_608 || code == 80_877_103 {
            return Some(Protocol::Postgresql);
        }
    }
    None
}

/// The protocol of bytes that went `from` one end, and that end, when they open a
/// conversation recognisably; `None` otherwise.
pub fn by_first_bytes(bytes: &[u8]) -> Option<(Protocol, Side)> {
    if let Some(protocol) = client_opening(bytes) {
        return Some((protocol, Side::Client));
    }
    if bytes.starts_with(b"HTTP/1.") {
        return Some((Protocol::Http, Side::Server));
    }
    // MySQL's initial handshake: a 3-byte length, sequence 0, protocol version 10.
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

    #[test]
    fn openings_name_the_protocol_and_the_side() {
        assert_eq!(
            by_first_bytes(b"GET /x HTTP/1.1\r\n"),
            Some((Protocol::Http, Side::Client))
        );
        assert_eq!(
            by_first_bytes(b"HTTP/1.0 200 OK\r\n"),
            Some((Protocol::Http, Side::Server))
        );
        assert_eq!(
            by_first_bytes(b"AMQP\0\0\x09\x01"),
            Some((Protocol::Amqp, Side::Client))
        );
        assert_eq!(
            by_first_bytes(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
            Some((Protocol::Postgresql, Side::Client))
        );
        let greeting = b"\x14\0\0\0\x0a11.4.2-MariaDB\0rest";
        assert_eq!(
            by_first_bytes(greeting),
            Some((Protocol::Mysql, Side::Server))
        );
        assert_eq!(by_first_bytes(b"hello"), None);
        assert_eq!(by_port(5672), Some(Protocol::Amqp));
        assert_eq!(by_port(8774), Some(Protocol::Http));
        assert_eq!(by_port(22), None);
    }
}
