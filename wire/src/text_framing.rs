//! The framing the text cache protocols share (memcached's text protocol, Redis's RESP) over
//! one direction of a connection: lines ended by "\n" (normally "\r\n"), and data blocks
//! whose length a line announced, ended by "\r\n". The parser reads a line and says whether
//! a block follows; a block is counted, not kept (only its first bytes if asked), so a block
//! the capture cut is skipped by its length. Like the servers, the reader takes the two bytes
//! after a block as its end whatever they are, and says whether they were "\r\n". Bytes
//! missing anywhere else are the parser's to judge: it resynchronises at a line that starts
//! a message, or waits to be reset. The client side's loop (resynchronising, handing lines
//! and blocks to the parser, judging a hole) is the same for both protocols: `read_requests`.

use crate::origin::Origin;
use crate::stream::{ConnectionParser, Segment, Unparsed};

/// One line, without its end.
#[derive(Debug)]
pub(crate) struct Line {
    pub text: Vec<u8>,
    /// The segment that held its first byte.
    pub origin: Origin,
}

#[derive(Debug)]
pub(crate) struct Block {
    /// Its first bytes, as many as `expect_block` asked to keep.
    pub head: Vec<u8>,
    pub len: u64,
    /// Some of its bytes were not captured.
    pub missing: bool,
    /// The two bytes after it were "\r\n" (or not captured).
    pub terminated: bool,
}

#[derive(Debug)]
pub(crate) enum Token {
    Line(Line),
    Block(Block),
    /// A line longer than the reader allows: the reader is lost.
    Invalid,
}

/// What the bytes a segment did not capture did to the framing.
#[derive(Debug, Default)]
pub(crate) struct Hole {
    /// The block they ended.
    pub block: Option<Block>,
    /// The line they cut, as far as it was captured.
    pub cut_line: Option<Line>,
    /// How many of them fell outside a block (0: the framing is intact).
    pub beyond: u64,
}

struct Reading {
    block: Block,
    keep: usize,
    /// Data bytes still to come, then bytes of its "\r\n".
    left: u64,
    end_left: u8,
}

/// Whether bytes begin a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    Yes,
    /// They end before they can tell.
    Maybe,
    No,
}

pub(crate) struct TextReader {
    max_line: usize,
    line: Option<Line>,
    block: Option<Reading>,
    lost: bool,
}

impl TextReader {
    /// `in_step`: whether the stream is known to start at a message (a reader that is not
    /// waits, as if lost, for `resync` or `reset`).
    pub fn new(max_line: usize, in_step: bool) -> Self {
        TextReader {
            max_line,
            line: None,
            block: None,
            lost: !in_step,
        }
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Out of step: nothing is read until `resync` or `reset`.
    pub fn lose(&mut self) {
        self.line = None;
        self.block = None;
        self.lost = true;
    }

    /// Forgets what was buffered: the next byte starts a message.
    pub fn reset(&mut self) {
        self.line = None;
        self.block = None;
        self.lost = false;
    }

    /// While lost: the first place in `bytes` where `starts` sees a message begin (or may:
    /// the parser checks the line when it is whole), at their start or after a "\n"
    /// (messages start lines); the reader is in step from there.
    pub fn resync(&mut self, bytes: &[u8], starts: impl Fn(&[u8]) -> Start) -> Option<usize> {
        let line_starts = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1);
        let found = std::iter::once(0)
            .chain(line_starts)
            .find(|&at| at < bytes.len() && starts(&bytes[at..]) != Start::No);
        if found.is_some() {
            self.reset();
        }
        found
    }

    /// The line just read announced a block of `len` bytes (and its "\r\n"): the next token
    /// is that block, with its first `keep` bytes.
    pub fn expect_block(&mut self, len: u64, keep: usize) {
        self.block = Some(Reading {
            block: Block {
                head: Vec::with_capacity(keep.min(len as usize)),
                len,
                missing: false,
                terminated: true,
            },
            keep,
            left: len,
            end_left: 2,
        });
    }

