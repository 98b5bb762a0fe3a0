//! The top-level members of a JSON object, read from a possibly truncated document: the
//! capture keeps only a prefix of a message body, and the members before the cut are still
//! worth having. Nested values are skipped, not decoded. No recursion, no panics.

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JsonValue {
    /// A string; `complete` is false when the document ended inside it.
    Str {
        text: String,
        complete: bool,
    },
    Bool(bool),
    Null,
    Number(String),
    /// An object or array (skipped).
    Nested,
}

#[derive(Debug, Default)]
pub(crate) struct JsonObject {
    pub members: Vec<(String, JsonValue)>,
    /// The closing brace was reached: a key that is absent is really absent.
    pub complete: bool,
    /// The input started as an object (after white space).
    pub is_object: bool,
}

impl JsonObject {
    pub(crate) fn get(&self, key: &str) -> Option<&JsonValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string member that was captured whole.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            JsonValue::Str {
                text,
                complete: true,
            } => Some(text),
            _ => None,
        }
    }
}

pub(crate) fn top_level_members(input: &[u8]) -> JsonObject {
    let mut cursor = Cursor { input, pos: 0 };
    let mut object = JsonObject::default();
    cursor.skip_ws();
    if cursor.next() != Some(b'{') {
        return object;
    }
    object.is_object = true;
    loop {
        cursor.skip_ws();
        match cursor.next() {
            Some(b'}') if object.members.is_empty() => {
                object.complete = true;
                return object;
            }
            Some(b'"') => {}
            _ => return object,
        }
        let Some(Decoded {
            text: key,
            complete: true,
        }) = cursor.string()
        else {
            return object;
        };
        cursor.skip_ws();
        if cursor.next() != Some(b':') {
            return object;
        }
        cursor.skip_ws();
        let value = match cursor.peek() {
            Some(b'"') => {
                cursor.pos += 1;
                match cursor.string() {
                    Some(Decoded {
                        text,
                        complete: false,
                    }) => {
                        let value = JsonValue::Str {
                            text,
                            complete: false,
                        };
                        object.members.push((key, value));
                        return object;
                    }
                    Some(Decoded { text, .. }) => Some(JsonValue::Str {
                        text,
                        complete: true,
                    }),
                    None => return object,
                }
            }
            Some(b'{' | b'[') => {
                if !cursor.skip_nested() {
                    return object;
                }
                Some(JsonValue::Nested)
            }
            Some(b't') if cursor.literal(b"true") => Some(JsonValue::Bool(true)),
            Some(b'f') if cursor.literal(b"false") => Some(JsonValue::Bool(false)),
            Some(b'n') if cursor.literal(b"null") => Some(JsonValue::Null),
            Some(b'-' | b'0'..=b'9') => match cursor.number() {
                Some(number) => Some(JsonValue::Number(number)),
                None => return object,
            },
            _ => return object,
        };
        if let Some(value) = value {
            object.members.push((key, value));
        }
        cursor.skip_ws();
        match cursor.next() {
            Some(b',') => {}
            Some(b'}') => {
                object.complete = true;
                return object;
            }
            _ => return object,
        }
    }
}

struct Decoded {
    text: String,
    complete: bool,
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// A number, only when something after it shows it ended.
    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        self.peek()?;
        Some(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    /// The rest of a string whose opening quote was consumed. `None` on a malformed escape.
    fn string(&mut self) -> Option<Decoded> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(byte) = self.next() else {
                return Some(Decoded {
                    text: String::from_utf8_lossy(&out).into_owned(),
                    complete: false,
                });
            };
            match byte {
                b'"' => {
                    return Some(Decoded {
                        text: String::from_utf8_lossy(&out).into_owned(),
                        complete: true,
                    });
                }
                b'\\' => {
                    let Some(escape) = self.next() else {
                        return Some(Decoded {
                            text: String::from_utf8_lossy(&out).into_owned(),
                            complete: false,
                        });
                    };
                    let plain = match escape {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            match self.unicode_escape() {
                                Escape::Char(c) => {
                                    let mut utf8 = [0; 4];
                                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                                }
                                Escape::Truncated => {
                                    return Some(Decoded {
                                        text: String::from_utf8_lossy(&out).into_owned(),
                                        complete: false,
                                    });
                                }
                                Escape::Invalid => return None,
                            }
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(plain);
                }
                _ => out.push(byte),
            }
        }
    }

