//! SQL statements made safe to store and easy to group, like pg_stat_statements does:
//! literals (strings, numbers, hex and bit strings, dollar-quoted bodies) become `?`, lists of
//! them in `IN (...)` become one `?`, repeated `VALUES (...)` rows become one, comments go,
//! whitespace collapses to one space. Identifiers (`"quoted"`, `` `quoted` ``) and
//! placeholders (`?`, `$1`) stay as written. The lexer knows the MySQL, PostgreSQL and SQLite
//! spellings at once; it never fails, whatever the bytes.
//!
//! Double-quoted text is taken as an identifier (SQL standard, PostgreSQL, SQLite, MySQL's
//! ANSI_QUOTES) even though MySQL's default mode reads it as a string: the clients that
//! matter here (PyMySQL, SQLAlchemy) always send string values in single quotes. Likewise a
//! backslash escapes the next character in single-quoted strings (MySQL's default): a
//! PostgreSQL standard string ending in a backslash then runs to the end of the statement,
//! which loses its tail but never shows a literal.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Literal,
    /// A placeholder the client left for the server (`?`, `$1`): kept as written.
    Param,
    Punct,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    space_before: bool,
}

/// The statement with its literals replaced by `?`.
pub fn normalize(statement: &str) -> String {
    let mut tokens = lex(statement);
    collapse_in_lists(statement, &mut tokens);
    collapse_values_rows(statement, &mut tokens);
    while tokens
        .last()
        .is_some_and(|t| t.kind == Kind::Punct && &statement[t.start..t.end] == ";")
    {
        tokens.pop();
    }
    render(statement, &tokens)
}

/// FNV-1a (64 bit) of the normalized statement. Its constants are fixed by its definition,
/// so the value is the same on every host, run and Rust version (std's hashers promise none
/// of that), and it needs no dependency.
pub fn fingerprint(normalized: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    normalized.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => {
                space = true;
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = line_end(bytes, i);
                space = true;
                continue;
            }
            b'#' if !matches!(next, Some(b'>' | b'-')) => {
                i = line_end(bytes, i);
                space = true;
                continue;
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i);
                space = true;
                continue;
            }
            b'\'' => {
                i = quoted_end(bytes, i, b'\'', true);
                Kind::Literal
            }
            b'"' | b'`' => {
                i = quoted_end(bytes, i, c, false);
                Kind::Word
            }
            b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = digits_end(bytes, i + 1);
                Kind::Param
            }
            b'$' => match dollar_quote_end(bytes, i) {
                Some(end) => {
                    i = end;
                    Kind::Literal
                }
                None => {
                    i += 1;
                    Kind::Punct
                }
            },
            b'?' => {
                i += 1;
                Kind::Param
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                Kind::Literal
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = number_end(bytes, i);
                Kind::Literal
            }
            b'-' if next.is_some_and(|n| n.is_ascii_digit() || n == b'.')
                && follows_operator(text, &tokens) =>
            {
                i = number_end(bytes, i + 1);
                Kind::Literal
            }
            c if is_word_byte(c) => {
                i = word_end(bytes, i);
                if bytes.get(i) == Some(&b'\'') && is_string_prefix(&text[start..i]) {
                    i = quoted_end(bytes, i, b'\'', true);
                    Kind::Literal
                } else {
                    Kind::Word
                }
            }
            _ => {
                i += 1;
                Kind::Punct
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
            space_before: space,
        });
        space = false;
    }
    tokens
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_word_byte(bytes[i]) {
        i += 1;
    }
    i
}

fn digits_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// E'..', N'..', X'..', B'..', U&'..' (the & is lexed before), and MySQL charset
/// introducers like _utf8mb4'..'.
fn is_string_prefix(word: &str) -> bool {
    matches!(
        word.to_ascii_uppercase().as_str(),
        "E" | "N" | "X" | "B" | "U"
    ) || word.starts_with('_')
}

