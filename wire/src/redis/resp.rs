//! Redis replies, RESP2 and RESP3, read one line or bulk at a time: simple strings, errors,
//! integers, bulk strings (and their nulls), arrays, and RESP3's null, boolean, double, big
//! number, bulk error, verbatim string, map, set, attribute and push. What a command's
//! record needs is gathered on the way: whether the reply is null, its error, its integer,
//! how many of its top-level elements are not null, the bytes of its bulk strings. An
//! attribute describes the value after it and is not one of its parent's elements; a push
//! at the top is out of band and says so.

use crate::cache_exchange::{ERROR_KEEP, text};
use crate::text_framing::Block;

/// Deeper replies are not Redis's (its most nested ones, COMMAND DOCS, are a few deep).
const MAX_DEPTH: usize = 64;
/// Longest bulk string believed (Redis's own limit is 512 MB unless raised).
const MAX_BULK: i64 = 1 << 32;

#[derive(Debug, Default)]
pub(super) struct Reply {
    /// The type byte of its value ('$', '*', ':', ...; an attribute's is the value's after).
    pub kind: u8,
    /// A push: out of band, answering no request.
    pub push: bool,
    pub null: bool,
    pub error: Option<String>,
    pub integer: Option<i64>,
    /// +QUEUED: the command runs at EXEC.
    pub queued: bool,
    /// Top-level elements that are not null.
    pub found: u32,
    /// Bulk string bytes, at any depth.
    pub bytes: u64,
    /// Some of its bytes were not captured.
    pub missing: bool,
}

#[derive(Debug)]
pub(super) enum Step {
    More,
    /// A bulk string of this length follows; keep its first bytes.
    Block {
        len: u64,
        keep: usize,
    },
    Done(Reply),
    /// Not RESP: the bytes are out of step.
    Invalid,
}

#[derive(Debug)]
struct Open {
    /// Elements still to come.
    left: u64,
    attribute: bool,
}

#[derive(Debug, Default)]
pub(super) struct RespReader {
    /// Aggregates being read, innermost last.
    open: Vec<Open>,
    reply: Option<Reply>,
    /// The block announced is a bulk error's text.
    error_block: bool,
}

impl RespReader {
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Part of a reply has been read.
    pub fn is_reading(&self) -> bool {
        self.reply.is_some()
    }

    pub fn line(&mut self, line: &[u8]) -> Step {
        let Some((&kind, rest)) = line.split_first() else {
            return Step::Invalid;
        };
        let top = self.open.is_empty();
        let reply = self.reply.get_or_insert_with(Reply::default);
        if top {
            reply.kind = kind;
        }
        match kind {
            b'+' => {
                reply.queued |= top && rest == b"QUEUED";
                self.value(false)
            }
            b'-' => {
                if top {
                    reply.error = Some(text(rest, ERROR_KEEP));
                }
                self.value(false)
            }
            b':' => match integer(rest) {
                Some(n) => {
                    if top {
                        reply.integer = Some(n);
                    }
                    self.value(false)
                }
                None => Step::Invalid,
            },
            b'_' => self.value(true),
            b'#' | b',' | b'(' => self.value(false),
            b'$' | b'!' | b'=' => match integer(rest) {
                Some(-1) if kind == b'$' => self.value(true),
                Some(len @ 0..=MAX_BULK) => {
                    self.error_block = kind == b'!';
                    Step::Block {
                        len: len as u64,
                        keep: if self.error_block && top {
                            ERROR_KEEP
                        } else {
                            0
                        },
                    }
                }
                _ => Step::Invalid,
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let count = match integer(rest) {
                    Some(-1) if kind == b'*' => return self.value(true),
                    Some(n) if n >= 0 && self.open.len() < MAX_DEPTH => n as u64,
                    _ => return Step::Invalid,
                };
                let pairs = matches!(kind, b'%' | b'|');
                let left = if pairs { count * 2 } else { count };
                reply.push |= top && kind == b'>';
                let attribute = kind == b'|';
                match (left, attribute) {
                    // An empty attribute describes the value after it: nothing ends.
                    (0, true) => Step::More,
                    (0, false) => self.value(false),
                    _ => {
                        self.open.push(Open { left, attribute });
                        Step::More
                    }
                }
            }
            _ => Step::Invalid,
        }
    }

    pub fn block(&mut self, block: &Block) -> Step {
        let top = self.open.is_empty();
        let counted = self.open.iter().all(|o| !o.attribute);
        let reply = self.reply.get_or_insert_with(Reply::default);
        reply.missing |= block.missing;
        if std::mem::take(&mut self.error_block) {
            if top {
                reply.error = Some(text(&block.head, ERROR_KEEP));
            }
        } else if counted {
            reply.bytes = reply.bytes.saturating_add(block.len);
        }
        self.value(false)
    }

