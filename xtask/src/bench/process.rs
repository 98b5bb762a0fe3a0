//! The processes a benchmark starts and watches: waiting with resource usage, CPU time while
//! running, children, and the tests' servers.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::unix::process::ExitStatusExt as _,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::root;

/// Waits for a child and returns its status and resource usage (peak RSS of it and the
/// descendants it waited for, CPU time).
pub fn wait4(pid: libc::pid_t) -> Result<(ExitStatus, libc::rusage)> {
    match wait4_with(pid, 0)? {
        Some(done) => Ok(done),
        None => bail!("wait4 returned without a status for pid {pid}"),
    }
}

/// `wait4` that gives up after `limit` (None: the child still runs).
pub fn wait4_within(
    pid: libc::pid_t,
    limit: Duration,
) -> Result<Option<(ExitStatus, libc::rusage)>> {
    let start = Instant::now();
    loop {
        if let Some(done) = wait4_with(pid, libc::WNOHANG)? {
            return Ok(Some(done));
        }
        if start.elapsed() > limit {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait4_with(pid: libc::pid_t, options: i32) -> Result<Option<(ExitStatus, libc::rusage)>> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unwaited child; the pointers are to live locals.
    match unsafe { libc::wait4(pid, &mut status, options, &mut usage) } {
        0 => Ok(None),
        n if n < 0 => {
            Err(std::io::Error::last_os_error()).context("waiting for a benchmark process")
        }
        _ => Ok(Some((ExitStatus::from_raw(status), usage))),
    }
}

/// User + system CPU seconds of a rusage.
pub fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// User + system CPU seconds a running process (all its threads) has used so far.
pub fn cpu_seconds_so_far(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The fields after the name, which is in parentheses and may hold spaces: state is
    // field 3, utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64)
            .with_context(|| format!("no CPU time in /proc/{pid}/stat"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// CPU seconds the whole machine has been busy (every CPU, every state but idle and iowait),
/// from the first line of /proc/stat.
pub fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(|field| field.parse().context("a field of /proc/stat's cpu line"))
        .collect::<Result<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is within user and nice).
    let busy: u64 = ticks.iter().take(8).sum::<u64>()
        - ticks.get(3).copied().unwrap_or(0)
        - ticks.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(busy as f64 / hz)
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let parent_of = |child: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; pid is a process we started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Stops a child started in a process group of its own, with everything in that group:
/// SIGTERM, then SIGKILL if it is still there after `grace`.
pub fn stop_group(child: &mut Child, grace: Duration) {
    let group = -(child.id() as libc::pid_t);
    // SAFETY: as in `signal`; a negative pid names the child's own process group.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; whatever of the group is left (workers of a stopped master).
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// A TCP port free on 127.0.0.1 now (another process could take it before the service
/// binds it, which would fail that service's start loudly).
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200.
pub fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// A server of the integration tests (`tests/src/bin/serve.rs`), stopped when dropped.
pub struct TestServer {
    child: Child,
    /// port, user, password, and database (RabbitMQ: virtual host)
    pub credentials: Vec<String>,
}

impl TestServer {
    pub fn start(which: &str) -> Result<TestServer> {
        let mut child = Command::new(root().join("target/release/serve"))
            .arg(which)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {which} server"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut line)?;
        let credentials: Vec<String> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('=').map(|(_, value)| value.to_owned()))
            .collect();
        if credentials.len() != 4 {
            bail!("the {which} server did not start: {line:?}");
        }
        Ok(TestServer { child, credentials })
    }

    pub fn port(&self) -> &str {
        &self.credentials[0]
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing its standard input stops the server; wait so no server outlives the bench.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
