//! Running commands: each is printed before it runs, and a failure says which one failed.

use std::{ffi::OsStr, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::root;

pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// `cargo ARGS`, with the environment the eBPF build needs: `RUSTC_BOOTSTRAP=aya_ebpf` unlocks
/// the unstable features aya-ebpf uses for that crate only (`1` would make aya-build ask for
/// `-Z build-std`, which needs a rust-src these machines cannot download).
pub fn cargo_command(args: &[&str], release: bool) -> Command {
    let mut cmd = command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).env("RUSTC_BOOTSTRAP", "aya_ebpf");
    if release {
        cmd.arg("--release");
    }
    cmd
}

pub fn cargo(args: &[&str], release: bool) -> Result<()> {
    run(&mut cargo_command(args, release))
}

/// Whether a command runs and exits 0 (output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
