//! MariaDB (`mariadbd` from `mariadb-server`), run as root, with its general query log and
//! the `sql_errlog` plugin's error log written to files the tests read back. It also speaks
//! TLS, with a certificate the set-up makes, and has a user who may connect only over TLS.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{SQL_DATABASE, SQL_PASSWORD, SQL_USER, process};

/// The user whose connections the server refuses unless they are TLS (`REQUIRE SSL`).
pub const TLS_USER: &str = "scalpels_tls";

pub struct MariaDb {
    pub port: u16,
    pub pid: u32,
    /// The server's certificate, which TLS clients trust.
    pub certificate: PathBuf,
    /// How long the server took from `mariadb-install-db` to accepting connections.
    pub startup: Duration,
    general_log: PathBuf,
    error_log: PathBuf,
}

/// One entry of the general query log: what the server was asked on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedCommand {
    /// The server's connection id (PyMySQL's `Connection.thread_id()`).
    pub connection: u64,
    /// `Connect`, `Query`, `Prepare`, `Execute`, `Quit`, ...
    pub command: String,
    /// The statement text for `Query`/`Prepare`/`Execute` (multi-line statements joined).
    pub argument: String,
}

/// One failed statement from the SQL error log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedError {
    pub errno: u32,
    pub statement: String,
}

impl MariaDb {
    pub(super) fn start() -> MariaDb {
        let started = Instant::now();
        let dir = process::server_dir("mariadb");
        let data = dir.join("data");
        super::run_setup(
            "mariadb-install-db",
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg("--user=root")
                .arg(format!("--datadir={}", data.display()))
                .args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                ]),
            "",
            Duration::from_secs(60),
        );
        // The account may also make databases named after its own with a suffix: the service
        // benchmark's Keystone creates one of its own (xtask/src/bench/keystone.rs).
        let init = dir.join("init.sql");
        std::fs::write(
            &init,
            format!(
                "CREATE DATABASE {SQL_DATABASE};\n\
                 CREATE USER '{SQL_USER}'@'%' IDENTIFIED BY '{SQL_PASSWORD}';\n\
                 GRANT ALL ON {SQL_DATABASE}.* TO '{SQL_USER}'@'%';\n\
                 GRANT ALL ON `{SQL_DATABASE}\\_%`.* TO '{SQL_USER}'@'%';\n\
                 CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{SQL_PASSWORD}' REQUIRE SSL;\n\
                 GRANT ALL ON {SQL_DATABASE}.* TO '{TLS_USER}'@'%';\n"
            ),
        )
        .expect("write init.sql");
        let (certificate, key) = crate::tls_certificate(&dir);
        let [port] = super::free_ports();
        let general_log = dir.join("general.log");
        let error_log = dir.join("sql_errors.log");
        let server_log = dir.join("mariadbd.log");
        let path = |p: &PathBuf| p.display().to_string();
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", path(&data)))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", path(&dir.join("mariadbd.sock"))))
            .arg(format!("--pid-file={}", path(&dir.join("mariadbd.pid"))))
            .arg(format!("--log-error={}", path(&server_log)))
            .arg("--general-log=1")
            .arg(format!("--general-log-file={}", path(&general_log)))
            .arg("--plugin-load-add=sql_errlog")
            .arg(format!("--sql-error-log-filename={}", path(&error_log)))
            .arg(format!("--init-file={}", path(&init)))
            .arg(format!("--ssl-cert={}", path(&certificate)))
            .arg(format!("--ssl-key={}", path(&key)))
            .args(["--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = process::spawn(cmd, process::KILL).expect("mariadbd starts");
        // The server greets every connection first: protocol version 10 after the 4-byte
        // packet header. It listens only once --init-file has run.
        let startup = super::wait_ready(
            "mariadb",
            pid,
            &server_log,
            Duration::from_secs(60),
            || super::first_reply(port, b"").get(4) == Some(&10),
            started,
        );
        MariaDb {
            port,
            pid,
            certificate,
            startup,
            general_log,
            error_log,
        }
    }

    /// Every entry of the general query log so far.
    pub fn logged_commands(&self) -> Vec<LoggedCommand> {
        parse_general_log(&std::fs::read_to_string(&self.general_log).unwrap_or_default())
    }

    /// The entries of one connection, once the server has logged its `Quit` (so all of it
    /// is there); panics when the connection does not end within 10 s.
    pub fn session(&self, connection: u64) -> Vec<LoggedCommand> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries: Vec<LoggedCommand> = self
                .logged_commands()
                .into_iter()
                .filter(|e| e.connection == connection)
                .collect();
            if entries.iter().any(|e| e.command == "Quit") {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "connection {connection} never quit; its log so far: {entries:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every failed statement so far. The log has no connection id: match by statement.
    /// Connections dropped before authenticating appear too (errno 1158, no statement).
    pub fn logged_errors(&self) -> Vec<LoggedError> {
        parse_error_log(&std::fs::read_to_string(&self.error_log).unwrap_or_default())
    }
}

/// Entries start with `[YYMMDD HH:MM:SS]\t  ID Command\tArgument`; a statement with line
/// breaks continues on lines without that prefix.
fn parse_general_log(text: &str) -> Vec<LoggedCommand> {
    let mut entries: Vec<LoggedCommand> = Vec::new();
    for line in text.lines() {
        match parse_entry(line) {
            Some(entry) => entries.push(entry),
            None => {
                if let Some(last) = entries.last_mut() {
                    last.argument.push('\n');
                    last.argument.push_str(line);
                }
            }
        }
    }
    entries
}

fn parse_entry(line: &str) -> Option<LoggedCommand> {
    let (time, rest) = line.split_once('\t')?;
    let time_ok = time.is_empty()
        || (time.len() == 15
            && time
                .bytes()
                .all(|b| b.is_ascii_digit() || b" :".contains(&b)));
    if !time_ok {
        return None;
    }
    let rest = rest.trim_start_matches('\t').trim_start();
    let (id, rest) = rest.split_once(' ')?;
    let connection = id.parse().ok()?;
    let (command, argument) = rest.split_once('\t')?;
    if command.is_empty()
        || !command
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b' ')
    {
        return None;
    }
    Some(LoggedCommand {
        connection,
        command: command.to_owned(),
        argument: argument.to_owned(),
    })
}