    /// The next token from `bytes` (consumed as far as it goes), sent at `origin`; `None`
    /// when they end first, or while lost.
    pub fn next(&mut self, bytes: &mut &[u8], origin: Origin) -> Option<Token> {
        if self.lost || bytes.is_empty() {
            return None;
        }
        if let Some(reading) = &mut self.block {
            let take = reading.left.min(bytes.len() as u64) as usize;
            let room = reading.keep.saturating_sub(reading.block.head.len());
            reading
                .block
                .head
                .extend_from_slice(&bytes[..take.min(room)]);
            reading.left -= take as u64;
            *bytes = &bytes[take..];
            while reading.left == 0 && reading.end_left > 0 {
                let (&b, rest) = bytes.split_first()?;
                let expected = if reading.end_left == 2 { b'\r' } else { b'\n' };
                reading.block.terminated &= b == expected;
                reading.end_left -= 1;
                *bytes = rest;
            }
            return match self.block.take() {
                Some(reading) if reading.left == 0 && reading.end_left == 0 => {
                    Some(Token::Block(reading.block))
                }
                unfinished => {
                    self.block = unfinished;
                    None
                }
            };
        }
        let line = self.line.get_or_insert_with(|| Line {
            text: Vec::new(),
            origin,
        });
        let end = bytes.iter().position(|&b| b == b'\n');
        let take = end.unwrap_or(bytes.len());
        if line.text.len() + take > self.max_line {
            self.lose();
            *bytes = &bytes[take.min(bytes.len())..];
            return Some(Token::Invalid);
        }
        line.text.extend_from_slice(&bytes[..take]);
        let Some(end) = end else {
            *bytes = &[];
            return None;
        };
        *bytes = &bytes[end + 1..];
        let mut line = self.line.take()?;
        if line.text.last() == Some(&b'\r') {
            line.text.pop();
        }
        Some(Token::Line(line))
    }

    /// The segment's last `missing` bytes were not captured: a block being read takes them
    /// (as many as it still needs); what is left is the parser's to judge.
    pub fn hole(&mut self, mut missing: u64) -> Hole {
        let mut hole = Hole::default();
        if missing == 0 || self.lost {
            hole.beyond = missing;
            return hole;
        }
        if let Some(mut reading) = self.block.take() {
            let take = missing.min(reading.left);
            reading.left -= take;
            missing -= take;
            let end = missing.min(u64::from(reading.end_left));
            reading.end_left -= end as u8;
            missing -= end;
            reading.block.missing = true;
            if reading.left == 0 && reading.end_left == 0 {
                hole.block = Some(reading.block);
            } else {
                self.block = Some(reading);
            }
        }
        if missing > 0 {
            hole.cut_line = self.line.take();
            hole.beyond = missing;
        }
        hole
    }
}

/// A text protocol's parser as `read_requests` drives it on the client's side: the reader of
/// the client's bytes, how a request starts, and what to do with the lines and blocks read.
pub(crate) trait RequestParser: ConnectionParser {
    fn client(&mut self) -> &mut TextReader;
    /// Whether the client's bytes were picked up where a request may begin: the line must
    /// then be one.
    fn resynced(&mut self) -> &mut bool;
    fn unparsed_mut(&mut self) -> &mut Unparsed;
    /// Do these bytes begin a request? Where a lost reader picks the client's bytes up.
    fn starts_request(bytes: &[u8]) -> Start;
    /// Does this line begin a request as a resynchronisation expects?
    fn is_request_line(line: &[u8]) -> bool;
    fn on_request_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<Self::Record>);
    fn on_request_block(&mut self, block: &Block, out: &mut Vec<Self::Record>);
    /// A line the capture cut (one a resynchronisation would take): what was captured may
    /// still tell a request whose reply will come.
    fn on_cut_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<Self::Record>);
    /// The client's bytes are out of step: the reader is to be lost.
    fn client_lost(&mut self, out: &mut Vec<Self::Record>);
}

