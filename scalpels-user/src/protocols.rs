//! The `protocols` tracer, userspace side: configures the programs in
//! `scalpels-ebpf/src/protocols.rs` (which syscalls, where their fields are, how to walk from a
//! task to a socket), follows each connection from the kernel's events into
//! `connections.parquet`, and hands each connection's payloads, in order, to a protocol parser.

pub mod cache;
mod cache_key;
mod connections;
mod ends;
mod events;
mod library;
mod library_probes;
mod parsers;
mod sqlite;
pub mod tables;
mod tls;

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd as _, BorrowedFd},
    str::FromStr as _,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, RingBuf},
};
use syscalls::Sysno;
use tracers::protocols::{
    CONFIG_GLOBAL, CONNS_MAP, ConnKey, ConnState, EVENTS_MAP, ProtocolsConfig, SCRATCH_MAP,
    SYSCALLS_MAP, SocketSyscall, SocketWalk, op, tls::payload as tls_payload,
};
use wire::{
    detect::Protocol,
    oslo::{MessageOrigin, RpcPairing, RpcRecord},
    records::HttpRecord,
    stream::{Side, Unparsed},
};

use crate::{
    btf,
    clock::{Clock, utc_now_ns},
    run::{pending::Pending, table::TableWriter},
    stack_index::InOrderStacks,
    tracefs,
    tracer::{Env, Interval, Prepared, Tracer},
};
use cache::CacheRow;
use connections::{Book, Connection, Payload};
use events::Event;
use parsers::Parsed;
use tables::{ConnectionRow, Origin, SqlRow, SqlRows};

/// How long an RPC call waits for its reply before it is written without one: longer than
/// oslo.messaging's default `rpc_response_timeout` (60 s).
const RPC_REPLY_TIMEOUT_NS: u64 = 90_000_000_000;

/// The syscalls traced, with their operation. Those this kernel lacks are skipped.
const SYSCALLS: &[(&str, u32)] = &[
    ("connect", op::CONNECT),
    ("accept", op::ACCEPT),
    ("accept4", op::ACCEPT),
    ("close", op::CLOSE),
    ("write", op::SEND),
    ("sendto", op::SEND),
    ("writev", op::SEND_IOV),
    ("sendmsg", op::SEND_MSG),
    ("read", op::RECV),
    ("recvfrom", op::RECV),
    ("readv", op::RECV_IOV),
    ("recvmsg", op::RECV_MSG),
];

/// A traced syscall: its number, tracepoint name and record layout.
struct Traced {
    nr: u32,
    name: &'static str,
    spec: SocketSyscall,
}

/// The protocols tracer's options.
#[derive(Debug, clap::Args, serde::Serialize)]
#[command(next_help_heading = "protocols tracer")]
#[group(skip)]
pub struct Options {
    /// Payload bytes copied from each socket syscall (at most 16384); what is beyond is
    /// counted, not parsed.
    #[arg(long, default_value_t = 4096, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..=tracers::protocols::MAX_PAYLOAD as i64))]
    pub payload_bytes: u32,

    /// Store SQL statements as sent, literals included, and cache keys with their ids
    /// (default: each literal and id replaced by `?`).
    #[arg(long)]
    pub sql_literals: bool,

    /// Do not put uprobes on libssl: TLS connections are then counted, not parsed. The
    /// probes fire in every process that uses the probed libssl, targets or not.
    #[arg(long)]
    pub no_tls: bool,
}

pub struct PreparedProtocols {
    config: ProtocolsConfig,
    traced: Vec<Traced>,
    cpus: u32,
    /// Where the sqlite probes find their registers; None when they cannot run here.
    sqlite: Option<tracers::protocols::sqlite::SqliteConfig>,
    /// Where the TLS probes find theirs; None when they cannot run here.
    tls: Option<tracers::protocols::tls::TlsConfig>,
}

