//! Service benchmarks: what tracing costs a real service's throughput. A service is started
//! fresh for each run, traced by `--pid` (its processes only: the load generator is not a
//! target), warmed up, saturated by wrk for a fixed window, and stopped; throughput is what
//! wrk completed in the window. Ways: untraced, each tracer alone, and all tracers (the
//! default).
//!
//! The tracer attaches before the warm-up, while the service's connections to MariaDB and
//! RabbitMQ are being opened: the protocols tracer recognises a connection made before the
//! trace by its bytes or its port, and a MySQL conversation seen from its middle on the test
//! server's free port (not 3306) would stay `unknown`, its SQL unparsed and uncounted.

use std::{
    fmt::Write as _,
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    Options, alternate, keystone, median,
    process::{self, TestServer},
    traced::{self, Stacks, Tracing},
};
use crate::{cmd, root, setup};

/// Load before the measured window: the workers connect to MariaDB and RabbitMQ and fill
/// their caches (SQLAlchemy's compiled statements, the tracer's code-object names), as a
/// service in production has long done.
const WARM_UP_SECONDS: u64 = 3;
/// How long a service may take to answer after it was started.
const READY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// xtask/bench/openstack_api/ under gunicorn.
    OpenStackApi,
    /// xtask/bench/http_service.py.
    StdlibHttp,
    /// The real OpenStack Keystone (xtask/bench/keystone_wsgi.py) under gunicorn.
    Keystone,
}

/// A service, and the load that saturates it.
struct ServiceBench {
    kind: Kind,
    title: &'static str,
    /// What the service is, for the report.
    description: &'static str,
    /// Where in its code the Python stack depth is recorded (BENCH_DEPTH_FILE).
    depth_point: &'static str,
    /// xtask/bench/load.lua's request mix.
    mix: &'static str,
    /// wrk's threads and connections.
    threads: u32,
    connections: u32,
}

const SERVICES: [ServiceBench; 3] = [
    ServiceBench {
        kind: Kind::OpenStackApi,
        title: "OpenStack-like API (gunicorn, SQLAlchemy + PyMySQL on MariaDB, a notification \
                per request)",
        description: "`xtask/bench/openstack_api/` under gunicorn, 2 sync workers: 18 \
                      middleware layers, a router, controllers, managers and an SQL driver on \
                      SQLAlchemy's ORM; per request 2-3 SELECTs (with joins), each in a session \
                      of its own with the pool's ping and two ROLLBACKs (session close, pool \
                      reset), an UPDATE and COMMIT every tenth authentication: about 9 \
                      statements on the wire; one oslo.messaging notification to RabbitMQ and \
                      a log line. wrk's `openstack` mix (xtask/bench/load.lua): a password \
                      authentication (POST) every fourth request, token validations, user and \
                      role-list GETs",
        depth_point: "SQL is issued (SQLAlchemy's before_cursor_execute)",
        mix: "openstack",
        threads: 1,
        connections: 8,
    },
    ServiceBench {
        kind: Kind::StdlibHttp,
        title: "stdlib HTTP service (http.server, keep-alive, small responses)",
        description: "`xtask/bench/http_service.py`: ThreadingHTTPServer with HTTP/1.1 \
                      keep-alive, a chain of 23 tweens, a router, view decorators and a \
                      repository; responses of about 40 bytes of JSON. wrk's `http` mix: two \
                      keep-alive connections, GETs of items and a POST every tenth request",
        depth_point: "the handler looks the item up",
        mix: "http",
        threads: 2,
        connections: 2,
    },
    ServiceBench {
        kind: Kind::Keystone,
        title: "OpenStack Keystone (gunicorn, SQLAlchemy + PyMySQL on MariaDB, RabbitMQ \
                notifications)",
        description: "the real Keystone 30.0.0 from PyPI (`target/keystone-venv`) under \
                      gunicorn, 2 sync workers: Fernet tokens, its SQL backends through oslo.db \
                      on PyMySQL and MariaDB, oslo.messaging notifications (messagingv2) to \
                      RabbitMQ, logging to a file; default options, bcrypt's 12 rounds \
                      included. wrk's `keystone` mix (xtask/bench/load.lua) with the bootstrap \
                      admin's token: a password token issue every 100th request, a user \
                      created and deleted every 50th, token validations, project and user \
                      lists",
        depth_point: "SQL is issued (SQLAlchemy's before_cursor_execute)",
        mix: "keystone",
        threads: 1,
        connections: 4,
    },
];

