//! SQLite, part of the `protocols` tracer (userspace side of `scalpels-ebpf/src/protocols/
//! sqlite.rs`): finds the libsqlite3 each target process maps, attaches the uprobes to each
//! such file once (a uprobe on a file fires in every process; the kernel side keeps to the
//! targets whose mapping it was told), and turns the events into `sql` rows with
//! `db_system = sqlite`, no connection, the statement of each execution, its rows and the time
//! spent in `sqlite3_step`.

mod executions;
mod library;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
    programs::{ProgramFd, UProbe},
};
use tracers::protocols::sqlite::{
    CONFIG_GLOBAL, EVENTS_MAP, LIBS_MAP, Library, SqliteConfig, program,
};

use crate::{
    btf,
    run::{pending::Pending, table::TableWriter},
    stack_index::AwaitingStacks,
    tracer::Env,
    uprobe_link,
};
use executions::{Command, Event, Executions};
use library::{FileId, Mapped};

use super::tables::{self, SqlRow, SqlRows};

/// (function, program, whether the program runs at the function's return). A libsqlite3
/// without `sqlite3_prepare_v3` or `sqlite3_changes64` (older ones) is probed without them.
const PROBES: [(&str, &str, bool); 11] = [
    ("sqlite3_prepare_v2", program::PREPARE_V2, false),
    ("sqlite3_prepare_v2", program::PREPARE_RETURN, true),
    ("sqlite3_prepare_v3", program::PREPARE_V3, false),
    ("sqlite3_prepare_v3", program::PREPARE_RETURN, true),
    ("sqlite3_step", program::STEP, false),
    ("sqlite3_step", program::STEP_RETURN, true),
    ("sqlite3_reset", program::RESET, false),
    ("sqlite3_finalize", program::FINALIZE, false),
    ("sqlite3_errmsg", program::ERRMSG_RETURN, true),
    ("sqlite3_changes", program::CHANGES_RETURN, true),
    ("sqlite3_changes64", program::CHANGES_RETURN, true),
];
/// Without these the events make no rows.
const REQUIRED: [&str; 2] = ["sqlite3_prepare_v2", "sqlite3_step"];

/// The x86-64 `struct pt_regs` members of the integer arguments, in order.
const ARG_REGISTERS: [&str; 6] = ["di", "si", "dx", "cx", "r8", "r9"];

/// Where the probes find their registers, from BTF.
pub fn prepare() -> Result<SqliteConfig> {
    if !cfg!(target_arch = "x86_64") {
        bail!("the sqlite probes read x86-64 registers");
    }
    let vmlinux = btf::load_vmlinux()?;
    let offset = |member: &str| btf::member_offset(&vmlinux, "pt_regs", member);
    let mut args = [0; 6];
    for (slot, member) in args.iter_mut().zip(ARG_REGISTERS) {
        *slot = offset(member)?;
    }
    let vma = |member: &str| btf::member_offset(&vmlinux, "vm_area_struct", member);
    Ok(SqliteConfig {
        args,
        ret: offset("ax")?,
        sp: offset("sp")?,
        ip: offset("ip")?,
        vm_start: vma("vm_start")?,
        vm_end: vma("vm_end")?,
        _pad: 0,
    })
}

pub fn set_globals<'a>(config: &'a SqliteConfig, loader: &mut EbpfLoader<'a>) {
    loader.override_global(CONFIG_GLOBAL, config, true);
}

fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<ProgramFd> {
    let prog: &mut UProbe = ebpf
        .program_mut(name)
        .with_context(|| format!("eBPF object has no program {name}"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog.fd()?.try_clone()?)
}

pub struct Sqlite {
    pmu: u32,
    retprobe: u64,
    programs: HashMap<&'static str, ProgramFd>,
    libs: BpfHashMap<MapData, u32, Library>,
    events: RingBuf<MapData>,
    /// libsqlite3 files seen: their uprobe perf events (closing them detaches the probes), or
    /// why they could not be probed.
    files: HashMap<FileId, Result<Vec<OwnedFd>, String>>,
    /// Target processes whose libsqlite3 the kernel side follows.
    armed: BTreeMap<u32, FileId>,
    executions: Executions,
    waiting: AwaitingStacks<Command>,
    rows_of: SqlRows,
    /// Rows gathered, not yet written.
    pending: Pending<SqlRow>,
    rows: u64,
}

impl Sqlite {
    pub fn attach(ebpf: &mut Ebpf, env: &Env) -> Result<Self> {
        let mut programs = HashMap::new();
        for (_, name, _) in PROBES {
            if !programs.contains_key(name) {
                programs.insert(name, load_program(ebpf, name)?);
            }
        }
        let take = crate::ebpf::take_map;
        let mut sqlite = Sqlite {
            pmu: uprobe_link::pmu_type()?,
            retprobe: uprobe_link::retprobe_config()?,
            programs,
            libs: BpfHashMap::try_from(take(ebpf, LIBS_MAP)?)?,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            files: HashMap::new(),
            armed: BTreeMap::new(),
            executions: Executions::new(env.clock),
            waiting: AwaitingStacks::new(env.stacks),
            rows_of: SqlRows::new(env.cli.options.protocols.sql_literals),
            pending: Pending::default(),
            rows: 0,
        };
        for (file, path) in library::in_loader_cache() {
            sqlite.probe(file, &path, "the dynamic loader's cache");
        }
        Ok(sqlite)
    }

    /// Attaches every probe to the file at `path`.
    fn probe_file(&self, path: &Path) -> Result<Vec<OwnedFd>> {
        let functions: Vec<&str> = PROBES.iter().map(|&(function, _, _)| function).collect();
        let offsets = library::function_offsets(path, &functions)?;
        if let Some(missing) = REQUIRED.iter().find(|f| !offsets.contains_key(*f)) {
            bail!("{} does not define {missing}", path.display());
        }
        let mut links = Vec::new();
        for (function, name, at_return) in PROBES {
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

    /// Follows the target processes that map a libsqlite3 (looked for again each interval
    /// until they do), and forgets those gone.
    pub fn watch(&mut self, pids: &BTreeSet<u32>) {
        // Those armed here and those whose first SQLite call armed them in the kernel.
        let gone: Vec<u32> = self
            .libs
            .keys()
            .flatten()
            .filter(|pid| !pids.contains(pid))
            .collect();
        for pid in gone {
            self.armed.remove(&pid);
            let _ = self.libs.remove(&pid);
        }
        for &pid in pids {
            if self.armed.contains_key(&pid) {
                continue;
            }
            // Gone, or not readable: nothing to follow.
            if let Ok(Some(mapped)) = library::find(pid) {
                self.arm(pid, mapped);
            }
        }
    }

    /// Probes the libsqlite3 `file` at `path` unless it was already (`whose` names who uses
    /// it, for messages); whether it is probed.
    fn probe(&mut self, file: FileId, path: &Path, whose: &str) -> bool {
        if !self.files.contains_key(&file) {
            let probed = self.probe_file(path).map_err(|e| format!("{e:#}"));
            if let Err(why) = &probed {
                eprintln!("scalpels-trace: protocols: sqlite: {whose}: {why}");
            }
            self.files.insert(file, probed);
        }
        self.files[&file].is_ok()
    }

    fn arm(&mut self, pid: u32, mapped: Mapped) {
        if !self.probe(mapped.file, &mapped.path, &format!("process {pid}")) {
            return;
        }
        let library = Library {
            start: mapped.start,
            end: mapped.end,
        };
        match self.libs.insert(pid, library, 0) {
            Ok(()) => {
                self.armed.insert(pid, mapped.file);
            }
            Err(e) => eprintln!("scalpels-trace: protocols: sqlite: process {pid}: {e}"),
        }
    }

    /// Reads the kernel's events and gathers the rows that are ready (every one when `all`);
    /// writes those gathered when `due` or a whole batch.
    pub fn poll(
        &mut self,
        all: bool,
        due: bool,
        table: &mut TableWriter,
        processes: &mut BTreeSet<u32>,
    ) -> Result<()> {
        let mut ready = Vec::new();
        while let Some(record) = self.events.next() {
            if let Some(event) = Event::decode(&record) {
                self.executions.on_event(event, &mut ready);
            }
        }
        if all {
            self.executions.drain(&mut ready);
        } else {
            self.executions.age(&mut ready);
        }
        for (row, stack) in ready {
            self.waiting.push(row, stack);
        }
        for (mut command, stack) in self.waiting.ready(all) {
            command.record.python_stack_id = stack;
            let row = self.rows_of.row(command.pid, None, command.record);
            self.pending.push(row);
        }
        let Some(rows) = self.pending.take(due) else {
            return Ok(());
        };
        processes.extend(rows.iter().map(|r| r.pid));
        self.rows += rows.len() as u64;
        table.write(&tables::sql_batch(&rows)?)
    }

    pub fn summary(&self) -> String {
        let probed = self.files.values().filter(|f| f.is_ok()).count();
        format!(
            "  sqlite: {} statement executions from {} processes ({probed} libsqlite3 files probed)",
            self.rows,
            self.armed.len()
        )
    }
}
