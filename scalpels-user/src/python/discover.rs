//! Finds the CPython interpreter in a process: the mapped libpython (or a static `python3.X`),
//! its version, where `_PyRuntime` is (the `.PyRuntime` section, present even in stripped
//! builds, or the `_PyRuntime` symbol before 3.10), and the pthread key of its thread states.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

use super::{
    memory::ProcessMemory,
    pthread::FIRST_BLOCK_KEYS,
    versions::{self, Layout},
};

/// The CPython versions whose layout Scalpels knows.
const SUPPORTED: std::ops::RangeInclusive<(u8, u8)> = (3, 8)..=(3, 13);

/// What a process turned out to be.
pub enum Discovery {
    /// No CPython mapped (yet: a process may still be starting or about to exec).
    NotPython,
    /// CPython, but not one Scalpels can read; the reason says which and why.
    Unsupported(String),
    Found(Interpreter),
}

pub struct Interpreter {
    pub version: (u8, u8),
    /// The file holding `_PyRuntime`.
    pub file: PathBuf,
    /// What to add to the file's virtual addresses for their addresses in the process.
    pub load_bias: u64,
    pub tss_key: u32,
    pub layout: Layout,
}

/// A mapped file that may be CPython, and where it is mapped.
struct Candidate {
    path: PathBuf,
    version: (u8, u8),
    /// Start of its mapping of file offset 0.
    base: u64,
}

/// `python3.11`, `libpython3.11.so.1.0`, `libpython3.13t.so` -> (3, 11).
fn version_of(file_name: &str) -> Option<(u8, u8)> {
    let rest = file_name.strip_prefix("lib").unwrap_or(file_name);
    let rest = rest.strip_prefix("python")?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// What a process's memory map says about its interpreter.
struct Mapped {
    /// Files that may be CPython, the shared library first.
    candidates: Vec<Candidate>,
    /// musl's loader or libc is mapped: thread states are not where glibc keeps them.
    musl: bool,
}

fn mapped(pid: u32) -> Result<Mapped> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading /proc/{pid}/maps"))?;
    Ok(parse_maps(&maps))
}

/// Reads a `/proc/PID/maps` text.
fn parse_maps(maps: &str) -> Mapped {
    let mut found: Vec<Candidate> = Vec::new();
    let mut musl = false;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [range, _perms, offset, _dev, _inode, path] = fields[..] else {
            continue;
        };
        let file_name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        musl |= file_name.starts_with("ld-musl-") || file_name.starts_with("libc.musl-");
        let Some(version) = version_of(&file_name) else {
            continue;
        };
        if u64::from_str_radix(offset, 16) != Ok(0)
            || found.iter().any(|c| c.path == Path::new(path))
        {
            continue;
        }
        let Some(base) = range
            .split('-')
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            continue;
        };
        found.push(Candidate {
            path: PathBuf::from(path),
            version,
            base,
        });
    }
    // The shared library holds the runtime when there is one; the executable is a stub then.
    found.sort_by_key(|c| !c.path.to_string_lossy().contains("libpython"));
    Mapped {
        candidates: found,
        musl,
    }
}

/// Where `_PyRuntime` is in a CPython ELF file, relative to its first loaded page.
#[derive(Clone, Copy)]
struct RuntimeSection {
    address: u64,
    first_load: u64,
}

fn runtime_section(file: &Path) -> Result<Option<RuntimeSection>> {
    let data = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let elf = object::File::parse(&*data).with_context(|| format!("parsing {}", file.display()))?;
    // The `.PyRuntime` section (3.10+, kept by stripped builds), else the `_PyRuntime` symbol.
    let address = elf
        .section_by_name(".PyRuntime")
        .map(|section| section.address())
        .or_else(|| {
            elf.dynamic_symbols()
                .chain(elf.symbols())
                .find(|symbol| symbol.name() == Ok("_PyRuntime"))
                .map(|symbol| symbol.address())
        });
    let Some(address) = address else {
        return Ok(None);
    };
    let first_load = elf.segments().map(|s| s.address()).min().unwrap_or(0) & !0xfff;
    Ok(Some(RuntimeSection {
        address,
        first_load,
    }))
}

/// Discovers interpreters, remembering what each ELF file holds.
#[derive(Default)]
pub struct Discoverer {
    sections: HashMap<PathBuf, Option<RuntimeSection>>,
}

