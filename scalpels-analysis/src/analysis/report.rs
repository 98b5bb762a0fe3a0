//! `scalpels-trace report RUN`: where one run's service spent its time, section by section, for
//! whichever tracers the run had.

mod sections;

use anyhow::Result;
use serde_json::{Value, json};

use crate::python::flamegraph;

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
    let text = |pointer: &str| m.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let mut tracers = Vec::new();
    let mut drops = Vec::new();
    for tracer in m["tracers"].as_array().into_iter().flatten() {
        let name = tracer["name"].as_str().unwrap_or("?");
        match tracer["status"].as_str() {
            Some("attached") => tracers.push(name.to_owned()),
            _ => tracers.push(format!(
                "{name} (unavailable: {})",
                tracer["reason"].as_str().unwrap_or("?")
            )),
        }
        for (counter, n) in tracer["drops"].as_object().into_iter().flatten() {
            if n.as_u64().is_some_and(|n| n > 0) {
                drops.push(format!("{name} {counter}={n}"));
            }
        }
    }
    for (table, record) in m["tables"].as_object().into_iter().flatten() {
        if let Some(n) = record["rows_lost"].as_u64().filter(|&n| n > 0) {
            drops.push(format!("{table} {n} rows (write error)"));
        }
    }
    let end = match text("/end_reason") {
        "" => run.status.clone(),
        reason => format!("{} ({reason})", run.status),
    };
    let rows = [
        ("run", run.dir.display().to_string()),
        ("host", run.host.clone()),
        ("service", run.service.clone()),
        ("started", text("/started_at").to_owned()),
        ("length", duration(run.seconds * 1e9)),
        ("status", end),
        ("tracers", tracers.join(", ")),
        (
            "lost",
            match (drops.is_empty(), run.status.as_str()) {
                // The counts are in the manifest the run never finished.
                (_, "running") => "unknown: incomplete run (killed before it ended)".to_owned(),
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
            let request = flamegraph::Request {
                run: self.run.dir.clone(),
                off_cpu,
                pid: None,
                output: None,
            };
            // A run without the python tracer, or without samples of a kind, has no graph.
            let Ok(lines) = flamegraph::folded(&request) else {
                continue;
            };
            if lines.is_empty() {
                continue;
            }
            let mut svg = Vec::new();
            flamegraph::draw(&request, &lines, &mut svg)?;
            flame_graphs.push((title.to_owned(), svg));
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
