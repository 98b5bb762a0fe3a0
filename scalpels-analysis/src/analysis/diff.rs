//! `scalpels-trace diff BEFORE AFTER`: per dimension, what got slower (or faster, new, gone)
//! from one run to the other, per second of run and per call, with a noise guard (see
//! `noise`). Any regression makes the exit status 1, so CI jobs can gate on it.

mod dimensions;
mod noise;
mod page;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::{Value, json};

use dimensions::{Measure, Shape, Spec};
use noise::{Share, Total};

use super::{
    Format,
    dataset::Dataset,
    latency::Latencies,
    render::{self, Style},
    runs::Run,
    table::{Cell, Column, Kind, Mark, Table, column, duration},
};

pub struct Options {
    /// Smallest relative rise that counts (0.2 = 20 %).
    pub threshold: f64,
    /// Smallest rise in time per second (ns per second) that counts.
    pub min_rise_ns: f64,
    /// Rows shown per dimension besides the regressions.
    pub top: usize,
}

/// The significance level of the whole diff, shared among its comparisons.
const ALPHA: f64 = 0.01;

pub struct Regression {
    pub dimension: &'static str,
    pub label: Vec<String>,
    pub reasons: Vec<String>,
}

pub struct Diff {
    pub summary: Table,
    pub tables: Vec<Table>,
    pub regressions: Vec<Regression>,
    pub skipped: Vec<&'static str>,
    pub threshold: f64,
    pub z: f64,
    /// The runs compared, for the page's flame graph.
    pub sides: (Side, Side),
}

type Measures = BTreeMap<Vec<String>, Measure>;

/// One side of a diff: one run, or several runs of the same version (replicates).
pub struct Side {
    /// What the user named: a run directory or a tree of runs.
    pub path: std::path::PathBuf,
    pub runs: Vec<Run>,
}

impl Side {
    fn seconds(&self) -> f64 {
        self.runs.iter().map(|r| r.seconds).sum()
    }
}

/// Each run's measures of a dimension; None when a run lacks its tables.
async fn measure_runs(side: &Side, spec: &Spec) -> Result<Option<Vec<Measures>>> {
    let mut runs = Vec::new();
    for run in &side.runs {
        let dataset = Dataset::open(std::slice::from_ref(run)).await?;
        match dimensions::measure(&dataset, spec).await? {
            Some(measures) => runs.push(measures),
            None => return Ok(None),
        }
    }
    Ok(Some(runs))
}

pub async fn build(before: Side, after: Side, options: &Options) -> Result<Diff> {
    let mut compared: Vec<(Spec, Vec<Measures>, Vec<Measures>)> = Vec::new();
    let mut skipped = Vec::new();
    for spec in dimensions::all() {
        match (
            measure_runs(&before, &spec).await?,
            measure_runs(&after, &spec).await?,
        ) {
            (Some(ma), Some(mb)) => compared.push((spec, ma, mb)),
            _ => skipped.push(spec.key),
        }
    }
    let pooled: Vec<(Measures, Measures)> = compared
        .iter()
        .map(|(_, ma, mb)| (dimensions::pool(ma), dimensions::pool(mb)))
        .collect();
    let comparisons: usize = compared
        .iter()
        .zip(&pooled)
        .map(|((spec, _, _), (pa, pb))| {
            let keys = pa.keys().chain(pb.keys()).collect::<BTreeSet<_>>().len();
            keys * spec.tests()
        })
        .sum();
    let z = noise::z_for(ALPHA / comparisons.max(1) as f64);
    let judge = Judge {
        threshold: options.threshold,
        min_rise_ns: options.min_rise_ns,
        z,
        seconds: (before.seconds(), after.seconds()),
        run_seconds: (
            before.runs.iter().map(|r| r.seconds).collect(),
            after.runs.iter().map(|r| r.seconds).collect(),
        ),
    };
    let mut tables = Vec::new();
    let mut regressions = Vec::new();
    for ((spec, ra, rb), (pa, pb)) in compared.iter().zip(&pooled) {
        let (table, found) = judge.dimension(spec, (pa, pb), (ra, rb), options.top);
        tables.push(table);
        regressions.extend(found);
    }
    Ok(Diff {
        summary: summary(&before, &after, options, z, regressions.len()),
        tables,
        regressions,
        skipped,
        threshold: options.threshold,
        z,
        sides: (before, after),
    })
}

