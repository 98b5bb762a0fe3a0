//! Server processes that live exactly as long as the test binary that started them.
//!
//! Two mechanisms, because neither covers every way a test binary ends:
//! - a normal exit (all tests done, pass or fail: the harness returns from `main` or calls
//!   `exit`) runs an `atexit` handler that stops every server with its process group, waits
//!   for it, and removes its directory;
//! - a killed test binary runs no code, so each server also gets `PR_SET_PDEATHSIG`. That
//!   signal fires when the *thread* that forked the server ends, and cargo test runs each test
//!   on a thread that ends with the test, so servers are forked by one spawner thread that
//!   lives as long as the process. Directories left behind by a killed binary are removed by
//!   the next binary that starts a server ([`server_dir`]).

use std::{
    io,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{
        Mutex, Once, OnceLock,
        mpsc::{self, Sender},
    },
    thread,
    time::{Duration, Instant},
};

/// How one server process is stopped.
#[derive(Clone, Copy)]
pub struct Stop {
    /// Sent to the process when the test binary is killed (it outlives no parent thread).
    pub on_parent_death: i32,
    /// Sent to the process at a normal exit, before its whole process group gets SIGKILL.
    /// PostgreSQL needs SIGQUIT here: its backends are in sessions of their own, so a
    /// group kill would miss them, while SIGQUIT makes the postmaster end them itself.
    pub at_exit: i32,
}

pub const KILL: Stop = Stop {
    on_parent_death: libc::SIGKILL,
    at_exit: libc::SIGKILL,
};

struct Running {
    child: Child,
    at_exit: i32,
}

type SpawnRequest = (Command, Sender<io::Result<Child>>);

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
const DIR_PREFIX: &str = "scalpels-servers-";

/// Starts `cmd` in a process group of its own, stopped when this test binary ends.
/// Returns its pid.
pub fn spawn(mut cmd: Command, stop: Stop) -> io::Result<u32> {
    register_exit_handler();
    let parent = std::process::id() as i32;
    cmd.process_group(0);
    // SAFETY: prctl, getppid and _exit are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, stop.on_parent_death) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The test binary died between fork and prctl: no signal will ever come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply, response) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .expect("the spawner thread lives as long as the process");
    let child = response
        .recv()
        .expect("the spawner thread answers every request")?;
    let pid = child.id();
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Running {
            child,
            at_exit: stop.at_exit,
        });
    Ok(pid)
}

/// Whether a process started by [`spawn`] has exited (it is reaped if so).
pub fn has_exited(pid: u32) -> bool {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    running
        .iter_mut()
        .find(|r| r.child.id() == pid)
        .is_none_or(|r| !matches!(r.child.try_wait(), Ok(None)))
}

/// A fresh directory for one server of this test binary, removed when the binary exits.
/// Directories of test binaries that no longer run are removed first.
pub fn server_dir(name: &str) -> PathBuf {
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create server directory");
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.clone());
    dir
}

pub fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                // Never returns: the sender is in a static, so this thread ends only with
                // the process, and that is what fires the servers' parent-death signal.
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the server spawner thread");
        Mutex::new(requests)
    })
}

fn register_exit_handler() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn()`.
        unsafe { libc::atexit(stop_all) };
    });
}

extern "C" fn stop_all() {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for server in running.iter() {
        // SAFETY: plain kill(2) on a child we started.
        unsafe { libc::kill(server.child.id() as i32, server.at_exit) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for server in running.iter_mut() {
        while matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: the group was created for this child by `process_group(0)`.
        unsafe { libc::kill(-(server.child.id() as i32), libc::SIGKILL) };
        let _ = server.child.wait();
    }
    for dir in DIRS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
