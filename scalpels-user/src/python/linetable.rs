//! Line numbers from a code object's line table, decoded the way CPython's own
//! `PyCode_Addr2Line` does for each format (`Objects/lnotab_notes.txt` for 3.8–3.10,
//! `Objects/locations.md` for 3.11+).

use super::versions::LineFormat;

/// The source line of the instruction `offset` bytes into the code, or `None` when the table
/// says the instruction has no line or does not cover `offset`.
pub fn line_for(format: LineFormat, table: &[u8], first_line: u32, offset: u32) -> Option<u32> {
    let first_line = i64::from(first_line);
    let offset = u64::from(offset);
    let line = match format {
        LineFormat::Lnotab => Some(lnotab(table, first_line, offset)),
        LineFormat::Linetable310 => linetable_310(table, first_line, offset)?,
        LineFormat::Locations => locations(table, first_line, offset)?,
    };
    line.and_then(|line| u32::try_from(line).ok())
}

/// 3.8/3.9: (byte increment, signed line increment) pairs; an increment applies to the
/// instructions from its address on. The table does not know where the code ends.
fn lnotab(table: &[u8], mut line: i64, offset: u64) -> i64 {
    let mut addr = 0;
    for pair in table.chunks_exact(2) {
        addr += u64::from(pair[0]);
        if addr > offset {
            break;
        }
        line += i64::from(pair[1] as i8);
    }
    line
}

/// 3.10: each (byte length, signed line delta) pair is a range of instructions; a delta of
/// -128 marks a range without a line and leaves the running line as it was.
/// `None`: `offset` is past the table; `Some(None)`: in a range without a line.
fn linetable_310(table: &[u8], mut line: i64, offset: u64) -> Option<Option<i64>> {
    let mut end = 0;
    for pair in table.chunks_exact(2) {
        end += u64::from(pair[0]);
        let delta = pair[1] as i8;
        let range_line = (delta != -128).then(|| {
            line += i64::from(delta);
            line
        });
        if offset < end {
            return Some(range_line);
        }
    }
    None
}

/// Location codes of the 3.11+ table.
const ONE_LINE_0: u8 = 10;
const ONE_LINE_2: u8 = 12;
const NO_COLUMNS: u8 = 13;
const LONG: u8 = 14;
const NO_LOCATION: u8 = 15;

/// 3.11+: entries start with a byte with bit 7 set: `code` in bits 3–6, the number of code
/// units covered minus one in bits 0–2. Only the line delta matters here; the column bytes
/// that follow never have bit 7 set, so the next entry is the next such byte.
fn locations(table: &[u8], mut line: i64, offset: u64) -> Option<Option<i64>> {
    let mut end = 0;
    let mut pos = 0;
    while pos < table.len() {
        let head = table[pos];
        if head & 0x80 == 0 {
            // Not an entry start: the table is damaged (or not a table).
            return None;
        }
        let code = (head >> 3) & 15;
        end += (u64::from(head & 7) + 1) * 2;
        let delta = match code {
            NO_LOCATION => None,
            NO_COLUMNS | LONG => Some(signed_varint(table.get(pos + 1..)?)?),
            ONE_LINE_0..=ONE_LINE_2 => Some(i64::from(code - ONE_LINE_0)),
            _ => Some(0),
        };
        // A range without location keeps the running line for the next entries.
        let range_line = delta.map(|delta| {
            line += delta;
            line
        });
        if offset < end {
            return Some(range_line);
        }
        pos += 1;
        while pos < table.len() && table[pos] & 0x80 == 0 {
            pos += 1;
        }
    }
    None
}

