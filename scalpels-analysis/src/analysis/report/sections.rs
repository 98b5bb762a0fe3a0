//! The report's sections: one query each over the run's tables. A section whose tables the run
//! lacks (its tracer was not on) is left out.

use anyhow::Result;

use crate::analysis::{
    dataset::{Dataset, SQL_BARE_COMMAND, SQL_LABEL, ns},
    query_table,
    table::{Kind::*, Table, column},
};

pub struct Scope<'a> {
    pub dataset: &'a Dataset,
    /// Rows per table.
    pub top: usize,
    /// Length of the run, for rates.
    pub seconds: f64,
}

pub async fn all(scope: &Scope<'_>) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    let has = |t: &str| scope.dataset.has(t);
    if has("syscalls") {
        tables.push(syscalls(scope, "calls").await?);
        tables.push(syscalls(scope, "total_ns").await?);
    }
    if has("block_io_stats") {
        tables.push(block_devices(scope).await?);
    }
    if has("file_io") {
        tables.push(files(scope).await?);
    }
    if has("python_samples") && has("python_stacks") {
        tables.push(python(scope, "on_cpu").await?);
        tables.push(python(scope, "off_cpu").await?);
    }
    if has("sql") {
        tables.push(sql(scope).await?);
    }
    if has("rpc") {
        tables.push(rpc(scope).await?);
    }
    if has("http") {
        tables.push(http(scope).await?);
    }
    if has("cache") {
        tables.push(cache(scope).await?);
    }
    if has("proc_stats") {
        tables.push(processes(scope).await?);
    }
    if has("system_stats") {
        tables.push(system(scope).await?);
    }
    Ok(tables)
}

