//! Runs are private: `scalpels-trace` usually runs as root, and a trace anyone can alter (or a
//! command line anyone can read) is a hole. The process umask is set to 0o077 before anything is
//! created, so every directory is 0700 and every file 0600 whatever umask it was started with.

use std::sync::atomic::{AtomicU32, Ordering};

/// The umask `scalpels-trace` was started with, given back to a `-- COMMAND` so the traced
/// program creates its files as it would untraced.
static CALLER: AtomicU32 = AtomicU32::new(0o022);

/// Makes everything created from now on private to the owner; remembers the caller's umask.
pub fn make_private() {
    // SAFETY: umask cannot fail; it only swaps the process's file-mode creation mask.
    let caller = unsafe { libc::umask(0o077) };
    CALLER.store(caller, Ordering::Relaxed);
}

/// The umask the caller started `scalpels-trace` with.
pub fn caller() -> libc::mode_t {
    CALLER.load(Ordering::Relaxed)
}