fn summary(before: &Side, after: &Side, options: &Options, z: f64, regressions: usize) -> Table {
    let mut table = Table::new(
        "runs",
        "Scalpels diff",
        vec![
            column("field", "", Kind::Text),
            column("value", "", Kind::Text),
        ],
    );
    let side = |side: &Side| match side.runs.as_slice() {
        [run] => format!("{} ({})", run.dir.display(), duration(run.seconds * 1e9)),
        runs => format!(
            "{} runs under {} ({} in all)",
            runs.len(),
            side.path.display(),
            duration(side.seconds() * 1e9)
        ),
    };
    let rows = [
        ("before", side(before)),
        ("after", side(after)),
        (
            "rule",
            format!(
                "rise > {:.0}%, beyond noise (z = {z:.2}); in time, > {}/s",
                options.threshold * 100.0,
                duration(options.min_rise_ns)
            ),
        ),
        (
            "verdict",
            match regressions {
                0 => "no regression".to_owned(),
                1 => "1 regression".to_owned(),
                n => format!("{n} regressions"),
            },
        ),
    ];
    for (field, value) in rows {
        let mark = if field == "verdict" && regressions > 0 {
            Mark::Worse
        } else {
            Mark::Plain
        };
        table.push(vec![Cell::Text(field.into()), Cell::Text(value)], mark);
    }
    table
}

struct Judge {
    threshold: f64,
    min_rise_ns: f64,
    z: f64,
    /// Seconds traced before and after (all runs of a side together).
    seconds: (f64, f64),
    /// Seconds of each run, before and after.
    run_seconds: (Vec<f64>, Vec<f64>),
}

/// One thing's measures in each run of both sides.
struct Replicates<'a> {
    before: Vec<Option<&'a Measure>>,
    after: Vec<Option<&'a Measure>>,
}

/// What changed for one thing, and whether it counts.
struct Change {
    worse: Vec<String>,
    better: Vec<String>,
    /// Shown instead of a verdict when the thing is not judged.
    note: Option<String>,
}

impl Change {
    fn unjudged(note: &str) -> Self {
        Self {
            worse: Vec::new(),
            better: Vec::new(),
            note: Some(note.to_owned()),
        }
    }
}

fn percent(before: f64, after: f64) -> String {
    format!("{:+.0}%", (after / before - 1.0) * 100.0)
}

impl Judge {
    fn totals(&self, a: Option<&Measure>, b: Option<&Measure>) -> (Total, Total) {
        let total = |m: Option<&Measure>, seconds| Total {
            sum: m.map_or(0.0, |m| m.time_ns),
            sum_of_squares: m.map_or(0.0, |m| m.sum_of_squares),
            seconds,
        };
        (total(a, self.seconds.0), total(b, self.seconds.1))
    }

    fn event_totals(&self, a: Option<&Measure>, b: Option<&Measure>) -> (Total, Total) {
        let total = |m: Option<&Measure>, seconds| {
            let n = m.map_or(0.0, |m| m.events);
            Total {
                sum: n,
                sum_of_squares: n,
                seconds,
            }
        };
        (total(a, self.seconds.0), total(b, self.seconds.1))
    }

    /// Whether every run of one side is beyond every run of the other by `metric` (after
    /// above before when `rising`): with several runs a side, the change must be larger than
    /// the runs' own spread, whatever its cause (the machine, the page cache, the network).
    fn apart(
        &self,
        reps: &Replicates,
        rising: bool,
        metric: impl Fn(Option<&Measure>, f64) -> f64,
    ) -> bool {
        let values = |runs: &[Option<&Measure>], seconds: &[f64]| -> Vec<f64> {
            runs.iter()
                .zip(seconds)
                .map(|(m, s)| metric(*m, *s))
                .collect()
        };
        let before = values(&reps.before, &self.run_seconds.0);
        let after = values(&reps.after, &self.run_seconds.1);
        let (low, high) = if rising {
            (before, after)
        } else {
            (after, before)
        };
        let highest_low = low.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lowest_high = high.iter().copied().fold(f64::INFINITY, f64::min);
        lowest_high > highest_low
    }