async fn syscalls(scope: &Scope<'_>, order: &str) -> Result<Table> {
    let (key, title) = if order == "calls" {
        ("syscalls_by_count", "System calls by count")
    } else {
        ("syscalls_by_time", "System calls by total time")
    };
    let table = Table::new(
        key,
        title,
        vec![
            column("syscall", "syscall", Text),
            column("calls", "calls", Count),
            column("per_second", "calls/s", Rate),
            column("errors", "errors", Count),
            column("total_ns", "total", Duration),
            column("mean_ns", "mean", Duration),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
            column("max_ns", "max", Duration),
        ],
    )
    .with_note(
        "p50/p99 from the log2 latency histograms (factor-2 slots, interpolated; at most max)",
    )
    .with_bar(if order == "calls" {
        "calls"
    } else {
        "total_ns"
    });
    let sql = format!(
        "SELECT syscall, sum(calls) AS calls, sum(calls) / {seconds} AS per_second,
                sum(errors) AS errors, sum({total}) AS total_ns,
                sum({total}) / sum(calls) AS mean_ns,
                least({p50}, max({max})) AS p50_ns, least({p99}, max({max})) AS p99_ns,
                max({max}) AS max_ns
         FROM syscalls GROUP BY syscall ORDER BY {order} DESC, syscall LIMIT {top}",
        seconds = scope.seconds,
        total = ns("total_latency"),
        max = ns("max_latency"),
        p50 = ns("hist_quantile(hist_merge(latency_hist), 0.5)"),
        p99 = ns("hist_quantile(hist_merge(latency_hist), 0.99)"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn block_devices(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "block_devices",
        "Block devices by total time",
        vec![
            column("device", "device", Text),
            column("op", "op", Text),
            column("requests", "requests", Count),
            column("bytes", "bytes", Bytes),
            column("errors", "errors", Count),
            column("total_ns", "total", Duration),
            column("mean_ns", "mean", Duration),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
        ],
    )
    .with_bar("total_ns");
    let sql = format!(
        "SELECT device, op, sum(requests) AS requests, sum(bytes) AS bytes, sum(errors) AS errors,
                sum({total}) AS total_ns, sum({total}) / sum(requests) AS mean_ns,
                hist_quantile(hist_merge(latency_hist), 0.5) AS p50_ns,
                hist_quantile(hist_merge(latency_hist), 0.99) AS p99_ns
         FROM block_io_stats GROUP BY device, op ORDER BY total_ns DESC, device, op LIMIT {top}",
        total = ns("total_latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn files(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "files",
        "Files by total time",
        vec![
            column("path", "path", Path),
            column("op", "op", Text),
            column("calls", "calls", Count),
            column("bytes", "bytes", Bytes),
            column("errors", "errors", Count),
            column("total_ns", "total", Duration),
            column("mean_ns", "mean", Duration),
            column("max_ns", "max", Duration),
        ],
    )
    .with_bar("total_ns");
    let sql = format!(
        "SELECT path, op, sum(calls) AS calls, sum(bytes) AS bytes, sum(errors) AS errors,
                sum({total}) AS total_ns, sum({total}) / sum(calls) AS mean_ns,
                max({max}) AS max_ns
         FROM file_io GROUP BY path, op ORDER BY total_ns DESC, path, op LIMIT {top}",
        total = ns("total_latency"),
        max = ns("max_latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

/// Functions by self time (the function itself was the innermost frame) with their total time
/// (anywhere in the stack, counted once per sample however deep the recursion).
fn python_functions_sql(kind: &str) -> String {
    format!(
        "WITH samples AS (
             SELECT stack_id, {weight} AS w FROM python_samples WHERE kind = '{kind}'),
         leaf AS (SELECT DISTINCT stack_id, function, file FROM python_stacks WHERE level = 0),
         frames AS (SELECT DISTINCT stack_id, function, file FROM python_stacks),
         self_time AS (
             SELECT l.function, l.file, sum(s.w) AS w, count(*) AS n
             FROM samples s JOIN leaf l ON s.stack_id = l.stack_id GROUP BY l.function, l.file),
         total_time AS (
             SELECT f.function, f.file, sum(s.w) AS w
             FROM samples s JOIN frames f ON s.stack_id = f.stack_id GROUP BY f.function, f.file),
         everything AS (SELECT sum(w) AS w FROM samples)
         SELECT t.function, t.file, coalesce(st.w, 0) AS self_ns,
                100.0 * coalesce(st.w, 0) / e.w AS self_pct, t.w AS total_ns,
                100.0 * t.w / e.w AS total_pct, coalesce(st.n, 0) AS samples
         FROM total_time t
         LEFT JOIN self_time st ON t.function = st.function AND t.file = st.file
         CROSS JOIN everything e",
        weight = ns("weight"),
    )
}

async fn python(scope: &Scope<'_>, kind: &str) -> Result<Table> {
    let (key, title, samples, note) = if kind == "on_cpu" {
        (
            "python_on_cpu",
            "Python functions on CPU",
            "samples",
            "self: the function was running; total: it was on the stack; % of all on-CPU samples",
        )
    } else {
        (
            "python_off_cpu",
            "Python functions off CPU (waiting)",
            "waits",
            "time threads waited in system calls made from the function (self) or under it (total)",
        )
    };
    let table = Table::new(
        key,
        title,
        vec![
            column("function", "function", Text),
            column("file", "file", Path),
            column("self_ns", "self", Duration),
            column("self_pct", "self %", Percent),
            column("total_ns", "total", Duration),
            column("total_pct", "total %", Percent),
            column("samples", samples, Count),
        ],
    )
    .with_note(note)
    .with_bar("self_ns");
    let sql = format!(
        "{} ORDER BY self_ns DESC, total_ns DESC, function LIMIT {}",
        python_functions_sql(kind),
        scope.top
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn sql(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "sql",
        "SQL statements by total time",
        vec![
            column("statement", "statement", Text),
            column("db_system", "db", Text),
            column("calls", "calls", Count),
            column("errors", "errors", Count),
            column("total_ns", "total", Duration),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
            column("rows", "rows", Count),
        ],
    )
    .with_note("one line per fingerprint (the statement with its literals replaced by ?)")
    .with_bar("total_ns");
    let sql = format!(
        "SELECT max({SQL_LABEL}) AS statement, db_system, count(*) AS calls,
                count(error_code) AS errors, sum({latency}) AS total_ns,
                percentile_cont({latency}, 0.5) AS p50_ns,
                percentile_cont({latency}, 0.99) AS p99_ns, sum(rows) AS rows
         FROM sql GROUP BY fingerprint, db_system, {SQL_BARE_COMMAND}
         ORDER BY total_ns DESC NULLS LAST, calls DESC, statement LIMIT {top}",
        latency = ns("latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn rpc(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "rpc",
        "RPC methods (oslo.messaging)",
        vec![
            column("direction", "direction", Text),
            column("kind", "kind", Text),
            column("method", "method", Text),
            column("exchange", "exchange", Text),
            column("messages", "messages", Count),
            column("failures", "failures", Count),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
        ],
    )
    .with_note("latency: a call until its reply came back")
    .with_bar("messages");
    let sql = format!(
        "SELECT direction, kind, method, max(exchange) AS exchange, count(*) AS messages,
                count(failure) AS failures,
                percentile_cont({latency}, 0.5) AS p50_ns,
                percentile_cont({latency}, 0.99) AS p99_ns
         FROM rpc WHERE kind <> 'reply' GROUP BY direction, kind, method
         ORDER BY messages DESC, method LIMIT {top}",
        latency = ns("latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn http(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "http",
        "HTTP endpoints by total time",
        vec![
            column("role", "role", Text),
            column("method", "method", Text),
            column("route", "route", Text),
            column("requests", "requests", Count),
            column("errors", "5xx", Count),
            column("total_ns", "total", Duration),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
        ],
    )
    .with_bar("total_ns");
    let sql = format!(
        "SELECT role, method, route, count(*) AS requests,
                sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
                sum({latency}) AS total_ns,
                percentile_cont({latency}, 0.5) AS p50_ns,
                percentile_cont({latency}, 0.99) AS p99_ns
         FROM http GROUP BY role, method, route
         ORDER BY total_ns DESC NULLS LAST, requests DESC, route LIMIT {top}",
        latency = ns("latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn cache(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "cache",
        "Cache commands by total time (memcached, Redis)",
        vec![
            column("system", "system", Text),
            column("command", "command", Text),
            column("key", "key", Text),
            column("commands", "commands", Count),
            column("hit_pct", "hits", Percent),
            column("errors", "errors", Count),
            column("total_ns", "total", Duration),
            column("p50_ns", "p50", Duration),
            column("p99_ns", "p99", Duration),
        ],
    )
    .with_note("hits: of the keys read, those found (reads only); keys with their ids as ?")
    .with_bar("total_ns");
    let sql = format!(
        "SELECT system, command, key, count(*) AS commands,
                100.0 * sum(hits) / nullif(sum(CASE WHEN hits IS NULL THEN 0 ELSE keys END), 0)
                    AS hit_pct,
                count(error) AS errors,
                sum({latency}) AS total_ns,
                percentile_cont({latency}, 0.5) AS p50_ns,
                percentile_cont({latency}, 0.99) AS p99_ns
         FROM cache GROUP BY system, command, key
         ORDER BY total_ns DESC NULLS LAST, commands DESC, key LIMIT {top}",
        latency = ns("latency"),
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn processes(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "processes",
        "Processes by CPU time",
        vec![
            column("pid", "pid", Text),
            column("comm", "comm", Text),
            column("cpu_ns", "cpu", Duration),
            column("cpu_pct", "cpu %", Percent),
            column("rss_max", "rss max", Bytes),
            column("pss_max", "pss max", Bytes),
            column("threads_max", "threads", Count),
            column("fds_max", "fds", Count),
            column("ctx_voluntary", "ctx vol", Count),
            column("ctx_involuntary", "ctx invol", Count),
            column("read_bytes", "disk read", Bytes),
            column("write_bytes", "disk write", Bytes),
            column("major_faults", "major faults", Count),
        ],
    )
    .with_note("cpu %: of one CPU over the run")
    .with_bar("cpu_ns");
    let sql = format!(
        "SELECT CAST(pid AS VARCHAR) AS pid, max(comm) AS comm,
                sum({user}) + sum({system}) AS cpu_ns,
                100.0 * (sum({user}) + sum({system})) / {run_ns} AS cpu_pct,
                max(rss_bytes) AS rss_max, max(pss_bytes) AS pss_max,
                max(threads) AS threads_max, max(fds) AS fds_max,
                sum(voluntary_ctxt_switches) AS ctx_voluntary,
                sum(nonvoluntary_ctxt_switches) AS ctx_involuntary,
                sum(read_bytes) AS read_bytes, sum(write_bytes) AS write_bytes,
                sum(major_faults) AS major_faults
         FROM proc_stats GROUP BY pid ORDER BY cpu_ns DESC NULLS LAST, pid LIMIT {top}",
        user = ns("cpu_user"),
        system = ns("cpu_system"),
        run_ns = scope.seconds * 1e9,
        top = scope.top,
    );
    query_table::run(scope.dataset, table, &sql).await
}

async fn system(scope: &Scope<'_>) -> Result<Table> {
    let table = Table::new(
        "system",
        "The machine",
        vec![
            column("cpus", "cpus", Count),
            column("busy_pct", "cpu busy", Percent),
            column("iowait_pct", "iowait", Percent),
            column("steal_pct", "steal", Percent),
            column("load1_max", "load1 max", Number),
            column("mem_available_min", "mem available min", Bytes),
            column("mem_total", "mem total", Bytes),
            column("context_switches", "context switches", Count),
        ],
    )
    .with_note("cpu: share of all CPUs' time over the run");
    let busy = ["user", "nice", "system", "irq", "softirq", "steal"]
        .map(|c| format!("sum({})", ns(&format!("cpu_{c}"))))
        .join(" + ");
    let sql = format!(
        "SELECT max(cpus) AS cpus,
                100.0 * ({busy}) / ({busy} + sum({idle}) + sum({iowait})) AS busy_pct,
                100.0 * sum({iowait}) / ({busy} + sum({idle}) + sum({iowait})) AS iowait_pct,
                100.0 * sum({steal}) / ({busy} + sum({idle}) + sum({iowait})) AS steal_pct,
                max(load1) AS load1_max, min(mem_available) AS mem_available_min,
                max(mem_total) AS mem_total, sum(context_switches) AS context_switches
         FROM system_stats HAVING count(*) > 0",
        idle = ns("cpu_idle"),
        iowait = ns("cpu_iowait"),
        steal = ns("cpu_steal"),
    );
    query_table::run(scope.dataset, table, &sql).await
}
