//! A directory of the run, held open while the run writes into it.
//!
//! Every file of a run is created relative to its directory's descriptor, never by path: if
//! someone renames the run directory (or one above it) and puts a link or a directory of
//! their own in its place, the run still writes into its own directory, which only root can
//! enter. Files are created new (`O_EXCL`), private (0600), and no name is followed if it is
//! a symbolic link (`O_NOFOLLOW`).

use std::{
    fs::File,
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use rustix::fs::{AtFlags, CWD, Dir as Entries, Mode, OFlags, mkdirat, openat, renameat, unlinkat};

/// Directories the run creates: for root only.
const DIR_MODE: u32 = 0o700;
/// Files the run creates: for root only.
const FILE_MODE: u32 = 0o600;

#[derive(Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    /// Where it was when opened, for messages and for readers that take paths.
    path: PathBuf,
}

impl Dir {
    /// Opens the directory `path`, which must not be a symbolic link.
    pub fn open(path: &Path) -> Result<Self> {
        let fd = io(openat(CWD, path, directory_flags(), Mode::empty()))
            .with_context(|| format!("opening directory {}", path.display()))?;
        Ok(Self {
            fd: Arc::new(fd),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the subdirectory `name` (private), which must not exist.
    pub fn new_subdir(&self, name: &str) -> io::Result<Self> {
        io(mkdirat(&*self.fd, name, Mode::from_raw_mode(DIR_MODE)))?;
        self.open_subdir(name)
    }

    /// The subdirectory `name`, created (private) unless it exists.
    pub fn subdir(&self, name: &str) -> Result<Self> {
        let path = self.path.join(name);
        match self.new_subdir(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.open_subdir(name),
            made => made,
        }
        .with_context(|| format!("creating {}", path.display()))
    }

    fn open_subdir(&self, name: &str) -> io::Result<Self> {
        let fd = io(openat(&*self.fd, name, directory_flags(), Mode::empty()))?;
        Ok(Self {
            fd: Arc::new(fd),
            path: self.path.join(name),
        })
    }

    /// Creates the file `name`, which must not exist.
    pub fn create(&self, name: &str) -> Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = io(openat(
            &*self.fd,
            name,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        ))
        .with_context(|| format!("creating {}", self.path.join(name).display()))?;
        Ok(File::from(fd))
    }

    /// Opens the file `name` to read it.
    pub fn open_file(&self, name: &str) -> Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = io(openat(&*self.fd, name, flags, Mode::empty()))
            .with_context(|| format!("opening {}", self.path.join(name).display()))?;
        Ok(File::from(fd))
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        io(renameat(&*self.fd, from, &*self.fd, to))
            .with_context(|| format!("renaming {}", self.path.join(from).display()))
    }

    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        io(unlinkat(&*self.fd, name, AtFlags::empty()))
    }

    /// Removes the subdirectory `name` and the files in it.
    pub fn remove_subdir(&self, name: &str) -> Result<()> {
        let sub = self.subdir(name)?;
        let context = || format!("removing {}", sub.path.display());
        for entry in io(Entries::read_from(&*sub.fd)).with_context(context)? {
            let entry = io(entry).with_context(context)?;
            let file = entry.file_name().to_string_lossy();
            if file != "." && file != ".." {
                io(unlinkat(&*sub.fd, entry.file_name(), AtFlags::empty()))
                    .with_context(context)?;
            }
        }
        io(unlinkat(&*self.fd, name, AtFlags::REMOVEDIR)).with_context(context)
    }

    /// Writes `name` by way of `partial`, renamed once complete. A failed write leaves nothing
    /// behind: on a full disk the space goes to what can still be saved (the manifest).
    pub fn write_then_rename(
        &self,
        partial: &str,
        name: &str,
        write: impl FnOnce(File) -> Result<()>,
    ) -> Result<()> {
        // What an interrupted write of an earlier process left (the name only, never followed).
        let _ = self.remove_file(partial);
        let result = self
            .create(partial)
            .and_then(write)
            .and_then(|()| self.rename(partial, name));
        if result.is_err() {
            let _ = self.remove_file(partial);
        }
        result
    }
}

/// As `std` errors, which callers look for (a full disk).
fn io<T>(result: rustix::io::Result<T>) -> io::Result<T> {
    result.map_err(io::Error::from)
}

fn directory_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, symlink};

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scalpels-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn files_are_private_new_and_written_where_the_directory_went() {
        let root = scratch("moved");
        let run = root.join("run");
        std::fs::create_dir(&run).unwrap();
        let dir = Dir::open(&run).unwrap();
        // Someone moves the run away and puts a link to another file in its place.
        let moved = root.join("moved");
        std::fs::rename(&run, &moved).unwrap();
        std::fs::create_dir(&run).unwrap();
        let victim = root.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        symlink(&victim, run.join("manifest.json.partial")).unwrap();

        dir.write_then_rename("manifest.json.partial", "manifest.json", |mut file| {
            io::Write::write_all(&mut file, b"{}")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(moved.join("manifest.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::metadata(moved.join("manifest.json"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        // A name that exists is not reused, a link is not followed.
        assert!(dir.create("manifest.json").is_err());
        symlink(&victim, moved.join("link")).unwrap();
        assert!(dir.open_file("link").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn subdirectories_are_private_and_removed_with_their_files() {
        let root = scratch("sub");
        let dir = Dir::open(&root).unwrap();
        let parts = dir.subdir("t.parts").unwrap();
        assert_eq!(
            std::fs::metadata(root.join("t.parts")).unwrap().mode() & 0o777,
            0o700
        );
        parts.create("a").unwrap();
        parts.create("b").unwrap();
        assert!(dir.subdir("t.parts").is_ok());
        dir.remove_subdir("t.parts").unwrap();
        assert!(!root.join("t.parts").exists());
        // A link in place of a directory is refused.
        symlink("/", root.join("up")).unwrap();
        assert!(dir.subdir("up").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
