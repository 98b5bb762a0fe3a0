//! Code objects read from a Python process, and the symbolizer that turns what the stack
//! sampler saw (code object address, instruction) into function, file and line, reading each
//! code object once per process.

use anyhow::{Context as _, Result};
use rustc_hash::FxHashMap;

use super::{
    linetable,
    memory::ProcessMemory,
    versions::{Instr, Layout, LineFormat},
};

/// What a code object says about itself, enough to name any instruction in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    /// `co_qualname` (3.11+, e.g. `Outer.method`), else `co_name`.
    pub function: String,
    pub file: String,
    pub first_line: u32,
    table: Vec<u8>,
    format: LineFormat,
    /// Where its name and line table live: if either changes, the address now holds another
    /// code object (the first was freed and its memory reused).
    identity: [u64; 2],
}

impl CodeInfo {
    /// The line of the instruction `offset` bytes into the code.
    pub fn line(&self, offset: u32) -> Option<u32> {
        linetable::line_for(self.format, &self.table, self.first_line, offset)
    }
}

/// Reads the code object at `code_addr` in `mem`'s process.
pub fn read(mem: &ProcessMemory, code_addr: u64, layout: &Layout) -> Result<CodeInfo> {
    let field = |offset: u32| code_addr.wrapping_add(u64::from(offset));
    let pointer = |offset: u32, what: &str| {
        mem.read_u64(field(offset))
            .with_context(|| format!("reading {what} of code object {code_addr:#x}"))
    };
    let name = pointer(layout.code_qualname.unwrap_or(layout.code_name), "the name")?;
    let function = mem
        .read_ascii_str(name, layout)
        .with_context(|| format!("reading the name of code object {code_addr:#x}"))?;
    let file = mem
        .read_ascii_str(pointer(layout.code_filename, "the file name")?, layout)
        .with_context(|| format!("reading the file name of code object {code_addr:#x}"))?;
    let first_line = mem
        .read_i32(field(layout.code_firstlineno))
        .with_context(|| format!("reading the first line of code object {code_addr:#x}"))?;
    let first_line = u32::try_from(first_line).with_context(|| {
        format!("code object {code_addr:#x} has first line {first_line}: not a code object?")
    })?;
    let table_addr = pointer(layout.code_linetable, "the line table")?;
    let table = mem
        .read_bytes_object(table_addr)
        .with_context(|| format!("reading the line table of code object {code_addr:#x}"))?;
    Ok(CodeInfo {
        identity: [name, table_addr],
        function,
        file,
        first_line,
        table,
        format: layout.lines,
    })
}

/// A symbolized Python frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: Option<u32>,
}

/// What the frame of an unreadable code object is called.
pub const UNKNOWN_FUNCTION: &str = "<unknown>";

/// The frame of a code object that could not be read.
pub fn unknown_frame() -> Frame {
    Frame {
        function: UNKNOWN_FUNCTION.to_owned(),
        file: String::new(),
        line: None,
    }
}

/// Reads of a code object tried before it is taken as unreadable: a sample can catch a frame
/// being set up, whose code pointer is not yet the frame's, and a read can fail once.
const READ_ATTEMPTS: u32 = 3;

/// What is known of one (process, code object).
#[derive(Debug)]
enum Cached {
    /// Read, and still the same code object at the given check; with the lines of the
    /// instruction offsets named so far (decoding a line table walks it from its start).
    Read(CodeInfo, u64, FxHashMap<u32, Option<u32>>),
    /// Failed this many times.
    Failed(u32),
}

/// Symbolizes frames, reading each (process, code object) once: code objects of running code
/// stay alive and unchanged; one that could not be read is tried a few times, then given up.
#[derive(Debug, Default)]
pub struct Symbolizer {
    codes: FxHashMap<(u32, u64), Cached>,
    /// Counts batches of samples: each code object is checked once per batch.
    check: u64,
}

impl Symbolizer {
    /// The frame of code object `code_addr` in `pid`, at `instr`: the raw value the stack
    /// sampler read at `layout.frame_instr` (a pointer for 3.11+, else `f_lasti`, of which only
    /// the low 32 bits count so that a zero- or sign-extended -1 both work).
    pub fn frame(&mut self, pid: u32, layout: &Layout, code_addr: u64, instr: u64) -> Frame {
        let check = self.check;
        let memory = ProcessMemory::new(pid);
        let cached = self
            .codes
            .entry((pid, code_addr))
            .or_insert(Cached::Failed(0));
        if let Cached::Read(code, checked, _) = cached
            && *checked != check
        {
            let name = layout.code_qualname.unwrap_or(layout.code_name);
            let identity = [name, layout.code_linetable].map(|offset| {
                memory
                    .read_u64(code_addr.wrapping_add(u64::from(offset)))
                    .ok()
            });
            if still_the_same(code, &identity) {
                *checked = check;
            } else {
                *cached = Cached::Failed(0);
            }
        }
        if let Cached::Failed(attempts) = *cached
            && attempts < READ_ATTEMPTS
        {
            *cached = match read(&memory, code_addr, layout) {
                Ok(code) => Cached::Read(code, check, FxHashMap::default()),
                Err(_) => Cached::Failed(attempts + 1),
            };
        }
        let Cached::Read(code, _, lines) = cached else {
            return unknown_frame();
        };
        let line = match instruction_offset(layout, code_addr, instr) {
            Position::BeforeFirst => Some(code.first_line),
            Position::Offset(offset) => *lines.entry(offset).or_insert_with(|| code.line(offset)),
            Position::Invalid => None,
        };
        Frame {
            function: code.function.clone(),
            file: code.file.clone(),
            line,
        }
    }

