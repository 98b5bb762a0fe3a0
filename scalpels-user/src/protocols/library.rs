//! Where a process's copy of a shared library is (libsqlite3, libssl): the file it mapped and
//! the addresses it mapped it at (from /proc/PID/maps), and where the library's API functions
//! start in that file (from its dynamic symbols), for the uprobes.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
use procfs::process::{MMapPath, Process};

/// A file as the kernel names it: device and inode (the same path may be another file in
/// another mount namespace).
pub type FileId = (u64, u64);

/// A library mapped by a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub file: FileId,
    /// The file through the process's root, so a container's file is the one it mapped.
    pub path: PathBuf,
    /// From its lowest mapping's start to its highest's end.
    pub start: u64,
    pub end: u64,
}

/// A library, by the start of its files' names (`libssl.so`: `libssl.so.3`, `libssl.so.1.1`).
pub type Soname = &'static [u8];

fn is_library(path: &Path, soname: Soname) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(soname))
}

/// The files of the library that the dynamic loader gives programs (its cache, as
/// `ldconfig -p` lists it), so that their probes are in place before a target that loads one
/// starts: a short program may load SQLite, run its statements and exit between two looks at
/// its mappings.
pub fn in_loader_cache(soname: Soname) -> Vec<(FileId, PathBuf)> {
    let Ok(output) = std::process::Command::new("ldconfig").arg("-p").output() else {
        return Vec::new();
    };
    let mut files: Vec<(FileId, PathBuf)> = Vec::new();
    // Lines like `libsqlite3.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libsqlite3.so.0`.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let line = line.trim_start();
        let Some((_, path)) = line.split_once(" => ") else {
            continue;
        };
        if !line.as_bytes().starts_with(soname) {
            continue;
        }
        let Ok(path) = Path::new(path.trim()).canonicalize() else {
            continue;
        };
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let file = (device_id(meta.dev()), meta.ino());
        if !files.iter().any(|(known, _)| *known == file) {
            files.push((file, path));
        }
    }
    files
}

/// A device number as /proc/PID/maps spells it (major, minor), packed as in [`FileId`].
fn device_id(dev: u64) -> u64 {
    u64::from(libc::major(dev)) << 32 | u64::from(libc::minor(dev))
}

/// The copy of the library that process `pid` has mapped, if any.
pub fn find(pid: u32, soname: Soname) -> Result<Option<Mapped>> {
    // Asked again every interval of a process that has none: the text is searched before it
    // is parsed into a mapping per line.
    let text = fs::read(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading the mappings of process {pid}"))?;
    if !text.windows(soname.len()).any(|window| window == soname) {
        return Ok(None);
    }
    let maps = Process::new(pid as i32)
        .and_then(|process| process.maps())
        .with_context(|| format!("reading the mappings of process {pid}"))?;
    let mut found: Option<Mapped> = None;
    for map in maps {
        let MMapPath::Path(path) = &map.pathname else {
            continue;
        };
        if !is_library(path, soname) {
            continue;
        }
        let file = ((map.dev.0 as u64) << 32 | map.dev.1 as u64, map.inode);
        let (start, end) = map.address;
        match &mut found {
            Some(mapped) if mapped.file == file => {
                mapped.start = mapped.start.min(start);
                mapped.end = mapped.end.max(end);
            }
            // A second copy in one process: the first one is probed.
            Some(_) => {}
            None => {
                let relative = path.strip_prefix("/").unwrap_or(path);
                found = Some(Mapped {
                    file,
                    path: Path::new(&format!("/proc/{pid}/root")).join(relative),
                    start,
                    end,
                });
            }
        }
    }
    Ok(found)
}

/// The file offsets of the functions `names` that the ELF file at `path` defines.
pub fn function_offsets<'n>(path: &Path, names: &[&'n str]) -> Result<HashMap<&'n str, u64>> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let elf = object::File::parse(&*data)
        .with_context(|| format!("parsing {} as ELF", path.display()))?;
    let segments: Vec<(u64, u64, u64)> = elf
        .segments()
        .map(|s| (s.address(), s.file_range().1, s.file_range().0))
        .collect();
    let mut offsets = HashMap::new();
    for symbol in elf.dynamic_symbols() {
        let Some(&name) = symbol
            .name()
            .ok()
            .and_then(|found| names.iter().find(|&&name| name == found))
        else {
            continue;
        };
        if !symbol.is_definition() {
            continue;
        }
        let address = symbol.address();
        let offset = segments
            .iter()
            .find(|&&(start, size, _)| (start..start + size).contains(&address))
            .map(|&(start, _, offset)| address - start + offset);
        if let Some(offset) = offset {
            offsets.insert(name, offset);
        }
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process maps no libsqlite3; Debian's (which its Python links) has the API.
    #[test]
    fn finds_the_api_of_the_system_libsqlite3() {
        assert_eq!(find(std::process::id(), b"libsqlite3.so").unwrap(), None);
        let system = Path::new("/lib/x86_64-linux-gnu/libsqlite3.so.0");
        let names = ["sqlite3_prepare_v2", "sqlite3_step", "no_such_function"];
        let offsets = function_offsets(system, &names).unwrap();
        assert!(offsets["sqlite3_prepare_v2"] > 0 && offsets["sqlite3_step"] > 0);
        assert!(!offsets.contains_key("no_such_function"));
    }
}