/// Reads one client segment: resynchronises while the framing is lost, hands the lines and
/// blocks to the parser, and judges the bytes the capture missed.
pub(crate) fn read_requests<P: RequestParser>(
    parser: &mut P,
    segment: &Segment<'_>,
    out: &mut Vec<P::Record>,
) {
    let origin = Origin::of(segment);
    let mut bytes = segment.bytes;
    loop {
        if parser.client().is_lost() {
            let Some(at) = parser.client().resync(bytes, P::starts_request) else {
                parser.unparsed_mut().bytes += bytes.len() as u64 + segment.missing();
                return;
            };
            parser.unparsed_mut().bytes += at as u64;
            bytes = &bytes[at..];
            *parser.resynced() = true;
        }
        match parser.client().next(&mut bytes, origin) {
            Some(Token::Line(line)) => {
                if std::mem::take(parser.resynced()) && !P::is_request_line(&line.text) {
                    // It only looked like the start of a request.
                    parser.unparsed_mut().bytes += line.text.len() as u64;
                    parser.client_lost(out);
                } else {
                    parser.on_request_line(&line.text, line.origin, out);
                }
            }
            Some(Token::Block(block)) => parser.on_request_block(&block, out),
            Some(Token::Invalid) => parser.client_lost(out),
            None => break,
        }
    }
    let hole = parser.client().hole(segment.missing());
    if let Some(block) = hole.block {
        parser.on_request_block(&block, out);
    }
    if hole.beyond > 0 {
        let resynced = *parser.resynced();
        if let Some(line) = hole
            .cut_line
            .filter(|l| !resynced || P::is_request_line(&l.text))
        {
            parser.on_cut_line(&line.text, line.origin, out);
        }
        parser.client_lost(out);
        parser.unparsed_mut().bytes += hole.beyond;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(reader: &mut TextReader, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(token) = reader.next(&mut bytes, Origin::default()) {
            out.push(match token {
                Token::Line(line) => String::from_utf8_lossy(&line.text).into_owned(),
                Token::Block(block) => format!(
                    "[{} {}{}]",
                    block.len,
                    String::from_utf8_lossy(&block.head),
                    if block.missing { " missing" } else { "" }
                ),
                Token::Invalid => "invalid".to_owned(),
            });
            if out.last().is_some_and(|t| t.starts_with("VALUE")) {
                reader.expect_block(5, 3);
            }
        }
        out
    }

    #[test]
    fn lines_and_blocks_across_segments() {
        let mut reader = TextReader::new(100, true);
        assert_eq!(tokens(&mut reader, b"VALUE k 0 5\r\nhe"), ["VALUE k 0 5"]);
        assert_eq!(tokens(&mut reader, b"llo\r"), Vec::<String>::new());
        assert_eq!(tokens(&mut reader, b"\nEND\r"), ["[5 hel]"]);
        assert_eq!(tokens(&mut reader, b"\nbare\nx"), ["END", "bare"]);
    }

    #[test]
    fn a_block_ends_two_bytes_after_its_data_whatever_they_are() {
        let mut reader = TextReader::new(100, true);
        let mut bytes: &[u8] = b"VALUE k 0 5\r\nhelloXYEND\r\n";
        reader.next(&mut bytes, Origin::default());
        reader.expect_block(5, 0);
        let Some(Token::Block(block)) = reader.next(&mut bytes, Origin::default()) else {
            panic!("a block");
        };
        assert!(!block.terminated && !block.missing);
        assert_eq!(tokens(&mut reader, bytes), ["END"]);
    }

    #[test]
    fn a_line_too_long_is_invalid() {
        let mut reader = TextReader::new(4, true);
        assert_eq!(tokens(&mut reader, b"abcdef"), ["invalid"]);
    }

    #[test]
    fn holes_are_taken_by_the_block_being_read() {
        let mut reader = TextReader::new(100, true);
        tokens(&mut reader, b"VALUE k 0 5\r\nh");
        let hole = reader.hole(3);
        assert!(hole.block.is_none() && hole.beyond == 0);
        // The rest of the data and its "\r\n" and 5 bytes more.
        let hole = reader.hole(1 + 2 + 5);
        assert!(hole.block.is_some_and(|b| b.missing && b.head == b"h"));
        assert_eq!(hole.beyond, 5);
        tokens(&mut reader, b"get a b");
        let hole = reader.hole(10);
        assert_eq!(hole.cut_line.map(|l| l.text), Some(b"get a b".to_vec()));
    }

    #[test]
    fn resync_at_a_line_that_starts_a_message() {
        let mut reader = TextReader::new(100, false);
        let starts = |b: &[u8]| match b {
            [b'g', b'e', b't', b' ', ..] => Start::Yes,
            _ if b"get ".starts_with(b) => Start::Maybe,
            _ => Start::No,
        };
        assert_eq!(reader.resync(b"xx\r\nyy", starts), None);
        assert!(reader.is_lost());
        assert_eq!(reader.resync(b"a get\r\nget k\r\n", starts), Some(7));
        assert!(!reader.is_lost());
        reader.lose();
        assert_eq!(reader.resync(b"xx\nge", starts), Some(3));
    }
}
