//! The cache servers: memcached (as the `memcache` user the package creates: it refuses to
//! run as root) and Redis, each on a free port of 127.0.0.1 with nothing persisted. Each
//! counts what it served (`stats`, `INFO`), so a test can compare a trace with the server's
//! own figures.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::process;

pub struct Memcached {
    pub port: u16,
    pub pid: u32,
}

pub struct Redis {
    pub port: u16,
    pub pid: u32,
}

impl Memcached {
    pub(super) fn start() -> Memcached {
        let started = Instant::now();
        let dir = process::server_dir("memcached");
        let [port] = super::free_ports();
        let log = dir.join("memcached.log");
        let mut cmd = Command::new("memcached");
        cmd.args([
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-u",
            "memcache",
            "-m",
            "64",
            "-p",
        ])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("memcached log"));
        let pid = process::spawn(cmd, process::KILL).expect("memcached starts");
        super::wait_ready(
            "memcached",
            pid,
            &log,
            Duration::from_secs(30),
            || super::first_reply(port, b"version\r\n").starts_with(b"VERSION"),
            started,
        );
        Memcached { port, pid }
    }

    /// The server's `stats` (cmd_get, get_hits, get_misses, cmd_set, ...).
    pub fn stats(&self) -> HashMap<String, u64> {
        let lines = exchange(self.port, b"stats\r\n", |line| line == "END");
        lines
            .iter()
            .filter_map(|line| {
                let mut words = line.strip_prefix("STAT ")?.split(' ');
                let (name, value) = (words.next()?, words.next()?);
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }
}

impl Redis {
    pub(super) fn start() -> Redis {
        let started = Instant::now();
        let dir = process::server_dir("redis");
        let [port] = super::free_ports();
        let log = dir.join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = process::spawn(cmd, process::KILL).expect("redis-server starts");
        super::wait_ready(
            "redis",
            pid,
            &log,
            Duration::from_secs(30),
            || super::first_reply(port, b"PING\r\n").starts_with(b"+PONG"),
            started,
        );
        Redis { port, pid }
    }

    /// The server's `INFO` fields (keyspace_hits, keyspace_misses, total_commands_processed,
    /// and per command `cmdstat_get` as its `calls=`).
    pub fn info(&self) -> HashMap<String, u64> {
        let mut stream = connect(self.port);
        stream.write_all(b"INFO all\r\n").expect("send INFO");
        let mut reader = BufReader::new(stream);
        let mut header = String::new();
        reader.read_line(&mut header).expect("INFO's length");
        let len: usize = header
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("INFO answered {header:?}"));
        let mut text = vec![0; len];
        reader.read_exact(&mut text).expect("INFO's text");
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                let value = value
                    .strip_prefix("calls=")
                    .map_or(value, |calls| calls.split(',').next().unwrap_or_default());
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

/// Sends `request` on a new connection and reads reply lines until `last` says so.
fn exchange(port: u16, request: &[u8], last: impl Fn(&str) -> bool) -> Vec<String> {
    let mut stream = connect(port);
    stream.write_all(request).expect("send");
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("read a reply line");
        let line = line.trim_end().to_owned();
        let done = last(&line) && !lines.is_empty();
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}
