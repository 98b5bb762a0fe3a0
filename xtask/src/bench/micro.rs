//! Micro benchmarks: workloads that measure themselves (mean ns per operation, written to a
//! result file), so loader start-up and attach time are not counted as slowdown; each beside
//! other tools doing the same job.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use super::{Options, alternate, loader, median, process};
use crate::{cmd, root, setup};

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
const TLS_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("protocols", &[]),
    Way::Scalpels("protocols", &["--no-tls"]),
];
const DEEP_ECHO_WAYS: &[Way] = &[
    Way::Untraced,
    Way::Scalpels("protocols", &[]),
    Way::Scalpels("protocols,python", &[]),
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
pub(super) enum Way {
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

impl Workload<'_> {
    fn operations(&self, way: Way) -> u64 {
        self.operations / way.divisor()
    }
}

pub(super) struct Bench {
    pub dir: PathBuf,
    trace: PathBuf,
    result: PathBuf,
}

/// One run's outcome: the workload's mean ns per operation, and the wrapper's peak RSS.
pub(super) struct Measured {
    pub ns_per_op: f64,
    pub max_rss_kib: i64,
}

impl Bench {
    pub fn argv(&self, way: Way, workload: &[String], extra: &[&str]) -> Vec<String> {
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
                let py_spy = setup::venv_python().with_file_name("py-spy");
                [py_spy.display().to_string()]
                    .into_iter()
                    .chain(
                        ["record", "--rate", rate, "--format", "raw", "--output"].map(String::from),
                    )
                    .chain([out, "--".into()])
                    .collect()
            }
        };
        argv.extend(workload.iter().cloned());
        argv
    }

    pub fn measure(&self, argv: &[String]) -> Result<Measured> {
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
        let (status, usage) = process::wait4(pid)?;
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
}

fn compile_c(source: &Path, out: &Path) -> Result<()> {
    cmd::run(Command::new("cc").args(["-O2", "-o"]).arg(out).arg(source))
}

/// Runs the micro benchmarks in `dir`; returns their part of the report.
pub fn run(dir: &Path, mariadb: &process::TestServer, opts: &Options) -> Result<String> {
    let bench = Bench {
        trace: root().join("target/release/scalpels-trace"),
        result: dir.join("result"),
        dir: dir.to_owned(),
    };
    let getppid = bench.dir.join("getppid_loop");
    compile_c(&root().join("xtask/bench/getppid_loop.c"), &getppid)?;
    let file_io = bench.dir.join("file_io_loop");
    compile_c(&root().join("xtask/bench/file_io_loop.c"), &file_io)?;
    let result = bench.result.display().to_string();
    let python = setup::venv_python().display().to_string();
    let script = root().join("xtask/bench/python_requests.py");
    let cpu_script = root().join("xtask/bench/python_cpu.py");
    let data = bench.dir.join("io-data").display().to_string();
    let sql_script = root().join("xtask/bench/pymysql_selects.py");
    let tls_script = root().join("xtask/bench/tls_echo.py");
    let echo_argv = |mode: &'static str| {
        let (python, script, result) = (python.clone(), tls_script.clone(), result.clone());
        Box::new(move |n: u64| {
            vec![
                python.clone(),
                script.display().to_string(),
                mode.into(),
                n.to_string(),
                result.clone(),
            ]
        })
    };
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
    let workloads: [Workload; 9] = [
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
        Workload {
            title: "64-byte round trips over TLS, both ends in one Python process (4 SSL calls each): ns per round trip",
            operations: opts.requests / 4,
            argv: echo_argv("tls"),
            ways: TLS_WAYS,
        },
        Workload {
            title: "The same round trips in clear: ns per round trip",
            operations: opts.requests / 4,
            argv: echo_argv("clear"),
            ways: TLS_WAYS,
        },
        Workload {
            title: "The same round trips in clear, made 100 Python frames deep (with python, a stack walked per round trip): ns per round trip",
            operations: opts.requests / 4,
            argv: echo_argv("deep"),
            ways: DEEP_ECHO_WAYS,
        },
    ];

    let mut report = String::new();
    for workload in &workloads {
        report += &format!(
            "\n### {}\n\n| way | operations | ns/op | slowdown |\n| --- | ---: | ---: | ---: |\n",
            workload.title
        );
        let runs = alternate(workload.ways, opts.repeats, |&way, round| {
            eprintln!(
                "xtask: bench: {}: {} (round {round} of {})",
                workload.title,
                way.label(),
                opts.repeats
            );
            let argv = bench.argv(way, &(workload.argv)(workload.operations(way)), &[]);
            Ok(bench.measure(&argv)?.ns_per_op)
        })?;
        let mut base = None;
        for (&way, ns) in workload.ways.iter().zip(runs) {
            let ns = median(ns);
            let base = *base.get_or_insert(ns);
            report += &format!(
                "| {} | {} | {ns:.1} | {:+.1}% |\n",
                way.label(),
                workload.operations(way),
                (ns / base - 1.0) * 100.0
            );
        }
    }

    report += &loader::stress(&bench, &(workloads[0].argv)(opts.calls), opts)?;
    report += &loader::parser_throughput()?;
    Ok(report)
}
