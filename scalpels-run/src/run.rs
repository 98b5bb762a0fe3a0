//! A run: its directory, its Parquet tables and its manifest.

use std::io::Write as _;

use anyhow::{Context as _, Result};

use dir::Dir;

pub mod columns;
pub mod dir;
pub mod manifest;
pub mod pending;
pub mod read;
pub mod retention;
pub mod run_dir;
pub mod table;

/// Version of the run layout (tables, columns, manifest). Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A file of [`RESERVE_BYTES`] the run keeps on its filesystem from its start until its last
/// manifest is written: on a full disk it is given back so that the manifest still says how
/// the run ended, instead of being left `running`.
const RESERVE: &str = ".manifest-reserve";
const RESERVE_BYTES: usize = 64 << 10;

/// Sets the manifest's room aside in the run directory.
pub fn reserve_room(run_dir: &Dir) -> Result<()> {
    let mut file = run_dir.create(RESERVE)?;
    // Written, not only sized: the blocks must be taken now.
    file.write_all(&[0u8; RESERVE_BYTES])
        .with_context(|| format!("setting room aside in {}", run_dir.path().display()))
}

/// Gives the manifest's room back (once the last manifest is written, or when the disk is
/// full before).
pub fn release_room(run_dir: &Dir) {
    let _ = run_dir.remove_file(RESERVE);
}
