//! `scalpels-trace`: traces an OpenStack service (or any process) with eBPF and writes one
//! directory of Parquet files per run.

mod analysis;
mod block;
mod btf;
mod cli;
mod clock;
mod counters;
mod ebpf;
mod events_ready;
mod files;
mod hooks;
mod map_batch;
mod options;
mod preflight;
mod proc;
mod program_stats;
mod protocols;
mod python;
#[cfg(test)]
mod schema_docs;
mod status;
mod syscalls;
mod target;
mod thread_storage;
mod trace;
mod tracefs;
mod tracer;
mod umask;

use std::process::ExitCode;

// The run format lives in its own crate; its modules keep their paths here.
use scalpels_run::{fleet, run};

use clap::Parser as _;

fn main() -> ExitCode {
    umask::make_private();
    let mut cli = cli::Cli::parse();
    // The analysis commands exit 2 on errors: `diff` gives 1 a meaning (a regression).
    let (result, error_status) = match cli.analysis.take() {
        Some(analysis) => (analysis::run(analysis), 2),
        None => (trace::run(cli), 1),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("scalpels-trace: error: {e:#}");
            ExitCode::from(error_status)
        }
    }
}