/// Digits, a fraction, an exponent; or 0x / 0b and their digits. Letters glued to the end
/// (MySQL allows `1e`, `123abc` is an identifier there) are taken along so they never
/// become a separate word.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        return word_end(bytes, i + 2);
    }
    i = digits_end(bytes, i);
    if bytes.get(i) == Some(&b'.') {
        i = digits_end(bytes, i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(|c| c.is_ascii_digit()) {
            i = digits_end(bytes, j);
        }
    }
    word_end(bytes, i)
}

/// A minus sign is part of the number when nothing that could be its left operand is
/// before it.
fn follows_operator(text: &str, tokens: &[Token]) -> bool {
    match tokens.last() {
        None => true,
        Some(t) => t.kind == Kind::Punct && &text[t.start..t.end] != ")",
    }
}

fn line_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(bytes.len(), |p| i + p + 1)
}

/// `/* ... */`, nested as PostgreSQL nests them; unterminated runs to the end.
fn block_comment_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A quoted run from its opening quote: a doubled quote is one quote inside; with
/// `backslash`, a backslash escapes the next byte (MySQL strings, PostgreSQL E'' strings).
/// Unterminated runs to the end.
fn quoted_end(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            c if c == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (PostgreSQL), None if what follows the `$` is not a tag.
fn dollar_quote_end(bytes: &[u8], open: usize) -> Option<usize> {
    let tag_end = open
        + 1
        + bytes[open + 1..]
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
            .unwrap_or(bytes.len() - open - 1);
    if bytes.get(tag_end) != Some(&b'$') {
        return None;
    }
    let tag = &bytes[open..=tag_end];
    let body = tag_end + 1;
    Some(
        bytes[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(bytes.len(), |p| body + p + tag.len()),
    )
}

fn is_value(t: &Token) -> bool {
    matches!(t.kind, Kind::Literal | Kind::Param)
}

fn is_punct(text: &str, t: &Token, p: &str) -> bool {
    t.kind == Kind::Punct && &text[t.start..t.end] == p
}

fn is_word(text: &str, t: &Token, w: &str) -> bool {
    t.kind == Kind::Word && text[t.start..t.end].eq_ignore_ascii_case(w)
}

/// `IN (?, ?, ?)` -> `IN (?)`: the list's length should not make another statement.
fn collapse_in_lists(text: &str, tokens: &mut Vec<Token>) {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i]);
        let opens_list = is_word(text, &tokens[i], "IN")
            && tokens.get(i + 1).is_some_and(|t| is_punct(text, t, "("));
        if opens_list && let Some(close) = value_list_end(text, tokens, i + 2) {
            out.push(tokens[i + 1]);
            out.push(Token {
                kind: Kind::Literal,
                space_before: tokens[i + 2].space_before,
                ..tokens[i + 2]
            });
            out.push(tokens[close]);
            i = close + 1;
            continue;
        }
        i += 1;
    }
    *tokens = out;
}

/// From the first item of a parenthesised list: the index of its `)` if the list is only
/// values separated by commas.
fn value_list_end(text: &str, tokens: &[Token], first: usize) -> Option<usize> {
    let mut i = first;
    loop {
        if !is_value(tokens.get(i)?) {
            return None;
        }
        let after = tokens.get(i + 1)?;
        if is_punct(text, after, ")") {
            return Some(i + 1);
        }
        if !is_punct(text, after, ",") {
            return None;
        }
        i += 2;
    }
}

/// `VALUES (?, ?), (?, ?)` -> `VALUES (?, ?)`: a batch insert is the same statement
/// whatever its number of rows.
fn collapse_values_rows(text: &str, tokens: &mut Vec<Token>) {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i]);
        if is_word(text, &tokens[i], "VALUES")
            && let Some(first_end) = group_end(text, tokens, i + 1)
        {
            let first = &tokens[i + 1..=first_end];
            out.extend_from_slice(first);
            let mut at = first_end + 1;
            while tokens.get(at).is_some_and(|t| is_punct(text, t, ",")) {
                match group_end(text, tokens, at + 1) {
                    Some(end) if same_tokens(text, first, &tokens[at + 1..=end]) => {
                        at = end + 1;
                    }
                    _ => break,
                }
            }
            i = at;
            continue;
        }
        i += 1;
    }
    *tokens = out;
}

