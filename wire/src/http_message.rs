//! One direction of an HTTP/1.x connection cut into messages: a head (start line and
//! header fields up to the empty line), then a body framed as the head says (RFC 9112 §6).
//! Bodies are counted, not kept, so a body the capture cut is skipped by its length.

use crate::origin::Origin;

/// Largest head believed; past it the bytes are not HTTP (or not ours to follow).
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size or trailer line.
const MAX_LINE: usize = 8 * 1024;
/// Request methods recognised when looking for a request after lost bytes.
const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Request,
    Response,
}

#[derive(Debug)]
pub(crate) enum StartLine {
    Request { method: String, target: String },
    Response { status: u16 },
}

#[derive(Debug)]
pub(crate) struct Head {
    pub start: StartLine,
    pub host: Option<String>,
    pub content_length: Option<u64>,
    /// Transfer-Encoding ends with `chunked`.
    pub chunked: bool,
    /// A Transfer-Encoding other than chunked: the body runs until the connection closes.
    pub other_encoding: bool,
}

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
    /// Not HTTP any more (101 Switching Protocols, CONNECT): the bytes are ignored.
    Tunnel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    UntilClose,
    Tunnel,
}

#[derive(Debug)]
pub(crate) enum Step {
    /// More bytes are needed.
    Wait,
    /// A head; the caller answers with its framing through `set_framing`.
    Head(Head, Origin),
    /// The current message ended, with this many body bytes.
    End(u64),
    /// The bytes are out of step: the current message (if any) is over, its end unknown.
    Lost,
}

pub(crate) struct Half {
    role: Role,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of `buf` before this came from earlier segments.
    segment_start: usize,
    carried: Origin,
    current: Origin,
    phase: Phase,
    body_bytes: u64,
    /// Looking for the start of a message after bytes that could not be followed.
    lost: bool,
    /// How much of an unfinished head was already searched for its end, so a head that
    /// arrives a few bytes at a time is not searched from its start each time.
    head_scanned: usize,
    pub skipped_bytes: u64,
}

impl Half {
    pub(crate) fn new(role: Role) -> Self {
        Self {
            role,
            buf: Vec::new(),
            pos: 0,
            segment_start: 0,
            carried: Origin::default(),
            current: Origin::default(),
            phase: Phase::Head,
            body_bytes: 0,
            lost: false,
            head_scanned: 0,
            skipped_bytes: 0,
        }
    }