    /// Checks, in one read of `pid`'s memory, the code objects among `code_addrs` read before
    /// and not yet checked in this batch, so that naming their frames reads nothing.
    pub fn check(&mut self, pid: u32, layout: &Layout, code_addrs: impl Iterator<Item = u64>) {
        let name = layout.code_qualname.unwrap_or(layout.code_name);
        let mut unchecked: Vec<u64> = code_addrs
            .filter(|&addr| {
                matches!(self.codes.get(&(pid, addr)),
                    Some(Cached::Read(_, checked, _)) if *checked != self.check)
            })
            .collect();
        unchecked.sort_unstable();
        unchecked.dedup();
        // The name and line-table pointers are neighbours in every version's PyCodeObject:
        // one run of words per code object, from the first to the last.
        let (first, last) = (
            name.min(layout.code_linetable),
            name.max(layout.code_linetable),
        );
        let len = ((last - first) / 8 + 1) as usize;
        let starts: Vec<u64> = unchecked
            .iter()
            .map(|&addr| addr.wrapping_add(u64::from(first)))
            .collect();
        let words = ProcessMemory::new(pid).read_runs(&starts, len);
        let pick = |run: &[Option<u64>], offset: u32| run[((offset - first) / 8) as usize];
        for (addr, run) in unchecked.iter().zip(words.chunks_exact(len)) {
            let identity = [pick(run, name), pick(run, layout.code_linetable)];
            let Some(cached) = self.codes.get_mut(&(pid, *addr)) else {
                continue;
            };
            if let Cached::Read(code, checked, _) = cached {
                if still_the_same(code, &identity) {
                    *checked = self.check;
                } else {
                    *cached = Cached::Failed(0);
                }
            }
        }
    }

    /// Starts a new batch of samples: code objects are checked again before they are trusted.
    pub fn next_batch(&mut self) {
        self.check += 1;
    }

    /// Drops what was read from `pid` (it exited: its addresses may be reused by another).
    pub fn forget(&mut self, pid: u32) {
        self.codes.retain(|&(code_pid, _), _| code_pid != pid);
    }
}

/// Whether a code object read before is still there: `identity` is what its address now
/// holds where its name and line table were (`None`: not readable). Memory that cannot be read
/// shows no other object there: the process has exited (its last samples are often handled
/// after that, and their code was read while it ran) or the object's pages are gone, so what
/// was read stands.
fn still_the_same(code: &CodeInfo, identity: &[Option<u64>]) -> bool {
    match identity {
        [Some(name), Some(table)] => [*name, *table] == code.identity,
        _ => true,
    }
}

/// Where a frame is in its code.
#[derive(Debug, PartialEq, Eq)]
enum Position {
    /// The frame has not run an instruction yet (`f_lasti` -1, or `prev_instr` one code unit
    /// before the code): CPython reports the first line.
    BeforeFirst,
    /// Bytes from the start of the code.
    Offset(u32),
    Invalid,
}

const CODE_UNIT: u64 = 2;

