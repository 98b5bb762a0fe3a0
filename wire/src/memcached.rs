//! memcached's text protocol (doc/protocol.txt, memcached 1.6), from the two byte streams of
//! one connection: retrieval (get, gets, gat, gats: VALUE items up to END), storage (set,
//! add, replace, append, prepend, cas, with their data block), delete, incr/decr, touch, the
//! admin commands, and the meta commands (mg, ms, md, ma, mn, me); one `CacheRecord` per
//! command.
//!
//! Replies come in the order of the requests, so pipelined requests pair by position; a reply
//! that cannot answer the oldest request (STORED to a get) answers one not seen. Every line
//! is a request, as memcached reads them (it answers ERROR to lines that are none). A
//! `noreply` request gets no reply at all: its record goes out as soon as it is sent. A meta
//! request with the `q` flag gets none for its nominal outcome (mg's miss, ms's store, ...):
//! a reply it cannot get, or whose opaque or key names another request, shows it was
//! answered in silence (the mn that ends such pipelines always answers). The framing needs
//! no request: VALUE and VA lines announce their data block.
//!
//! The binary protocol is not parsed: a connection that starts with it counts as unparsed.
//! Data blocks the capture cut are skipped by length, the record marked incomplete. Client
//! bytes out of step are skipped up to the next line that starts with a command; when the
//! server's are, the requests waiting become incomplete records at the next request.

mod command;

use command::{Kind, Request, is_known, number, words};

use crate::cache_exchange::{ERROR_KEEP, Waiting, text};
use crate::origin::Origin;
use crate::records::{CacheRecord, CacheSystem};
use crate::stream::{ConnectionParser, Segment, Side, Unparsed};
use crate::text_framing::{Block, RequestParser, Start, TextReader, Token, read_requests};

/// Client lines hold a get's keys (memcached reads such lines whole); server lines are short.
const CLIENT_MAX_LINE: usize = 1 << 20;
const SERVER_MAX_LINE: usize = 8 << 10;
/// The largest item memcached can be configured to hold.
const MAX_VALUE: u64 = 1 << 30;
/// The binary protocol's magic bytes: request, response.
const BINARY_REQUEST: u8 = 0x80;
const BINARY_RESPONSE: u8 = 0x81;
/// A retrieval reply's last line, as a hole after the last value may hold it.
const END: &[u8] = b"END\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet: the first bytes tell the text protocol from the binary one.
    Start,
    Text,
    /// The binary protocol, or a watcher's log stream: nothing more to parse.
    Opaque,
}

/// A reply of more than one line being read.
struct Reply {
    /// It answers `waiting.front()` (false: it answers a request not seen).
    paired: bool,
    /// More lines come, up to END (retrieval, listing).
    until_end: bool,
    /// It ends with the data block being read (VA).
    ends_with_block: bool,
}

/// Parses one memcached connection (text protocol) into the commands it carried.
pub struct MemcachedParser {
    client: TextReader,
    server: TextReader,
    phase: Phase,
    waiting: Waiting<Request>,
    /// The storage request whose data block is still coming.
    storing: Option<Request>,
    /// The client's bytes were picked up where a command may begin: the line must name one.
    resynced: bool,
    reply: Option<Reply>,
    /// Time of the last server segment: the end of a reply whose framing was lost.
    last_server_ns: i64,
    unparsed: Unparsed,
}

impl Default for MemcachedParser {
    fn default() -> Self {
        MemcachedParser {
            // The client's stream is picked up at a command; the server's first bytes answer
            // one or, on an older connection, fail framing.
            client: TextReader::new(CLIENT_MAX_LINE, false),
            server: TextReader::new(SERVER_MAX_LINE, true),
            phase: Phase::Start,
            waiting: Waiting::default(),
            storing: None,
            resynced: false,
            reply: None,
            last_server_ns: i64::MIN,
            unparsed: Unparsed::default(),
        }
    }
}

impl RequestParser for MemcachedParser {
    fn client(&mut self) -> &mut TextReader {
        &mut self.client
    }

    fn resynced(&mut self) -> &mut bool {
        &mut self.resynced
    }

    fn unparsed_mut(&mut self) -> &mut Unparsed {
        &mut self.unparsed
    }

    fn starts_request(bytes: &[u8]) -> Start {
        command::starts_request(bytes)
    }

    fn is_request_line(line: &[u8]) -> bool {
        is_known(line)
    }

