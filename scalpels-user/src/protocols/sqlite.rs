//! SQLite, part of the `protocols` tracer (userspace side of `scalpels-ebpf/src/protocols/
//! sqlite.rs`): finds the libsqlite3 each target process maps, attaches the uprobes to each
//! such file once (a uprobe on a file fires in every process; the kernel side keeps to the
//! targets whose mapping it was told), and turns the events into `sql` rows with
//! `db_system = sqlite`, no connection, the statement of each execution, its rows and the time
//! spent in `sqlite3_step`.

mod executions;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
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

use super::{
    library::{self, FileId, Mapped, Soname},
    library_probes::{LibraryProbes, Probe},
    tables::{self, SqlRow, SqlRows},
};

/// (function, program, whether the program runs at the function's return). A libsqlite3
/// without `sqlite3_prepare_v3` or `sqlite3_changes64` (older ones) is probed without them.
const PROBES: [Probe; 11] = [
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
const LIBSQLITE3: Soname = b"libsqlite3.so";
/// Without these the events make no rows.
const REQUIRED: [&str; 2] = ["sqlite3_prepare_v2", "sqlite3_step"];

/// Where the probes find their registers and mappings' bounds, from BTF.
pub fn prepare() -> Result<SqliteConfig> {
    let registers = uprobe_link::registers()?;
    let vmlinux = btf::load_vmlinux()?;
    let vma = |member: &str| btf::member_offset(&vmlinux, "vm_area_struct", member);
    Ok(SqliteConfig {
        args: registers.args,
        ret: registers.ret,
        sp: registers.sp,
        ip: registers.ip,
        vm_start: vma("vm_start")?,
        vm_end: vma("vm_end")?,
        _pad: 0,
    })
}

pub fn set_globals<'a>(config: &'a SqliteConfig, loader: &mut EbpfLoader<'a>) {
    loader.override_global(CONFIG_GLOBAL, config, true);
}

pub struct Sqlite {
    probes: LibraryProbes,
    libs: BpfHashMap<MapData, u32, Library>,
    events: RingBuf<MapData>,
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
        let mut probes = LibraryProbes::load(ebpf, "sqlite", &PROBES, &REQUIRED)?;
        for (file, path) in library::in_loader_cache(LIBSQLITE3) {
            probes.probe(file, &path, "the dynamic loader's cache");
        }
        let take = crate::ebpf::take_map;
        Ok(Sqlite {
            probes,
            libs: BpfHashMap::try_from(take(ebpf, LIBS_MAP)?)?,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            armed: BTreeMap::new(),
            executions: Executions::new(env.clock),
            waiting: AwaitingStacks::new(env.stacks),
            rows_of: SqlRows::new(env.cli.options.protocols.sql_literals),
            pending: Pending::default(),
            rows: 0,
        })
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
            if let Ok(Some(mapped)) = library::find(pid, LIBSQLITE3) {
                self.arm(pid, mapped);
            }
        }
    }

    fn arm(&mut self, pid: u32, mapped: Mapped) {
        if !self
            .probes
            .probe(mapped.file, &mapped.path, &format!("process {pid}"))
        {
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
        let probed = self.probes.files_probed();
        format!(
            "  sqlite: {} statement executions from {} processes ({probed} libsqlite3 files probed)",
            self.rows,
            self.armed.len()
        )
    }
}
