//! What weighs a run's Python stacks in a flame graph or an export: the samples' time (on or
//! off CPU), or the latency of the SQL statements, RPC messages or HTTP requests each stack
//! made.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use arrow::{
    array::{Array as _, AsArray as _},
    datatypes::{DurationNanosecondType, UInt32Type, UInt64Type},
};

use super::flamegraph::{Request, column, strings};
use crate::run::read;

/// The rows that weigh the stacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Of {
    /// `python_samples`: the time each stack ran (with --off-cpu: waited).
    #[default]
    Samples,
    /// `sql`: the latency of the statements each stack sent.
    Sql,
    /// `rpc`: the latency of the oslo.messaging messages each stack sent or received.
    Rpc,
    /// `http`: the latency of the requests each stack made or served.
    Http,
}

impl Of {
    /// What a stack's weight is, in words: `on-CPU`, `SQL latency`, ...
    pub fn describe(self, off_cpu: bool) -> &'static str {
        match (self, off_cpu) {
            (Of::Samples, false) => "on-CPU",
            (Of::Samples, true) => "off-CPU",
            (Of::Sql, _) => "SQL latency",
            (Of::Rpc, _) => "RPC latency",
            (Of::Http, _) => "HTTP latency",
        }
    }

    /// The same for file names: `on-cpu`, `sql-latency`, ...
    pub fn file_stem(self, off_cpu: bool) -> String {
        self.describe(off_cpu).to_lowercase().replace(' ', "-")
    }

    /// The table whose rows weigh the stacks.
    fn table(self) -> &'static str {
        match self {
            Of::Samples => "python_samples",
            Of::Sql => "sql",
            Of::Rpc => "rpc",
            Of::Http => "http",
        }
    }
}

/// One thread's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadStack {
    pub pid: u32,
    pub tid: u32,
    pub stack_id: u64,
}

/// What weighs on one thread's stack: its rows (samples or calls) and their total time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Weight {
    pub rows: i64,
    pub ns: i64,
}

/// The weight of each thread's stacks among the rows `of` names, of the process asked for.
pub fn weights(request: &Request, of: Of) -> Result<BTreeMap<ThreadStack, Weight>> {
    if request.off_cpu && of != Of::Samples {
        bail!(
            "--off-cpu weighs Python samples: it does not go with {}",
            of.describe(false)
        );
    }
    let kind = if request.off_cpu { "off_cpu" } else { "on_cpu" };
    let mut weights: BTreeMap<ThreadStack, Weight> = BTreeMap::new();
    for batch in read::table(&request.run, of.table())? {
        let pids = column(&batch, "pid")?.as_primitive::<UInt32Type>();
        let tids = column(&batch, "tid")?.as_primitive::<UInt32Type>();
        let (ids, times) = match of {
            Of::Samples => (column(&batch, "stack_id")?, column(&batch, "weight")?),
            _ => (
                column(&batch, "python_stack_id")?,
                column(&batch, "latency")?,
            ),
        };
        let (ids, times) = (
            ids.as_primitive::<UInt64Type>(),
            times.as_primitive::<DurationNanosecondType>(),
        );
        let kinds = match of {
            Of::Samples => Some(strings(&batch, "kind")?),
            _ => None,
        };
        for i in 0..batch.num_rows() {
            let pid = pids.value(i);
            let counted = kinds.as_ref().is_none_or(|k| k[i] == kind)
                && !ids.is_null(i)
                && request.pid.is_none_or(|p| p == pid);
            if counted {
                let stack = ThreadStack {
                    pid,
                    tid: tids.value(i),
                    stack_id: ids.value(i),
                };
                let weight = weights.entry(stack).or_default();
                weight.rows += 1;
                // A call whose response was never seen counts, without a latency.
                if !times.is_null(i) {
                    weight.ns += times.value(i);
                }
            }
        }
    }
    Ok(weights)
}

/// The weight of each stack, threads and processes together.
pub fn by_stack(weights: &BTreeMap<ThreadStack, Weight>) -> HashMap<u64, i64> {
    let mut by_stack: HashMap<u64, i64> = HashMap::new();
    for (stack, weight) in weights {
        *by_stack.entry(stack.stack_id).or_default() += weight.ns;
    }
    by_stack
}
