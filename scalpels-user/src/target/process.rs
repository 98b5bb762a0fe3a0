//! Processes by name: `comm`, or the basename of argv[0], or of argv[1] when argv[0] is an
//! interpreter (OpenStack services are Python console scripts: `python3 /usr/bin/nova-compute`).

use std::{collections::BTreeSet, fs, path::Path};

/// Kernel task names are cut to 15 bytes.
const COMM_LEN: usize = 15;

pub fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn comm(pid: u32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim_end()
            .to_owned(),
    )
}

fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

fn is_interpreter(program: &str) -> bool {
    ["python", "pypy", "uwsgi", "perl", "ruby", "node"]
        .iter()
        .any(|i| program.starts_with(i))
}

/// Whether a process with this comm and command line is called `name`.
pub fn matches(name: &str, comm: &str, argv: &[String]) -> bool {
    let comm_name = &name[..name.len().min(COMM_LEN)];
    if comm == comm_name && !comm.is_empty() {
        return true;
    }
    let Some(program) = argv.first().map(|a| basename(a)) else {
        return false;
    };
    if program == name {
        return true;
    }
    // The script of an interpreter: the first argument that is not an option.
    is_interpreter(program)
        && argv[1..]
            .iter()
            .find(|a| !a.starts_with('-'))
            .is_some_and(|a| basename(a) == name)
}

/// Whether process `pid` is called `name` (never scalpels-trace itself).
pub fn is_called(pid: u32, name: &str) -> bool {
    pid != std::process::id() && comm(pid).is_some_and(|c| matches(name, &c, &cmdline(pid)))
}

/// Live processes called `name`, never scalpels-trace itself.
pub fn find_by_name(name: &str) -> BTreeSet<u32> {
    pids().filter(|&pid| is_called(pid, name)).collect()
}

/// Names running processes go by, for suggestions.
pub fn names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for pid in pids() {
        names.extend(comm(pid));
        let argv = cmdline(pid);
        if let Some(program) = argv.first().map(|a| basename(a)) {
            if is_interpreter(program) {
                names.extend(
                    argv[1..]
                        .iter()
                        .find(|a| !a.starts_with('-'))
                        .map(|a| basename(a).to_owned()),
                );
            } else {
                names.insert(program.to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_console_scripts_and_long_comms() {
        let script = argv(&[
            "/usr/bin/python3",
            "/usr/bin/nova-compute",
            "--config-file",
            "x",
        ]);
        assert!(matches("nova-compute", "python3", &script));
        assert!(matches("nova-compute", "nova-compute", &argv(&[])));
        // comm is cut to 15 bytes.
        assert!(matches(
            "neutron-openvswitch-agent",
            "neutron-openvsw",
            &argv(&["x"])
        ));
        assert!(matches(
            "qemu-system-x86_64",
            "qemu-sys",
            &argv(&["/usr/bin/qemu-system-x86_64"])
        ));
        assert!(!matches(
            "nova-compute",
            "python3",
            &argv(&["python3", "-u", "other.py"])
        ));
        assert!(!matches(
            "nova",
            "nova-compute",
            &argv(&["/usr/bin/nova-compute"])
        ));
    }
}