/// The walk from the current task to an fd's socket and its addresses, and the user structs
/// of vectored I/O, from BTF.
fn socket_walk() -> Result<SocketWalk> {
    let vmlinux = btf::load_vmlinux()?;
    let offset = |st: &str, member: &str| btf::member_offset(&vmlinux, st, member);
    // The addresses are in `struct sock_common`, the first member of `struct sock`.
    let common = offset("sock", "__sk_common")?;
    let sk = |member: &str| Ok::<_, anyhow::Error>(common + offset("sock_common", member)?);
    Ok(SocketWalk {
        task_files: offset("task_struct", "files")?,
        files_fdt: offset("files_struct", "fdt")?,
        fdtable_max_fds: offset("fdtable", "max_fds")?,
        fdtable_fd: offset("fdtable", "fd")?,
        file_inode: offset("file", "f_inode")?,
        file_private_data: offset("file", "private_data")?,
        inode_mode: offset("inode", "i_mode")?,
        socket_sk: offset("socket", "sk")?,
        sk_family: sk("skc_family")?,
        sk_type: offset("sock", "sk_type")?,
        sk_daddr: sk("skc_daddr")?,
        sk_rcv_saddr: sk("skc_rcv_saddr")?,
        sk_dport: sk("skc_dport")?,
        sk_num: sk("skc_num")?,
        sk_v6_daddr: sk("skc_v6_daddr")?,
        sk_v6_rcv_saddr: sk("skc_v6_rcv_saddr")?,
        unix_addr: offset("unix_sock", "addr")?,
        unix_peer: offset("unix_sock", "peer")?,
        unix_address_len: offset("unix_address", "len")?,
        unix_address_name: offset("unix_address", "name")?,
        sockaddr_un_path: offset("sockaddr_un", "sun_path")?,
        msghdr_iov: offset("user_msghdr", "msg_iov")?,
        msghdr_iovlen: offset("user_msghdr", "msg_iovlen")?,
        iovec_base: offset("iovec", "iov_base")?,
        iovec_len: offset("iovec", "iov_len")?,
        iovec_size: btf::struct_size(&vmlinux, "iovec")?,
    })
}

/// Learns the syscall record layouts (tracefs) and the task-to-socket walk (BTF).
pub fn prepare(env: &Env) -> Result<PreparedProtocols> {
    let walk = socket_walk()?;
    let mut traced = Vec::new();
    for &(name, operation) in SYSCALLS {
        let (Ok(sysno), Ok(fields)) = (
            Sysno::from_str(name),
            tracefs::syscall_format(env.tracefs, &format!("sys_enter_{name}")),
        ) else {
            continue;
        };
        let receives = op::direction(operation) == tracers::protocols::direction::RECV;
        traced.push(Traced {
            nr: sysno.id() as u32,
            name,
            spec: SocketSyscall {
                op: operation,
                fd_arg: tracefs::arg_of_any(&fields, &["fd"]),
                buf_arg: tracefs::arg_of_any(&fields, &["buf", "buff", "ubuf", "vec", "msg"]),
                count_arg: tracefs::arg_of_any(&fields, &["count", "len", "size", "vlen"]),
                flags_arg: if receives {
                    tracefs::arg_of_any(&fields, &["flags"])
                } else {
                    0
                },
                _pad: 0,
            },
        });
    }
    if !traced.iter().any(|t| op::direction(t.spec.op) != 0) {
        bail!("this kernel has none of the socket syscalls' syscalls:sys_enter_* tracepoints");
    }
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    Ok(PreparedProtocols {
        config: ProtocolsConfig {
            payload_bytes: env.cli.options.protocols.payload_bytes,
            _pad: 0,
            walk,
        },
        traced,
        cpus: cpus as u32,
        sqlite: sqlite::prepare()
            .inspect_err(|e| eprintln!("scalpels-trace: protocols: no sqlite: {e:#}"))
            .ok(),
        tls: if env.cli.options.protocols.no_tls {
            None
        } else {
            tls::prepare()
                .inspect_err(|e| eprintln!("scalpels-trace: protocols: no tls: {e:#}"))
                .ok()
        },
    })
}

