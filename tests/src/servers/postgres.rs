//! PostgreSQL (the newest `/usr/lib/postgresql/*/bin` from the `postgresql` package). initdb
//! and postgres refuse to run as root, so both run as the `postgres` user the package
//! creates, in a directory it owns. Every statement is logged (`log_statement = all`) as
//! JSON lines, which the tests read back.

use std::{
    ffi::CString,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{SQL_DATABASE, SQL_PASSWORD, SQL_USER, process};

pub struct Postgres {
    pub port: u16,
    pub pid: u32,
    /// How long the server took from initdb to accepting connections.
    pub startup: Duration,
    log_dir: PathBuf,
}

/// One statement the server executed (or failed), as `log_statement = all` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedStatement {
    /// The text as the client sent it (`$1` placeholders for the extended protocol).
    pub text: String,
    /// `None` for the simple protocol; for the extended protocol the prepared statement's
    /// name, `""` for the unnamed one.
    pub prepared: Option<String>,
    /// The bind parameters as the server shows them (`$1 = '2'`), for the extended protocol.
    pub parameters: Option<String>,
    /// The SQLSTATE when it failed.
    pub error_code: Option<String>,
}

/// The postgres server's stop signal at exit: its backends are in sessions of their own
/// (a group kill misses them), and SIGQUIT makes the postmaster end them itself.
const STOP: process::Stop = process::Stop {
    on_parent_death: libc::SIGQUIT,
    at_exit: libc::SIGQUIT,
};

impl Postgres {
    pub(super) fn start() -> Postgres {
        let started = Instant::now();
        let bin = postgres_bin();
        let (uid, gid) = postgres_user();
        let dir = process::server_dir("postgres");
        chown(&dir, uid, gid);
        let data = dir.join("data");
        let password_file = dir.join("password");
        std::fs::write(&password_file, SQL_PASSWORD).expect("write password file");
        chown(&password_file, uid, gid);
        super::run_setup(
            "initdb",
            Command::new(bin.join("initdb"))
                .uid(uid)
                .gid(gid)
                .current_dir(&dir)
                .arg("--pgdata")
                .arg(&data)
                .args(["--username", SQL_USER, "--pwfile"])
                .arg(&password_file)
                .args([
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]),
            "",
            Duration::from_secs(60),
        );
        // Single-user mode: the database exists before any client (or log line) does.
        super::run_setup(
            "postgres --single",
            Command::new(bin.join("postgres"))
                .uid(uid)
                .gid(gid)
                .current_dir(&dir)
                .args(["--single", "-D"])
                .arg(&data)
                .arg("postgres"),
            &format!("CREATE DATABASE {SQL_DATABASE};\n"),
            Duration::from_secs(60),
        );
        let [port] = super::free_ports();
        let log_dir = dir.join("log");
        let stderr = std::fs::File::create(dir.join("postgres.stderr")).expect("stderr file");
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.uid(uid)
            .gid(gid)
            .current_dir(&dir)
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string());
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            "unix_socket_directories=".to_owned(),
            // Plain text on the wire: libpq's SSLRequest is answered 'N'.
            "ssl=off".to_owned(),
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "log_statement=all".to_owned(),
            "log_connections=on".to_owned(),
            "log_disconnections=on".to_owned(),
            "log_destination=jsonlog".to_owned(),
            "logging_collector=on".to_owned(),
            format!("log_directory={}", log_dir.display()),
            "log_filename=postgres.log".to_owned(),
            "log_rotation_age=0".to_owned(),
            "log_rotation_size=0".to_owned(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let pid = process::spawn(cmd, STOP).expect("postgres starts");
        // pg_ctl's own readiness test: the postmaster marks its pid file "ready" once it
        // accepts connections.
        let pid_file = data.join("postmaster.pid");
        let startup = super::wait_ready(
            "postgres",
            pid,
            &dir.join("postgres.stderr"),
            Duration::from_secs(60),
            || {
                std::fs::read_to_string(&pid_file)
                    .is_ok_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
            },
            started,
        );
        Postgres {
            port,
            pid,
            startup,
            log_dir,
        }
    }

