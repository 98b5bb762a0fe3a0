//! `scalpels-trace -- COMMAND`: the command is forked, then held at a gate until its pid is in
//! the kernel's target set, so its very first system call is traced.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

pub struct GatedChild {
    pub pid: u32,
    gate: Option<OwnedFd>,
    exit: Option<i32>,
}

/// Finds `program` like a shell would: as given when it has a slash, else in PATH.
pub fn resolve(program: &str) -> Result<PathBuf> {
    let executable = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            // SAFETY: valid NUL-terminated path.
            .is_ok_and(|c| p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        if executable(&path) {
            return Ok(path);
        }
        bail!("cannot run {program:?}: no such executable file");
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| executable(p))
        })
        .with_context(|| format!("cannot run {program:?}: command not found in PATH"))
}

/// Forks `argv`, stopped at the gate until [`GatedChild::release`].
pub fn spawn_gated(argv: &[String]) -> Result<GatedChild> {
    let program = resolve(argv.first().context("empty command")?)?;
    let path =
        CString::new(program.as_os_str().as_encoded_bytes()).context("NUL in command path")?;
    let args = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("NUL in a command argument")?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    // Read before the fork: the child runs as it would untraced, with the caller's umask
    // rather than the private one scalpels-trace writes its run with.
    let umask = crate::umask::caller();

    let mut fds = [0; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating the start gate pipe");
    }
    // SAFETY: fork; the child only calls async-signal-safe functions before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: child side: wait for the gate byte (EOF means the tracer gave up), then exec.
        unsafe {
            libc::close(fds[1]);
            libc::umask(umask);
            let mut byte = 0u8;
            if libc::read(fds[0], (&raw mut byte).cast(), 1) != 1 {
                libc::_exit(126);
            }
            libc::execv(path.as_ptr(), arg_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: fds from pipe2, each closed exactly once.
    unsafe { libc::close(fds[0]) };
    // SAFETY: the write end, owned by nothing else from here on.
    let gate = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok(GatedChild {
        pid: pid as u32,
        gate: Some(gate),
        exit: None,
    })
}

impl GatedChild {
    /// Lets the command run.
    pub fn release(&mut self) -> Result<()> {
        if let Some(gate) = self.gate.take() {
            // SAFETY: one byte from a valid buffer to our pipe.
            if unsafe { libc::write(gate.as_raw_fd(), b"go".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error()).context("releasing the command");
            }
        }
        Ok(())
    }

    /// The command's exit code (128+signal when killed), once it has exited. It is left a
    /// zombie until [`GatedChild::reap`], so the last collection still finds it in /proc (its
    /// CPU time and I/O counters up to its exit).
    pub fn try_wait(&mut self) -> Option<i32> {
        if self.exit.is_none() {
            // SAFETY: all-zero is a valid siginfo_t; WNOHANG leaves it so when nothing exited.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: our own child; non-blocking; valid out pointer.
            let waited = unsafe { libc::waitid(libc::P_PID, self.pid, &mut info, flags) };
            // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed).
            if waited == 0 && unsafe { info.si_pid() } == self.pid as i32 {
                // SAFETY: as above.
                let status = unsafe { info.si_status() };
                self.exit = Some(if info.si_code == libc::CLD_EXITED {
                    status
                } else {
                    128 + status
                });
            }
        }
        self.exit
    }

    /// Frees the zombie of a command that exited.
    pub fn reap(&mut self) {
        if self.exit.is_some() {
            let mut status = 0;
            // SAFETY: our own child, already exited: returns at once.
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
        }
    }
}
