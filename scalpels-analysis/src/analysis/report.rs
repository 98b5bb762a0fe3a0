//! `scalpels-trace report RUN`: where one run's service spent its time, section by section, for
//! whichever tracers the run had.

mod sections;

use anyhow::Result;
use serde_json::{Value, json};

use crate::{
    python::flamegraph,
    run::manifest::{RunStatus, TracerStatus},
};

use super::{
    Format,
    dataset::Dataset,
    html,
    render::{self, Style},
    runs::Run,
    table::{Cell, Kind, Mark, Table, column, duration},
};

pub struct Report {
    pub run: Run,
    pub summary: Table,
    pub sections: Vec<Table>,
}

pub async fn build(run: Run, top: usize) -> Result<Report> {
    let dataset = Dataset::open(std::slice::from_ref(&run)).await?;
    let scope = sections::Scope {
        dataset: &dataset,
        top,
        seconds: run.seconds,
    };
    let sections = sections::all(&scope).await?;
    Ok(Report {
        summary: summary(&run),
        run,
        sections,
    })
}

/// What the manifest says: which run, how long, which tracers, what was lost.
fn summary(run: &Run) -> Table {
    let mut table = Table::new(
        "run",
        format!("Scalpels report: {}", run.run_id),
        vec![
            column("field", "", Kind::Text),
            column("value", "", Kind::Text),
        ],
    );
    let m = &run.manifest;
    let mut tracers = Vec::new();
    let mut drops = Vec::new();
    for tracer in &m.tracers {
        let name = tracer.name.as_deref().unwrap_or("?");
        match tracer.status {
            Some(TracerStatus::Attached) => tracers.push(name.to_owned()),
            _ => tracers.push(format!(
                "{name} (unavailable: {})",
                tracer.reason.as_deref().unwrap_or("?")
            )),
        }
        for (counter, n) in tracer.drops.iter().filter(|(_, n)| **n > 0) {
            drops.push(format!("{name} {counter}={n}"));
        }
    }
    for (table, record) in m.tables.iter().filter(|(_, r)| r.rows_lost > 0) {
        drops.push(format!("{table} {} rows (write error)", record.rows_lost));
    }
    let end = match m.end_reason.as_deref().unwrap_or("") {
        "" => run.status.clone(),
        reason => format!("{} ({reason})", run.status),
    };
    let rows = [
        ("run", run.dir.display().to_string()),
        ("host", run.host.clone()),
        ("service", run.service.clone()),
        ("started", m.started_at.clone().unwrap_or_default()),
        ("length", duration(run.seconds * 1e9)),
        ("status", end),
        ("tracers", tracers.join(", ")),
        (
            "lost",
            match (drops.is_empty(), &m.status) {
                // The counts are in the manifest the run never finished.
                (_, Some(RunStatus::Running)) => {
                    "unknown: incomplete run (killed before it ended)".to_owned()
                }
                (true, _) => "nothing".to_owned(),
                (false, _) => drops.join(", "),
            },
        ),
    ];
    for (field, value) in rows {
        table.push(
            vec![Cell::Text(field.to_owned()), Cell::Text(value)],
            Mark::Plain,
        );
    }
    table
}

impl Report {
    /// The report as one self-contained HTML page, with the run's flame graphs.
    pub fn html(&self) -> Result<String> {
        let mut flame_graphs = Vec::new();
        for (off_cpu, title) in [
            (false, "Flame graph: Python on CPU"),
            (true, "Flame graph: Python off CPU (waiting)"),
        ] {
            // A run without the python tracer, or without samples of a kind, has no graph.
            if let Some(svg) = flamegraph::for_page(&self.run.dir, off_cpu)? {
                flame_graphs.push(html::FlameGraph {
                    title: title.to_owned(),
                    note: flamegraph::page_note(),
                    svg,
                });
            }
        }
        Ok(html::page(&self.summary, &self.sections, &flame_graphs))
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => {
                let style = Style::for_stdout();
                std::iter::once(&self.summary)
                    .chain(&self.sections)
                    .map(|t| render::text(t, &style))
                    .collect()
            }
            Format::Markdown => {
                let mut out = format!("## {}\n\n", self.summary.title);
                for row in &self.summary.rows {
                    if let [Cell::Text(field), Cell::Text(value)] = row.as_slice() {
                        out.push_str(&format!("- **{field}**: {value}\n"));
                    }
                }
                out.push('\n');
                out.extend(self.sections.iter().map(render::markdown));
                out
            }
            Format::Json => {
                let run: serde_json::Map<String, Value> = self
                    .summary
                    .rows
                    .iter()
                    .filter_map(|row| match row.as_slice() {
                        [Cell::Text(field), Cell::Text(value)] => {
                            Some((field.clone(), json!(value)))
                        }
                        _ => None,
                    })
                    .chain([
                        ("run_id".to_owned(), json!(self.run.run_id)),
                        ("seconds".to_owned(), json!(self.run.seconds)),
                    ])
                    .collect();
                let sections: Vec<Value> = self.sections.iter().map(Table::to_json).collect();
                let doc = json!({ "run": run, "sections": sections });
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).expect("JSON of plain values")
                )
            }
        }
    }
}
