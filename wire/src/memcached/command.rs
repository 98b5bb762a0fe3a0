//! A memcached request line: the command and its keys, the data block that follows it, and
//! what the server will leave unsaid (`noreply`, and the meta commands' `q` flag).

use crate::cache_exchange::{Exchange, KEY_KEEP};
use crate::origin::Origin;
use crate::text_framing::Start;

/// Longest data block memcached reads (it refuses a longer length without reading on).
const MAX_BLOCK: u64 = i32::MAX as u64 - 2;
/// Longest opaque token memcached copies back to a meta reply.
const OPAQUE_KEEP: usize = 32;
/// Commands memcached knows, for finding a request in bytes out of step.
const KNOWN: &[&[u8]] = &[
    b"get",
    b"gets",
    b"gat",
    b"gats",
    b"set",
    b"add",
    b"replace",
    b"append",
    b"prepend",
    b"cas",
    b"delete",
    b"incr",
    b"decr",
    b"touch",
    b"mg",
    b"ms",
    b"md",
    b"ma",
    b"mn",
    b"me",
    b"flush_all",
    b"version",
    b"verbosity",
    b"stats",
    b"quit",
    b"watch",
    b"lru",
    b"lru_crawler",
    b"slabs",
    b"cache_memlimit",
    b"shutdown",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// get, gets, gat, gats: VALUE items until END.
    Retrieval,
    /// stats, lru_crawler metadump / mgdump: lines until END (or a single status line).
    Listing,
    /// mg: VA and the value, HD, or EN for a miss.
    MetaGet,
    /// One line, or VA and its value (ma with v).
    Single,
    /// watch: once answered OK, the connection only streams logs.
    Watch,
    /// A line that names no command (empty, or not a word): memcached answers ERROR; it
    /// makes no record.
    NotCommand,
}

/// The replies a request can get, errors aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answers {
    Any,
    Codes(&'static [&'static [u8]]),
    /// incr / decr: the new value, or NOT_FOUND.
    Number,
}

impl Answers {
    pub fn fit(self, code: &[u8]) -> bool {
        match self {
            Answers::Any => true,
            Answers::Codes(codes) => codes.contains(&code),
            Answers::Number => code == b"NOT_FOUND" || number(code).is_some(),
        }
    }
}

/// A meta command with the `q` flag: the server says nothing for its nominal outcome.
#[derive(Debug)]
pub(super) struct Quiet {
    /// The reply codes it can still get (errors aside).
    pub speaks: &'static [&'static [u8]],
    /// Its O(paque) token, which the reply carries back.
    pub opaque: Option<Vec<u8>>,
    /// Its key, when its k flag asks the reply to carry it.
    pub key: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(super) struct Request {
    pub exchange: Exchange,
    pub kind: Kind,
    pub answers: Answers,
    /// The length of the data block that follows the line (storage commands).
    pub block: Option<u64>,
    /// No reply comes (noreply, quit).
    pub silent: bool,
    pub quiet: Option<Quiet>,
}

impl AsMut<Exchange> for Request {
    fn as_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }
}

pub(super) fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

