//! `cargo xtask bench`: what tracing costs the traced program, beside other tools doing the same
//! job on the same machine in the same run, and what the loader costs (see BENCHMARKS.md).
//!
//! Each workload measures itself (mean ns per operation, written to a result file), so loader
//! start-up and attach time are not counted as slowdown.

use std::{
    fs,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, root, setup};

pub struct Options {
    pub repeats: usize,
    pub calls: u64,
    pub requests: u64,
    pub file_ops: u64,
}

const SYSCALL_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("syscalls", &[]),
    Way::Bpftrace("syscalls.bt"),
    Way::Strace,
    // Tracers of other syscalls should cost these nothing.
    Way::Scalpels("files,block", &[]),
];
const FILE_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("files,block", &[]),
    Way::Bpftrace("file_io.bt"),
];
const SQL_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("protocols", &[]),
    Way::Scalpels("protocols,python", &[]),
    Way::Scalpels("syscalls,files,protocols,python", &[]),
];
const PYTHON_CPU_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("python", &["--python-hz", "99"]),
    Way::PySpy("99"),
    Way::Scalpels("python", &["--python-hz", "999"]),
    Way::PySpy("999"),
];

/// How a workload is run: bare, or under a tracer.
#[derive(Clone, Copy)]
enum Way {
    Untraced,
    /// scalpels-trace with these tracers (and options).
    Scalpels(&'static str, &'static [&'static str]),
    /// py-spy record at this rate.
    PySpy(&'static str),
    /// bpftrace running this script of xtask/bench/, which does the same job.
    Bpftrace(&'static str),
    Strace,
}

impl Way {
    /// strace stops the tracee twice per system call (~70 µs per call here): it runs a
    /// fraction of the operations so that a benchmark run ends in minutes.
    fn divisor(self) -> u64 {
        match self {
            Way::Strace => 50,
            _ => 1,
        }
    }

    fn label(self) -> String {
        match self {
            Way::Untraced => "untraced".into(),
            Way::Scalpels(tracers, options) => {
                format!("scalpels-trace --tracers {tracers} {}", options.join(" "))
                    .trim_end()
                    .to_owned()
            }
            Way::PySpy(rate) => format!("py-spy record --rate {rate}"),
            Way::Bpftrace(script) => format!("bpftrace xtask/bench/{script}"),
            Way::Strace => "strace -c -f".into(),
        }
    }
}

/// A program that performs `operations` operations and writes its mean ns per operation.
struct Workload<'a> {
    title: &'static str,
    operations: u64,
    argv: Box<dyn Fn(u64) -> Vec<String> + 'a>,
    ways: &'static [Way],
}

struct Bench {
    dir: PathBuf,
    trace: PathBuf,
    result: PathBuf,
}

/// One run's outcome: the workload's mean ns per operation, and the wrapper's peak RSS.
struct Measured {
    ns_per_op: f64,
    max_rss_kib: i64,
}

impl Bench {
    fn argv(&self, way: Way, workload: &[String], extra: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = match way {
            Way::Untraced => vec![],
            Way::Scalpels(tracers, options) => {
                let out = self.dir.join("runs").display().to_string();
                let mut a = vec![
                    self.trace.display().to_string(),
                    "--tracers".into(),
                    tracers.into(),
                    "--out".into(),
                    out,
                ];
                a.extend(options.iter().chain(extra).map(|s| s.to_string()));
                a.push("--".into());
                a
            }
            Way::Bpftrace(script) => {
                let script = root().join("xtask/bench").join(script);
                return vec![
                    "bpftrace".into(),
                    script.display().to_string(),
                    "-c".into(),
                    workload.join(" "),
                ];
            }
            Way::Strace => ["strace", "-c", "-f", "-o", "/dev/null"]
                .map(String::from)
                .to_vec(),
            Way::PySpy(rate) => {
                let out = self.dir.join("py-spy.txt").display().to_string();
                [
                    "py-spy", "record", "--rate", rate, "--format", "raw", "--output",
                ]
                .map(String::from)
                .into_iter()
                .chain([out, "--".into()])
                .collect()
            }
        };
        argv.extend(workload.iter().cloned());
        argv
    }

    fn measure(&self, argv: &[String]) -> Result<Measured> {
        let _ = fs::remove_file(&self.result);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let pid = child.id() as libc::pid_t;
        let mut stderr = child.stderr.expect("piped");
        let mut errors = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut errors)?;
        let (status, usage) = wait4(pid)?;
        if !status.success() {
            bail!("{} failed ({status}): {errors}", argv.join(" "));
        }
        let text = fs::read_to_string(&self.result)
            .with_context(|| format!("{} wrote no result", argv.join(" ")))?;
        Ok(Measured {
            ns_per_op: text
                .trim()
                .parse()
                .context("parsing the workload's result")?,
            max_rss_kib: usage.ru_maxrss,
        })
    }

    fn median(&self, argv: &[String], repeats: usize) -> Result<(f64, i64)> {
        let mut ns = Vec::with_capacity(repeats);
        let mut rss = 0;
        for _ in 0..repeats {
            let m = self.measure(argv)?;
            ns.push(m.ns_per_op);
            rss = rss.max(m.max_rss_kib);
        }
        ns.sort_by(f64::total_cmp);
        Ok((ns[ns.len() / 2], rss))
    }
}

/// Waits for a child and returns its status and resource usage (peak RSS of it and the
/// descendants it waited for).
fn wait4(pid: libc::pid_t) -> Result<(ExitStatus, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unwaited child; the pointers are to live locals.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } < 0 {
        return Err(std::io::Error::last_os_error()).context("waiting for a benchmark run");
    }
    Ok((ExitStatus::from_raw(status), usage))
}

fn compile_c(source: &Path, out: &Path) -> Result<()> {
    cmd::run(Command::new("cc").args(["-O2", "-o"]).arg(out).arg(source))
}

pub fn run(opts: &Options) -> Result<()> {
    setup::require_root("the benchmarks load eBPF programs")?;
    // The test set-up brings the MariaDB server and PyMySQL the SQL benchmark uses.
    setup::all(true)?;
    setup::bench_tools()?;
    cmd::cargo(&["build"], true)?;
    let dir = root().join("target/bench");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let bench = Bench {
        trace: root().join("target/release/scalpels-trace"),
        result: dir.join("result"),
        dir,
    };
    let getppid = bench.dir.join("getppid_loop");
    compile_c(&root().join("xtask/bench/getppid_loop.c"), &getppid)?;
    let file_io = bench.dir.join("file_io_loop");
    compile_c(&root().join("xtask/bench/file_io_loop.c"), &file_io)?;
    let result = bench.result.display().to_string();
    let python = setup::python()?;
    let script = root().join("xtask/bench/python_requests.py");
    let cpu_script = root().join("xtask/bench/python_cpu.py");
    let data = bench.dir.join("io-data").display().to_string();
    let mariadb = TestServer::start("mariadb")?;
    let sql_script = root().join("xtask/bench/pymysql_selects.py");
    let file_io_argv = |mode: &'static str| {
        let (program, data, result) = (file_io.display().to_string(), data.clone(), result.clone());
        Box::new(move |n: u64| {
            vec![
                program.clone(),
                mode.into(),
                data.clone(),
                n.to_string(),
                result.clone(),
            ]
        })
    };
    let workloads: [Workload; 6] = [
        Workload {
            title: "getppid loop in C: ns per call",
            operations: opts.calls,
            argv: Box::new(|n| vec![getppid.display().to_string(), n.to_string(), result.clone()]),
            ways: SYSCALL_WAYS,
        },
        Workload {
            title: "4 KiB random reads of a cached 64 MiB file (pread): ns per read",
            operations: opts.file_ops,
            argv: file_io_argv("randread"),
            ways: FILE_WAYS,
        },
        Workload {
            title: "4 KiB random O_DIRECT writes (pwrite): ns per write",
            operations: opts.file_ops / 10,
            argv: file_io_argv("directwrite"),
            ways: FILE_WAYS,
        },
        Workload {
            title: "Python stat+open+read+close: ns per request",
            operations: opts.requests,
            argv: Box::new(|n| {
                vec![
                    python.clone(),
                    script.display().to_string(),
                    n.to_string(),
                    result.clone(),
                ]
            }),
            ways: SYSCALL_WAYS,
        },
        Workload {
            title: "CPU-bound Python (a 1000-iteration loop per call): ns per call",
            operations: opts.requests / 4,
            argv: Box::new(|n| {
                vec![
                    python.clone(),
                    cpu_script.display().to_string(),
                    n.to_string(),
                    result.clone(),
                ]
            }),
            ways: PYTHON_CPU_WAYS,
        },
        Workload {
            title: "PyMySQL point SELECTs on a loopback MariaDB: ns per query",
            operations: opts.requests / 4,
            argv: Box::new(|n| {
                let mut argv = vec![python.clone(), sql_script.display().to_string()];
                argv.extend(mariadb.credentials.iter().cloned());
                argv.extend([n.to_string(), result.clone()]);
                argv
            }),
            ways: SQL_WAYS,
        },
    ];

