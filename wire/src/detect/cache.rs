//! The first bytes of the cache protocols. memcached's are text lines: a request starts with
//! a command, lower case (HTTP's methods are upper case), replies with upper-case words.
//! Redis's are RESP: a client sends arrays of bulk strings, a reply starts with its type's
//! byte; a single type byte is weak evidence, so what follows it must fit too.

use crate::stream::Side;

/// memcached requests that clients start with, and whether they need arguments.
const MEMCACHED_COMMANDS: &[(&[u8], bool)] = &[
    (b"get", true),
    (b"gets", true),
    (b"gat", true),
    (b"gats", true),
    (b"set", true),
    (b"add", true),
    (b"replace", true),
    (b"append", true),
    (b"prepend", true),
    (b"cas", true),
    (b"delete", true),
    (b"incr", true),
    (b"decr", true),
    (b"touch", true),
    (b"mg", true),
    (b"ms", true),
    (b"md", true),
    (b"ma", true),
    (b"me", true),
    (b"mn", false),
    (b"version", false),
    (b"stats", false),
    (b"flush_all", false),
    (b"verbosity", true),
];

/// memcached reply lines: whole ones, and the starts of those that go on.
const MEMCACHED_REPLIES: &[&[u8]] = &[
    b"STORED\r\n",
    b"NOT_STORED\r\n",
    b"EXISTS\r\n",
    b"NOT_FOUND\r\n",
    b"DELETED\r\n",
    b"TOUCHED\r\n",
    b"END\r\n",
    b"HD\r\n",
    b"EN\r\n",
    b"NF\r\n",
    b"NS\r\n",
    b"MN\r\n",
];
const MEMCACHED_REPLY_STARTS: &[&[u8]] = &[
    b"VALUE ",
    b"VERSION ",
    b"STAT ",
    b"HD ",
    b"CLIENT_ERROR ",
    b"SERVER_ERROR ",
];

/// Redis commands a client's first request is likely to be (case-insensitive).
const REDIS_COMMANDS: &[&[u8]] = &[
    b"hello",
    b"auth",
    b"ping",
    b"select",
    b"client",
    b"info",
    b"command",
    b"get",
    b"set",
    b"mget",
    b"mset",
    b"del",
    b"exists",
    b"expire",
    b"incr",
    b"hget",
    b"hset",
    b"hgetall",
    b"lpush",
    b"rpush",
    b"sadd",
    b"zadd",
    b"eval",
    b"evalsha",
    b"multi",
    b"subscribe",
    b"publish",
    b"scan",
    b"keys",
    b"setex",
    b"ttl",
    b"unlink",
];

/// The first line, without its end, if it is printable text (to where the capture ends, if
/// it ends first).
fn first_line(bytes: &[u8]) -> Option<&[u8]> {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &bytes[..end.unwrap_or(bytes.len())];
    let ends_well = match end {
        Some(at) => bytes[at..].starts_with(b"\r\n") || bytes.len() == at + 1,
        None => true,
    };
    (ends_well && line.iter().all(|b| (0x20..0x7f).contains(b))).then_some(line)
}

pub(super) fn memcached(bytes: &[u8]) -> Option<Side> {
    let line = first_line(bytes)?;
    if MEMCACHED_REPLIES.iter().any(|r| bytes.starts_with(r))
        || MEMCACHED_REPLY_STARTS
            .iter()
            .any(|r| line.starts_with(r) && line.len() > r.len())
    {
        return Some(Side::Server);
    }
    if let Some(size) = line.strip_prefix(b"VA ") {
        return size
            .first()
            .is_some_and(u8::is_ascii_digit)
            .then_some(Side::Server);
    }
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(at) => (&line[..at], Some(&line[at + 1..])),
        None => (line, None),
    };
    let &(_, needs_arguments) = MEMCACHED_COMMANDS.iter().find(|(c, _)| *c == word)?;
    let fits = match rest {
        // The key (or the argument) follows the one space.
        Some(rest) => rest.first().is_some_and(u8::is_ascii_graphic),
        // The line must have ended right after the command.
        None => !needs_arguments && bytes.len() > line.len(),
    };
    fits.then_some(Side::Client)
}

/// The length or count after a type byte: digits (or -1) and "\r\n", and what follows.
fn count(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let end = bytes.iter().take(12).position(|&b| b == b'\r')?;
    let digits = std::str::from_utf8(&bytes[..end]).ok()?;
    if digits.is_empty()
        || !digits
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let rest = bytes[end..].strip_prefix(b"\r\n")?;
    Some((digits.parse().ok()?, rest))
}

/// Redis: a client's array of bulk strings (a known command first tells the side), or a
/// reply whose type byte is followed by what that type needs.
pub(super) fn redis(bytes: &[u8]) -> Option<Option<Side>> {
    let (&kind, rest) = bytes.split_first()?;
    match kind {
        b'*' => {
            let (n, rest) = count(rest)?;
            let Some(&first) = rest.first() else {
                // A client never sends the null or the empty array.
                return match n {
                    -1 | 0 => Some(Some(Side::Server)),
                    1.. => Some(None),
                    _ => None,
                };
            };
            if n < 1 || !b"$*:+-_#,(=!%~>|".contains(&first) {
                return None;
            }
            let Some(bulk) = rest.strip_prefix(b"$") else {
                // Only replies nest other types in an array.
                return Some(Some(Side::Server));
            };
            let (len, name) = count(bulk)?;
            let name = name.get(..usize::try_from(len).ok()?);
            let command =
                name.is_some_and(|n| REDIS_COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(n)));
            Some(command.then_some(Side::Client))
        }
        b'$' | b':' | b'%' | b'~' | b'>' | b'|' | b'=' | b'!' | b'(' => {
            let (n, _) = count(rest)?;
            (n >= 0 || (n == -1 && kind == b'$')).then_some(Some(Side::Server))
        }
        b'+' | b'-' => {
            let line = first_line(rest)?;
            let ended = rest.len() > line.len();
            // An error starts with its upper-case code (ERR, WRONGTYPE, NOAUTH, ...).
            let code_ok = kind == b'+'
                || line
                    .iter()
                    .take_while(|&&b| b != b' ')
                    .all(u8::is_ascii_uppercase)
                    && !line.is_empty();
            (ended && code_ok).then_some(Some(Side::Server))
        }
        b'_' => rest.starts_with(b"\r\n").then_some(Some(Side::Server)),
        b'#' => matches!(rest, [b't' | b'f', b'\r', b'\n', ..]).then_some(Some(Side::Server)),
        b',' => {
            let line = first_line(rest)?;
            let number = !line.is_empty()
                && std::str::from_utf8(line).is_ok_and(|l| l.parse::<f64>().is_ok());
            (number && rest.len() > line.len()).then_some(Some(Side::Server))
        }
        _ => None,
    }
}