    /// Every log entry so far (JSON objects, see PostgreSQL's `jsonlog`).
    pub fn log_entries(&self) -> Vec<Value> {
        let text = std::fs::read_dir(&self.log_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The statements of the backend `backend_pid` (psycopg's `info.backend_pid`), once the
    /// server has logged its disconnection (so all of them are there); panics when the
    /// session does not end within 10 s.
    pub fn session(&self, backend_pid: u64) -> Vec<LoggedStatement> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries: Vec<Value> = self
                .log_entries()
                .into_iter()
                .filter(|e| e["pid"].as_u64() == Some(backend_pid))
                .collect();
            let ended = entries.iter().any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("disconnection:"))
            });
            if ended {
                return statements(&entries);
            }
            assert!(
                Instant::now() < deadline,
                "backend {backend_pid} never disconnected; its log so far: {entries:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Statement entries (`statement: ...`, `execute NAME: ...`) in order, each failure attached
/// to the statement it failed, or on its own when it failed before being logged (an error
/// in Parse comes before any `execute` entry).
fn statements(entries: &[Value]) -> Vec<LoggedStatement> {
    let mut statements: Vec<LoggedStatement> = Vec::new();
    for entry in entries {
        let message = entry["message"].as_str().unwrap_or_default();
        if entry["error_severity"] == "ERROR" {
            let text = entry["statement"].as_str().unwrap_or_default();
            let code = entry["state_code"].as_str().map(str::to_owned);
            match statements.last_mut() {
                Some(last) if last.text == text && last.error_code.is_none() => {
                    last.error_code = code;
                }
                _ => statements.push(LoggedStatement {
                    text: text.to_owned(),
                    prepared: None,
                    parameters: None,
                    error_code: code,
                }),
            }
        } else if let Some(text) = message.strip_prefix("statement: ") {
            statements.push(LoggedStatement {
                text: text.to_owned(),
                prepared: None,
                parameters: None,
                error_code: None,
            });
        } else if let Some(rest) = message.strip_prefix("execute ")
            && let Some((name, text)) = rest.split_once(": ")
        {
            let parameters = entry["detail"]
                .as_str()
                .and_then(|d| d.strip_prefix("parameters: "))
                .map(str::to_owned);
            statements.push(LoggedStatement {
                text: text.to_owned(),
                prepared: Some(if name == "<unnamed>" { "" } else { name }.to_owned()),
                parameters,
                error_code: None,
            });
        }
    }
    statements
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql exists: run cargo xtask setup")
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("a PostgreSQL server in /usr/lib/postgresql: run cargo xtask setup")
}

fn postgres_user() -> (u32, u32) {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to a static record read right away; tests
    // call it once per binary (inside a OnceLock), so no other thread overwrites it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "no postgres user (the postgresql package creates it): run cargo xtask setup"
    );
    // SAFETY: checked non-null above.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_extended_statements_with_their_errors() {
        let log = [
            r#"{"pid":7,"error_severity":"LOG","message":"connection authorized: user=scalpels"}"#,
            r#"{"pid":7,"error_severity":"LOG","message":"statement: SELECT 1"}"#,
            r#"{"pid":7,"error_severity":"LOG","message":"statement: SELECT * FROM nope"}"#,
            r#"{"pid":7,"error_severity":"ERROR","state_code":"42P01","message":"relation \"nope\" does not exist","statement":"SELECT * FROM nope"}"#,
            r#"{"pid":7,"error_severity":"LOG","message":"execute <unnamed>: SELECT $1","detail":"parameters: $1 = '2'"}"#,
            r#"{"pid":7,"error_severity":"LOG","message":"execute _pg3_0: SELECT 2"}"#,
            r#"{"pid":7,"error_severity":"ERROR","state_code":"42P01","message":"relation \"nope\" does not exist","statement":"SELECT * FROM nope WHERE a = $1"}"#,
        ];
        let entries: Vec<Value> = log
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let logged = statements(&entries);
        let statement =
            |text: &str, prepared: Option<&str>, parameters: Option<&str>, code| LoggedStatement {
                text: text.into(),
                prepared: prepared.map(Into::into),
                parameters: parameters.map(Into::into),
                error_code: code,
            };
        assert_eq!(
            logged,
            [
                statement("SELECT 1", None, None, None),
                statement("SELECT * FROM nope", None, None, Some("42P01".into())),
                statement("SELECT $1", Some(""), Some("$1 = '2'"), None),
                statement("SELECT 2", Some("_pg3_0"), None, None),
                statement(
                    "SELECT * FROM nope WHERE a = $1",
                    None,
                    None,
                    Some("42P01".into())
                ),
            ]
        );
    }
}