impl Prepared for PreparedProtocols {
    fn set_globals<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(CONFIG_GLOBAL, &self.config, true);
        loader.map_max_entries(SCRATCH_MAP, self.cpus);
        if let Some(config) = &self.sqlite {
            sqlite::set_globals(config, loader);
        }
        if let Some(config) = &self.tls {
            tls::set_globals(config, loader);
        }
    }

    fn attach(self: Box<Self>, ebpf: &mut Ebpf, env: &Env) -> Result<Box<dyn Tracer>> {
        let take = crate::ebpf::take_map;
        let mut specs: Array<MapData, SocketSyscall> = Array::try_from(take(ebpf, SYSCALLS_MAP)?)?;
        for t in &self.traced {
            specs
                .set(t.nr, t.spec, 0)
                .with_context(|| format!("configuring syscall {}", t.name))?;
        }
        crate::ebpf::attach_tracepoint(
            ebpf,
            "protocols_process_exit",
            [("sched", "sched_process_exit")],
        )?;
        let sqlite = self.sqlite.and_then(|_| {
            sqlite::Sqlite::attach(ebpf, env)
                .inspect_err(|e| eprintln!("scalpels-trace: protocols: no sqlite: {e:#}"))
                .ok()
        });
        let tls = self.tls.and_then(|_| {
            tls::Tls::attach(ebpf)
                .inspect_err(|e| eprintln!("scalpels-trace: protocols: no tls: {e:#}"))
                .ok()
        });
        Ok(Box::new(ProtocolsTracer {
            sqlite,
            tls,
            events: RingBuf::try_from(take(ebpf, EVENTS_MAP)?)?,
            conns: BpfHashMap::try_from(take(ebpf, CONNS_MAP)?)?,
            book: Book::new(env.clock),
            clock: env.clock,
            waiting: InOrderStacks::new(env.stacks),
            parsed: Parsed::default(),
            rpc: RpcPairing::new(RPC_REPLY_TIMEOUT_NS),
            sql_rows_of: SqlRows::new(env.cli.options.protocols.sql_literals),
            sql_rows: Pending::default(),
            http_rows: Pending::default(),
            rpc_rows: Pending::default(),
            cache_rows: Pending::default(),
            connection_rows: Pending::default(),

            connections_table: env.table("connections", tables::connections_schema()),
            sql_table: env.table("sql", tables::sql_schema()),
            http_table: env.table("http", tables::http_schema()),
            rpc_table: env.table("rpc", tables::rpc_schema()),
            cache_table: env.table("cache", cache::cache_schema()),
            processes: BTreeSet::new(),
            totals: BTreeMap::new(),
        }))
    }
}

/// Whole-run totals of one protocol, for the summary and the manifest.
#[derive(Default)]
struct Totals {
    connections: u64,
    bytes_sent: u64,
    bytes_received: u64,
    bytes_not_captured: u64,
    /// Requests or messages parsed.
    records: u64,
    unparsed: Unparsed,
}

pub struct ProtocolsTracer {
    /// SQLite calls of the targets, by uprobes rather than sockets.
    sqlite: Option<sqlite::Sqlite>,
    /// The TLS library's probes, whose plaintext comes with the socket payloads.
    tls: Option<tls::Tls>,
    events: RingBuf<MapData>,
    /// The kernel's connection table: entries of exited processes are removed from it.
    conns: BpfHashMap<MapData, ConnKey, ConnState>,
    book: Book,
    clock: Clock,
    /// Events in the kernel's order, waiting for the Python stacks of requests.
    waiting: InOrderStacks<Event>,
    /// What the last payload's parser produced.
    parsed: Parsed,
    /// oslo.messaging calls waiting for their replies, across connections.
    rpc: RpcPairing,
    /// Makes the `sql` rows (normalized unless `--sql-literals`).
    sql_rows_of: SqlRows,
    sql_rows: Pending<SqlRow>,
    http_rows: Pending<(Origin, HttpRecord)>,
    rpc_rows: Pending<RpcRecord>,
    cache_rows: Pending<CacheRow>,
    connection_rows: Pending<ConnectionRow>,

    connections_table: TableWriter,
    sql_table: TableWriter,
    http_table: TableWriter,
    rpc_table: TableWriter,
    cache_table: TableWriter,
    processes: BTreeSet<u32>,
    /// By protocol name.
    totals: BTreeMap<&'static str, Totals>,
}

