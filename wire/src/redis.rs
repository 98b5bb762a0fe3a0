//! Redis's protocol, RESP2 and RESP3, from the two byte streams of one connection: requests
//! (arrays of bulk strings, or inline command lines) and their replies, one `CacheRecord`
//! per command.
//!
//! Replies come in the order of the requests, so pipelined requests (and MULTI's queued
//! commands) pair by position; a reply of a type a read cannot get (+OK to a GET) answers a
//! request not seen. RESP3 pushes answer no request and are skipped. After SUBSCRIBE,
//! MONITOR or a replication handshake the server only pushes: pairing stops there, and the
//! rest of the connection counts as unparsed. Replies tell RESP2 from RESP3 by their first
//! bytes, so HELLO 3 changes nothing here.
//!
//! Of the arguments, only the first bytes of those that name the command, its keys and
//! EVAL's key count are kept; values are counted, so bulk strings the capture cut are
//! skipped by length (the record marked incomplete). Client bytes out of step are skipped up
//! to the next request; when the server's are, the requests waiting become incomplete
//! records at the next request.

mod commands;
mod resp;

use commands::{Read, Role, Spec, spec};
use resp::{Reply, RespReader, Step};

use crate::cache_exchange::{Exchange, KEY_KEEP, Waiting, text};
use crate::origin::Origin;
use crate::records::{CacheRecord, CacheSystem};
use crate::stream::{ConnectionParser, Segment, Side, Unparsed};
use crate::text_framing::{Block, RequestParser, Start, TextReader, Token, read_requests};

/// Redis reads inline commands up to 64 kB; RESP lines are short but for error texts.
const MAX_LINE: usize = 64 << 10;
/// Command names are kept up to this (the longest is under 32).
const COMMAND_KEEP: usize = 64;
/// Redis's own limits on a request: arguments, and bytes of one.
const MAX_ARGS: i64 = i32::MAX as i64;
const MAX_ARG_LEN: i64 = 1 << 32;
/// Commands recognised as inline ones when looking for a request in bytes out of step.
const INLINE: &[&[u8]] = &[
    b"ping",
    b"info",
    b"quit",
    b"auth",
    b"select",
    b"hello",
    b"get",
    b"set",
    b"del",
    b"exists",
    b"keys",
    b"dbsize",
    b"monitor",
    b"subscribe",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pairing,
    /// Replies are pushes now (SUBSCRIBE, MONITOR, replication): nothing more to pair.
    Opaque,
}

#[derive(Debug)]
struct Request {
    exchange: Exchange,
    read: Read,
    modal: bool,
}

impl AsMut<Exchange> for Request {
    fn as_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }
}

/// A request whose arguments are still coming.
struct Building {
    request: Request,
    spec: Spec,
    argc: u64,
    /// The index of the next argument (0: the command).
    next: u64,
    key_count: u64,
}

impl Building {
    fn new(origin: Origin, argc: u64) -> Self {
        Building {
            request: Request {
                exchange: Exchange::new(origin, String::new()),
                read: Read::No,
                modal: false,
            },
            spec: spec(""),
            argc,
            next: 0,
            key_count: 0,
        }
    }

    fn role(&self) -> Role {
        self.spec.role(self.next, self.argc, self.key_count)
    }

    /// How much of the next argument to keep.
    fn keep(&self) -> usize {
        match (self.next, self.role()) {
            (0, _) => COMMAND_KEEP,
            (_, Role::Key | Role::KeyCount) => KEY_KEEP,
            _ => 0,
        }
    }

    fn argument(&mut self, head: &[u8], len: u64) {
        let exchange = &mut self.request.exchange;
        if self.next == 0 {
            exchange.command = text(head, COMMAND_KEEP).to_ascii_lowercase();
            self.spec = spec(&exchange.command);
            self.request.read = self.spec.read;
            self.request.modal = self.spec.modal;
        } else {
            match self.spec.role(self.next, self.argc, self.key_count) {
                Role::Key => exchange.add_key(head),
                Role::KeyCount => {
                    self.key_count = std::str::from_utf8(head)
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                Role::Value => exchange.bytes = exchange.bytes.saturating_add(len),
                Role::Other => {}
            }
        }
        self.next += 1;
    }

    fn is_whole(&self) -> bool {
        self.next == self.argc
    }
}

/// Parses one Redis connection into the commands it carried.
pub struct RedisParser {
    client: TextReader,
    server: TextReader,
    phase: Phase,
    building: Option<Building>,
    /// The client's bytes were picked up where a request may begin: the line must be one.
    resynced: bool,
    waiting: Waiting<Request>,
    replies: RespReader,
    /// Time of the last server segment: the end of a reply whose framing was lost.
    last_server_ns: i64,
    unparsed: Unparsed,
}

impl Default for RedisParser {
    fn default() -> Self {
        RedisParser {
            // The client's stream is picked up at a request; the server's first bytes answer
            // one or, on an older connection, fail framing.
            client: TextReader::new(MAX_LINE, false),
            server: TextReader::new(MAX_LINE, true),
            phase: Phase::Pairing,
            building: None,
            resynced: false,
            waiting: Waiting::default(),
            replies: RespReader::default(),
            last_server_ns: i64::MIN,
            unparsed: Unparsed::default(),
        }
    }
}

impl RequestParser for RedisParser {
    fn client(&mut self) -> &mut TextReader {
        &mut self.client
    }

