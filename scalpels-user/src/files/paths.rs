//! Paths of the files the kernel names by (device, inode): from the opens the tracer saw, and
//! for files opened before the trace, from the process's `/proc/PID/fd` links.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::Path,
};

use tracers::files::FileId;

/// Kernel-internal `dev_t` (major << 20 | minor) of a userspace `st_dev`.
fn kernel_dev(st_dev: u64) -> u32 {
    (libc::major(st_dev) << 20) | libc::minor(st_dev)
}

fn file_id(meta: &fs::Metadata) -> FileId {
    FileId {
        dev: kernel_dev(meta.dev()),
        _pad: 0,
        ino: meta.ino(),
    }
}

#[derive(Default)]
pub struct PathBook {
    paths: HashMap<FileId, String>,
    /// Processes whose fd table was already read for unknown files.
    scanned: HashSet<u32>,
}

impl PathBook {
    pub fn get(&self, file: &FileId) -> Option<&str> {
        self.paths.get(file).map(String::as_str)
    }

    /// Records a file `tgid` opened as `fd`: by the absolute path it passed, as is (cheap: opens
    /// are frequent); a relative one through the fd's link while it is open, else against the
    /// process's working directory.
    pub fn opened(&mut self, tgid: u32, fd: u32, file: FileId, given: &str) {
        let path = if Path::new(given).is_absolute() {
            given.to_owned()
        } else {
            let link = format!("/proc/{tgid}/fd/{fd}");
            match (fs::read_link(&link), fs::metadata(&link)) {
                (Ok(target), Ok(meta)) if file_id(&meta) == file => target.display().to_string(),
                _ => match fs::read_link(format!("/proc/{tgid}/cwd")) {
                    Ok(cwd) => cwd.join(given).display().to_string(),
                    Err(_) => given.to_owned(),
                },
            }
        };
        self.paths.insert(file, path);
    }

    /// Makes sure `file` of `tgid` has a path if it can, reading the process's open files at
    /// most once until [`PathBook::forget_scans`].
    pub fn resolve(&mut self, tgid: u32, file: &FileId) {
        if !self.paths.contains_key(file) {
            self.scan(tgid);
        }
    }

    /// Lets [`PathBook::resolve`] read fd tables again (called once per interval).
    pub fn forget_scans(&mut self) {
        self.scanned.clear();
    }

    /// Names the regular files `tgid` has open (those it opened before the trace started).
    pub fn scan(&mut self, tgid: u32) {
        if !self.scanned.insert(tgid) {
            return;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{tgid}/fd")) else {
            return;
        };
        for entry in fds.flatten() {
            let link = entry.path();
            if let (Ok(target), Ok(meta)) = (fs::read_link(&link), fs::metadata(&link))
                && meta.is_file()
            {
                self.paths
                    .entry(file_id(&meta))
                    .or_insert_with(|| target.display().to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_open_before_the_trace_from_proc() {
        let file = std::env::temp_dir().join(format!("scalpels-paths-{}", std::process::id()));
        let open = fs::File::create(&file).unwrap();
        let id = file_id(&open.metadata().unwrap());
        let mut book = PathBook::default();
        book.resolve(std::process::id(), &id);
        assert_eq!(book.get(&id), Some(file.to_str().unwrap()));
        fs::remove_file(&file).unwrap();
    }
}