impl ProtocolsTracer {
    /// Handles the events that are ready (every one when `all`), in order, and writes the
    /// rows gathered (every one when `due`).
    fn handle_ready(&mut self, all: bool, due: bool) -> Result<()> {
        let mut ended = Vec::new();
        for (event, python_stack_id) in self.waiting.ready(all) {
            match event {
                Event::Conn(conn) => {
                    self.processes.insert(conn.tgid);
                    ended.extend(self.book.announced(&conn));
                }
                Event::Data { header, payload } => {
                    self.processes.insert(header.tgid);
                    let time_ns = self.clock.to_utc_ns(header.end_ns);
                    let Some((conn, replaced)) = self.book.of_data(&header) else {
                        continue;
                    };
                    for gap in conn.lost(header.lost_sent, header.lost_received, time_ns) {
                        conn.push(gap, &mut self.parsed);
                    }
                    conn.account(&header);
                    match header.tls {
                        tls_payload::CIPHERTEXT => {
                            ended.extend(replaced);
                            continue;
                        }
                        tls_payload::PLAINTEXT => conn.tls_began(time_ns, &mut self.parsed),
                        _ => {}
                    }
                    let payload = Payload {
                        time_ns,
                        tid: header.tid,
                        way: header.direction,
                        bytes: payload,
                        len: header.len,
                        python_stack_id,
                    };
                    conn.push(payload, &mut self.parsed);
                    let origin = origin(conn);
                    ended.extend(replaced);
                    self.take_parsed(origin);
                }
                Event::Close(close) => {
                    let key = ConnKey {
                        tgid: close.tgid,
                        fd: close.fd,
                    };
                    if let Some(mut conn) = self.book.closed(&key, close.conn, close.time_ns) {
                        let time_ns = self.clock.to_utc_ns(close.time_ns);
                        for gap in conn.lost(close.lost_sent, close.lost_received, time_ns) {
                            conn.push(gap, &mut self.parsed);
                        }
                        ended.push(conn);
                    }
                }
                Event::Exit(exit) => {
                    for conn in self.book.exited(exit.tgid, exit.time_ns) {
                        let _ = self.conns.remove(&ConnKey {
                            tgid: conn.pid,
                            fd: conn.fd,
                        });
                        ended.push(conn);
                    }
                }
            }
        }
        self.end_connections(ended);
        self.write_records(due)
    }

    /// Moves the records parsed from the connection `origin` into the rows to write.
    fn take_parsed(&mut self, origin: MessageOrigin) {
        let row_origin = Origin {
            pid: origin.pid,
            conn_id: origin.conn_id,
            role: match origin.traced_side {
                Side::Client => "client",
                Side::Server => "server",
            },
        };
        for record in self.parsed.sql.drain(..) {
            let (pid, conn_id) = (origin.pid, Some(origin.conn_id));
            let row = self.sql_rows_of.row(pid, conn_id, record);
            self.sql_rows.push(row);
        }
        for record in self.parsed.http.drain(..) {
            self.http_rows.push((row_origin, record));
        }
        for message in self.parsed.amqp.drain(..) {
            self.rpc.push(origin, &message, self.rpc_rows.rows_mut());
        }
        for record in self.parsed.cache.drain(..) {
            let row = CacheRow::new(
                origin.pid,
                origin.conn_id,
                record,
                self.sql_rows_of.literals(),
            );
            self.cache_rows.push(row);
        }
    }

    /// Flushes the parsers of connections that ended and gathers their rows.
    fn end_connections(&mut self, mut ended: Vec<Connection>) {
        if ended.is_empty() {
            return;
        }
        let now = utc_now_ns();
        for conn in &mut ended {
            let unparsed = conn.finish(conn.closed.unwrap_or(now), &mut self.parsed);
            let origin = origin(conn);
            self.take_parsed(origin);
            let protocol = conn.protocol.unwrap_or(Protocol::Unknown).as_str();
            let totals = self.totals.entry(protocol).or_default();
            totals.connections += 1;
            totals.bytes_sent += conn.bytes_sent;
            totals.bytes_received += conn.bytes_received;
            totals.bytes_not_captured += conn.bytes_not_captured;
            totals.unparsed.messages += unparsed.messages;
            totals.unparsed.bytes += unparsed.bytes;
        }
        self.connection_rows
            .extend(ended.iter().map(Connection::row));
    }

