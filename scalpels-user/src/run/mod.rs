//! A run: its directory, its Parquet tables and its manifest.

use std::path::Path;

use anyhow::{Context as _, Result};

pub mod columns;
pub mod manifest;
pub mod read;
pub mod run_dir;
pub mod status;
pub mod table;

/// Version of the run layout (tables, columns, manifest). Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A file of [`RESERVE_BYTES`] the run keeps on its filesystem from its start until its last
/// manifest is written: on a full disk it is given back so that the manifest still says how
/// the run ended, instead of being left `running`.
const RESERVE: &str = ".manifest-reserve";
const RESERVE_BYTES: usize = 64 << 10;

/// Sets the manifest's room aside in `run_dir`.
pub fn reserve_room(run_dir: &Path) -> Result<()> {
    let path = run_dir.join(RESERVE);
    // Written, not only sized: the blocks must be taken now.
    std::fs::write(&path, vec![0u8; RESERVE_BYTES])
        .with_context(|| format!("setting room aside in {}", path.display()))
}

/// Gives the manifest's room back (once the last manifest is written, or when the disk is
/// full before).
pub fn release_room(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(RESERVE));
}

/// Writes `path` by way of `partial`, renamed once complete. A failed write leaves nothing
/// behind: on a full disk the space goes to what can still be saved (the manifest).
pub fn write_then_rename(
    partial: &Path,
    path: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let result = write(partial).and_then(|()| {
        std::fs::rename(partial, path).with_context(|| format!("renaming {}", partial.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(partial);
    }
    result
}
