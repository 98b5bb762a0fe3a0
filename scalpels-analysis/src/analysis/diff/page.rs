//! `diff --html FILE`: the diff as one self-contained page (see `html`), with the differential
//! flame graph of the Python stacks on CPU when both sides have them.

use anyhow::Result;

use super::Diff;
use crate::{
    analysis::{
        html,
        table::{Cell, Mark},
    },
    python::{differential::Sides, flamegraph},
};

impl Diff {
    pub fn html(&self) -> Result<String> {
        let (before, after) = &self.sides;
        let sides = Sides {
            before: &before.runs,
            after: &after.runs,
            off_cpu: false,
            pid: None,
        };
        let mut flame_graphs = Vec::new();
        // Runs without the python tracer, or without samples on CPU, have no graph.
        if let Ok(svg) = sides.for_page() {
            flame_graphs.push(html::FlameGraph {
                title: "Differential flame graph: Python on CPU".to_owned(),
                note: format!(
                    "After's stacks; each frame red where its own time per second rose since \
                     before, blue where it fell (hover for the change in % of after's total). {}",
                    flamegraph::page_note()
                ),
                svg,
            });
        }
        let mut summary = self.summary.clone();
        if !self.skipped.is_empty() {
            summary.push(
                vec![
                    Cell::Text("not in both runs".to_owned()),
                    Cell::Text(self.skipped.join(", ")),
                ],
                Mark::Plain,
            );
        }
        Ok(html::page(&summary, &self.tables, &flame_graphs))
    }
}