    /// A value ended: an element of the aggregate being read, which may end too, or the
    /// whole reply.
    fn value(&mut self, mut null: bool) -> Step {
        loop {
            let depth = self.open.len();
            let counted = self.open.iter().all(|o| !o.attribute);
            let Some(parent) = self.open.last_mut() else {
                let mut reply = self.reply.take().unwrap_or_default();
                reply.null = null;
                return Step::Done(reply);
            };
            parent.left -= 1;
            let ended = parent.left == 0;
            if depth == 1
                && counted
                && !null
                && let Some(reply) = &mut self.reply
            {
                reply.found = reply.found.saturating_add(1);
            }
            if !ended {
                return Step::More;
            }
            if self.open.pop().is_some_and(|o| o.attribute) {
                // An attribute is not a value of its own: what it describes follows.
                return Step::More;
            }
            null = false;
        }
    }
}

fn integer(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads whole replies from RESP text (blocks given in full after their line).
    fn replies(mut bytes: &[u8]) -> Vec<Reply> {
        let mut reader = RespReader::default();
        let mut out = Vec::new();
        while let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") {
            let line = &bytes[..end];
            bytes = &bytes[end + 2..];
            let mut step = reader.line(line);
            if let Step::Block { len, keep } = step {
                let len = len as usize;
                let block = Block {
                    head: bytes[..len.min(keep)].to_vec(),
                    len: len as u64,
                    missing: false,
                    terminated: true,
                };
                bytes = &bytes[len + 2..];
                step = reader.block(&block);
            }
            match step {
                Step::Done(reply) => out.push(reply),
                Step::Invalid => panic!("invalid at {line:?}"),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn resp2_values() {
        let got = replies(
            b"+OK\r\n-ERR wrong\r\n:3\r\n$-1\r\n$5\r\nhello\r\n*-1\r\n\
              *3\r\n$1\r\na\r\n$-1\r\n*1\r\n$2\r\nbc\r\n+QUEUED\r\n",
        );
        let summary: Vec<_> = got
            .iter()
            .map(|r| {
                (
                    r.null,
                    r.error.as_deref(),
                    r.integer,
                    r.found,
                    r.bytes,
                    r.queued,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (false, None, None, 0, 0, false),
                (false, Some("ERR wrong"), None, 0, 0, false),
                (false, None, Some(3), 0, 0, false),
                (true, None, None, 0, 0, false),
                (false, None, None, 0, 5, false),
                (true, None, None, 0, 0, false),
                // The nested array is one element found; its bytes count.
                (false, None, None, 2, 3, false),
                (false, None, None, 0, 0, true),
            ]
        );
    }

    #[test]
    fn resp3_values_attributes_and_pushes() {
        let got = replies(
            b"_\r\n#t\r\n,3.14\r\n(12345678901234567890\r\n!9\r\nSYNTAX xy\r\n=8\r\ntxt:abcd\r\n\
              %2\r\n+a\r\n:1\r\n+b\r\n_\r\n~2\r\n$1\r\nx\r\n$1\r\ny\r\n\
              |1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n\
              *2\r\n|1\r\n+meta\r\n$4\r\nskip\r\n$1\r\nv\r\n_\r\n\
              >2\r\n+invalidate\r\n*1\r\n$3\r\nkey\r\n",
        );
        let summary: Vec<_> = got
            .iter()
            .map(|r| (r.push, r.null, r.error.as_deref(), r.found, r.bytes))
            .collect();
        assert_eq!(
            summary,
            [
                (false, true, None, 0, 0),
                (false, false, None, 0, 0),
                (false, false, None, 0, 0),
                (false, false, None, 0, 0),
                (false, false, Some("SYNTAX xy"), 0, 0),
                (false, false, None, 0, 8),
                // A map's keys and values are its elements; the null value is not found.
                (false, false, None, 3, 0),
                (false, false, None, 2, 2),
                // The attribute before the value is not part of it.
                (false, false, None, 0, 3),
                (false, false, None, 1, 1),
                (true, false, None, 2, 3),
            ]
        );
    }

    #[test]
    fn not_resp_is_invalid() {
        let mut reader = RespReader::default();
        assert!(matches!(reader.line(b"hello"), Step::Invalid));
        assert!(matches!(reader.line(b"$-2"), Step::Invalid));
        assert!(matches!(reader.line(b"*x"), Step::Invalid));
        assert!(matches!(reader.line(b""), Step::Invalid));
        for _ in 0..MAX_DEPTH {
            assert!(matches!(reader.line(b"*1"), Step::More));
        }
        assert!(matches!(reader.line(b"*1"), Step::Invalid));
    }
}
