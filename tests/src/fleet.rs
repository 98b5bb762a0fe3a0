//! Fleet helpers shared by the tests that upload runs: moto's S3 server on 127.0.0.1, its
//! buckets, and the fleet checks of `fleet_check.py`.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{Reaped, python, scalpels_trace, wait_with_limit, workload};

/// Runs a Python workload script with `args` and the environment `env`, to its end.
pub fn python_script(script: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(python())
        .arg(workload(script))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("python3 runs")
}

/// Starts scalpels-trace with `args` and the environment `env` (the server's, for an upload).
pub fn spawn_trace_with(args: &[&str], env: &[(&str, String)]) -> Child {
    Command::new(scalpels_trace())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scalpels-trace starts")
}

/// Runs scalpels-trace with `args` and the environment `env` (the server's, for an upload),
/// killed past `limit`.
pub fn trace_with(args: &[&str], env: &[(&str, String)], limit: Duration) -> Output {
    wait_with_limit(spawn_trace_with(args, env), limit)
}

/// The output's stdout, once `what` succeeded.
pub fn assert_ok(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The getppid calls the fleet holds per host, as fleet_check.py printed them.
pub fn getppids(check: &str) -> Vec<(String, u64)> {
    let mut calls: Vec<(String, u64)> = check
        .lines()
        .filter_map(|l| l.strip_prefix("getppid host="))
        .map(|l| {
            let host = l.split_whitespace().next().unwrap().to_owned();
            let n = l.rsplit("calls=").next().unwrap().parse().unwrap();
            (host, n)
        })
        .collect();
    calls.sort();
    calls
}

/// moto's S3 server on a free port of 127.0.0.1, stopped when dropped.
pub struct S3Server {
    _process: Reaped,
    /// The environment that points the AWS clients (scalpels-trace's, boto3's, pyarrow's) at it.
    pub env: Vec<(&'static str, String)>,
}

impl S3Server {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Reaped(
            Command::new(python())
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto's server starts (pip install 'moto[s3]' flask flask-cors)"),
        );
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not listen"
            );
            thread::sleep(Duration::from_millis(100));
        }
        let env = vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", "scalpels".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "scalpels".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ];
        Self {
            _process: process,
            env,
        }
    }

    /// `s3_bucket.py ACTION BUCKET`: creates, lists or drops the bucket; what it printed.
    pub fn bucket(&self, action: &str, bucket: &str) -> String {
        assert_ok(
            &python_script("s3_bucket.py", &[action, bucket], &self.env),
            &format!("s3_bucket.py {action}"),
        )
    }

    /// Waits until `bucket` holds a key matching `wanted`; that key.
    pub fn wait_for_key(&self, bucket: &str, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(key) = self.bucket("list", bucket).lines().find(|k| wanted(k)) {
                return key.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no such key in {bucket}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The object `key` of `bucket`, as text.
    pub fn object(&self, bucket: &str, key: &str) -> String {
        assert_ok(
            &python_script("s3_bucket.py", &["get", bucket, key], &self.env),
            &format!("s3_bucket.py get {key}"),
        )
    }

    /// `fleet_check.py` on `fleet` (with `runs`, their rows; without, the manifests'), which
    /// must find the fleet whole; what it printed.
    pub fn check(&self, fleet: &str, runs: &[&Path]) -> String {
        let mut args = vec![fleet];
        args.extend(runs.iter().map(|r| r.to_str().unwrap()));
        let check = assert_ok(
            &python_script("fleet_check.py", &args, &self.env),
            "fleet_check.py",
        );
        assert!(check.contains("fleet ok"), "{check}");
        check
    }
}
