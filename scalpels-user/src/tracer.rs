//! What every tracer's userspace side provides to the run loop, and the registry that builds
//! them from the catalogue in `tracers::catalogue`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use anyhow::Result;
use aya::{Ebpf, EbpfLoader};

use crate::{clock::Clock, run::table::TableWriter, syscalls};

/// Options and facts a tracer needs to configure and attach itself.
pub struct Env<'a> {
    pub run_dir: &'a Path,
    pub clock: Clock,
    pub flush_every: Duration,
    pub slow_syscall: Duration,
}

pub trait Tracer {
    fn name(&self) -> &'static str;
    /// Reads what the kernel streamed (ring buffers); called many times a second.
    fn poll_events(&mut self) -> Result<()>;
    /// Drains in-kernel aggregates into one interval's rows; `start`/`end` are UTC ns.
    fn collect_interval(&mut self, start: i64, end: i64) -> Result<()>;
    /// Records produced so far (rows of all its tables).
    fn events(&self) -> u64;
    /// Processes it recorded something for, however briefly they lived.
    fn processes(&self) -> &BTreeSet<u32>;
    /// Its tables, to flush and, at the end, to finish.
    fn tables(&mut self) -> Vec<&mut TableWriter>;
    /// Lines for the end-of-run summary.
    fn summary(&self) -> Vec<String>;
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
        other => anyhow::bail!("tracer {other} is not built into this scalpels-trace"),
    }
}

/// Loss counters of one tracer, by counter name.
pub type Drops = BTreeMap<&'static str, u64>;