    fn resynced(&mut self) -> &mut bool {
        &mut self.resynced
    }

    fn unparsed_mut(&mut self) -> &mut Unparsed {
        &mut self.unparsed
    }

    /// Do these bytes begin a request? An array's count and its first bulk string's length, or
    /// a common inline command.
    fn starts_request(bytes: &[u8]) -> Start {
        if let Some(rest) = bytes.strip_prefix(b"*") {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let after = &rest[digits..];
            return match digits {
                1..=10 if after.starts_with(b"\r\n$") => Start::Yes,
                1..=10 if b"\r\n$".starts_with(after) => Start::Maybe,
                0 if after.is_empty() => Start::Maybe,
                _ => Start::No,
            };
        }
        match bytes
            .iter()
            .take(16)
            .position(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        {
            Some(end) if INLINE.iter().any(|c| c.eq_ignore_ascii_case(&bytes[..end])) => Start::Yes,
            None if INLINE.iter().any(|c| {
                c.get(..bytes.len())
                    .is_some_and(|c| c.eq_ignore_ascii_case(bytes))
            }) =>
            {
                Start::Maybe
            }
            _ => Start::No,
        }
    }

    /// Does this line begin a request as a resynchronisation expects: an array's count, or a
    /// common inline command?
    fn is_request_line(line: &[u8]) -> bool {
        match line.strip_prefix(b"*") {
            Some(count) => integer(count).is_some_and(|n| n > 0),
            None => line
                .split(u8::is_ascii_whitespace)
                .next()
                .is_some_and(|word| INLINE.iter().any(|c| c.eq_ignore_ascii_case(word))),
        }
    }

    fn on_request_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<CacheRecord>) {
        if let Some(building) = &self.building {
            // The next argument's length.
            match line.strip_prefix(b"$").and_then(integer) {
                Some(len @ 0..=MAX_ARG_LEN) => {
                    self.client.expect_block(len as u64, building.keep())
                }
                // Redis answers a protocol error and closes the connection.
                _ => self.client_lost(out),
            }
            return;
        }
        self.settle_lost_server(out);
        match line.strip_prefix(b"*") {
            Some(count) => match integer(count) {
                Some(argc @ 1..=MAX_ARGS) => {
                    self.building = Some(Building::new(origin, argc as u64))
                }
                // Redis skips an empty request.
                Some(i64::MIN..=0) => {}
                _ => self.client_lost(out),
            },
            None => self.inline(line, origin, true, out),
        }
    }

    fn on_request_block(&mut self, block: &Block, out: &mut Vec<CacheRecord>) {
        let Some(building) = &mut self.building else {
            return;
        };
        building.argument(&block.head, block.len);
        building.request.exchange.complete &= !block.missing;
        if building.is_whole()
            && let Some(building) = self.building.take()
        {
            self.queue(building.request, out);
        }
    }

    fn on_cut_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<CacheRecord>) {
        if self.building.is_none() && !line.starts_with(b"*") {
            // An inline command whose end was not captured: its reply will come.
            self.inline(line, origin, false, out);
        }
    }

    /// The client's bytes are out of step; a request cut short still gets its reply if its
    /// command was read.
    fn client_lost(&mut self, out: &mut Vec<CacheRecord>) {
        self.client.lose();
        self.unparsed.messages += 1;
        if let Some(mut building) = self.building.take()
            && building.next > 0
        {
            building.request.exchange.complete = false;
            self.queue(building.request, out);
        }
    }
}

