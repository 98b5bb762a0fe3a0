//! USDT (SystemTap SDT) probes of an ELF file: the `.note.stapsdt` notes that say where each
//! probe is, where its semaphore is, and in which registers its arguments are.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail, ensure};
use object::{Object as _, ObjectSection as _, ObjectSegment as _};

const NOTE_OWNER: &[u8] = b"stapsdt";
const NOTE_TYPE: u32 = 3;

/// One probe, addresses as the ELF file's virtual addresses (prelink-adjusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub provider: String,
    pub name: String,
    pub address: u64,
    /// Where uprobes attach: `address` as an offset in the file.
    pub file_offset: u64,
    /// The u16 counter that enables the probe while non-zero, if it has one.
    pub semaphore: Option<u64>,
    pub args: Vec<Arg>,
}

/// One argument: its size in bytes (negative: signed) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub size: i8,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In a register: the name of its `struct pt_regs` member.
    Register(&'static str),
    /// Anywhere else (memory, constants): not read by Scalpels.
    Unsupported(String),
}

/// The probes of ELF file `path` (none if it has no `.note.stapsdt`).
pub fn probes(path: &Path) -> Result<Vec<Probe>> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    probes_in(&data).with_context(|| format!("reading the USDT probes of {}", path.display()))
}