    pub(crate) fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Starts a segment's captured bytes.
    pub(crate) fn push(&mut self, bytes: &[u8], origin: Origin) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        if !self.buf.is_empty() {
            self.carried = self.current;
        }
        self.segment_start = self.buf.len();
        self.current = origin;
        if self.phase != Phase::Tunnel {
            self.buf.extend_from_slice(bytes);
        }
    }

    pub(crate) fn set_framing(&mut self, framing: Framing) {
        self.body_bytes = 0;
        self.phase = match framing {
            Framing::None | Framing::Length(0) => Phase::Head,
            Framing::Length(n) => Phase::Body(n),
            Framing::Chunked => Phase::ChunkSize,
            Framing::UntilClose => Phase::UntilClose,
            Framing::Tunnel => {
                self.buf.clear();
                self.pos = 0;
                Phase::Tunnel
            }
        };
    }

    /// Whether the message whose head was just handed out has already ended (no body).
    pub(crate) fn bodyless(&self) -> bool {
        self.phase == Phase::Head
    }

    pub(crate) fn until_close(&self) -> bool {
        self.phase == Phase::UntilClose
    }

    pub(crate) fn step(&mut self) -> Step {
        loop {
            let rest = &self.buf[self.pos..];
            match self.phase {
                Phase::Tunnel => {
                    self.pos = self.buf.len();
                    return Step::Wait;
                }
                Phase::UntilClose => {
                    self.body_bytes += rest.len() as u64;
                    self.pos = self.buf.len();
                    return Step::Wait;
                }
                Phase::Body(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    self.pos += take as usize;
                    self.body_bytes += take;
                    if take == remaining {
                        self.phase = Phase::Head;
                        return Step::End(self.body_bytes);
                    }
                    self.phase = Phase::Body(remaining - take);
                    return Step::Wait;
                }
                Phase::ChunkData(remaining) => {
                    if rest.is_empty() {
                        return Step::Wait;
                    }
                    let take = remaining.min(rest.len() as u64);
                    self.pos += take as usize;
                    self.body_bytes += take;
                    self.phase = if take == remaining {
                        Phase::ChunkEnd
                    } else {
                        Phase::ChunkData(remaining - take)
                    };
                }
                Phase::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.pos += 2;
                        self.phase = Phase::ChunkSize;
                    }
                    [b'\n', ..] => {
                        self.pos += 1;
                        self.phase = Phase::ChunkSize;
                    }
                    [] | [b'\r'] => return Step::Wait,
                    _ => return self.lose(),
                },
                Phase::ChunkSize => match line(rest) {
                    Line::Wait => return Step::Wait,
                    Line::TooLong => return self.lose(),
                    Line::Found { text, next } => match chunk_size(text) {
                        Some(0) => {
                            self.pos += next;
                            self.phase = Phase::Trailer;
                        }
                        Some(size) => {
                            self.pos += next;
                            self.phase = Phase::ChunkData(size);
                        }
                        None => return self.lose(),
                    },
                },
                Phase::Trailer => match line(rest) {
                    Line::Wait => return Step::Wait,
                    Line::TooLong => return self.lose(),
                    Line::Found { text, next } => {
                        let last = text.is_empty();
                        self.pos += next;
                        if last {
                            self.phase = Phase::Head;
                            return Step::End(self.body_bytes);
                        }
                    }
                },
                Phase::Head => return self.head(),
            }
        }
    }

    fn head(&mut self) -> Step {
        if self.lost {
            match self.find_start() {
                Start::Found(at) => {
                    self.skipped_bytes += (at - self.pos) as u64;
                    self.pos = at;
                    self.lost = false;
                }
                Start::Partial(at) => {
                    self.skipped_bytes += (at - self.pos) as u64;
                    self.pos = at;
                    return Step::Wait;
                }
                Start::None => {
                    self.skipped_bytes += (self.buf.len() - self.pos) as u64;
                    self.pos = self.buf.len();
                    return Step::Wait;
                }
            }
        }
        // Blank lines between messages are allowed (RFC 9112 §2.2).
        let blank = self.buf[self.pos..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.pos += blank;
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Step::Wait;
        }
        // A head end seen now may begin up to two bytes before the end of the last search.
        let Some(end) = head_end(rest, self.head_scanned.saturating_sub(2)) else {
            if rest.len() > MAX_HEAD {
                return self.lose();
            }
            self.head_scanned = rest.len();
            return Step::Wait;
        };
        self.head_scanned = 0;
        let origin = if self.pos < self.segment_start {
            self.carried
        } else {
            self.current
        };
        match parse_head(&rest[..end], self.role) {
            Some(head) => {
                self.pos += end;
                self.body_bytes = 0;
                Step::Head(head, origin)
            }
            None => {
                // Not a head here; one may start further on, even within these bytes
                // (the scan starts past this position, so it cannot find it again).
                self.lost = true;
                self.pos += 1;
                self.skipped_bytes += 1;
                Step::Lost
            }
        }
    }

    /// The capture left out `missing` bytes after what was pushed. Bodies of known length
    /// take them; anywhere else the framing is lost. Returns the steps it caused.
    pub(crate) fn hole(&mut self, mut missing: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        if missing == 0 {
            return steps;
        }
        if self.lost {
            // Still looking for a start line: what was kept for it no longer adjoins.
            self.skipped_bytes += (self.buf.len() - self.pos) as u64 + missing;
            self.pos = self.buf.len();
            return steps;
        }
        if self.pos < self.buf.len() && !matches!(self.phase, Phase::Tunnel | Phase::UntilClose) {
            steps.push(self.lose());
            self.skipped_bytes += missing;
            return steps;
        }
        loop {
            match self.phase {
                Phase::Tunnel => return steps,
                Phase::UntilClose => {
                    self.body_bytes += missing;
                    return steps;
                }
                Phase::Body(remaining) => {
                    let take = remaining.min(missing);
                    self.body_bytes += take;
                    missing -= take;
                    if take == remaining {
                        self.phase = Phase::Head;
                        steps.push(Step::End(self.body_bytes));
                    } else {
                        self.phase = Phase::Body(remaining - take);
                    }
                }
                Phase::ChunkData(remaining) => {
                    let take = remaining.min(missing);
                    self.body_bytes += take;
                    missing -= take;
                    self.phase = if take == remaining {
                        Phase::ChunkEnd
                    } else {
                        Phase::ChunkData(remaining - take)
                    };
                }
                // A chunk written with its CRLF in one syscall: the CRLF went uncaptured too.
                Phase::ChunkEnd if missing >= 2 => {
                    missing -= 2;
                    self.phase = Phase::ChunkSize;
                }
                _ => {}
            }
            if missing == 0 {
                return steps;
            }
            if !(self.phase == Phase::ChunkEnd && missing >= 2) {
                // A head or a chunk-size line fell in the hole.
                steps.push(self.lose());
                self.skipped_bytes += missing;
                return steps;
            }
        }
    }

    fn lose(&mut self) -> Step {
        self.head_scanned = 0;
        self.skipped_bytes += (self.buf.len() - self.pos) as u64;
        self.pos = self.buf.len();
        self.phase = Phase::Head;
        self.lost = true;
        Step::Lost
    }

    /// The first position from `pos` where a start line of this half's kind begins: at a
    /// line start, or where the bytes after a hole begin (a message often starts a write).
    fn find_start(&self) -> Start {
        let buf = &self.buf;
        for at in self.pos..buf.len() {
            if at != self.pos && at != self.segment_start && buf[at - 1] != b'\n' {
                continue;
            }
            let rest = &buf[at..];
            let start = match self.role {
                Role::Response => {
                    const PREFIX: &[u8] = b"HTTP/1.";
                    if rest.len() < 13 {
                        let known = rest.len().min(PREFIX.len());
                        if rest[..known] == PREFIX[..known] {
                            return Start::Partial(at);
                        }
                        continue;
                    }
                    rest.starts_with(PREFIX)
                        && rest[8] == b' '
                        && rest[9..12].iter().all(u8::is_ascii_digit)
                }
                Role::Request => {
                    let Some(method) = METHODS.iter().find(|m| {
                        rest.len() > m.len() && rest.starts_with(m) && rest[m.len()] == b' '
                    }) else {
                        continue;
                    };
                    match rest.iter().take(MAX_LINE).position(|&b| b == b'\n') {
                        Some(end) => {
                            let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
                            line.len() > method.len() + 9
                                && line[line.len() - 9..line.len() - 1] == *b" HTTP/1."
                        }
                        None if rest.len() < MAX_LINE => return Start::Partial(at),
                        None => false,
                    }
                }
            };
            if start {
                return Start::Found(at);
            }
        }
        Start::None
    }
}

