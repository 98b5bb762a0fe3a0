//! What every tracer's userspace side provides to the run loop, and the registry that builds
//! them from the catalogue in `tracers::catalogue`.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::BorrowedFd,
    path::Path,
};

use anyhow::Result;
use arrow::datatypes::SchemaRef;
use aya::{Ebpf, EbpfLoader};

use crate::{
    block,
    cli::Cli,
    clock::Clock,
    files, proc, protocols, python,
    run::{dir::Dir, table::TableWriter},
    stack_index::StackIndex,
    syscalls,
};

/// Options and facts a tracer needs to configure and attach itself.
pub struct Env<'a> {
    pub run_dir: &'a Dir,
    pub tracefs: &'a Path,
    pub clock: Clock,
    /// Tracer options (`--slow-syscall`, `--block-all`, ...).
    pub cli: &'a Cli,
    /// Python stacks of other tracers' events, shared by all tracers of the run.
    pub stacks: &'a StackIndex,
}

impl Env<'_> {
    /// A table of this run, flushed every `--flush-interval`.
    pub fn table(&self, name: &'static str, schema: SchemaRef) -> TableWriter {
        TableWriter::new(self.run_dir, name, schema, self.cli.flush_interval)
    }
}

/// One collection interval.
pub struct Interval<'a> {
    /// UTC ns.
    pub start: i64,
    pub end: i64,
    /// The target processes alive at its end.
    pub pids: &'a BTreeSet<u32>,
}

pub trait Tracer {
    fn name(&self) -> &'static str;
    /// Called once when the run begins (before its first targets are set and its first
    /// interval starts): whatever the tracer holds of the time since it was attached (seconds of
    /// loading, or a wait for a service) that is not the targets' is dropped, so its tables
    /// start with the run. Tracers that record only targets had nothing else to record.
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    /// Called with the target processes as they become known (at attach, then each
    /// interval), before their next events are read.
    fn watch(&mut self, _pids: &BTreeSet<u32>) {}
    /// The ring buffer the tracer streams through, if any, so the run loop wakes when it has
    /// events.
    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Reads what the kernel streamed (ring buffers); called many times a second. Rows
    /// gather between writes ([`crate::run::pending`]): `due` writes all of them now.
    fn poll_events(&mut self, due: bool) -> Result<()>;
    /// Drains in-kernel aggregates (or samples /proc) into one interval's rows.
    fn collect_interval(&mut self, interval: &Interval<'_>) -> Result<()>;
    /// Records produced so far (rows of all its tables).
    fn events(&self) -> u64;
    /// Processes it recorded something for, however briefly they lived.
    fn processes(&self) -> &BTreeSet<u32>;
    /// Its tables, to flush and, at the end, to finish.
    fn tables(&mut self) -> Vec<&mut TableWriter>;
    /// Per-process notes for the manifest (e.g. an interpreter it cannot read).
    fn notes(&self) -> BTreeMap<u32, String> {
        BTreeMap::new()
    }
    /// What it could not use of what the kernel sent, by name, for the manifest.
    fn unparsed(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Lines for the end-of-run summary.
    fn summary(&self) -> Vec<String>;
    /// Called when the run goes on in a new directory (`--rotate`), once its tables are there:
    /// what a tracer writes once per run is written again, so that each run stands alone.
    fn rotated(&mut self) -> Result<()> {
        Ok(())
    }
    /// Writes what it still holds back (called once, after the last poll and collection).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    /// Gives up its tables when the run ends.
    fn into_tables(self: Box<Self>) -> Vec<TableWriter>;
}

/// A tracer configured before load: it may set globals of the eBPF object.
pub trait Prepared {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>);
    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>>;
}

/// Configures tracer `name` (catalogue name) or says why it cannot run here.
pub fn prepare(name: &str, env: &Env) -> Result<Box<dyn Prepared>> {
    match name {
        "syscalls" => Ok(Box::new(syscalls::prepare(env)?)),
        "block" => Ok(Box::new(block::prepare(env)?)),
        "files" => Ok(Box::new(files::prepare(env)?)),
        "protocols" => Ok(Box::new(protocols::prepare(env)?)),
        "proc" => Ok(Box::new(proc::prepare(env)?)),
        "python" => Ok(Box::new(python::prepare(env)?)),
        other => anyhow::bail!("tracer {other} is not built into this scalpels-trace"),
    }
}

/// Loss counters of one tracer, by counter name.
pub type Drops = BTreeMap<&'static str, u64>;