    /// Writes the rows gathered: every one when `due`, otherwise whole batches only.
    fn write_records(&mut self, due: bool) -> Result<()> {
        // Every table is tried, so that after a write error (a full disk) the rows of the
        // others are still written or counted as lost by their own table.
        let mut first_error = None;
        let mut keep = |result: Result<()>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        if let Some(rows) = self.connection_rows.take(due) {
            keep(tables::connections_batch(&rows).and_then(|b| self.connections_table.write(&b)));
        }
        if let Some(rows) = self.sql_rows.take(due) {
            keep(tables::sql_batch(&rows).and_then(|b| self.sql_table.write(&b)));
            for row in &rows {
                let protocol = if row.record.db_system == wire::records::DbSystem::Mysql {
                    "mysql"
                } else {
                    "postgresql"
                };
                self.totals.entry(protocol).or_default().records += 1;
            }
        }
        if let Some(rows) = self.http_rows.take(due) {
            keep(tables::http_batch(&rows).and_then(|b| self.http_table.write(&b)));
            self.totals.entry("http").or_default().records += rows.len() as u64;
        }
        if let Some(rows) = self.rpc_rows.take(due) {
            keep(tables::rpc_batch(&rows).and_then(|b| self.rpc_table.write(&b)));
            self.totals.entry("amqp").or_default().records += rows.len() as u64;
        }
        if let Some(rows) = self.cache_rows.take(due) {
            keep(cache::cache_batch(&rows).and_then(|b| self.cache_table.write(&b)));
            for row in &rows {
                let system = cache::system(row.record.system);
                self.totals.entry(system).or_default().records += 1;
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Where the records of `conn` come from.
fn origin(conn: &Connection) -> MessageOrigin {
    MessageOrigin {
        pid: conn.pid,
        conn_id: conn.id,
        traced_side: conn.role.own_side(),
    }
}

impl Tracer for ProtocolsTracer {
    fn name(&self) -> &'static str {
        "protocols"
    }

    fn event_source(&self) -> Option<BorrowedFd<'_>> {
        Some(self.events.as_fd())
    }

    fn watch(&mut self, pids: &BTreeSet<u32>) {
        if let Some(sqlite) = &mut self.sqlite {
            sqlite.watch(pids);
        }
        if let Some(tls) = &mut self.tls {
            tls.watch(pids);
        }
    }

    fn poll_events(&mut self, due: bool) -> Result<()> {
        while let Some(record) = self.events.next() {
            if let Some(event) = Event::decode(&record) {
                let key = event.stack_key();
                self.waiting.push(event, key);
            }
        }
        if let Some(sqlite) = &mut self.sqlite {
            sqlite.poll(false, due, &mut self.sql_table, &mut self.processes)?;
        }
        self.handle_ready(false, due)
    }

    fn collect_interval(&mut self, _interval: &Interval<'_>) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(sqlite) = &mut self.sqlite {
            sqlite.poll(true, true, &mut self.sql_table, &mut self.processes)?;
        }
        self.handle_ready(true, false)?;
        let open = self.book.drain();
        self.end_connections(open);
        self.rpc.finish(self.rpc_rows.rows_mut());
        self.write_records(true)
    }

    fn events(&self) -> u64 {
        self.connections_table.rows()
            + self.sql_table.rows()
            + self.http_table.rows()
            + self.rpc_table.rows()
            + self.cache_table.rows()
    }

    fn processes(&self) -> &BTreeSet<u32> {
        &self.processes
    }

    fn tables(&mut self) -> Vec<&mut TableWriter> {
        vec![
            &mut self.connections_table,
            &mut self.sql_table,
            &mut self.http_table,
            &mut self.rpc_table,
            &mut self.cache_table,
        ]
    }

    fn unparsed(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for (protocol, t) in &self.totals {
            if t.unparsed != Unparsed::default() {
                counts.insert(format!("{protocol}_messages"), t.unparsed.messages);
                counts.insert(format!("{protocol}_bytes"), t.unparsed.bytes);
            }
        }
        counts
    }

    fn summary(&self) -> Vec<String> {
        if self.totals.is_empty() {
            return vec!["  no socket connections".to_owned()];
        }
        let mut lines = vec![format!(
            "  {:<12} {:>11} {:>9} {:>12} {:>12} {:>14} {:>16}",
            "protocol",
            "connections",
            "records",
            "KiB sent",
            "KiB received",
            "KiB not copied",
            "unparsed (bytes)"
        )];
        lines.extend(self.totals.iter().map(|(protocol, t)| {
            format!(
                "  {:<12} {:>11} {:>9} {:>12.1} {:>12.1} {:>14.1} {:>16}",
                protocol,
                t.connections,
                t.records,
                t.bytes_sent as f64 / 1024.0,
                t.bytes_received as f64 / 1024.0,
                t.bytes_not_captured as f64 / 1024.0,
                format!("{} ({})", t.unparsed.messages, t.unparsed.bytes),
            )
        }));
        lines.extend(self.sqlite.as_ref().map(sqlite::Sqlite::summary));
        lines.extend(self.tls.as_ref().map(tls::Tls::summary));
        lines
    }

    fn into_tables(self: Box<Self>) -> Vec<TableWriter> {
        vec![
            self.connections_table,
            self.sql_table,
            self.http_table,
            self.rpc_table,
            self.cache_table,
        ]
    }
}