impl RedisParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// An inline command: its arguments are the line's words.
    fn inline(&mut self, line: &[u8], origin: Origin, whole: bool, out: &mut Vec<CacheRecord>) {
        let words: Vec<&[u8]> = line
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
            .collect();
        // Redis skips an empty line.
        if words.is_empty() {
            return;
        }
        let mut building = Building::new(origin, words.len() as u64);
        for word in words {
            building.argument(word, word.len() as u64);
        }
        building.request.exchange.complete = whole;
        self.queue(building.request, out);
    }

    fn queue(&mut self, request: Request, out: &mut Vec<CacheRecord>) {
        if let Some(oldest) = self.waiting.push(request) {
            self.unparsed.messages += 1;
            out.push(
                oldest
                    .exchange
                    .unanswered(CacheSystem::Redis, self.last_server_ns),
            );
        }
    }

    /// A new request while the server's framing is lost: its replies to the requests
    /// waiting were in the bytes that could not be read, and the next ones answer this one.
    fn settle_lost_server(&mut self, out: &mut Vec<CacheRecord>) {
        if !self.server.is_lost() {
            return;
        }
        for request in self.waiting.drain() {
            out.push(
                request
                    .exchange
                    .unanswered(CacheSystem::Redis, self.last_server_ns),
            );
        }
        self.server.reset();
        self.replies.reset();
    }

    fn on_server(&mut self, segment: &Segment<'_>, out: &mut Vec<CacheRecord>) {
        self.last_server_ns = segment.time_ns;
        let now = segment.time_ns;
        let mut bytes = segment.bytes;
        while self.phase == Phase::Pairing {
            let step = match self.server.next(&mut bytes, Origin::of(segment)) {
                Some(Token::Line(line)) => self.replies.line(&line.text),
                Some(Token::Block(block)) => self.reply_block(&block),
                Some(Token::Invalid) => Step::Invalid,
                None => break,
            };
            self.on_step(step, now, out);
        }
        if self.server.is_lost() || self.phase == Phase::Opaque {
            self.unparsed.bytes += bytes.len() as u64 + segment.missing();
            return;
        }
        let hole = self.server.hole(segment.missing());
        if let Some(block) = hole.block {
            let step = self.reply_block(&block);
            self.on_step(step, now, out);
        }
        if hole.beyond > 0 {
            self.server_lost();
            self.unparsed.bytes += hole.beyond;
        }
    }

    fn reply_block(&mut self, block: &Block) -> Step {
        if block.terminated {
            self.replies.block(block)
        } else {
            // Redis ends every bulk string with "\r\n": these bytes are not where they seem.
            Step::Invalid
        }
    }

    fn on_step(&mut self, step: Step, now: i64, out: &mut Vec<CacheRecord>) {
        match step {
            Step::More => {}
            Step::Block { len, keep } => self.server.expect_block(len, keep),
            Step::Done(reply) => self.on_reply(reply, now, out),
            Step::Invalid => self.server_lost(),
        }
    }

    fn server_lost(&mut self) {
        self.server.lose();
        self.replies.reset();
        self.unparsed.messages += 1;
        self.waiting.lose_all();
    }

    fn on_reply(&mut self, reply: Reply, now: i64, out: &mut Vec<CacheRecord>) {
        let modal = self.waiting.front().is_some_and(|r| r.modal);
        // Pushes are out of band, but for the first one after SUBSCRIBE in RESP3.
        if reply.push && !modal {
            return;
        }
        let fits = self
            .waiting
            .front()
            .is_some_and(|r| answers(r.read, &reply));
        let Some(request) = fits.then(|| self.waiting.pop_front()).flatten() else {
            // A reply to a request not seen (sent before the trace, or lost).
            self.unparsed.messages += 1;
            return;
        };
        let mut exchange = request.exchange;
        exchange.complete &= !reply.missing;
        let answered = reply.error.is_none() && !reply.queued;
        exchange.hits = match request.read {
            _ if !answered => None,
            Read::One => Some(u32::from(!reply.null)),
            Read::Many => Some(reply.found),
            Read::Exists => reply
                .integer
                .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
            Read::No | Read::Values => None,
        };
        if request.read != Read::No && answered {
            exchange.bytes = exchange.bytes.saturating_add(reply.bytes);
        }
        if request.modal && answered {
            self.phase = Phase::Opaque;
        }
        exchange.error = reply.error;
        out.push(exchange.record(CacheSystem::Redis, Some(now)));
    }
}

impl ConnectionParser for RedisParser {
    type Record = CacheRecord;

    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<CacheRecord>) {
        if self.phase == Phase::Opaque {
            self.unparsed.bytes += segment.len;
            return;
        }
        match segment.from {
            Side::Client => read_requests(self, segment, out),
            Side::Server => self.on_server(segment, out),
        }
    }

    fn close(&mut self, _time_ns: i64, out: &mut Vec<CacheRecord>) {
        if self.replies.is_reading()
            && let Some(front) = self.waiting.front_mut()
        {
            front.exchange.answering = true;
        }
        if let Some(mut building) = self.building.take()
            && building.next > 0
        {
            building.request.exchange.complete = false;
            self.queue(building.request, out);
        }
        for request in self.waiting.drain() {
            out.push(
                request
                    .exchange
                    .unanswered(CacheSystem::Redis, self.last_server_ns),
            );
        }
    }

    fn unparsed(&self) -> Unparsed {
        self.unparsed
    }
}

/// Whether a read can get this reply: its value's type, an error, or QUEUED in a MULTI (the
/// replies of other commands are too many kinds to tell).
fn answers(read: Read, reply: &Reply) -> bool {
    let types: &[u8] = match read {
        Read::One => b"$=_",
        Read::Many => b"*_",
        Read::Exists => b":",
        Read::No | Read::Values => return true,
    };
    types.contains(&reply.kind) || reply.error.is_some() || reply.queued
}

fn integer(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