fn probes_in(data: &[u8]) -> Result<Vec<Probe>> {
    let elf = object::File::parse(data).context("parsing the ELF file")?;
    let Some(notes) = elf.section_by_name(".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let notes = notes.data().context("reading .note.stapsdt")?;
    let base = elf.section_by_name(".stapsdt.base").map(|s| s.address());
    let segments: Vec<(u64, u64, u64)> = elf
        .segments()
        .map(|s| (s.address(), s.file_range().1, s.file_range().0))
        .collect();
    let mut found = Vec::new();
    for desc in stapsdt_descs(notes)? {
        let mut probe = parse_desc(desc)?;
        // Prelink moves sections after the notes were written: `.stapsdt.base` says by how much.
        if let Some(actual) = base {
            let shift = actual.wrapping_sub(probe_base(desc));
            probe.address = probe.address.wrapping_add(shift);
            probe.semaphore = probe.semaphore.map(|s| s.wrapping_add(shift));
        }
        probe.file_offset = file_offset(&segments, probe.address).with_context(|| {
            format!(
                "probe {}:{} at {:#x} is in no loaded segment",
                probe.provider, probe.name, probe.address
            )
        })?;
        found.push(probe);
    }
    Ok(found)
}

/// The descriptions of the notes of owner "stapsdt", type 3.
fn stapsdt_descs(mut notes: &[u8]) -> Result<Vec<&[u8]>> {
    let align4 = |n: usize| (n + 3) & !3;
    let mut descs = Vec::new();
    while notes.len() >= 12 {
        let word = |i: usize| u32::from_le_bytes(notes[i..i + 4].try_into().expect("4 bytes"));
        let (name_size, desc_size, kind) = (word(0) as usize, word(4) as usize, word(8));
        let desc_start = 12 + align4(name_size);
        let end = desc_start + align4(desc_size);
        ensure!(
            desc_start + desc_size <= notes.len(),
            "a note runs past the end of its section"
        );
        let owner = &notes[12..12 + name_size];
        if owner.strip_suffix(b"\0") == Some(NOTE_OWNER) && kind == NOTE_TYPE {
            descs.push(&notes[desc_start..desc_start + desc_size]);
        }
        notes = &notes[end.min(notes.len())..];
    }
    Ok(descs)
}

fn probe_base(desc: &[u8]) -> u64 {
    u64::from_le_bytes(desc[8..16].try_into().expect("checked by parse_desc"))
}

/// pc, base, semaphore (u64 each), then provider, name and arguments, NUL-terminated.
fn parse_desc(desc: &[u8]) -> Result<Probe> {
    ensure!(desc.len() >= 24, "a stapsdt note of {} bytes", desc.len());
    let word = |i: usize| u64::from_le_bytes(desc[i..i + 8].try_into().expect("8 bytes"));
    let mut strings = desc[24..].split(|&b| b == 0);
    let mut text = |what: &str| -> Result<String> {
        let bytes = strings
            .next()
            .with_context(|| format!("a stapsdt note without its {what}"))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    };
    let provider = text("provider")?;
    let name = text("name")?;
    let args = text("arguments")?;
    Ok(Probe {
        provider,
        name,
        address: word(0),
        file_offset: 0,
        semaphore: Some(word(16)).filter(|&s| s != 0),
        args: parse_args(&args)?,
    })
}

/// (address, file size, file offset) of each segment -> the file offset of `address`.
fn file_offset(segments: &[(u64, u64, u64)], address: u64) -> Option<u64> {
    segments
        .iter()
        .find(|&&(start, size, _)| (start..start + size).contains(&address))
        .map(|&(start, _, offset)| address - start + offset)
}

/// `8@%rbp 8@%r12 -4@%eax` -> the arguments.
pub fn parse_args(spec: &str) -> Result<Vec<Arg>> {
    spec.split_whitespace()
        .map(|arg| {
            let (size, operand) = arg
                .split_once('@')
                .with_context(|| format!("USDT argument {arg:?} has no size"))?;
            let size: i8 = size
                .parse()
                .with_context(|| format!("USDT argument {arg:?} has a bad size"))?;
            if !matches!(size.unsigned_abs(), 1 | 2 | 4 | 8) {
                bail!("USDT argument {arg:?} has size {size}");
            }
            let location = operand
                .strip_prefix('%')
                .and_then(pt_regs_member)
                .map_or_else(
                    || Location::Unsupported(operand.to_string()),
                    Location::Register,
                );
            Ok(Arg { size, location })
        })
        .collect()
}

/// An x86_64 register (any width: `rax`, `eax`, `ax`, `al`, `r12d`...) -> its `pt_regs` member.
fn pt_regs_member(register: &str) -> Option<&'static str> {
    const NUMBERED: [&str; 8] = ["r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    if let Some(numbered) = NUMBERED.iter().find(|&&r| {
        register
            .strip_prefix(r)
            .is_some_and(|width| matches!(width, "" | "d" | "w" | "b"))
    }) {
        return Some(numbered);
    }
    let legacy = register
        .strip_prefix('r')
        .or_else(|| register.strip_prefix('e'))
        .unwrap_or(register);
    Some(match legacy {
        "ax" | "al" | "ah" => "ax",
        "bx" | "bl" | "bh" => "bx",
        "cx" | "cl" | "ch" => "cx",
        "dx" | "dl" | "dh" => "dx",
        "si" | "sil" => "si",
        "di" | "dil" => "di",
        "bp" | "bpl" => "bp",
        "sp" | "spl" => "sp",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usdt_args_name_pt_regs_members() {
        let args = parse_args("8@%rbp 8@%r12 -4@%eax -4@%r12d 1@%sil -4@112(%rsp)").unwrap();
        let locations: Vec<_> = args.iter().map(|a| a.location.clone()).collect();
        assert_eq!(
            locations,
            [
                Location::Register("bp"),
                Location::Register("r12"),
                Location::Register("ax"),
                Location::Register("r12"),
                Location::Register("si"),
                Location::Unsupported("112(%rsp)".into()),
            ]
        );
        assert_eq!(args[2].size, -4);
        assert!(parse_args("3@%rax").is_err());
        assert!(parse_args("%rax").is_err());
    }

    fn note(owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let pad = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
        let mut note = Vec::new();
        note.extend((owner.len() as u32).to_le_bytes());
        note.extend((desc.len() as u32).to_le_bytes());
        note.extend(kind.to_le_bytes());
        note.extend(owner);
        pad(&mut note);
        note.extend(desc);
        pad(&mut note);
        note
    }

    #[test]
    fn usdt_notes_parse() {
        let mut desc = Vec::new();
        for word in [0x4f20a1u64, 0x8cc5a0, 0xa84260] {
            desc.extend(word.to_le_bytes());
        }
        desc.extend(b"python\0function__entry\08@%rbp 8@%r12 -4@%eax\0");
        let mut section = note(b"GNU\0", NOTE_TYPE, &[0; 8]);
        section.extend(note(b"stapsdt\0", NOTE_TYPE, &desc));
        let descs = stapsdt_descs(&section).unwrap();
        assert_eq!(descs.len(), 1);
        let probe = parse_desc(descs[0]).unwrap();
        assert_eq!(probe_base(descs[0]), 0x8cc5a0);
        assert_eq!(
            (probe.provider.as_str(), probe.name.as_str()),
            ("python", "function__entry")
        );
        assert_eq!(probe.address, 0x4f20a1);
        assert_eq!(probe.semaphore, Some(0xa84260));
        assert_eq!(probe.args.len(), 3);
        let segments = [(0x400000, 0x1e3e8, 0), (0x41f000, 0x2b2289, 0x1f000)];
        assert_eq!(file_offset(&segments, 0x4f20a1), Some(0xf20a1));
        assert_eq!(file_offset(&segments, 0x300000), None);
    }

    #[test]
    fn debian_python_has_function_probes() {
        let probes = probes(crate::python::test_pythons::debian()).unwrap();
        let entry = probes
            .iter()
            .find(|p| p.provider == "python" && p.name == "function__entry")
            .expect("function__entry");
        assert!(entry.semaphore.is_some());
        assert_eq!(entry.args.len(), 3);
        assert!(matches!(entry.args[0].location, Location::Register(_)));
        assert!(probes.iter().any(|p| p.name == "function__return"));
        assert!(probes.iter().any(|p| p.name == "line"));
        // Non-PIE, first segment at 0x400000 from offset 0: offset = address - 0x400000.
        assert_eq!(entry.file_offset, entry.address - 0x400000);
    }
}