fn instruction_offset(layout: &Layout, code_addr: u64, instr: u64) -> Position {
    let lasti = instr as u32 as i32;
    let offset = match layout.instr {
        Instr::LastiBytes if lasti == -1 => return Position::BeforeFirst,
        Instr::LastiBytes => u64::try_from(lasti).ok(),
        Instr::LastiCodeUnits if lasti == -1 => return Position::BeforeFirst,
        Instr::LastiCodeUnits => u64::try_from(lasti).ok().map(|units| units * CODE_UNIT),
        Instr::Pointer => {
            let Some(start) = layout
                .code_adaptive
                .map(|a| code_addr.wrapping_add(u64::from(a)))
            else {
                return Position::Invalid;
            };
            if instr.wrapping_add(CODE_UNIT) == start {
                return Position::BeforeFirst;
            }
            instr.checked_sub(start)
        }
    };
    match offset.and_then(|offset| u32::try_from(offset).ok()) {
        Some(offset) => Position::Offset(offset),
        None => Position::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::{test_pythons, versions::layout};

    /// `check` reads a code object's name and line-table pointers as one run of words.
    #[test]
    fn python_code_identity_fields_are_neighbouring_words_in_every_version() {
        for minor in 8..=13 {
            let l = layout(3, minor).unwrap();
            let name = l.code_qualname.unwrap_or(l.code_name);
            let gap = name.abs_diff(l.code_linetable);
            assert!(
                gap.is_multiple_of(8) && gap <= 64,
                "3.{minor}: {name} and {}",
                l.code_linetable
            );
        }
    }

    #[test]
    fn python_instructions_become_byte_offsets() {
        let py39 = layout(3, 9).unwrap();
        let py310 = layout(3, 10).unwrap();
        let py312 = layout(3, 12).unwrap();
        let code = 0x1000;
        assert_eq!(instruction_offset(&py39, code, 12), Position::Offset(12));
        assert_eq!(instruction_offset(&py310, code, 12), Position::Offset(24));
        assert_eq!(
            instruction_offset(&py310, code, u64::MAX),
            Position::BeforeFirst
        );
        assert_eq!(
            instruction_offset(&py39, code, 0xffff_ffff),
            Position::BeforeFirst
        );
        assert_eq!(
            instruction_offset(&py39, code, 0xffff_fff0),
            Position::Invalid
        );
        assert_eq!(
            instruction_offset(&py312, code, code + 192 + 6),
            Position::Offset(6)
        );
        assert_eq!(
            instruction_offset(&py312, code, code + 190),
            Position::BeforeFirst
        );
        assert_eq!(instruction_offset(&py312, code, 8), Position::Invalid);
    }

    #[test]
    fn python_unreadable_code_objects_are_unknown_and_forgotten_with_their_process() {
        let mut symbolizer = Symbolizer::default();
        let py311 = layout(3, 11).unwrap();
        let frame = symbolizer.frame(std::process::id(), &py311, 8, 0);
        assert_eq!(frame.function, UNKNOWN_FUNCTION);
        assert_eq!(frame.line, None);
        assert_eq!(symbolizer.codes.len(), 1);
        symbolizer.frame(std::process::id(), &py311, 8, 0);
        assert_eq!(symbolizer.codes.len(), 1, "the failure is cached");
        symbolizer.forget(std::process::id());
        assert!(symbolizer.codes.is_empty());
    }

    /// `Outer.method` starts at line 5; `café` and `日本` are stored with 1- and 2-byte
    /// characters.
    const PRINT_CODE_OBJECTS: &str = r#"import json, sys, time


class Outer:
    def method(self):
        x = 1
        return x + 1


def café():
    pass


def 日本():
    pass


code = Outer.method.__code__
print(json.dumps({
    "method": id(code),
    "lines": list(code.co_lines()) if sys.version_info >= (3, 10) else [],
    "latin1": id(café.__code__),
    "ucs2": id(日本.__code__),
}), flush=True)
time.sleep(600)
"#;

    #[derive(serde::Deserialize)]
    struct Printed {
        method: u64,
        lines: Vec<(u32, u32, Option<u32>)>,
        latin1: u64,
        ucs2: u64,
    }

    #[test]
    fn python_code_objects_read_from_every_installed_cpython() {
        let script = test_pythons::script("code-objects", PRINT_CODE_OBJECTS);
        for python in test_pythons::installed() {
            let (major, minor) = python.version;
            let layout = layout(major, minor).unwrap();
            let running = test_pythons::Running::start(&python, &script);
            let printed: Printed = serde_json::from_str(&running.first_line).unwrap();
            let mem = ProcessMemory::new(running.pid());
            let which = python.path.display();
            let method = read(&mem, printed.method, &layout).unwrap();
            let expected_name = if minor >= 11 {
                "Outer.method"
            } else {
                "method"
            };
            assert_eq!(method.function, expected_name, "{which}");
            assert_eq!(method.file, script.to_str().unwrap(), "{which}");
            assert_eq!(method.first_line, 5, "{which}");
            for &(start, end, line) in &printed.lines {
                for offset in (start..end).step_by(2) {
                    assert_eq!(method.line(offset), line, "{which} at offset {offset}");
                }
            }
            assert_eq!(minor >= 10, !printed.lines.is_empty());
            assert_eq!(
                read(&mem, printed.latin1, &layout).unwrap().function,
                "café"
            );
            assert_eq!(read(&mem, printed.ucs2, &layout).unwrap().function, "日本");
            // Samples handled after the process exited still name the code they ran.
            let mut symbolizer = Symbolizer::default();
            let pid = running.pid();
            let frame = |s: &mut Symbolizer| s.frame(pid, &layout, printed.method, 0).function;
            assert_eq!(frame(&mut symbolizer), expected_name, "{which}");
            drop(running);
            symbolizer.next_batch();
            assert_eq!(frame(&mut symbolizer), expected_name, "{which}");
        }
        std::fs::remove_file(script).unwrap();
    }
}
