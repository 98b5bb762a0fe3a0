//! What a diff compares, read from one run: per dimension (Python functions, syscalls, SQL
//! statements, ...), each thing's events, time and latencies.

use std::collections::BTreeMap;

use anyhow::Result;
use arrow::array::RecordBatch;

use crate::analysis::{
    dataset::{Dataset, SQL_BARE_COMMAND, SQL_LABEL, ns},
    latency::Latencies,
    table::{Column, Kind, column},
    values,
};

/// One thing measured in a run: a function, a syscall, a statement...
#[derive(Clone, Debug)]
pub struct Measure {
    /// Calls, samples or waits.
    pub events: f64,
    pub time_ns: f64,
    /// Σ latency² (ns²), for the noise test on time.
    pub sum_of_squares: f64,
    pub latencies: Option<Latencies>,
    /// Of a cache command's reads: keys asked for and keys not found (0 and 0 when it reads
    /// nothing, or the dimension has no hits).
    pub reads: f64,
    pub misses: f64,
}

/// How a dimension's latencies come: none (profiles, files), log2 histograms in column
/// `hist`, or every latency in column `latencies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Profile,
    Aggregated,
    Histogram,
    Each,
}

pub struct Spec {
    pub key: &'static str,
    pub title: &'static str,
    pub table: &'static str,
    pub labels: Vec<Column>,
    pub events: &'static str,
    pub shape: Shape,
    /// Which of its rises are regressions.
    pub judged: Judged,
    /// Its query also selects `reads` and `misses`: a rise of the miss ratio is a regression.
    pub hit_ratio: bool,
    /// Things (by first label) shown but not judged: system calls that wait by design, whose
    /// time is idleness (a service with less to do sleeps longer).
    pub waits: &'static [&'static str],
    /// Selects the label columns, `events`, `time_ns`, and per shape `sum_of_squares`, `hist`
    /// or `latencies`.
    pub sql: String,
}

/// Which rises of a dimension are regressions. What is left out is shown, not judged, because
/// it drifts with the machine more than with the code: how much of the page cache was warm (disk
/// requests), how busy the CPUs were (the latency of microsecond system calls, whose log2
/// histograms are too coarse to judge percentiles by anyway).
#[derive(Clone, Copy, Debug)]
pub struct Judged {
    /// Events per second: calls, requests, messages. Counted exactly, so a rise means the code
    /// does something more often.
    pub rate: bool,
    /// Time per second.
    pub time: bool,
    /// p50 and p99 of latencies recorded one by one.
    pub percentiles: bool,
}

impl Spec {
    /// How many things the dimension tests of each thing, for the diff's share of its
    /// significance level.
    pub fn tests(&self) -> usize {
        let tests = match self.shape {
            Shape::Profile | Shape::Aggregated => 1,
            Shape::Histogram | Shape::Each => 3,
        };
        tests + usize::from(self.hit_ratio)
    }
}

const NOTHING: Judged = Judged {
    rate: false,
    time: false,
    percentiles: false,
};

const EVERYTHING: Judged = Judged {
    rate: true,
    time: true,
    percentiles: true,
};

/// System calls whose purpose is to wait (for time, a child, a signal, an event, a lock).
const WAITING_SYSCALLS: &[&str] = &[
    "nanosleep",
    "clock_nanosleep",
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "futex",
    "futex_waitv",
    "wait4",
    "waitid",
    "pause",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "accept",
    "accept4",
    "io_getevents",
    "io_pgetevents",
    "msgrcv",
    "semtimedop",
    "mq_timedreceive",
];

fn python(kind: &'static str) -> Spec {
    let (key, title, events) = if kind == "on_cpu" {
        (
            "python_on_cpu",
            "Python functions on CPU (self time)",
            "samples",
        )
    } else {
        (
            "python_off_cpu",
            "Python functions off CPU (self wait time)",
            "waits",
        )
    };
    Spec {
        key,
        title,
        table: "python_samples",
        labels: vec![
            column("function", "function", Kind::Text),
            column("file", "file", Kind::Path),
        ],
        events,
        shape: Shape::Profile,
        // Off-CPU time does not gate: a thread waiting for work and one waiting for a slow
        // peer look the same there (the peers' own latencies, in sql, rpc and http, do gate).
        judged: Judged {
            rate: false,
            time: kind == "on_cpu",
            percentiles: false,
        },
        waits: &[],
        hit_ratio: false,
        sql: format!(
            "WITH leaf AS (SELECT DISTINCT stack_id, function, file FROM python_stacks
                           WHERE level = 0)
             SELECT l.function, l.file, count(*) AS events, sum(s.w) AS time_ns,
                    sum(CAST(s.w AS DOUBLE) * CAST(s.w AS DOUBLE)) AS sum_of_squares
             FROM (SELECT stack_id, {w} AS w FROM python_samples WHERE kind = '{kind}') s
             JOIN leaf l ON s.stack_id = l.stack_id
             GROUP BY l.function, l.file",
            w = ns("weight")
        ),
    }
}