    fn change(
        &self,
        spec: &Spec,
        (a, b): (Option<&Measure>, Option<&Measure>),
        reps: &Replicates,
    ) -> Change {
        let (th, z, judged) = (self.threshold, self.z, spec.judged);
        let mut change = Change {
            worse: Vec::new(),
            better: Vec::new(),
            note: None,
        };
        let (ta, tb) = self.totals(a, b);
        let (ea, eb) = self.event_totals(a, b);
        let time_of = |m: Option<&Measure>, s: f64| m.map_or(0.0, |m| m.time_ns) / s;
        let rate_of = |m: Option<&Measure>, s: f64| m.map_or(0.0, |m| m.events) / s;
        // `rising`: after above before; else before above after.
        let time_moved = |rising: bool| {
            let (x, y) = if rising { (ta, tb) } else { (tb, ta) };
            judged.time
                && noise::rose(x, y, th, z)
                && y.per_second() - x.per_second() >= self.min_rise_ns
                && self.apart(reps, rising, time_of)
        };
        let rate_moved = |rising: bool| {
            let (x, y) = if rising { (ea, eb) } else { (eb, ea) };
            judged.rate && noise::rose(x, y, th, z) && self.apart(reps, rising, rate_of)
        };
        let absent = |m: Option<&Measure>| m.is_none_or(|m| m.events == 0.0);
        if absent(a) {
            if time_moved(true) || rate_moved(true) {
                change.worse.push("new".into());
            }
            return change;
        }
        if absent(b) {
            if time_moved(false) || rate_moved(false) {
                change.better.push("gone".into());
            }
            return change;
        }
        let rate = format!(
            "{}/s {}",
            spec.events,
            percent(ea.per_second(), eb.per_second())
        );
        if rate_moved(true) {
            change.worse.push(rate);
        } else if rate_moved(false) {
            change.better.push(rate);
        }
        let time = format!("time/s {}", percent(ta.per_second(), tb.per_second()));
        if time_moved(true) {
            change.worse.push(time);
        } else if time_moved(false) {
            change.better.push(time);
        }
        // Percentiles of log2 histograms are only shown: a factor-2 slot is coarser than the
        // run-to-run drift of microsecond system calls on a busy machine.
        if let (true, Some(la @ Latencies::Sorted(_)), Some(lb @ Latencies::Sorted(_))) = (
            judged.percentiles,
            a.and_then(|m| m.latencies.as_ref()),
            b.and_then(|m| m.latencies.as_ref()),
        ) {
            for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                let (qa, qb) = (
                    la.quantile(q).unwrap_or_default(),
                    lb.quantile(q).unwrap_or_default(),
                );
                // What the change would cost per second if every call paid it, at the busier
                // side's rate.
                let cost = (qb - qa).abs() * ea.per_second().max(eb.per_second());
                if cost < self.min_rise_ns {
                    continue;
                }
                let quantile_of = |m: Option<&Measure>, _: f64| {
                    m.and_then(|m| m.latencies.as_ref())
                        .and_then(|l| l.quantile(q))
                        .unwrap_or_default()
                };
                if noise::quantile_rose(la, lb, q, th, z) && self.apart(reps, true, quantile_of) {
                    change.worse.push(format!("{name} {}", percent(qa, qb)));
                } else if noise::quantile_rose(lb, la, q, th, z)
                    && self.apart(reps, false, quantile_of)
                {
                    change.better.push(format!("{name} {}", percent(qa, qb)));
                }
            }
        }
        if spec.hit_ratio {
            self.hit_ratio_change((a, b), reps, &mut change);
        }
        change
    }

    /// A cache command's miss ratio (of the keys it read), when both sides read: a rise
    /// beyond chance, and beyond the runs' spread, is worse.
    fn hit_ratio_change(
        &self,
        (a, b): (Option<&Measure>, Option<&Measure>),
        reps: &Replicates,
        change: &mut Change,
    ) {
        let share = |m: Option<&Measure>| Share {
            part: m.map_or(0.0, |m| m.misses),
            trials: m.map_or(0.0, |m| m.reads),
        };
        let (sa, sb) = (share(a), share(b));
        if sa.trials == 0.0 || sb.trials == 0.0 {
            return;
        }
        let miss_ratio = |m: Option<&Measure>, _: f64| {
            let share = share(m);
            if share.trials > 0.0 {
                share.ratio()
            } else {
                0.0
            }
        };
        let said = format!(
            "hit ratio {:.0}% → {:.0}%",
            (1.0 - sa.ratio()) * 100.0,
            (1.0 - sb.ratio()) * 100.0
        );
        let (th, z) = (self.threshold, self.z);
        if noise::share_rose(sa, sb, th, z) && self.apart(reps, true, miss_ratio) {
            change.worse.push(said);
        } else if noise::share_rose(sb, sa, th, z) && self.apart(reps, false, miss_ratio) {
            change.better.push(said);
        }
    }

    /// A dimension's table and regressions, from the runs of each side pooled and one by one.
    fn dimension(
        &self,
        spec: &Spec,
        (before, after): (&Measures, &Measures),
        (runs_before, runs_after): (&[Measures], &[Measures]),
        top: usize,
    ) -> (Table, Vec<Regression>) {
        let mut table = Table::new(spec.key, spec.title, self.columns(spec));
        if spec.shape == Shape::Profile {
            table = table.with_note(if spec.judged.time {
                "before/after: % of one CPU over the run"
            } else {
                "before/after: % of the run's wall time, summed over threads; not judged (a wait \
                 for work and a wait for a slow peer look the same: the sql/rpc/http latencies \
                 judge the peers)"
            });
        }
        let keys: BTreeSet<&Vec<String>> = before.keys().chain(after.keys()).collect();
        let mut rows: Vec<(Mark, f64, Vec<Cell>, Change)> = keys
            .into_iter()
            .map(|key| {
                let (a, b) = (before.get(key), after.get(key));
                let reps = Replicates {
                    before: runs_before.iter().map(|run| run.get(key)).collect(),
                    after: runs_after.iter().map(|run| run.get(key)).collect(),
                };
                let change = if spec.waits.contains(&key[0].as_str()) {
                    Change::unjudged("waits by design: not judged")
                } else {
                    self.change(spec, (a, b), &reps)
                };
                let (ta, tb) = self.totals(a, b);
                let mark = if !change.worse.is_empty() {
                    Mark::Worse
                } else if !change.better.is_empty() {
                    Mark::Better
                } else {
                    Mark::Plain
                };
                let rise = tb.per_second() - ta.per_second();
                (mark, rise, self.cells(spec, key, a, b, &change), change)
            })
            .collect();
        let rank = |m: &Mark| match m {
            Mark::Worse => 0,
            Mark::Better => 1,
            Mark::Plain => 2,
        };
        rows.sort_by(|x, y| rank(&x.0).cmp(&rank(&y.0)).then(y.1.total_cmp(&x.1)));
        let mut regressions = Vec::new();
        let (mut better_shown, mut plain_shown) = (0, 0);
        for (mark, _, cells, change) in rows {
            let shown = match mark {
                Mark::Worse => true,
                Mark::Better => {
                    better_shown += 1;
                    better_shown <= top
                }
                Mark::Plain => {
                    plain_shown += 1;
                    plain_shown <= top
                }
            };
            if mark == Mark::Worse {
                regressions.push(Regression {
                    dimension: spec.key,
                    label: cells
                        .iter()
                        .take(spec.labels.len())
                        .map(|c| match c {
                            Cell::Text(s) => s.clone(),
                            _ => String::new(),
                        })
                        .collect(),
                    reasons: change.worse,
                });
            }
            if shown {
                table.push(cells, mark);
            }
        }
        (table, regressions)
    }

    fn columns(&self, spec: &Spec) -> Vec<Column> {
        let mut columns = spec.labels.clone();
        if spec.shape == Shape::Profile {
            columns.extend([
                column("before_pct", "before", Kind::Percent),
                column("after_pct", "after", Kind::Percent),
                column("change", "change", Kind::Change),
                Column {
                    key: "events_before".into(),
                    title: format!("{} before", spec.events).into(),
                    kind: Kind::Count,
                },
                column("events_after", "after", Kind::Count),
            ]);
        } else {
            columns.extend([
                Column {
                    key: "rate_before".into(),
                    title: format!("{}/s before", spec.events).into(),
                    kind: Kind::Rate,
                },
                column("rate_after", "after", Kind::Rate),
                column("time_before_ns", "time/s before", Kind::Duration),
                column("time_after_ns", "after", Kind::Duration),
                column("change", "change", Kind::Change),
            ]);
            if spec.shape != Shape::Aggregated {
                columns.extend([
                    column("p50_before_ns", "p50 before", Kind::Duration),
                    column("p50_after_ns", "after", Kind::Duration),
                    column("p99_before_ns", "p99 before", Kind::Duration),
                    column("p99_after_ns", "after", Kind::Duration),
                ]);
            }
        }
        columns.push(column("verdict", "verdict", Kind::Text));
        columns
    }

    fn cells(
        &self,
        spec: &Spec,
        key: &[String],
        a: Option<&Measure>,
        b: Option<&Measure>,
        change: &Change,
    ) -> Vec<Cell> {
        let (ta, tb) = self.totals(a, b);
        let (ea, eb) = self.event_totals(a, b);
        let relative = if ta.sum == 0.0 {
            if tb.sum > 0.0 { f64::INFINITY } else { 0.0 }
        } else {
            tb.per_second() / ta.per_second() - 1.0
        };
        let mut cells: Vec<Cell> = key.iter().cloned().map(Cell::Text).collect();
        if spec.shape == Shape::Profile {
            cells.extend([
                Cell::Float(ta.per_second() / 1e7),
                Cell::Float(tb.per_second() / 1e7),
                Cell::Float(relative),
                Cell::Int(ea.sum as i64),
                Cell::Int(eb.sum as i64),
            ]);
        } else {
            cells.extend([
                Cell::Float(ea.per_second()),
                Cell::Float(eb.per_second()),
                Cell::Int(ta.per_second() as i64),
                Cell::Int(tb.per_second() as i64),
                Cell::Float(relative),
            ]);
            if spec.shape != Shape::Aggregated {
                let quantile = |m: Option<&Measure>, q| {
                    Cell::from(
                        m.and_then(|m| m.latencies.as_ref())
                            .and_then(|l: &Latencies| l.quantile(q))
                            .map(|ns| ns.round() as i64),
                    )
                };
                cells.extend([
                    quantile(a, 0.5),
                    quantile(b, 0.5),
                    quantile(a, 0.99),
                    quantile(b, 0.99),
                ]);
            }
        }
        let verdict = match &change.note {
            Some(note) => note.clone(),
            None if change.worse.is_empty() => change.better.join(", "),
            None => change.worse.join(", "),
        };
        cells.push(Cell::Text(verdict));
        cells
    }
}