/// `DATE TIME user[user] @ host [ip] ERROR errno: message : statement`.
fn parse_error_log(text: &str) -> Vec<LoggedError> {
    text.lines()
        .filter_map(|line| {
            let (_, after) = line.split_once(" ERROR ")?;
            let (errno, rest) = after.split_once(": ")?;
            let (_, statement) = rest.split_once(" : ")?;
            Some(LoggedError {
                errno: errno.parse().ok()?,
                statement: statement.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_log_entries_and_multi_line_statements() {
        let log = "/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\n\
                   Tcp port: 13306  Unix socket: /tmp/mtry/sock\n\
                   Time\t\t    Id Command\tArgument\n\
                   261125 15:29:19\t     5 Connect\tscalpels@127.0.0.1 on scalpels using TCP/IP\n\
                   \t\t     5 Query\tSET NAMES utf8mb4\n\
                   \t\t     5 Query\tSELECT 1,\n 2\n\
                   \t\t    12 Quit\t\n";
        let entries = parse_general_log(log);
        let shown: Vec<(u64, &str, &str)> = entries
            .iter()
            .map(|e| (e.connection, e.command.as_str(), e.argument.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (5, "Connect", "scalpels@127.0.0.1 on scalpels using TCP/IP"),
                (5, "Query", "SET NAMES utf8mb4"),
                (5, "Query", "SELECT 1,\n 2"),
                (12, "Quit", ""),
            ]
        );
    }

    #[test]
    fn error_log_entries() {
        let log = "2026-11-25 15:29:19 scalpels[scalpels] @  [127.0.0.1] ERROR 1146: Table 'scalpels.nope' doesn't exist : SELECT * FROM nope\n\
                   2026-11-25 15:29:19 [] @  [127.0.0.1] ERROR 1158: Got an error reading communication packets : (null)\n";
        assert_eq!(
            parse_error_log(log),
            [
                LoggedError {
                    errno: 1146,
                    statement: "SELECT * FROM nope".into()
                },
                LoggedError {
                    errno: 1158,
                    statement: "(null)".into()
                },
            ]
        );
    }
}