    fn on_request_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<CacheRecord>) {
        self.settle_lost_server(out);
        let request = command::parse(line, origin);
        if request.kind == Kind::NotCommand {
            self.unparsed.messages += 1;
        }
        match request.block {
            Some(len) => {
                self.client.expect_block(len, 0);
                self.storing = Some(request);
            }
            None => self.queue(request, out),
        }
    }

    fn on_request_block(&mut self, block: &Block, out: &mut Vec<CacheRecord>) {
        // A block not ended by "\r\n" gets CLIENT_ERROR bad data chunk: its request pairs
        // with that as with any reply.
        if let Some(mut request) = self.storing.take() {
            request.exchange.complete &= !block.missing;
            self.queue(request, out);
        }
    }

    fn on_cut_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<CacheRecord>) {
        // What was captured of the line still names the command, and its reply will come.
        self.settle_lost_server(out);
        let mut request = command::parse(line, origin);
        request.exchange.complete = false;
        self.queue(request, out);
    }

    fn client_lost(&mut self, out: &mut Vec<CacheRecord>) {
        self.client.lose();
        self.unparsed.messages += 1;
        if let Some(mut request) = self.storing.take() {
            request.exchange.complete = false;
            self.queue(request, out);
        }
    }
}

impl MemcachedParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The request was sent whole: it waits for its reply, unless none will come.
    fn queue(&mut self, request: Request, out: &mut Vec<CacheRecord>) {
        if request.silent {
            out.push(request.exchange.record(CacheSystem::Memcached, None));
            return;
        }
        if let Some(oldest) = self.waiting.push(request) {
            // A quiet request may well never be answered; any other should have been.
            if oldest.quiet.is_none() {
                self.unparsed.messages += 1;
            }
            self.emit_unanswered(oldest, out);
        }
    }

    /// A new request while the server's framing is lost: its replies to the requests
    /// waiting were in the bytes that could not be read, and the next ones answer this one.
    fn settle_lost_server(&mut self, out: &mut Vec<CacheRecord>) {
        if !self.server.is_lost() {
            return;
        }
        let waiting: Vec<Request> = self.waiting.drain().collect();
        for request in waiting {
            self.emit_unanswered(request, out);
        }
        self.server.reset();
        self.reply = None;
    }

    fn on_server(&mut self, segment: &Segment<'_>, out: &mut Vec<CacheRecord>) {
        self.last_server_ns = segment.time_ns;
        let now = segment.time_ns;
        let mut bytes = segment.bytes;
        while self.phase != Phase::Opaque {
            match self.server.next(&mut bytes, Origin::of(segment)) {
                Some(Token::Line(line)) => self.on_reply_line(&line.text, now, out),
                Some(Token::Block(block)) => self.on_reply_block(&block, now, out),
                Some(Token::Invalid) => self.server_lost(),
                None => break,
            }
        }
        if self.server.is_lost() || self.phase == Phase::Opaque {
            self.unparsed.bytes += bytes.len() as u64 + segment.missing();
            return;
        }
        let hole = self.server.hole(segment.missing());
        if let Some(block) = hole.block {
            self.on_reply_block(&block, now, out);
        }
        if hole.beyond > 0 {
            let listing = self.reply.as_ref().is_some_and(|r| r.until_end);
            if listing && hole.cut_line.is_none() && hole.beyond == END.len() as u64 {
                // A reply written whole whose last value the capture cut: the five bytes
                // after it are its END.
                self.on_reply_line(b"END", now, out);
            } else {
                self.server_lost();
                self.unparsed.bytes += hole.beyond;
            }
        }
    }

    fn server_lost(&mut self) {
        self.server.lose();
        self.unparsed.messages += 1;
        self.reply = None;
        self.waiting.lose_all();
    }

    fn on_reply_line(&mut self, line: &[u8], now: i64, out: &mut Vec<CacheRecord>) {
        let mut fields = words(line);
        let code = fields.next().unwrap_or_default();
        // The framing first: these lines announce a block, whatever they answer.
        let size = match code {
            b"VALUE" => fields.nth(2),
            b"VA" => fields.next(),
            _ => None,
        };
        let block = match size.map(number) {
            Some(Some(len)) if len <= MAX_VALUE => {
                self.server.expect_block(len, 0);
                Some(len)
            }
            Some(_) => return self.server_lost(),
            None => None,
        };
        match &self.reply {
            Some(reply) if reply.until_end => {
                let paired = reply.paired;
                self.continue_reply(paired, code, line, block, now, out);
            }
            _ => self.start_reply(code, line, block, now, out),
        }
    }

    /// The next line of a retrieval or listing reply.
    fn continue_reply(
        &mut self,
        paired: bool,
        code: &[u8],
        line: &[u8],
        block: Option<u64>,
        now: i64,
        out: &mut Vec<CacheRecord>,
    ) {
        let error = is_error(line);
        if code == b"END" || error {
            if let Some(request) = self.waiting.front_mut().filter(|_| paired && error) {
                request.exchange.error = Some(text(line, ERROR_KEEP));
                request.exchange.hits = None;
            }
            return self.finish(paired, now, out);
        }
        let Some(request) = self.waiting.front_mut().filter(|_| paired) else {
            return;
        };
        match (request.kind, block) {
            (Kind::Retrieval, Some(len)) => {
                let exchange = &mut request.exchange;
                exchange.hits = Some(exchange.hits.unwrap_or(0).saturating_add(1));
                exchange.bytes = exchange.bytes.saturating_add(len);
            }
            (Kind::Retrieval, None) => {
                // Not part of the reply: it ended unseen, and this line begins the next.
                request.exchange.complete = false;
                self.unparsed.messages += 1;
                self.finish(true, now, out);
                self.start_reply(code, line, block, now, out);
            }
            _ => {}
        }
    }

    /// The first line of a reply: to the oldest request waiting, once the quiet ones
    /// answered in silence are out of the way.
    fn start_reply(
        &mut self,
        code: &[u8],
        line: &[u8],
        block: Option<u64>,
        now: i64,
        out: &mut Vec<CacheRecord>,
    ) {
        self.settle_quiet(code, line, now, out);
        let error = is_error(line);
        // memcached answers a line that names no command with ERROR: one that got another
        // reply was not read as a line by memcached (the bytes were out of step).
        while !error
            && self
                .waiting
                .front()
                .is_some_and(|r| r.kind == Kind::NotCommand)
        {
            self.waiting.pop_front();
        }
        let front = self.waiting.front_mut();
        let Some(request) = front.filter(|r| error || r.answers.fit(code)) else {
            // A reply to a request not seen (sent before the trace, or lost).
            self.unparsed.messages += 1;
            self.reply = Some(Reply {
                paired: false,
                until_end: code == b"VALUE",
                ends_with_block: code == b"VA",
            });
            return;
        };
        let exchange = &mut request.exchange;
        exchange.answering = true;
        if error {
            exchange.error = Some(text(line, ERROR_KEEP));
        }
        let mut reply = Reply {
            paired: true,
            until_end: false,
            ends_with_block: false,
        };
        match (request.kind, code) {
            _ if error => {}
            (Kind::Retrieval, b"VALUE") => {
                exchange.hits = Some(1);
                exchange.bytes = exchange.bytes.saturating_add(block.unwrap_or(0));
                reply.until_end = true;
            }
            (Kind::Retrieval, _) => exchange.hits = Some(0),
            (Kind::Listing, _) => reply.until_end = continues_listing(code),
            (Kind::MetaGet, b"HD") => exchange.hits = Some(1),
            (Kind::MetaGet, b"EN") => exchange.hits = Some(0),
            (_, b"VA") => {
                if request.kind == Kind::MetaGet {
                    exchange.hits = Some(1);
                }
                exchange.bytes = exchange.bytes.saturating_add(block.unwrap_or(0));
                reply.ends_with_block = true;
            }
            (Kind::Watch, b"OK") => {
                // Logs follow, for as long as the connection lasts.
                self.finish(true, now, out);
                self.phase = Phase::Opaque;
                return;
            }
            _ => {}
        }
        if reply.until_end || reply.ends_with_block {
            self.reply = Some(reply);
        } else {
            self.finish(true, now, out);
        }
    }

    /// Quiet requests at the front of the queue that did not send this reply were answered
    /// in silence, before it: those before the one its opaque or key names, else those that
    /// cannot get a reply with its code.
    fn settle_quiet(&mut self, code: &[u8], line: &[u8], now: i64, out: &mut Vec<CacheRecord>) {
        // A VA line's flags come after the value's size.
        let flags = words(line).skip(if code == b"VA" { 2 } else { 1 });
        let (mut opaque, mut key) = (None, None);
        for flag in flags {
            match flag.split_first() {
                Some((b'O', token)) => opaque = Some(token),
                Some((b'k', token)) => key = Some(token),
                _ => {}
            }
        }
        let same = |named: Option<&[u8]>, own: &Option<Vec<u8>>| {
            named.is_some() && named == own.as_deref()
        };
        let named = self
            .waiting
            .iter()
            .map_while(|request| request.quiet.as_ref())
            .position(|quiet| same(opaque, &quiet.opaque) || same(key, &quiet.key));
        if let Some(named) = named {
            for _ in 0..named {
                self.answered_in_silence(now, out);
            }
            return;
        }
        let error = is_error(line);
        while self
            .waiting
            .front()
            .and_then(|request| request.quiet.as_ref())
            .is_some_and(|quiet| !error && !quiet.speaks.contains(&code))
        {
            self.answered_in_silence(now, out);
        }
    }

    /// The oldest request, a quiet one, got its nominal outcome, unsaid, before `now`.
    fn answered_in_silence(&mut self, now: i64, out: &mut Vec<CacheRecord>) {
        if let Some(mut request) = self.waiting.pop_front() {
            if request.kind == Kind::MetaGet {
                // Only a miss goes unsaid.
                request.exchange.hits = Some(0);
            }
            out.push(request.exchange.record(CacheSystem::Memcached, Some(now)));
        }
    }

    fn on_reply_block(&mut self, block: &Block, now: i64, out: &mut Vec<CacheRecord>) {
        if !block.terminated {
            // memcached ends every value with "\r\n": these bytes are not where they seem.
            return self.server_lost();
        }
        let Some(reply) = &self.reply else {
            return;
        };
        let (paired, ends) = (reply.paired, reply.ends_with_block);
        if let Some(request) = self.waiting.front_mut().filter(|_| paired) {
            request.exchange.complete &= !block.missing;
        }
        if ends {
            self.finish(paired, now, out);
        }
    }

    /// The reply being read ended at `now`: its request's record goes out.
    fn finish(&mut self, paired: bool, now: i64, out: &mut Vec<CacheRecord>) {
        self.reply = None;
        if !paired {
            return;
        }
        if let Some(request) = self.waiting.pop_front()
            && request.kind != Kind::NotCommand
        {
            out.push(request.exchange.record(CacheSystem::Memcached, Some(now)));
        }
    }

    fn emit_unanswered(&self, request: Request, out: &mut Vec<CacheRecord>) {
        if request.kind != Kind::NotCommand {
            out.push(
                request
                    .exchange
                    .unanswered(CacheSystem::Memcached, self.last_server_ns),
            );
        }
    }
}