    let mut report = format!(
        "Median of {} runs each; {} CPUs, kernel {}.\n",
        opts.repeats,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
    );
    for workload in &workloads {
        report += &format!(
            "\n### {}\n\n| way | operations | ns/op | slowdown |\n| --- | ---: | ---: | ---: |\n",
            workload.title
        );
        let mut base = None;
        for &way in workload.ways {
            eprintln!("xtask: bench: {}: {}", workload.title, way.label());
            let operations = workload.operations / way.divisor();
            let argv = bench.argv(way, &(workload.argv)(operations), &[]);
            let (ns, _) = bench.median(&argv, opts.repeats)?;
            let base = *base.get_or_insert(ns);
            report += &format!(
                "| {} | {operations} | {ns:.1} | {:+.1}% |\n",
                way.label(),
                (ns / base - 1.0) * 100.0
            );
        }
    }

    report += &stress(&bench, &(workloads[0].argv)(opts.calls), opts)?;
    println!("{report}");
    fs::write(bench.dir.join("results.md"), &report)?;
    eprintln!("xtask: bench: written to target/bench/results.md");
    Ok(())
}

/// A server of the integration tests (`tests/src/bin/serve.rs`), stopped when dropped.
struct TestServer {
    child: std::process::Child,
    /// port, user, password, database
    credentials: Vec<String>,
}

