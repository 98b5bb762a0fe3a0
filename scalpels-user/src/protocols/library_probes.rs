//! The uprobes of one library's API (libsqlite3's, libssl's), attached to each file of that
//! library once: a uprobe on a file fires in every process that maps it, and the kernel side
//! keeps to the targets.

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    programs::{ProgramFd, UProbe},
};

use super::library::{self, FileId};
use crate::uprobe_link;

/// One probe: the function, the program, whether the program runs at the function's return.
pub type Probe = (&'static str, &'static str, bool);

pub struct LibraryProbes {
    /// For messages: "sqlite", "tls".
    what: &'static str,
    probes: &'static [Probe],
    /// Functions without which the events make no rows; the others are probed where defined.
    required: &'static [&'static str],
    pmu: u32,
    retprobe: u64,
    programs: HashMap<&'static str, ProgramFd>,
    /// Files seen: their uprobe perf events (closing them detaches the probes), or why they
    /// could not be probed.
    files: HashMap<FileId, Result<Vec<OwnedFd>, String>>,
}

impl LibraryProbes {
    /// Loads the programs of `probes` from `ebpf`.
    pub fn load(
        ebpf: &mut Ebpf,
        what: &'static str,
        probes: &'static [Probe],
        required: &'static [&'static str],
    ) -> Result<Self> {
        let mut programs = HashMap::new();
        for &(_, name, _) in probes {
            if programs.contains_key(name) {
                continue;
            }
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .with_context(|| format!("eBPF object has no program {name}"))?
                .try_into()?;
            program.load().with_context(|| format!("loading {name}"))?;
            programs.insert(name, program.fd()?.try_clone()?);
        }
        Ok(Self {
            what,
            probes,
            required,
            pmu: uprobe_link::pmu_type()?,
            retprobe: uprobe_link::retprobe_config()?,
            programs,
            files: HashMap::new(),
        })
    }

    /// Attaches every probe to the file at `path`.
    fn probe_file(&self, path: &Path) -> Result<Vec<OwnedFd>> {
        let functions: Vec<&str> = self
            .probes
            .iter()
            .map(|&(function, _, _)| function)
            .collect();
        let offsets = library::function_offsets(path, &functions)?;
        if let Some(missing) = self.required.iter().find(|f| !offsets.contains_key(*f)) {
            bail!("{} does not define {missing}", path.display());
        }
        let mut links = Vec::new();
        for &(function, name, at_return) in self.probes {
            let Some(&offset) = offsets.get(function) else {
                continue;
            };
            let program = self.programs[name].as_fd();
            links.push(if at_return {
                uprobe_link::attach_return(self.pmu, self.retprobe, program, path, offset)?
            } else {
                uprobe_link::attach(self.pmu, program, path, offset)?
            });
        }
        Ok(links)
    }

    /// Probes the library `file` at `path` unless it was already (`whose` names who uses it,
    /// for messages); whether it is probed.
    pub fn probe(&mut self, file: FileId, path: &Path, whose: &str) -> bool {
        if !self.files.contains_key(&file) {
            let probed = self.probe_file(path).map_err(|e| format!("{e:#}"));
            if let Err(why) = &probed {
                eprintln!("scalpels-trace: protocols: {}: {whose}: {why}", self.what);
            }
            self.files.insert(file, probed);
        }
        self.files[&file].is_ok()
    }

    /// Whether the library `file` was probed.
    pub fn probed(&self, file: FileId) -> bool {
        self.files.get(&file).is_some_and(Result::is_ok)
    }

    /// How many files of the library are probed.
    pub fn files_probed(&self) -> usize {
        self.files.values().filter(|f| f.is_ok()).count()
    }
}
