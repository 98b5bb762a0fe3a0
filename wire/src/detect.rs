//! Which protocol a connection speaks, and which end the traced process is, from the first
//! bytes seen in either direction and, failing those, the well-known server ports. The bytes
//! win over the ports: services run on any port, and a connection that existed before the
//! trace is met mid-stream, so mid-stream messages are recognised too.

mod cache;

use crate::stream::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Mysql,
    Postgresql,
    Amqp,
    Http,
    Memcached,
    Redis,
    Unknown,
}

impl Protocol {
    /// The name used in `connections.parquet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Postgresql => "postgresql",
            Self::Amqp => "amqp",
            Self::Http => "http",
            Self::Memcached => "memcached",
            Self::Redis => "redis",
            Self::Unknown => "unknown",
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
    let from_sent = classify(evidence.sent);
    let from_received = classify(evidence.received).map(|(protocol, sender)| {
        // The peer sent these: the traced process is the other end.
        (protocol, sender.map(other))
    });
    let by_port = port_guess(evidence);
    let by_bytes = match (from_sent, from_received) {
        (Some(a), Some(b)) if a.0 == b.0 => Some((a.0, a.1.or(b.1))),
        // Two protocols disagree: the port settles it, else the side-telling one wins.
        (Some(a), Some(b)) => Some(match by_port {
            Some((p, _)) if p == b.0 => b,
            Some((p, _)) if p == a.0 => a,
            _ if a.1.is_none() && b.1.is_some() => b,
            _ => a,
        }),
        (a, b) => a.or(b),
    };
    match (by_bytes, by_port) {
        (Some((protocol, side)), Some((port_protocol, port_side))) => Guess {
            protocol,
            traced_side: side.or(if port_protocol == protocol {
                port_side
            } else {
                None
            }),
        },
        (Some((protocol, traced_side)), None) => Guess {
            protocol,
            traced_side,
        },
        (None, Some((protocol, traced_side))) => Guess {
            protocol,
            traced_side,
        },
        (None, None) => Guess {
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

/// The protocol of the well-known port on either end, and the traced end it implies.
fn port_guess(evidence: &Evidence<'_>) -> Option<(Protocol, Option<Side>)> {
    if let Some(protocol) = evidence.remote_port.and_then(port_protocol) {
        return Some((protocol, Some(Side::Client)));
    }
    evidence
        .local_port
        .and_then(port_protocol)
        .map(|protocol| (protocol, Some(Side::Server)))
}

fn port_protocol(port: u16) -> Option<Protocol> {
    Some(match port {
        3306 => Protocol::Mysql,
        5432 => Protocol::Postgresql,
        5672 => Protocol::Amqp,
        11211 => Protocol::Memcached,
        // Redis, and Redis Sentinel (which speaks RESP too).
        6379 | 26379 => Protocol::Redis,
        // Plain HTTP and the OpenStack API services' default ports.
        80 | 8000 | 8080 | 5000 | 8004 | 8041 | 8042 | 8774 | 8775 | 8776 | 8778 | 9292 | 9511
        | 9696 | 9876 | 6385 | 35357 => Protocol::Http,
        _ => return None,
    })
}

/// The protocol of one direction's first bytes, and which end sends such bytes if that is
/// known.
fn classify(bytes: &[u8]) -> Option<(Protocol, Option<Side>)> {
    if bytes.is_empty() {
        return None;
    }
    if is_http_request(bytes) {
        return Some((Protocol::Http, Some(Side::Client)));
    }
    if is_http_response(bytes) {
        return Some((Protocol::Http, Some(Side::Server)));
    }
    if bytes.starts_with(b"AMQP") && bytes.len() >= 8 {
        return Some((Protocol::Amqp, Some(Side::Client)));
    }
    if let Some(sender) = amqp_frame(bytes) {
        return Some((Protocol::Amqp, sender));
    }
    if let Some(sender) = postgres(bytes) {
        return Some((Protocol::Postgresql, Some(sender)));
    }
    if let Some(sender) = mysql(bytes) {
        return Some((Protocol::Mysql, Some(sender)));
    }
    // Last: their text is the easiest to meet by chance.
    if let Some(sender) = cache::memcached(bytes) {
        return Some((Protocol::Memcached, Some(sender)));
    }
    if let Some(sender) = cache::redis(bytes) {
        return Some((Protocol::Redis, sender));
    }
    None
}

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"PATCH ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
];

fn is_http_request(bytes: &[u8]) -> bool {
    let Some(method) = METHODS.iter().find(|m| bytes.starts_with(m)) else {
        return false;
    };
    let line_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let line = bytes[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&bytes[..line_end]);
    if line_end < bytes.len() {
        line.len() > method.len() + 9 && line[line.len() - 9..line.len() - 1] == *b" HTTP/1."
    } else {
        // The capture ended inside the request line: its start must look like a target.
        matches!(bytes.get(method.len()), Some(b'/' | b'*' | b'h'))
    }
}

fn is_http_response(bytes: &[u8]) -> bool {
    bytes.len() >= 12
        && bytes.starts_with(b"HTTP/1.")
        && bytes[8] == b' '
        && bytes[9..12].iter().all(u8::is_ascii_digit)
}

/// A whole AMQP frame at the start (type, size, 0xCE at its end); for a method frame, the
/// end that sends that method.
fn amqp_frame(bytes: &[u8]) -> Option<Option<Side>> {
    let head = bytes.get(..7)?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    if !matches!(head[0], 1 | 2 | 3 | 8) || size > 1 << 20 {
        return None;
    }
    if *bytes.get(7 + size)? != 0xCE {
        return None;
    }
    if head[0] != 1 {
        return Some(None);
    }
    let payload = &bytes[7..7 + size];
    let ids = payload.get(..4)?;
    let class = u16::from_be_bytes([ids[0], ids[1]]);
    let method = u16::from_be_bytes([ids[2], ids[3]]);
    Some(match (class, method) {
        // Connection.Start/Secure/Tune/Open-Ok, Channel.Open-Ok, Exchange/Queue *-Ok,
        // Basic.Qos-Ok/Consume-Ok/Cancel-Ok/Return/Deliver/Get-Ok/Get-Empty, Confirm.Select-Ok.
        (10, 10 | 20 | 30 | 41)
        | (20, 11)
        | (40, 11 | 21 | 31 | 41)
        | (50, 11 | 21 | 31 | 41 | 51)
        | (60, 11 | 21 | 31 | 50 | 60 | 71 | 72)
        | (85, 11) => Some(Side::Server),
        (10, 11 | 21 | 31 | 40)
        | (20, 10)
        | (40, 10 | 20 | 30 | 40)
        | (50, 10 | 20 | 30 | 40 | 50)
        | (60, 10 | 20 | 30 | 40 | 70 | 100 | 110)
        | (85, 10) => Some(Side::Client),
        (10 | 20 | 40 | 50 | 60 | 85 | 90, _) => None,
        _ => return None,
    })
}

fn be32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// PostgreSQL v3: the untyped first messages (StartupMessage, SSLRequest, GSSENCRequest,
/// CancelRequest) or a typed message whose length fits what follows it.
fn postgres(bytes: &[u8]) -> Option<Side> {
    let length = be32(bytes)? as usize;
    if let Some(code) = bytes.get(4..).and_then(be32) {
        let untyped = match code {
            0x0003_0000 => (9..=10_000).contains(&length),
            80_877_102 => length == 16,
            80_877_103 | 80_877_104 => length == 8,
            _ => false,
        };
        if untyped {
            return Some(Side::Client);
        }
    }
    let kind = bytes[0];
    let length = be32(&bytes[1..])? as usize;
    if !(4..=1 << 30).contains(&length) {
        return None;
    }
    let body = &bytes[5..];
    // The body must be as long as said, or the capture ended before it did.
    let whole = body.len() >= length - 4;
    let body = &body[..body.len().min(length - 4)];
    let text_ok = |text: &[u8]| {
        text.iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0))
    };
    match kind {
        b'Q' | b'P' if length > 5 => {
            let ends_with_nul = !whole || body.last() == Some(&0);
            (ends_with_nul && text_ok(body)).then_some(Side::Client)
        }
        b'X' if length == 4 => Some(Side::Client),
        b'Z' if length == 5 => {
            matches!(body.first(), Some(b'I' | b'T' | b'E')).then_some(Side::Server)
        }
        b'R' if length >= 8 && whole => matches!(be32(body), Some(0..=12)).then_some(Side::Server),
        b'C' if length > 5 => {
            let tag_ok = body.first().is_some_and(u8::is_ascii_uppercase)
                && (!whole || body.last() == Some(&0));
            (tag_ok && text_ok(body)).then_some(Side::Server)
        }
        b'E' if length > 5 => {
            matches!(body.first(), Some(b'S' | b'V' | b'C')).then_some(Side::Server)
        }
        _ => None,
    }
}

/// MySQL: the server's greeting (protocol 10 and a printable version string) or a client
/// command packet (COM_QUERY, COM_STMT_PREPARE) whose length fits what follows it.
fn mysql(bytes: &[u8]) -> Option<Side> {
    let head = bytes.get(..5)?;
    let length = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let sequence = head[3];
    let payload = &bytes[4..];
    let whole = payload.len() == length;
    let cut = payload.len() < length && payload.len() >= 16;
    if sequence == 0 && head[4] == 0x0a && (20..1024).contains(&length) {
        let version = &payload[1..];
        let end = version.iter().position(|&b| b == 0)?;
        let printable = end > 0 && version[..end].iter().all(|b| b.is_ascii_graphic());
        return printable.then_some(Side::Server);
    }
    if sequence == 0 && matches!(head[4], 0x03 | 0x16) && length > 1 && (whole || cut) {
        let text = &payload[1..];
        let printable = text
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'));
        return printable.then_some(Side::Client);
    }
    None
}

#[cfg(test)]
mod tests;
