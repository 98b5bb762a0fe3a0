//! Cache keys made safe to store and easy to group, as SQL statements are: the ids in a key
//! (numbers, UUIDs, long hex strings, tokens) become `?`, the rest stays, so that
//! `keystone:token:3f2b9c1e...` and `user:42:roles` group by what they are.

/// Letters, digits, `-` and `_`: what a token can be made of.
fn in_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `part` is an id: digits, or a hex string (a UUID's dashes aside) of 16 or more
/// digits with a number in it.
fn is_id(part: &str) -> bool {
    let hex: String = part.chars().filter(|&c| c != '-').collect();
    !part.is_empty()
        && (part.chars().all(|c| c.is_ascii_digit())
            || (hex.len() >= 16
                && hex.chars().all(|c| c.is_ascii_hexdigit())
                && hex.chars().any(|c| c.is_ascii_digit())))
}

/// Whether `token` is a long mixed token (32 characters or more with letters and digits:
/// Fernet tokens, base64), replaced whole.
fn is_opaque(token: &str) -> bool {
    token.len() >= 32
        && token.chars().any(|c| c.is_ascii_digit())
        && token.chars().any(|c| c.is_ascii_alphabetic())
}

/// `key` with each id replaced by `?`; within a word with a number (`k42`), the number.
pub fn redact(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut rest = key;
    while let Some(start) = rest.find(in_token) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..]
            .find(|c| !in_token(c))
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        if is_opaque(token) || is_id(token) {
            out.push('?');
        } else {
            redact_parts(token, &mut out);
        }
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

/// Appends `token` part by part (`-` and `_` separate them): ids become `?`, and in the
/// other parts, runs of digits.
fn redact_parts(token: &str, out: &mut String) {
    let mut rest = token;
    loop {
        let end = rest.find(['-', '_']).unwrap_or(rest.len());
        let part = &rest[..end];
        if is_id(part) {
            out.push('?');
        } else {
            redact_numbers(part, out);
        }
        let Some(separator) = rest[end..].chars().next() else {
            return;
        };
        out.push(separator);
        rest = &rest[end + 1..];
    }
}

/// Appends `part` with its runs of digits replaced by `?`.
fn redact_numbers(part: &str, out: &mut String) {
    let mut in_number = false;
    for c in part.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('?');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn ids_in_keys_become_question_marks() {
        for (key, stored) in [
            ("k0", "k?"),
            ("counter", "counter"),
            ("user:42:roles", "user:?:roles"),
            (
                "keystone:token:3f2b9c1e-8d4a-4b6f-9e2d-7a1c5b8e0f34",
                "keystone:token:?",
            ),
            ("project:0123456789abcdef0123456789abcdef", "project:?"),
            // A long token with letters and digits goes whole, its word with it.
            ("project_0123456789abcdef0123456789abcdef", "?"),
            ("session-deadbeefdeadbeef00", "session-?"),
            ("user_42_roles", "user_?_roles"),
            (
                "gAAAAABl3kQ2x9Zr-Xk1_Q5b4sT7uV8wY0zA1bC2dE3fG4hI5jK6lM7nO8pQ",
                "?",
            ),
            ("", ""),
            ("::", "::"),
        ] {
            assert_eq!(redact(key), stored, "{key}");
        }
    }
}