enum Start {
    Found(usize),
    /// Could begin here; the bytes that would tell have not come yet.
    Partial(usize),
    None,
}

enum Line<'a> {
    Found { text: &'a [u8], next: usize },
    Wait,
    TooLong,
}

fn line(bytes: &[u8]) -> Line<'_> {
    match bytes.iter().take(MAX_LINE).position(|&b| b == b'\n') {
        Some(end) => Line::Found {
            text: bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]),
            next: end + 1,
        },
        None if bytes.len() >= MAX_LINE => Line::TooLong,
        None => Line::Wait,
    }
}

/// `1a;ext=1` → 26.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The length of the head, its final empty line included, looking for it from `from`.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') {
        let next = at + nl + 1;
        match &bytes[next..] {
            [b'\n', ..] => return Some(next + 1),
            [b'\r', b'\n', ..] => return Some(next + 2),
            _ => at = next,
        }
    }
    None
}

fn parse_head(head: &[u8], role: Role) -> Option<Head> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next()?;
    let start = match role {
        Role::Request => {
            let mut parts = first.split(' ');
            let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
            let token = |s: &str| {
                !s.is_empty()
                    && s.len() <= 32
                    && s.bytes()
                        .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
            };
            if parts.next().is_some()
                || !token(method)
                || target.is_empty()
                || !version.starts_with("HTTP/1.")
            {
                return None;
            }
            StartLine::Request {
                method: method.to_owned(),
                target: target.to_owned(),
            }
        }
        Role::Response => {
            let rest = first.strip_prefix("HTTP/1.")?;
            let status = rest.get(2..5)?;
            if rest.as_bytes().get(1) != Some(&b' ') || !status.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            StartLine::Response {
                status: status.parse().ok()?,
            }
        }
    };
    let mut head = Head {
        start,
        host: None,
        content_length: None,
        chunked: false,
        other_encoding: false,
    };
    for field in lines {
        let Some((name, value)) = field.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            head.host = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            // A list of equal values is allowed (RFC 9110 §8.6); anything else is not framing we can follow.
            let mut values = value.split(',').map(|v| v.trim().parse::<u64>());
            let first = values.next()?.ok()?;
            if !values.all(|v| v == Ok(first)) {
                return None;
            }
            head.content_length = Some(first);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            head.chunked = last.eq_ignore_ascii_case("chunked");
            head.other_encoding = !head.chunked;
        }
    }
    Some(head)
}