impl Discoverer {
    pub fn discover(&mut self, pid: u32) -> Result<Discovery> {
        let mapped = mapped(pid)?;
        for candidate in mapped.candidates {
            let (major, minor) = candidate.version;
            if !SUPPORTED.contains(&candidate.version) {
                return Ok(Discovery::Unsupported(format!(
                    "CPython {major}.{minor} (supported: 3.8 to 3.13)"
                )));
            }
            if mapped.musl {
                return Ok(Discovery::Unsupported(format!(
                    "CPython {major}.{minor} on musl libc (thread states are found through \
                     glibc's pthread keys)"
                )));
            }
            // Through the process's root, so containers' files are the ones they mapped.
            let file = Path::new(&format!("/proc/{pid}/root"))
                .join(candidate.path.strip_prefix("/").unwrap_or(&candidate.path));
            let section = match self.sections.get(&candidate.path) {
                Some(known) => *known,
                None => {
                    let found = runtime_section(&file)?;
                    self.sections.insert(candidate.path.clone(), found);
                    found
                }
            };
            let Some(section) = section else { continue };
            let load_bias = candidate.base.wrapping_sub(section.first_load);
            return interpreter(
                pid,
                candidate,
                load_bias,
                load_bias.wrapping_add(section.address),
            );
        }
        Ok(Discovery::NotPython)
    }
}

/// Reads the interpreter's layout and pthread key once its runtime is known.
fn interpreter(pid: u32, candidate: Candidate, load_bias: u64, runtime: u64) -> Result<Discovery> {
    let (major, minor) = candidate.version;
    let memory = ProcessMemory::new(pid);
    let layout = if (major, minor) >= (3, 13) {
        let mut prefix = vec![0u8; versions::DEBUG_OFFSETS_LEN];
        memory
            .read(runtime, &mut prefix)
            .with_context(|| format!("reading _PyRuntime of {pid}"))?;
        match versions::from_debug_offsets(&prefix) {
            Ok(layout) => layout,
            Err(e) => {
                return Ok(Discovery::Unsupported(format!(
                    "CPython {major}.{minor}: {e:#}"
                )));
            }
        }
    } else {
        versions::layout(major, minor).context("no layout for a supported version")?
    };
    let initialized = memory.read_u32(runtime + u64::from(layout.tss_key) - 4)?;
    let tss_key = memory.read_u32(runtime + u64::from(layout.tss_key))?;
    if initialized != 1 {
        // Still starting: not an interpreter to walk yet.
        return Ok(Discovery::NotPython);
    }
    if tss_key >= FIRST_BLOCK_KEYS {
        return Ok(Discovery::Unsupported(format!(
            "CPython {major}.{minor}: its thread-state pthread key {tss_key} is beyond glibc's \
             first block of {FIRST_BLOCK_KEYS}"
        )));
    }
    Ok(Discovery::Found(Interpreter {
        version: candidate.version,
        file: candidate.path,
        load_bias,
        tss_key,
        layout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_file_names() {
        assert_eq!(version_of("libpython3.11.so.1.0"), Some((3, 11)));
        assert_eq!(version_of("python3.8"), Some((3, 8)));
        assert_eq!(version_of("libpython3.13t.so"), Some((3, 13)));
        assert_eq!(version_of("python3"), None);
        assert_eq!(version_of("libc.so.6"), None);
    }

    #[test]
    fn a_musl_process_is_told_from_a_glibc_one_by_its_maps() {
        let glibc = "\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234 /usr/bin/python3.11
7f0000000000-7f0000020000 r--p 00000000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 r--p 00000000 08:01 98 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
";
        let mapped = parse_maps(glibc);
        assert!(!mapped.musl);
        assert_eq!(mapped.candidates.len(), 1);
        assert_eq!(mapped.candidates[0].version, (3, 11));
        assert_eq!(mapped.candidates[0].base, 0x55d0_c000_0000);

        let musl = "\
7f2000000000-7f2000100000 r--p 00000000 08:01 7 /usr/lib/libpython3.12.so.1.0
7f3000000000-7f3000010000 r--p 00000000 08:01 8 /lib/ld-musl-x86_64.so.1
";
        let mapped = parse_maps(musl);
        assert!(mapped.musl);
        assert_eq!(mapped.candidates[0].version, (3, 12));
    }
}