/// How a service runs.
enum Way {
    Untraced,
    /// scalpels-trace with this tracer only.
    Alone(String),
    /// scalpels-trace with its default: every tracer.
    AllTracers,
}

impl Way {
    fn label(&self) -> String {
        match self {
            Way::Untraced => "untraced".into(),
            Way::Alone(tracer) => format!("--tracers {tracer}"),
            Way::AllTracers => "all tracers (default)".into(),
        }
    }

    fn file_name(&self) -> String {
        match self {
            Way::Untraced => "untraced".into(),
            Way::Alone(tracer) => tracer.clone(),
            Way::AllTracers => "all".into(),
        }
    }

    fn samples_python(&self) -> bool {
        match self {
            Way::Untraced => false,
            Way::Alone(tracer) => tracer == "python",
            Way::AllTracers => true,
        }
    }
}

/// Where the OpenStack services keep their state and send their notifications.
struct Backends {
    db_url: String,
    transport_url: String,
    /// Keystone's deployment (keystone.conf and its keys), when Keystone is benchmarked.
    keystone_config: Option<PathBuf>,
}

/// One run of a way.
struct Measured {
    requests_per_second: f64,
    /// CPU time per request of the window: of the service's processes (tracing work in their
    /// threads included), and of the whole machine (the loader, the database and the load
    /// generator included). Steadier than throughput on a machine whose speed drifts.
    service_cpu_ms: f64,
    machine_cpu_ms: f64,
    loader: Option<LoaderCost>,
}

struct LoaderCost {
    /// CPU seconds during the measured window only.
    window_cpu_seconds: f64,
    /// CPU seconds from start to exit (attaching, the warm-up, the window, writing the run).
    total_cpu_seconds: f64,
    max_rss_kib: i64,
    stacks: Stacks,
}

/// Runs the service benchmarks in `dir`; returns their part of the report.
pub fn run(dir: &Path, mariadb: &TestServer, opts: &Options) -> Result<String> {
    let rabbitmq = TestServer::start("rabbitmq")?;
    let [port, user, password, database] = &mariadb.credentials[..] else {
        bail!("the MariaDB server gave no credentials");
    };
    let ways = chosen_ways(&opts.ways)?;
    let benches = chosen_services(&opts.services)?;
    let transport_url = format!(
        "rabbit://{}:{}@127.0.0.1:{}/",
        rabbitmq.credentials[1],
        rabbitmq.credentials[2],
        rabbitmq.port()
    );
    let keystone_config = if benches.iter().any(|bench| bench.kind == Kind::Keystone) {
        Some(keystone::deploy(
            &dir.join("service-keystone"),
            mariadb,
            &transport_url,
        )?)
    } else {
        None
    };
    let backends = Backends {
        // In clear, as the series before the test server offered TLS (PyMySQL takes it
        // whenever offered).
        db_url: format!(
            "mysql+pymysql://{user}:{password}@127.0.0.1:{port}/{database}?ssl_disabled=true"
        ),
        transport_url,
        keystone_config,
    };
    let extra: Vec<&str> = opts.trace_args.iter().map(String::as_str).collect();

    let mut report = String::new();
    if !extra.is_empty() {
        writeln!(report, "\nEvery traced run with `{}`.", extra.join(" "))?;
    }
    for bench in benches {
        let dir = dir.join(format!("service-{}", bench.mix));
        let (shallowest, deepest) = stack_depth(bench, &backends, &dir)?;
        let runs = alternate(&ways, opts.repeats, |way, round| {
            eprintln!(
                "xtask: bench: {}: {} (round {round} of {})",
                bench.mix,
                way.label(),
                opts.repeats
            );
            let run_dir = dir.join(format!("{}-{round}", way.file_name()));
            run_once(
                bench,
                &backends,
                way,
                &extra,
                &run_dir,
                opts.service_seconds,
            )
        })?;
        report += &format!(
            "\n### {}\n\n{}. Median of {} runs of {} s each (after {WARM_UP_SECONDS} s of \
             warm-up), the ways alternating; wrk with {} connections. Python frames on the \
             stack where {}: {shallowest} to {deepest} (recorded in a separate run).\n\n",
            bench.title,
            bench.description,
            opts.repeats,
            opts.service_seconds,
            bench.connections,
            bench.depth_point,
        );
        report += &table(&ways, &runs, opts.service_seconds);
        eprintln!("xtask: bench: {}: kernel time per program", bench.mix);
        report += &kernel_costs(
            bench,
            &backends,
            &extra,
            &dir.join("bpf-stats"),
            opts.service_seconds,
        )?;
    }
    Ok(report)
}

