//! tracefs: mounted on demand, and read for tracepoint record layouts.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACEFS: &str = "/sys/kernel/debug/tracing";

/// Returns where tracefs is mounted, mounting it at /sys/kernel/tracing when it is not.
pub fn ensure_mounted() -> Result<PathBuf> {
    for dir in [TRACEFS, DEBUGFS_TRACEFS] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    mount_tracefs().with_context(|| {
        format!(
            "tracefs is not mounted and mounting it at {TRACEFS} failed; mount it with \
             `mount -t tracefs nodev {TRACEFS}` and try again"
        )
    })?;
    Ok(PathBuf::from(TRACEFS))
}

fn mount_tracefs() -> Result<()> {
    let target = CString::new(TRACEFS).expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("mount -t tracefs {TRACEFS}"));
    }
    if !Path::new(TRACEFS).join("events").is_dir() {
        bail!("{TRACEFS} has no events directory after mounting tracefs");
    }
    Ok(())
}

/// A field of a tracepoint record, from `events/<category>/<name>/format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// Reads the byte offset of `field` in the records of tracepoint `category:name`.
pub fn field_offset(tracefs: &Path, category: &str, name: &str, field: &str) -> Result<u32> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let format =
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_format(&format)
        .into_iter()
        .find(|f| f.name == field)
        .map(|f| f.offset)
        .with_context(|| format!("{} has no field {field}", path.display()))
}

/// The record fields of tracepoint `syscalls:{event}`.
pub fn syscall_format(tracefs: &Path, event: &str) -> Result<Vec<Field>> {
    let path = tracefs.join("events/syscalls").join(event).join("format");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_format(&text))
}

/// Which argument (1 to 6) of a system call is the first of `names` its `sys_enter_*` record
/// has (syscalls name the same argument differently), 0 when it has none. The record lists
/// the arguments in order after `__syscall_nr`.
pub fn arg_of_any(fields: &[Field], names: &[&str]) -> u32 {
    let Some(nr) = fields.iter().position(|f| f.name == "__syscall_nr") else {
        return 0;
    };
    let args = &fields[nr + 1..];
    names
        .iter()
        .find_map(|name| args.iter().position(|f| f.name == *name))
        .map_or(0, |index| index as u32 + 1)
}

/// Parses the `field:` lines of a tracepoint format file.
pub fn parse_format(format: &str) -> Vec<Field> {
    format
        .lines()
        .filter_map(|line| {
            let mut declaration = None;
            let mut offset = None;
            let mut size = None;
            for part in line.split(';').map(str::trim) {
                if let Some(decl) = part.strip_prefix("field:") {
                    declaration = Some(decl);
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            // "unsigned long args[6]" -> "args"; "pid_t child_pid" -> "child_pid".
            let name = declaration?.rsplit([' ', '*']).next()?.split('[').next()?;
            Some(Field {
                name: name.to_owned(),
                offset: offset?,
                size: size?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK: &str = "name: sched_process_fork
ID: 300
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
\tfield:unsigned long args[6];\toffset:24;\tsize:48;\tsigned:0;

print fmt: \"comm=%s pid=%d\", __get_str(parent_comm), REC->parent_pid
";

    const SENDTO: &str = "name: sys_enter_sendto
ID: 1541
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:void * buff;\toffset:24;\tsize:8;\tsigned:0;
\tfield:size_t len;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned int flags;\toffset:40;\tsize:8;\tsigned:0;
\tfield:struct sockaddr * addr;\toffset:48;\tsize:8;\tsigned:0;
\tfield:int addr_len;\toffset:56;\tsize:8;\tsigned:0;
";

    #[test]
    fn syscall_arguments_are_numbered_from_one_in_record_order() {
        let fields = parse_format(SENDTO);
        assert_eq!(arg_of_any(&fields, &["fd"]), 1);
        assert_eq!(arg_of_any(&fields, &["buf", "buff"]), 2);
        assert_eq!(arg_of_any(&fields, &["count", "len"]), 3);
        assert_eq!(arg_of_any(&fields, &["addr_len"]), 6);
        assert_eq!(arg_of_any(&fields, &["filename"]), 0);
        assert_eq!(arg_of_any(&parse_format(FORK), &["args"]), 0);
    }

    #[test]
    fn parses_fields_with_offsets_and_sizes() {
        let fields = parse_format(FORK);
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "common_type",
                "common_flags",
                "parent_comm",
                "parent_pid",
                "child_pid",
                "args"
            ]
        );
        let child = &fields[4];
        assert_eq!((child.offset, child.size), (20, 4));
        assert_eq!((fields[5].offset, fields[5].size), (24, 48));
    }
}