/// The index of the `)` closing the group that opens at `open`.
fn group_end(text: &str, tokens: &[Token], open: usize) -> Option<usize> {
    if !is_punct(text, tokens.get(open)?, "(") {
        return None;
    }
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if is_punct(text, t, "(") {
            depth += 1;
        } else if is_punct(text, t, ")") {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn same_tokens(text: &str, a: &[Token], b: &[Token]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.kind == y.kind
                && (x.kind == Kind::Literal || text[x.start..x.end] == text[y.start..y.end])
        })
}

fn render(text: &str, tokens: &[Token]) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 && t.space_before {
            out.push(' ');
        }
        match t.kind {
            Kind::Literal => out.push('?'),
            _ => out.push_str(&text[t.start..t.end]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s)
    }

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            n("SELECT id, name FROM items WHERE price > 0.5e0 AND name = 'o''k' AND x = -3"),
            "SELECT id, name FROM items WHERE price > ? AND name = ? AND x = ?"
        );
        assert_eq!(
            n("SELECT 'a\\'b', x'FF', 0x1F, B'101', E'\\n'"),
            "SELECT ?, ?, ?, ?, ?"
        );
        assert_eq!(
            n("SELECT _utf8mb4'abc' COLLATE utf8mb4_bin"),
            "SELECT ? COLLATE utf8mb4_bin"
        );
        assert_eq!(n("SELECT $fn$ body ' $fn$, $$x$$"), "SELECT ?, ?");
        assert_eq!(n("SELECT a-1, t1.c2 FROM t1"), "SELECT a-?, t1.c2 FROM t1");
        assert_eq!(n("SELECT .5, 1., 1e-3"), "SELECT ?, ?, ?");
    }

    #[test]
    fn identifiers_and_placeholders_stay() {
        assert_eq!(
            n(r#"SELECT "User"."id" FROM `t` WHERE a = $1 AND b = ? AND c = NULL"#),
            r#"SELECT "User"."id" FROM `t` WHERE a = $1 AND b = ? AND c = NULL"#
        );
    }

    #[test]
    fn comments_and_whitespace_go() {
        assert_eq!(
            n("  SELECT /* hint /* nested */ */ 1 -- tail\n FROM\tt # mysql\n;  "),
            "SELECT ? FROM t"
        );
        assert_eq!(n("SELECT/**/1"), "SELECT ?");
        assert_eq!(n("SELECT j #> '{a}' FROM t"), "SELECT j #> ? FROM t");
    }

    #[test]
    fn lists_collapse() {
        assert_eq!(
            n("DELETE FROM t WHERE id IN (1, 2, 3)"),
            "DELETE FROM t WHERE id IN (?)"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE id in ($1,$2)"),
            "SELECT * FROM t WHERE id in (?)"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE id IN (a, 2)"),
            "SELECT * FROM t WHERE id IN (a, ?)"
        );
        assert_eq!(
            n("INSERT INTO t VALUES (1, 'a'), (2, 'b'),(3, 'c') ON DUPLICATE KEY UPDATE x=1"),
            "INSERT INTO t VALUES (?, ?) ON DUPLICATE KEY UPDATE x=?"
        );
        assert_eq!(
            n("INSERT INTO t VALUES (1, now()), (2, 'b')"),
            "INSERT INTO t VALUES (?, now()), (?, ?)"
        );
    }

    #[test]
    fn unterminated_input_does_not_fail() {
        for s in [
            "'abc",
            "/* x",
            "$a$ no end",
            "\"id",
            "x IN (1, 2",
            "VALUES (1",
            "-",
            "$",
        ] {
            normalize(s);
        }
    }

    #[test]
    fn fingerprint_is_pinned() {
        // FNV-1a test vectors: a change here breaks every stored fingerprint.
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fingerprint(&n("SELECT * FROM t WHERE id = 1")),
            fingerprint(&n("SELECT  * FROM t\nWHERE id = 42 -- other"))
        );
    }
}