    fn hex4(&mut self) -> Option<Result<u32, ()>> {
        let digits = self.input.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        let text = std::str::from_utf8(digits).map_err(|_| ());
        Some(text.and_then(|t| u32::from_str_radix(t, 16).map_err(|_| ())))
    }

    /// After `\u`: one code point, joining a UTF-16 surrogate pair; a lone surrogate
    /// becomes U+FFFD as Python's json would not produce but other encoders might.
    fn unicode_escape(&mut self) -> Escape {
        let high = match self.hex4() {
            None => return Escape::Truncated,
            Some(Err(())) => return Escape::Invalid,
            Some(Ok(unit)) => unit,
        };
        if !(0xD800..0xDC00).contains(&high) {
            return Escape::Char(char::from_u32(high).unwrap_or('\u{FFFD}'));
        }
        if !self.input[self.pos..].starts_with(b"\\u") {
            return if self.input.len() - self.pos < 2 {
                Escape::Truncated
            } else {
                Escape::Char('\u{FFFD}')
            };
        }
        self.pos += 2;
        match self.hex4() {
            None => Escape::Truncated,
            Some(Err(())) => Escape::Invalid,
            Some(Ok(low)) if (0xDC00..0xE000).contains(&low) => {
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                Escape::Char(char::from_u32(code).unwrap_or('\u{FFFD}'))
            }
            Some(Ok(other)) => Escape::Char(char::from_u32(other).unwrap_or('\u{FFFD}')),
        }
    }

    /// Past an object or array (strings inside included); false when the input ended first.
    fn skip_nested(&mut self) -> bool {
        let mut depth = 0usize;
        while let Some(byte) = self.next() {
            match byte {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return true;
                    }
                }
                b'"' => loop {
                    match self.next() {
                        None => return false,
                        Some(b'"') => break,
                        Some(b'\\') => {
                            if self.next().is_none() {
                                return false;
                            }
                        }
                        Some(_) => {}
                    }
                },
                _ => {}
            }
        }
        false
    }
}

enum Escape {
    Char(char),
    Truncated,
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_before_a_cut_are_kept() {
        let object = top_level_members(br#"{"a": "x\"y", "n": 12, "o": {"k": [1, "}"]}, "b": tr"#);
        assert!(!object.complete);
        assert_eq!(object.str("a"), Some("x\"y"));
        assert_eq!(object.get("n"), Some(&JsonValue::Number("12".into())));
        assert_eq!(object.get("o"), Some(&JsonValue::Nested));
        assert_eq!(object.get("b"), None);
    }

    #[test]
    fn a_string_cut_short_is_marked_incomplete() {
        let object = top_level_members(br#"{"m": "{\"method\": \"ad"#);
        assert_eq!(
            object.get("m"),
            Some(&JsonValue::Str {
                text: r#"{"method": "ad"#.into(),
                complete: false
            })
        );
        assert_eq!(object.str("m"), None);
    }

    #[test]
    fn escapes_decode_including_surrogate_pairs() {
        let object = top_level_members(br#"{"s": "\u00e9\ud83d\ude00\n", "t": true, "z": null}"#);
        assert!(object.complete);
        assert_eq!(object.str("s"), Some("é😀\n"));
        assert_eq!(object.get("t"), Some(&JsonValue::Bool(true)));
        assert_eq!(object.get("z"), Some(&JsonValue::Null));
    }

    #[test]
    fn not_an_object() {
        assert!(!top_level_members(b"[1, 2]").is_object);
        assert!(top_level_members(b"{}").complete);
    }
}
