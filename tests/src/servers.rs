//! Real database, message-broker and cache servers for the protocol tests, from the Debian packages
//! `cargo xtask test` installs: each started at most once per test binary, on 127.0.0.1 with
//! a free port and a data directory of its own, and stopped when the binary exits.
//!
//! Each server logs what it was asked (MariaDB's general query log and SQL error log,
//! PostgreSQL's `log_statement = all`), so a test can compare what a tracer saw with what
//! the server itself received.

mod cache;
mod mariadb;
mod postgres;
mod process;
mod rabbitmq;

pub use cache::{Memcached, Redis};
pub use mariadb::{LoggedCommand, LoggedError, MariaDb, TLS_USER as MARIADB_TLS_USER};
pub use postgres::{LoggedStatement, Postgres};
pub use rabbitmq::RabbitMq;

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

/// The account every SQL server has for the workloads (the password is distinctive so a
/// test can assert it never reaches a trace).
pub const SQL_USER: &str = "scalpels";
pub const SQL_PASSWORD: &str = "scalpels-Pw-7f3a91";
pub const SQL_DATABASE: &str = "scalpels";

/// The MariaDB server of this test binary (started on first use).
pub fn mariadb() -> &'static MariaDb {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER.get_or_init(MariaDb::start)
}

/// The PostgreSQL server of this test binary (started on first use).
pub fn postgres() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// The RabbitMQ broker of this test binary (started on first use).
pub fn rabbitmq() -> &'static RabbitMq {
    static SERVER: OnceLock<RabbitMq> = OnceLock::new();
    SERVER.get_or_init(RabbitMq::start)
}

/// The memcached server of this test binary (started on first use).
pub fn memcached() -> &'static Memcached {
    static SERVER: OnceLock<Memcached> = OnceLock::new();
    SERVER.get_or_init(Memcached::start)
}

/// The Redis server of this test binary (started on first use).
pub fn redis() -> &'static Redis {
    static SERVER: OnceLock<Redis> = OnceLock::new();
    SERVER.get_or_init(Redis::start)
}

/// Removes what servers of test binaries that no longer run left behind (a binary that was
/// killed could not remove its servers' directories).
pub fn remove_leftovers() {
    process::remove_stale_dirs();
}

/// `n` distinct free TCP ports on 127.0.0.1 (all held until all are chosen, so they differ;
/// another process could still take one before the server binds it, which a test would
/// report as a server that did not start).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// Polls `ready` until it is true, failing when `pid` exits first or after `limit`; the
/// panic shows the end of `log`. Returns how long the server took to start.
fn wait_ready(
    name: &str,
    pid: u32,
    log: &Path,
    limit: Duration,
    ready: impl FnMut() -> bool,
    started: Instant,
) -> Duration {
    poll_ready(name, pid, log, limit, ready, started).unwrap_or_else(|why| panic!("{why}"))
}

/// `wait_ready` for a caller that can try again: the failure, with the end of `log`.
fn poll_ready(
    name: &str,
    pid: u32,
    log: &Path,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
    started: Instant,
) -> Result<Duration, String> {
    loop {
        if ready() {
            let took = started.elapsed();
            eprintln!("servers: {name} ready in {took:.2?}");
            return Ok(took);
        }
        let why = if process::has_exited(pid) {
            "exited"
        } else if started.elapsed() > limit {
            "was not ready in time"
        } else {
            thread::sleep(Duration::from_millis(25));
            continue;
        };
        return Err(format!(
            "{name} (pid {pid}) {why}; end of {}:\n{}",
            log.display(),
            log_tail(log)
        ));
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Connects to `port` on 127.0.0.1, sends `hello`, and returns the first bytes the server
/// answers (empty when nothing answers yet).
fn first_reply(port: u16, hello: &[u8]) -> Vec<u8> {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if !hello.is_empty() && stream.write_all(hello).is_err() {
        return Vec::new();
    }
    let mut reply = [0u8; 16];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Runs a set-up command (initdb, mariadb-install-db) to completion within `limit`, with
/// `input` on its standard input, panicking with its output when it fails.
fn run_setup(what: &str, cmd: &mut Command, input: &str, limit: Duration) {
    let out_path =
        std::env::temp_dir().join(format!("scalpels-setup-{}-{what}.log", std::process::id()));
    let out = std::fs::File::create(&out_path).expect("create set-up log");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out.try_clone().expect("dup set-up log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start ({e}): run cargo xtask setup"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("{what} did not read its input: {e}"));
    drop(stdin);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for set-up command") {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("{what} took more than {limit:?}:\n{}", log_tail(&out_path));
        }
        thread::sleep(Duration::from_millis(25));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(status.success(), "{what} failed ({status}):\n{output}");
}