impl TestServer {
    fn start(which: &str) -> Result<TestServer> {
        let mut child = Command::new(root().join("target/release/serve"))
            .arg(which)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {which} server"))?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().expect("piped")),
            &mut line,
        )?;
        let credentials: Vec<String> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('=').map(|(_, value)| value.to_owned()))
            .collect();
        if credentials.len() != 4 {
            bail!("the {which} server did not start: {line:?}");
        }
        Ok(TestServer { child, credentials })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing its standard input stops the server; wait so no server outlives the bench.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Every call a slow-call event (`--slow-syscall 0ns`): ring-buffer and Parquet throughput,
/// the loader's memory, and whether anything was lost.
fn stress(bench: &Bench, workload: &[String], opts: &Options) -> Result<String> {
    let mut out = String::from(
        "\n### Loader\n\n| scenario | workload ns/call | events written | events dropped | loader peak RSS |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for (scenario, extra) in [
        ("aggregation only (default)", &[][..]),
        (
            "every call an event (--slow-syscall 0ns)",
            &["--slow-syscall", "0ns"][..],
        ),
    ] {
        let _ = fs::remove_dir_all(bench.dir.join("runs"));
        eprintln!("xtask: bench: loader: {scenario}");
        let m = bench.measure(&bench.argv(Way::Scalpels("syscalls", &[]), workload, extra))?;
        let manifest = only_manifest(&bench.dir.join("runs"))?;
        let events = manifest["tables"]["syscall_events"]["rows"]
            .as_u64()
            .context("manifest has no syscall_events rows")?;
        let dropped = manifest["tracers"][0]["drops"]["events_dropped"]
            .as_u64()
            .context("manifest has no events_dropped counter")?;
        out += &format!(
            "| {scenario} | {:.1} | {events} | {dropped} | {:.1} MiB |\n",
            m.ns_per_op,
            m.max_rss_kib as f64 / 1024.0
        );
    }
    out += &format!(
        "\n(Repeats: 1 each; {} calls; peak RSS is of scalpels-trace and its waited-for \
         children, the workload being a few hundred KiB.)\n",
        opts.calls
    );
    Ok(out)
}

fn only_manifest(runs: &Path) -> Result<serde_json::Value> {
    let run = fs::read_dir(runs)?
        .next()
        .context("the benchmark run wrote no run directory")??;
    let text = fs::read_to_string(run.path().join("manifest.json"))?;
    Ok(serde_json::from_str(&text)?)
}
