//! Analysis of finished runs, through DataFusion over the runs' Parquet files: `sql` for any
//! question, `report` for where one run spent its time, `diff` for what got slower between two.

mod dataset;
mod diff;
mod functions;
mod html;
mod latency;
mod query_table;
mod render;
mod report;
pub(crate) mod runs;
mod sql;
mod table;
mod values;

use std::{io::Write as _, path::PathBuf};

use anyhow::{Context as _, Result};

use crate::{cli::Analysis, python::flamegraph::Request};

pub use sql::SqlFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// Runs a command on finished runs; returns the exit status (`diff`: 1 when it found a
/// regression).
pub fn run(analysis: Analysis) -> Result<u8> {
    match analysis {
        Analysis::Flamegraph {
            run,
            diff,
            off_cpu,
            pid,
            output,
        } => {
            let svg = match (run, diff.as_deref()) {
                (_, Some([before, after])) => {
                    crate::python::differential::write(before, after, off_cpu, pid, output)?
                }
                (Some(run), _) => crate::python::flamegraph::write(&Request {
                    run,
                    off_cpu,
                    pid,
                    output,
                })?,
                _ => unreachable!("clap asks for a run or --diff BEFORE AFTER"),
            };
            println!("flame graph: {}", svg.display());
            println!("folded stacks: {}", svg.with_extension("folded").display());
            Ok(0)
        }
        Analysis::Export { stacks, format, of } => {
            let path = crate::python::export::write(&stacks, format, of)?;
            println!("exported: {}", path.display());
            Ok(0)
        }
        // It runs its own uploads.
        Analysis::Publish { runs, to } => {
            crate::fleet::publish::publish(&runs, &to)?;
            Ok(0)
        }
        query => {
            // One thread: the queries are small, the machines shared, and the engine wants a
            // runtime.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the query runtime")?;
            runtime.block_on(dispatch(query))
        }
    }
}

async fn dispatch(analysis: Analysis) -> Result<u8> {
    match analysis {
        Analysis::Flamegraph { .. } | Analysis::Export { .. } | Analysis::Publish { .. } => {
            unreachable!("run() handles the commands that need no query engine")
        }
        Analysis::Sql {
            runs,
            query,
            format,
        } => {
            let dataset = dataset::Dataset::open(&runs::discover(&runs)?).await?;
            sql::run(&dataset, &query, format).await?;
            Ok(0)
        }
        Analysis::Report {
            run,
            top,
            format,
            html,
        } => {
            let report = report::build(runs::one(&run)?, top).await?;
            match html {
                Some(path) => {
                    crate::output::create(&path)?
                        .write_all(report.html()?.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("report: {}", path.display());
                }
                None => print!("{}", report.render(format)),
            }
            Ok(0)
        }
        Analysis::Diff {
            before,
            after,
            threshold,
            min_rise,
            top,
            format,
            html,
        } => {
            let options = diff::Options {
                threshold: threshold / 100.0,
                min_rise_ns: min_rise.as_nanos() as f64,
                top,
            };
            let side = |path: PathBuf| -> Result<diff::Side> {
                Ok(diff::Side {
                    runs: runs::discover(std::slice::from_ref(&path))?,
                    path,
                })
            };
            let diff = diff::build(side(before)?, side(after)?, &options).await?;
            if let Some(path) = html {
                crate::output::create(&path)?
                    .write_all(diff.html()?.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("diff report: {}", path.display());
            }
            print!("{}", diff.render(format));
            Ok(u8::from(diff.regressed()))
        }
    }
}