/// Little-endian 6-bit chunks, bit 6 set on all but the last; the sign is in the low bit.
fn signed_varint(bytes: &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let shift = 6 * i as u32;
        if shift >= 64 {
            return None;
        }
        value |= u64::from(byte & 63) << shift;
        if byte & 64 == 0 {
            let magnitude = (value >> 1) as i64;
            return Some(if value & 1 == 1 {
                -magnitude
            } else {
                magnitude
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::{test_pythons, versions::layout};

    #[test]
    fn python_lnotab_applies_increments_from_their_address() {
        // line 10 at 0, 11 at 4, 300 (via 127+127+35) at 10, 290 at 300 (via 254 + 36).
        let table = [0, 0, 4, 1, 6, 127, 0, 127, 0, 35, 254, 0, 36, 0xf6];
        let line = |offset| line_for(LineFormat::Lnotab, &table, 10, offset);
        assert_eq!(
            [line(0), line(2), line(4), line(8)],
            [Some(10), Some(10), Some(11), Some(11)]
        );
        assert_eq!(
            [line(10), line(298), line(300), line(400)],
            [Some(300), Some(300), Some(290), Some(290)]
        );
        assert_eq!(line_for(LineFormat::Lnotab, &[], 7, 20), Some(7));
    }

    #[test]
    fn python_310_linetable_ranges_may_have_no_line() {
        // [0, 4) line 6, [4, 6) no line, [6, 514) line 8 (254 + 254 bytes), [514, 516) line 5.
        let table = [4, 1, 2, 0x80, 254, 2, 254, 0, 2, 0xfd];
        let line = |offset| line_for(LineFormat::Linetable310, &table, 5, offset);
        assert_eq!(
            [line(0), line(2), line(4), line(6)],
            [Some(6), Some(6), None, Some(8)]
        );
        assert_eq!(
            [line(300), line(512), line(514), line(516)],
            [Some(8), Some(8), Some(5), None]
        );
    }

    #[test]
    fn python_locations_follow_every_entry_kind() {
        let entries: [&[u8]; 6] = [
            // 1 unit, varint 0: line 20 at 0
            &[0x80 | (NO_COLUMNS << 3), 0x00],
            // 2 units, one-line form +1 with its two column bytes: 21 at 2..6
            &[0x80 | (11 << 3) | 1, 4, 9],
            // 1 unit without location at 6
            &[0x80 | (NO_LOCATION << 3)],
            // 1 unit, short form: still 21 at 8
            &[0x80 | (3 << 3), 0x15],
            // 3 units, varint 66 (+33) then end line and columns: 54 at 10..16
            &[0x80 | (LONG << 3) | 2, 0x40 | 2, 0x01, 1, 5, 9],
            // 1 unit, varint 201 (-100): line -46 at 16
            &[0x80 | (NO_COLUMNS << 3), 0x40 | 9, 0x03],
        ];
        let table = entries.concat();
        let line = |offset| line_for(LineFormat::Locations, &table, 20, offset);
        assert_eq!(
            [line(0), line(2), line(4), line(6), line(8)],
            [Some(20), Some(21), Some(21), None, Some(21)]
        );
        assert_eq!([line(10), line(14)], [Some(54), Some(54)]);
        assert_eq!(line(16), None, "a negative line is no line");
        assert_eq!(line(18), None, "past the table");
    }

    #[test]
    fn python_locations_keep_the_running_line_across_no_location() {
        let entries: [&[u8]; 3] = [
            // +2: line 3
            &[0x80 | (NO_COLUMNS << 3), 0x04],
            // 2 units without location
            &[0x80 | (NO_LOCATION << 3) | 1],
            // -1: line 2, from 3 and not from "no line"
            &[0x80 | (NO_COLUMNS << 3), 0x03],
        ];
        let table = entries.concat();
        let line = |offset| line_for(LineFormat::Locations, &table, 1, offset);
        assert_eq!(
            [line(0), line(2), line(4), line(6)],
            [Some(3), None, None, Some(2)]
        );
    }

    #[test]
    fn python_signed_varints_keep_the_sign_in_the_low_bit() {
        assert_eq!(signed_varint(&[0x00]), Some(0));
        assert_eq!(signed_varint(&[0x04]), Some(2));
        assert_eq!(signed_varint(&[0x05]), Some(-2));
        assert_eq!(
            signed_varint(&[0x40 | 0x02, 0x03]),
            Some((2 | (3 << 6)) >> 1)
        );
        assert_eq!(signed_varint(&[0x40]), None);
    }

    /// Prints, for every code object of argparse (`_parse_known_args` is long) and of a
    /// function with a 300-line gap and a long line, its line table and what CPython says the
    /// line of each instruction is: `co_lines()` ranges (3.10+) or line starts (3.8, 3.9).
    const DUMP_LINE_TABLES: &str = r#"
import argparse, dis, json, sys, types

def walk(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from walk(const)

gaps = ("def gaps(a):\n    x = 1\n" + "\n" * 300 + "    y = [" + ", ".join(["a"] * 300) + "]\n"
        + "    return (x,\n        y,\n    a)\n")
with open(argparse.__file__, encoding="utf-8") as f:
    sources = [(f.read(), argparse.__file__), (gaps, "<gaps>")]
codes = []
for source, name in sources:
    for code in walk(compile(source, name, "exec")):
        entry = {"name": code.co_name, "first_line": code.co_firstlineno, "code_len": len(code.co_code)}
        if sys.version_info >= (3, 10):
            entry["table"] = code.co_linetable.hex()
            entry["ranges"] = list(code.co_lines())
        else:
            entry["table"] = code.co_lnotab.hex()
            entry["starts"] = list(dis.findlinestarts(code))
        codes.append(entry)
print(json.dumps(codes))
"#;

    #[derive(serde::Deserialize)]
    struct DumpedCode {
        name: String,
        first_line: u32,
        code_len: u32,
        table: String,
        ranges: Option<Vec<(u32, u32, Option<u32>)>>,
        starts: Option<Vec<(u32, u32)>>,
    }

    impl DumpedCode {
        fn table(&self) -> Vec<u8> {
            (0..self.table.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&self.table[i..i + 2], 16).unwrap())
                .collect()
        }

        /// (instruction offset, CPython's line) for every instruction.
        fn expected_lines(&self) -> Vec<(u32, Option<u32>)> {
            if let Some(ranges) = &self.ranges {
                return ranges
                    .iter()
                    .flat_map(|&(start, end, line)| (start..end).step_by(2).map(move |o| (o, line)))
                    .collect();
            }
            let starts = self.starts.as_ref().unwrap();
            (0..self.code_len)
                .step_by(2)
                .map(|offset| {
                    let start = starts.iter().rev().find(|&&(addr, _)| addr <= offset);
                    (offset, start.map(|&(_, line)| line))
                })
                .collect()
        }
    }

    #[test]
    fn python_line_tables_agree_with_every_installed_cpython() {
        let script = test_pythons::script("line-tables", DUMP_LINE_TABLES);
        for python in test_pythons::installed() {
            let (major, minor) = python.version;
            let format = layout(major, minor).unwrap().lines;
            let dumped = test_pythons::output(&python, &script);
            let codes: Vec<DumpedCode> = serde_json::from_str(&dumped).unwrap();
            let mut checked = 0;
            for code in &codes {
                let table = code.table();
                for (offset, expected) in code.expected_lines() {
                    let found = line_for(format, &table, code.first_line, offset);
                    assert_eq!(
                        found,
                        expected,
                        "{}: {} at offset {offset}",
                        python.path.display(),
                        code.name
                    );
                    checked += 1;
                }
            }
            assert!(
                checked > 5_000,
                "{}: only {checked} instructions",
                python.path.display()
            );
            assert!(codes.iter().any(|code| code.name == "_parse_known_args"));
        }
        std::fs::remove_file(script).unwrap();
    }
}
