//! `scalpels-trace`: traces an OpenStack service (or any process) with eBPF and writes one
//! directory of Parquet files per run.

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
mod stack_index;
mod status;
mod syscalls;
mod target;
mod thread_storage;
mod trace;
mod tracefs;
mod tracer;
mod umask;
mod uprobe_link;

use std::process::ExitCode;

// The run format lives in its own crate; its modules keep their paths here.
use scalpels_run::{fleet, run};

use clap::Parser as _;

fn main() -> ExitCode {
    umask::make_private();
    #[cfg_attr(not(feature = "analysis"), expect(unused_mut))]
    let mut cli = cli::Cli::parse();
    // The analysis commands exit 2 on errors: `diff` gives 1 a meaning (a regression).
    #[cfg(feature = "analysis")]
    if let Some(analysis) = cli.analysis.take() {
        return exit(scalpels_analysis::analysis::run(analysis), 2);
    }
    exit(trace::run(cli), 1)
}

/// The process's exit status: the command's, or `error_status` after printing its error.
fn exit(result: anyhow::Result<u8>, error_status: u8) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("scalpels-trace: error: {e:#}");
            ExitCode::from(error_status)
        }
    }
}