pub fn all() -> Vec<Spec> {
    let text = |key| column(key, key, Kind::Text);
    vec![
        python("on_cpu"),
        python("off_cpu"),
        Spec {
            key: "syscalls",
            title: "System calls",
            table: "syscalls",
            labels: vec![text("syscall")],
            events: "calls",
            shape: Shape::Histogram,
            judged: Judged {
                rate: true,
                time: true,
                percentiles: false,
            },
            waits: WAITING_SYSCALLS,
            hit_ratio: false,
            sql: format!(
                "SELECT syscall, sum(calls) AS events, sum({t}) AS time_ns,
                        hist_merge(latency_hist) AS hist
                 FROM syscalls GROUP BY syscall",
                t = ns("total_latency")
            ),
        },
        Spec {
            key: "sql",
            title: "SQL statements",
            table: "sql",
            labels: vec![
                column("statement", "statement", Kind::Text),
                column("db_system", "db", Kind::Text),
            ],
            events: "calls",
            shape: Shape::Each,
            judged: EVERYTHING,
            waits: &[],
            hit_ratio: false,
            sql: format!(
                "SELECT max({SQL_LABEL}) AS statement, db_system, count(*) AS events,
                        coalesce(sum({l}), 0) AS time_ns, array_agg({l}) AS latencies
                 FROM sql GROUP BY fingerprint, db_system, {SQL_BARE_COMMAND}",
                l = ns("latency")
            ),
        },
        Spec {
            key: "rpc",
            title: "RPC methods",
            table: "rpc",
            labels: vec![text("direction"), text("kind"), text("method")],
            events: "messages",
            shape: Shape::Each,
            judged: EVERYTHING,
            waits: &[],
            hit_ratio: false,
            sql: format!(
                "SELECT direction, kind, method, count(*) AS events,
                        coalesce(sum({l}), 0) AS time_ns, array_agg({l}) AS latencies
                 FROM rpc WHERE kind <> 'reply' GROUP BY direction, kind, method",
                l = ns("latency")
            ),
        },
        Spec {
            key: "http",
            title: "HTTP endpoints",
            table: "http",
            labels: vec![text("role"), text("method"), text("route")],
            events: "requests",
            shape: Shape::Each,
            judged: EVERYTHING,
            waits: &[],
            hit_ratio: false,
            sql: format!(
                "SELECT role, method, route, count(*) AS events,
                        coalesce(sum({l}), 0) AS time_ns, array_agg({l}) AS latencies
                 FROM http GROUP BY role, method, route",
                l = ns("latency")
            ),
        },
        Spec {
            key: "cache",
            title: "Cache commands",
            table: "cache",
            labels: vec![text("system"), text("command"), text("key")],
            events: "commands",
            shape: Shape::Each,
            judged: EVERYTHING,
            waits: &[],
            hit_ratio: true,
            // Reads are the rows with `hits`; each asked for `keys` keys.
            sql: format!(
                "SELECT system, command, key, count(*) AS events,
                        coalesce(sum({l}), 0) AS time_ns, array_agg({l}) AS latencies,
                        CAST(coalesce(sum(CASE WHEN hits IS NOT NULL THEN keys END), 0) AS DOUBLE)
                            AS reads,
                        CAST(coalesce(sum(keys - hits), 0) AS DOUBLE) AS misses
                 FROM cache GROUP BY system, command, key",
                l = ns("latency")
            ),
        },
        Spec {
            key: "block",
            title: "Block devices",
            table: "block_io_stats",
            labels: vec![text("device"), text("op")],
            events: "requests",
            shape: Shape::Histogram,
            // Which requests reach the disk follows the page cache (how warm it was), not the
            // code: shown only; the targets' own time in file I/O is judged in `files`.
            judged: NOTHING,
            waits: &[],
            hit_ratio: false,
            sql: format!(
                "SELECT device, op, sum(requests) AS events, sum({t}) AS time_ns,
                        hist_merge(latency_hist) AS hist
                 FROM block_io_stats GROUP BY device, op",
                t = ns("total_latency")
            ),
        },
        Spec {
            key: "files",
            title: "Files",
            table: "file_io",
            labels: vec![column("path", "path", Kind::Path), text("op")],
            events: "calls",
            shape: Shape::Aggregated,
            judged: Judged {
                rate: true,
                time: true,
                percentiles: false,
            },
            waits: &[],
            // Each row has calls, their total and their maximum: Σ latency² ≤ max · total is
            // the bound used (an overestimate of the noise, never an underestimate).
            hit_ratio: false,
            sql: format!(
                "SELECT path, op, sum(calls) AS events, sum({t}) AS time_ns,
                        sum(CAST({t} AS DOUBLE) * CAST({m} AS DOUBLE)) AS sum_of_squares
                 FROM file_io GROUP BY path, op",
                t = ns("total_latency"),
                m = ns("max_latency")
            ),
        },
    ]
}

