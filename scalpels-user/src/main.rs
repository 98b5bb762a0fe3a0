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
mod fleet;
mod preflight;
mod proc;
mod protocols;
mod python;
mod run;
mod syscalls;
mod target;
mod trace;
mod tracefs;
mod tracer;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match trace::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("scalpels-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