impl ConnectionParser for MemcachedParser {
    type Record = CacheRecord;

    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<CacheRecord>) {
        if self.phase == Phase::Start && !segment.bytes.is_empty() {
            let magic = match segment.from {
                Side::Client => BINARY_REQUEST,
                Side::Server => BINARY_RESPONSE,
            };
            self.phase = if binary_header(segment.bytes, magic) {
                self.unparsed.messages += 1;
                Phase::Opaque
            } else {
                Phase::Text
            };
        }
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
        let waiting: Vec<Request> = self.waiting.drain().collect();
        for request in waiting {
            self.emit_unanswered(request, out);
        }
        if let Some(mut request) = self.storing.take() {
            // Its data block was cut short.
            request.exchange.complete = false;
            if request.silent {
                out.push(request.exchange.record(CacheSystem::Memcached, None));
            } else {
                self.emit_unanswered(request, out);
            }
        }
    }

    fn unparsed(&self) -> Unparsed {
        self.unparsed
    }
}

fn is_error(line: &[u8]) -> bool {
    line == b"ERROR"
        || line.starts_with(b"ERROR ")
        || line.starts_with(b"CLIENT_ERROR")
        || line.starts_with(b"SERVER_ERROR")
}

/// Whether a listing's first line is one of its items (stats, stats items/slabs/detail
/// dump, lru_crawler metadump/mgdump), rather than a one-line answer (RESET, OK, BUSY, ...).
fn continues_listing(code: &[u8]) -> bool {
    matches!(code, b"STAT" | b"ITEM" | b"PREFIX" | b"mg") || code.contains(&b'=')
}

/// A binary protocol header (24 bytes: magic, opcode, key length, extras length, data type
/// 0, ..., body length) at the start of the bytes.
fn binary_header(bytes: &[u8], magic: u8) -> bool {
    let Some(header) = bytes.get(..24) else {
        return false;
    };
    let key = u32::from(u16::from_be_bytes([header[2], header[3]]));
    let extras = u32::from(header[4]);
    let body = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    header[0] == magic && header[5] == 0 && key <= 250 && body >= key + extras
}

#[cfg(test)]
mod tests;
