//! PostgreSQL v3 message framing over one direction: a type byte and a 4-byte big-endian
//! length that counts itself. The client's first messages (StartupMessage, SSLRequest) have
//! no type byte, and the server answers SSLRequest with one bare byte; the parser says when
//! to expect those. Missing bytes inside a message are skipped by its length; missing bytes
//! past its end lose the framing until the parser resynchronises.

use crate::origin::Origin;
use crate::sql_framing::Framer;
use crate::stream::Segment;

#[derive(Debug)]
pub(crate) struct Message {
    /// The type byte; 0 for the untyped startup messages.
    pub tag: u8,
    /// The body's first bytes, up to the reader's keep limit.
    pub body: Vec<u8>,
    pub len: usize,
    pub truncated: bool,
    pub origin: Origin,
    pub end_ns: i64,
}

pub(super) type Framed = crate::sql_framing::Framed<Message>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Typed,
    /// Length and body, no type byte (the client's startup messages).
    Untyped,
    /// One byte and nothing else (the server's answer to SSLRequest / GSSENCRequest).
    Byte,
}

/// The length field counts itself.
const LENGTH_LEN: usize = 4;
/// No message of the protocol is longer (the server's own limit is 1 GiB).
const MAX_LEN: usize = 1 << 30;

pub(crate) struct MessageReader {
    keep: usize,
    next: Next,
    header: Vec<u8>,
    current: Option<Partial>,
    lost: bool,
}

struct Partial {
    message: Message,
    remaining: usize,
}

impl Framer for MessageReader {
    type Unit = Message;

    fn new(keep: usize, in_step: bool) -> Self {
        MessageReader {
            keep,
            next: Next::Typed,
            header: Vec::with_capacity(1 + LENGTH_LEN),
            current: None,
            lost: !in_step,
        }
    }

    fn is_lost(&self) -> bool {
        self.lost
    }

    fn reset(&mut self) {
        self.header.clear();
        self.current = None;
        self.lost = false;
        self.next = Next::Typed;
    }

    fn push(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        if self.lost {
            return;
        }
        let mut bytes = segment.bytes;
        while !bytes.is_empty() && !self.lost {
            if let Some(partial) = &mut self.current {
                let take = partial.remaining.min(bytes.len());
                let room = self.keep.saturating_sub(partial.message.body.len());
                partial
                    .message
                    .body
                    .extend_from_slice(&bytes[..take.min(room)]);
                partial.remaining -= take;
                bytes = &bytes[take..];
            } else {
                let need = self.header_len() - self.header.len();
                let take = need.min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() == self.header_len() {
                    self.start(segment, out);
                }
            }
            self.finish_if_done(segment, out);
        }
        self.skip_missing(segment, out);
    }
}

impl MessageReader {
    /// How the next message starts (the parser knows from the conversation). The peer
    /// waits for an answer before sending it, so nothing can be half-read here; if something
    /// is, the stream is not what it seems and the reader waits to be reset.
    pub fn expect(&mut self, next: Next) {
        if !self.header.is_empty() || self.current.is_some() {
            self.lost = true;
        }
        self.next = next;
    }

    fn header_len(&self) -> usize {
        match self.next {
            Next::Typed => 1 + LENGTH_LEN,
            Next::Untyped => LENGTH_LEN,
            Next::Byte => 1,
        }
    }

    fn start(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        let (tag, length) = match self.next {
            Next::Byte => (self.header[0], LENGTH_LEN),
            Next::Untyped => (0, be32(&self.header)),
            Next::Typed => (self.header[0], be32(&self.header[1..])),
        };
        self.header.clear();
        self.next = Next::Typed;
        if !(LENGTH_LEN..=MAX_LEN).contains(&length) {
            self.lost = true;
            out.push(Framed::Lost);
            return;
        }
        let len = length - LENGTH_LEN;
        self.current = Some(Partial {
            message: Message {
                tag,
                body: Vec::with_capacity(len.min(self.keep)),
                len,
                truncated: false,
                origin: Origin::of(segment),
                end_ns: segment.time_ns,
            },
            remaining: len,
        });
    }

    fn finish_if_done(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        if matches!(&self.current, Some(p) if p.remaining == 0)
            && let Some(mut partial) = self.current.take()
        {
            partial.message.end_ns = segment.time_ns;
            out.push(Framed::Whole(partial.message));
        }
    }

    fn skip_missing(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        let mut missing = segment.missing();
        if missing == 0 || self.lost {
            return;
        }
        if let Some(partial) = &mut self.current {
            let skip = missing.min(partial.remaining as u64);
            partial.remaining -= skip as usize;
            partial.message.truncated = true;
            missing -= skip;
            self.finish_if_done(segment, out);
        }
        if missing > 0 {
            self.header.clear();
            self.current = None;
            self.lost = true;
            out.push(Framed::Lost);
        }
    }
}

fn be32(bytes: &[u8]) -> usize {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}