impl Diff {
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => {
                let style = Style::for_stdout();
                let mut out: String = std::iter::once(&self.summary)
                    .chain(&self.tables)
                    .map(|t| render::text(t, &style))
                    .collect();
                if !self.skipped.is_empty() {
                    out.push_str(&format!("Not in both runs: {}\n", self.skipped.join(", ")));
                }
                out
            }
            Format::Markdown => {
                let mut out = String::from("## Scalpels diff\n\n");
                for row in &self.summary.rows {
                    if let [Cell::Text(field), Cell::Text(value)] = row.as_slice() {
                        out.push_str(&format!("- **{field}**: {value}\n"));
                    }
                }
                out.push('\n');
                out.extend(self.tables.iter().map(render::markdown));
                out
            }
            Format::Json => {
                let regressions: Vec<Value> = self
                    .regressions
                    .iter()
                    .map(|r| {
                        json!({ "dimension": r.dimension, "label": r.label, "reasons": r.reasons })
                    })
                    .collect();
                let doc = json!({
                    "regressions": regressions,
                    "threshold": self.threshold,
                    "z": self.z,
                    "skipped": self.skipped,
                    "dimensions": self.tables.iter().map(Table::to_json).collect::<Vec<_>>(),
                });
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).expect("JSON of plain values")
                )
            }
        }
    }
}