/// A dimension's measures in one run, by label; None when the run lacks its tables.
pub async fn measure(
    dataset: &Dataset,
    spec: &Spec,
) -> Result<Option<BTreeMap<Vec<String>, Measure>>> {
    if !dataset.has(spec.table) || (spec.shape == Shape::Profile && !dataset.has("python_stacks")) {
        return Ok(None);
    }
    let batches = dataset.query(&spec.sql).await?;
    Ok(Some(measures(spec, &batches)?))
}

fn measures(spec: &Spec, batches: &[RecordBatch]) -> Result<BTreeMap<Vec<String>, Measure>> {
    let labels: Vec<Vec<Option<String>>> = spec
        .labels
        .iter()
        .map(|c| values::strings(batches, &c.key))
        .collect::<Result<_>>()?;
    let events = values::floats(batches, "events")?;
    let time = values::floats(batches, "time_ns")?;
    let (squares, latencies): (Vec<Option<f64>>, Vec<Option<Latencies>>) = match spec.shape {
        Shape::Profile | Shape::Aggregated => (
            values::floats(batches, "sum_of_squares")?,
            vec![None; events.len()],
        ),
        Shape::Histogram => {
            let hists: Vec<_> = values::count_lists(batches, "hist")?
                .into_iter()
                .map(|h| Some(Latencies::Histogram(h)))
                .collect();
            (vec![None; events.len()], hists)
        }
        Shape::Each => {
            let each: Vec<_> = values::int_lists(batches, "latencies")?
                .into_iter()
                .map(|mut v| {
                    v.sort_unstable();
                    Some(Latencies::Sorted(v))
                })
                .collect();
            (vec![None; events.len()], each)
        }
    };
    let (reads, misses) = if spec.hit_ratio {
        (
            values::floats(batches, "reads")?,
            values::floats(batches, "misses")?,
        )
    } else {
        (vec![None; events.len()], vec![None; events.len()])
    };
    let mut out = BTreeMap::new();
    for row in 0..events.len() {
        let label: Vec<String> = labels
            .iter()
            .map(|column| column[row].clone().unwrap_or_else(|| "(unknown)".into()))
            .collect();
        let sum_of_squares = squares[row]
            .or_else(|| latencies[row].as_ref().map(Latencies::sum_of_squares))
            .unwrap_or_default();
        out.insert(
            label,
            Measure {
                events: events[row].unwrap_or_default(),
                time_ns: time[row].unwrap_or_default(),
                sum_of_squares,
                latencies: latencies[row].clone(),
                reads: reads[row].unwrap_or_default(),
                misses: misses[row].unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The measures of several runs as one: counts, times and latencies added up (their rates are
/// then per second of all the runs together).
pub fn pool(runs: &[BTreeMap<Vec<String>, Measure>]) -> BTreeMap<Vec<String>, Measure> {
    let mut pooled: BTreeMap<Vec<String>, Measure> = BTreeMap::new();
    for run in runs {
        for (key, m) in run {
            match pooled.get_mut(key) {
                None => {
                    pooled.insert(key.clone(), m.clone());
                }
                Some(p) => {
                    p.events += m.events;
                    p.time_ns += m.time_ns;
                    p.sum_of_squares += m.sum_of_squares;
                    p.reads += m.reads;
                    p.misses += m.misses;
                    match (&mut p.latencies, &m.latencies) {
                        (Some(into), Some(more)) => into.merge(more),
                        (into @ None, Some(more)) => *into = Some(more.clone()),
                        (_, None) => {}
                    }
                }
            }
        }
    }
    pooled
}
