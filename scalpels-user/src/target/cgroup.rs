//! systemd services as cgroup v2 directories; a directory's inode number is the cgroup id the
//! kernel reports (`bpf_get_current_cgroup_id`).

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::Members;

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` (unified) or `/sys/fs/cgroup/unified` (hybrid).
pub fn root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

fn unit_file_name(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

/// The cgroup directory of systemd unit `name` (`name` or `name.service`), searched under
/// `system.slice` first, then anywhere a few levels deep.
pub fn find_unit(name: &str) -> Option<PathBuf> {
    let root = root()?;
    let unit = unit_file_name(name);
    let direct = root.join("system.slice").join(&unit);
    if direct.is_dir() {
        return Some(direct);
    }
    let mut found = None;
    walk(&root, 4, &mut |dir| {
        if found.is_none() && dir.file_name().is_some_and(|n| n == unit.as_str()) {
            found = Some(dir.to_owned());
        }
    });
    found
}

/// Whether process `pid` runs in the cgroup of unit `name` (or below it), by its cgroup v2 path:
/// one file read, cheap enough for every process that starts while a service is waited for.
pub fn in_unit(pid: u32, name: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|cgroups| path_in_unit(&cgroups, &unit_file_name(name)))
}

/// Whether the cgroup v2 line (`0::/system.slice/nova-compute.service`) of a `/proc/PID/cgroup`
/// names directory `unit` on its path.
fn path_in_unit(cgroups: &str, unit: &str) -> bool {
    cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .is_some_and(|path| path.split('/').any(|dir| dir == unit))
}

/// Names of the `.service` units that have a cgroup, for suggestions.
pub fn unit_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(root) = root() {
        walk(&root, 4, &mut |dir| {
            if let Some(unit) = dir
                .file_name()
                .and_then(|n| n.to_str()?.strip_suffix(".service"))
            {
                names.insert(unit.to_owned());
            }
        });
    }
    names
}

/// The cgroup ids of `dir` and its descendants, and the processes in them.
pub fn members(dir: &Path) -> Members {
    let mut members = Members::default();
    let mut visit = |d: &Path| {
        if let Ok(meta) = fs::metadata(d) {
            members.cgroup_ids.insert(meta.ino());
        }
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        members
            .pids
            .extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    };
    if dir.is_dir() {
        visit(dir);
        walk(dir, 8, &mut visit);
    }
    members
}

/// Calls `f` on every directory below `dir`, at most `depth` levels down.
fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path)) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let path = entry.path();
            f(&path);
            walk(&path, depth - 1, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_get_the_service_suffix() {
        assert_eq!(unit_file_name("nova-compute"), "nova-compute.service");
        assert_eq!(
            unit_file_name("nova-compute.service"),
            "nova-compute.service"
        );
    }

    #[test]
    fn a_process_is_in_a_unit_by_its_cgroup_v2_path() {
        let hybrid = "1:name=systemd:/system.slice/nova-api.service\n0::/system.slice/nova-compute.service/worker\n";
        assert!(path_in_unit(hybrid, "nova-compute.service"));
        // Only the cgroup v2 line counts, and whole directory names only.
        assert!(!path_in_unit(hybrid, "nova-api.service"));
        assert!(!path_in_unit(hybrid, "nova-compute"));
        assert!(!path_in_unit("0::/\n", "nova-compute.service"));
    }
}