pub(super) fn number(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// A command name as memcached could take it (it answers ERROR to the unknown ones).
fn is_word(word: &[u8]) -> bool {
    word.len() <= 32 && word.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Do these bytes begin a request line? A command memcached knows, then a space or the
/// line's end.
pub(super) fn starts_request(bytes: &[u8]) -> Start {
    match bytes
        .iter()
        .take(16)
        .position(|&b| matches!(b, b' ' | b'\r' | b'\n'))
    {
        Some(end) if KNOWN.contains(&&bytes[..end]) => Start::Yes,
        None if KNOWN.iter().any(|c| c.starts_with(bytes)) => Start::Maybe,
        _ => Start::No,
    }
}

/// Does this line name a command memcached knows?
pub(super) fn is_known(line: &[u8]) -> bool {
    words(line).next().is_some_and(|name| KNOWN.contains(&name))
}

/// The request a line starts, as memcached reads it: every line is one.
pub(super) fn parse(line: &[u8], origin: Origin) -> Request {
    let words: Vec<&[u8]> = words(line).collect();
    let mut request = Request {
        exchange: Exchange::new(origin, String::new()),
        kind: Kind::NotCommand,
        answers: Answers::Codes(&[]),
        block: None,
        silent: false,
        quiet: None,
    };
    let Some((&name, args)) = words.split_first().filter(|(name, _)| is_word(name)) else {
        return request;
    };
    request.exchange.command = String::from_utf8_lossy(name).to_ascii_lowercase();
    request.kind = Kind::Single;
    request.answers = answers(name);
    // memcached looks for noreply as the last word of the commands that take it.
    let noreply = args.last() == Some(&&b"noreply"[..]);
    let exchange = &mut request.exchange;
    match name {
        b"get" | b"gets" | b"gat" | b"gats" => {
            let keys = if name.starts_with(b"gat") {
                args.get(1..).unwrap_or_default()
            } else {
                args
            };
            // Without a key memcached answers ERROR.
            if !keys.is_empty() {
                request.kind = Kind::Retrieval;
                keys.iter().for_each(|key| exchange.add_key(key));
            }
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            if let Some(key) = args.first() {
                exchange.add_key(key);
            }
            // A length memcached cannot read is a CLIENT_ERROR, and no block is read.
            request.block = args
                .get(3)
                .and_then(|n| number(n))
                .filter(|&n| n <= MAX_BLOCK);
            exchange.bytes = request.block.unwrap_or(0);
            request.silent = noreply;
        }
        b"delete" | b"incr" | b"decr" | b"touch" => {
            if let Some(key) = args.first() {
                exchange.add_key(key);
            }
            request.silent = noreply;
        }
        b"flush_all" | b"verbosity" | b"cache_memlimit" => request.silent = noreply,
        b"quit" => request.silent = true,
        b"stats" => request.kind = Kind::Listing,
        b"lru_crawler" if matches!(args.first(), Some(&(b"metadump" | b"mgdump"))) => {
            request.kind = Kind::Listing;
        }
        b"watch" => request.kind = Kind::Watch,
        b"me" => {
            if let Some(key) = args.first() {
                exchange.add_key(key);
            }
        }
        b"mg" | b"ms" | b"md" | b"ma" => meta(name, args, &mut request),
        _ => {}
    }
    request
}

fn answers(name: &[u8]) -> Answers {
    Answers::Codes(match name {
        b"get" | b"gets" | b"gat" | b"gats" => &[b"VALUE", b"END"],
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            &[b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND"]
        }
        b"delete" => &[b"DELETED", b"NOT_FOUND"],
        b"touch" => &[b"TOUCHED", b"NOT_FOUND"],
        b"incr" | b"decr" => return Answers::Number,
        b"mg" => &[b"VA", b"HD", b"EN"],
        b"ms" | b"md" => &[b"HD", b"NS", b"EX", b"NF"],
        b"ma" => &[b"VA", b"HD", b"NS", b"EX", b"NF"],
        b"mn" => &[b"MN"],
        b"me" => &[b"ME", b"EN"],
        _ => return Answers::Any,
    })
}

/// mg / ms / md / ma <key> [<datalen> for ms] <flags>*
fn meta(name: &[u8], args: &[&[u8]], request: &mut Request) {
    // Without a key memcached answers ERROR.
    let Some((&key, mut flags)) = args.split_first() else {
        return;
    };
    request.exchange.add_key(key);
    match name {
        b"mg" => request.kind = Kind::MetaGet,
        b"ms" => {
            // memcached 1.6 before 1.6.10 took the length as an S flag.
            request.block = match flags.split_first() {
                Some((length, rest)) if number(length).is_some() => {
                    flags = rest;
                    number(length)
                }
                _ => flags
                    .iter()
                    .find_map(|f| f.strip_prefix(b"S").and_then(number)),
            }
            .filter(|&n| n <= MAX_BLOCK);
            request.exchange.bytes = request.block.unwrap_or(0);
        }
        _ => {}
    }
    if !flags.contains(&&b"q"[..]) {
        return;
    }
    // What memcached (1.6.18) still sends under q: all but the nominal outcome (a hit's
    // value, a store, a delete, an increment; md's NF too in older releases).
    let speaks: &[&[u8]] = match name {
        b"mg" => &[b"VA", b"HD"],
        b"ms" => &[b"NS", b"EX", b"NF"],
        b"md" => &[b"NF", b"EX"],
        _ => &[b"NF", b"NS", b"EX"],
    };
    request.quiet = Some(Quiet {
        speaks,
        opaque: flags
            .iter()
            .find_map(|f| f.strip_prefix(b"O"))
            .map(|o| o[..o.len().min(OPAQUE_KEEP)].to_vec()),
        key: flags
            .contains(&&b"k"[..])
            .then(|| key[..key.len().min(KEY_KEEP)].to_vec()),
    });
}