/// The ways named (every way when none is): untraced, each tracer alone, all tracers.
fn chosen_ways(names: &[String]) -> Result<Vec<Way>> {
    let tracers = traced::available_tracers()?;
    let mut ways = vec![Way::Untraced];
    ways.extend(tracers.iter().cloned().map(Way::Alone));
    ways.push(Way::AllTracers);
    if names.is_empty() {
        return Ok(ways);
    }
    for name in names {
        if !ways.iter().any(|way| way.file_name() == *name) {
            bail!("no way {name:?}: untraced, all, or one of the tracers {tracers:?}");
        }
    }
    Ok(ways
        .into_iter()
        .filter(|way| names.contains(&way.file_name()))
        .collect())
}

/// The services named by their load mix (every service when none is).
fn chosen_services(names: &[String]) -> Result<Vec<&'static ServiceBench>> {
    for name in names {
        if !SERVICES.iter().any(|bench| bench.mix == name) {
            bail!("no service {name:?}: openstack, http or keystone");
        }
    }
    Ok(SERVICES
        .iter()
        .filter(|bench| names.is_empty() || names.contains(&bench.mix.to_owned()))
        .collect())
}

/// One more run with every tracer and `--bpf-stats`: what each eBPF program cost the kernel,
/// per request of the window. Not a throughput way: the kernel's timing of every program run
/// costs time of its own.
fn kernel_costs(
    bench: &ServiceBench,
    backends: &Backends,
    extra: &[&str],
    dir: &Path,
    seconds: u64,
) -> Result<String> {
    let service = Service::start(bench, backends, dir, None)?;
    let extra: Vec<&str> = extra.iter().copied().chain(["--bpf-stats"]).collect();
    let tracing = Tracing::start(None, &extra, &dir.join("runs"), &service.pids())?;
    load(bench, service.port, WARM_UP_SECONDS)?;
    let requests = load(bench, service.port, seconds)? * seconds as f64;
    let ended = tracing.stop()?;
    drop(service);
    let manifest = fs::read_to_string(ended.run.join("manifest.json"))
        .with_context(|| format!("reading the manifest of {}", ended.run.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest)?;
    // Each tracer's own programs, and those they share (the system-call hooks).
    let owned = manifest["tracers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tracer| (tracer["name"].as_str().unwrap_or("?"), &tracer["programs"]));
    let shared = std::iter::once(("shared", &manifest["shared_programs"]));
    let mut rows = Vec::new();
    for (owner, programs) in owned.chain(shared) {
        for (program, cost) in programs.as_object().into_iter().flatten() {
            let runs = cost["runs"].as_u64().unwrap_or(0);
            let ns = cost["run_time_ns"].as_u64().unwrap_or(0);
            if runs > 0 {
                rows.push((ns, owner, program.clone(), runs));
            }
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let total_ns: u64 = rows.iter().map(|row| row.0).sum();
    let mut out = format!(
        "\nKernel time per eBPF program, from one more run with every tracer and `--bpf-stats` \
         ({requests:.0} requests in the {seconds} s window; the counts cover the whole run, \
         warm-up included): {:.1} µs of programs per request.\n\n\
         | program | tracer | runs | ns a run | ms | µs per request |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
        total_ns as f64 / 1e3 / requests.max(1.0),
    );
    for (ns, tracer, program, runs) in rows {
        writeln!(
            out,
            "| {program} | {tracer} | {runs} | {} | {:.1} | {:.2} |",
            ns / runs,
            ns as f64 / 1e6,
            ns as f64 / 1e3 / requests.max(1.0)
        )?;
    }
    Ok(out)
}

/// One run: a fresh service, traced by `way`, warmed up, saturated for `seconds`.
fn run_once(
    bench: &ServiceBench,
    backends: &Backends,
    way: &Way,
    extra: &[&str],
    dir: &Path,
    seconds: u64,
) -> Result<Measured> {
    let service = Service::start(bench, backends, dir, None)?;
    let tracing = match way {
        Way::Untraced => None,
        Way::Alone(tracer) => Some(Tracing::start(
            Some(tracer),
            extra,
            &dir.join("runs"),
            &service.pids(),
        )?),
        Way::AllTracers => Some(Tracing::start(
            None,
            extra,
            &dir.join("runs"),
            &service.pids(),
        )?),
    };
    load(bench, service.port, WARM_UP_SECONDS)?;
    let pids = service.pids();
    let service_cpu = || -> Result<f64> {
        pids.iter()
            .map(|&pid| process::cpu_seconds_so_far(pid))
            .sum()
    };
    let (service_before, machine_before) = (service_cpu()?, process::machine_busy_seconds()?);
    let cpu_before = tracing.as_ref().map(Tracing::cpu_seconds).transpose()?;
    let requests_per_second = load(bench, service.port, seconds)?;
    let cpu_after = tracing.as_ref().map(Tracing::cpu_seconds).transpose()?;
    let (service_after, machine_after) = (service_cpu()?, process::machine_busy_seconds()?);
    let requests = (requests_per_second * seconds as f64).max(1.0);
    let ended = tracing.map(Tracing::stop).transpose()?;
    drop(service);
    let loader = match (ended, cpu_before, cpu_after) {
        (Some(ended), Some(before), Some(after)) => Some(LoaderCost {
            window_cpu_seconds: after - before,
            total_cpu_seconds: ended.cpu_seconds,
            max_rss_kib: ended.max_rss_kib,
            stacks: if way.samples_python() {
                traced::stacks(&ended.run)?
            } else {
                Stacks::default()
            },
        }),
        _ => None,
    };
    Ok(Measured {
        requests_per_second,
        service_cpu_ms: (service_after - service_before) * 1e3 / requests,
        machine_cpu_ms: (machine_after - machine_before) * 1e3 / requests,
        loader,
    })
}

/// The shallowest and deepest Python stacks at the service's depth point, from a short run
/// of its own with BENCH_DEPTH_FILE set (the recording costs the service time).
fn stack_depth(bench: &ServiceBench, backends: &Backends, dir: &Path) -> Result<(u32, u32)> {
    let run_dir = dir.join("stack-depth");
    let depth_file = run_dir.join("depths.txt");
    let service = Service::start(bench, backends, &run_dir, Some(&depth_file))?;
    load(bench, service.port, WARM_UP_SECONDS)?;
    drop(service);
    let text = fs::read_to_string(&depth_file)
        .with_context(|| format!("the service recorded no depth in {}", depth_file.display()))?;
    let depths: Vec<u32> = text
        .lines()
        .map(|line| line.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", depth_file.display()))?;
    match (depths.iter().min(), depths.iter().max()) {
        (Some(&min), Some(&max)) => Ok((min, max)),
        _ => bail!("{} is empty", depth_file.display()),
    }
}

/// A started service, stopped with its workers when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(
        bench: &ServiceBench,
        backends: &Backends,
        dir: &Path,
        depth_file: Option<&Path>,
    ) -> Result<Service> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = process::free_port()?;
        let python = setup::venv_python();
        let scripts = root().join("xtask/bench");
        let mut command = match bench.kind {
            Kind::OpenStackApi => {
                cmd::run(
                    Command::new(&python)
                        .current_dir(&scripts)
                        .args(["-m", "openstack_api", "init"])
                        .args([&backends.db_url, &backends.transport_url]),
                )?;
                let logs = dir.join("logs");
                fs::create_dir_all(&logs)?;
                let mut gunicorn = Command::new(python.with_file_name("gunicorn"));
                gunicorn
                    .args(["--workers", "2", "--worker-class", "sync", "--bind"])
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--chdir")
                    .arg(&scripts)
                    .arg("openstack_api.wsgi:app")
                    .env("BENCH_DB_URL", &backends.db_url)
                    .env("BENCH_TRANSPORT_URL", &backends.transport_url)
                    .env("BENCH_LOG_DIR", &logs)
                    // gunicorn ≥ 25.1 opens a control socket there (by default in $HOME).
                    .env("XDG_RUNTIME_DIR", dir);
                gunicorn
            }
            Kind::StdlibHttp => {
                let mut server = Command::new(&python);
                server
                    .arg(scripts.join("http_service.py"))
                    .arg(port.to_string());
                server
            }
            Kind::Keystone => keystone::gunicorn(
                backends
                    .keystone_config
                    .as_deref()
                    .context("Keystone was not deployed")?,
                port,
                dir,
            ),
        };
        if let Some(depth_file) = depth_file {
            command.env("BENCH_DEPTH_FILE", depth_file);
        }
        let log = dir.join("service.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // A group of its own, so that stopping it stops its workers too.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", bench.title))?;
        let mut service = Service { child, port };
        let path = match bench.kind {
            Kind::OpenStackApi => "/healthcheck",
            Kind::StdlibHttp => "/items/1",
            // The version document: answered once a worker has loaded Keystone.
            Kind::Keystone => "/v3",
        };
        let started = Instant::now();
        while !process::http_ok(port, path) {
            if let Some(status) = service.child.try_wait()? {
                bail!("{} exited ({status}); see {}", bench.title, log.display());
            }
            if started.elapsed() > READY_LIMIT {
                bail!(
                    "{} did not answer in {READY_LIMIT:?}; see {}",
                    bench.title,
                    log.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(service)
    }

    /// The service's processes: the server, and its workers if it has any.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(process::children(self.child.id()));
        pids
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        process::stop_group(&mut self.child, Duration::from_secs(10));
    }
}

/// Saturates the service with wrk for `seconds`; returns the requests completed per second.
fn load(bench: &ServiceBench, port: u16, seconds: u64) -> Result<f64> {
    let output = Command::new("wrk")
        .arg(format!("--threads={}", bench.threads))
        .arg(format!("--connections={}", bench.connections))
        .arg(format!("--duration={seconds}s"))
        .arg("--timeout=10s")
        .arg("--script")
        .arg(root().join("xtask/bench/load.lua"))
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--", bench.mix])
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = stdout
        .lines()
        .find_map(|line| line.strip_prefix("bench-load "))
        .with_context(|| format!("wrk printed no summary: {stdout}"))?;
    let field = |name: &str| -> Result<f64> {
        summary
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no {name} in wrk's summary {summary:?}"))
    };
    let (requests, elapsed) = (field("requests")?, field("seconds")?);
    let (errors, bad_status) = (field("errors")?, field("bad_status")?);
    // Any error answer is a broken service; a few socket errors are a load generator
    // stopping mid-request.
    if bad_status > 0.0 || errors > requests / 100.0 {
        bail!("{}: {summary}", bench.title);
    }
    Ok(requests / elapsed)
}

/// The report's table: medians per way, loader costs, and truncated stacks summed over runs.
fn table(ways: &[Way], runs: &[Vec<Measured>], seconds: u64) -> String {
    let mut out = String::from(
        "| way | req/s | runs' req/s (min–max) | throughput lost | service CPU ms per request \
         | machine CPU ms per request | loader CPU s (window) | loader CPU s (whole run) | \
         loader CPU: % of a core per 100 req/s | loader peak RSS | stacks truncated: on-CPU \
         | off-CPU | SQL/RPC rows |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let base = median(runs[0].iter().map(|m| m.requests_per_second));
    let base_service = median(runs[0].iter().map(|m| m.service_cpu_ms));
    let base_machine = median(runs[0].iter().map(|m| m.machine_cpu_ms));
    // A way's CPU per request, and what it adds to the first way's.
    let cpu = |ms: f64, base: f64| format!("{ms:.2} ({:+.1}%)", (ms / base - 1.0) * 100.0);
    let mut all_stacks = Stacks::default();
    for (way, runs) in ways.iter().zip(runs) {
        let rps = median(runs.iter().map(|m| m.requests_per_second));
        // The spread shows how much of a way's difference from untraced is the runs' noise.
        let (slowest, fastest) = runs
            .iter()
            .map(|m| m.requests_per_second)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), rps| {
                (lo.min(rps), hi.max(rps))
            });
        let loader: Vec<&LoaderCost> = runs.iter().filter_map(|m| m.loader.as_ref()).collect();
        let _ = write!(
            out,
            "| {} | {rps:.0} | {slowest:.0}–{fastest:.0} | {:.1}% | {} | {} |",
            way.label(),
            (1.0 - rps / base) * 100.0,
            cpu(median(runs.iter().map(|m| m.service_cpu_ms)), base_service),
            cpu(median(runs.iter().map(|m| m.machine_cpu_ms)), base_machine),
        );
        if loader.is_empty() {
            out += " | | | | | | |\n";
            continue;
        }
        let per_100 = runs.iter().filter_map(|m| {
            let cost = m.loader.as_ref()?;
            let core_percent = cost.window_cpu_seconds / seconds as f64 * 100.0;
            Some(core_percent / (m.requests_per_second / 100.0))
        });
        let stacks = loader
            .iter()
            .fold(Stacks::default(), |sum, cost| sum.add(cost.stacks));
        all_stacks = all_stacks.add(stacks);
        let _ = writeln!(
            out,
            " {:.2} | {:.2} | {:.3} | {:.1} MiB | {} | {} | {} |",
            median(loader.iter().map(|c| c.window_cpu_seconds)),
            median(loader.iter().map(|c| c.total_cpu_seconds)),
            median(per_100),
            loader.iter().map(|c| c.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
            stacks.on_cpu.percent(),
            stacks.off_cpu.percent(),
            stacks.rows.percent(),
        );
    }
    out += "\nCPU per request: of the service's processes, and of the whole machine (busy time \
            of every CPU: the loader, the database and the load generator included), in the \
            window, medians, with what each adds to the first way's. \
            Loader CPU and RSS are of scalpels-trace (medians; RSS: the largest of the runs); \
            truncated stacks are those marked `truncated` at the default `--python-depth`, \
            summed over the runs of the ways with the python tracer; SQL/RPC rows are those \
            with a Python stack (`python_stack_id`).";
    if let Some((shallowest, deepest)) = all_stacks.row_depth {
        let _ = write!(
            out,
            " The stacks of those rows, as the tracer recorded them at the socket call: \
             {shallowest} to {deepest} frames."
        );
    }
    out + "\n"
}
