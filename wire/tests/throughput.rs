//! Parser throughput on the recorded conversations, in MB of captured payload per second.
//! Not run by default (timing is meaningless in a debug build):
//! `cargo test -p wire --release --test throughput -- --ignored --nocapture`.

mod common;
mod conversations;

use std::time::{Duration, Instant};

use conversations::{Capture, by_connection, limit, load, run};
use wire::amqp::AmqpParser;
use wire::http::HttpParser;
use wire::mysql::MysqlParser;
use wire::oslo::{MessageOrigin, RpcPairing};
use wire::postgres::PostgresParser;
use wire::stream::Side;

/// Repeats `parse` over `captures` for at least a second; returns MB/s and records per pass.
fn measure(captures: &[Capture], parse: impl Fn(&[Vec<Capture>]) -> usize) -> (f64, usize) {
    let conns: Vec<Vec<Capture>> = by_connection(captures).into_values().collect();
    let bytes: usize = captures.iter().map(|c| c.bytes.len()).sum();
    let records = parse(&conns);
    let started = Instant::now();
    let mut passes = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        std::hint::black_box(parse(std::hint::black_box(&conns)));
        passes += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    (bytes as f64 * passes as f64 / seconds / 1e6, records)
}

fn http(conns: &[Vec<Capture>]) -> usize {
    conns
        .iter()
        .map(|c| run(HttpParser::new(), c).0.len())
        .sum()
}

fn amqp(conns: &[Vec<Capture>]) -> usize {
    conns
        .iter()
        .map(|c| run(AmqpParser::new(), c).0.len())
        .sum()
}

fn rpc(conns: &[Vec<Capture>]) -> usize {
    let mut pairing = RpcPairing::new(60_000_000_000);
    let mut out = Vec::new();
    for conn in conns {
        let origin = MessageOrigin {
            pid: conn[0].process,
            conn_id: conn[0].conn,
            traced_side: Side::Client,
        };
        for message in run(AmqpParser::new(), conn).0 {
            pairing.push(origin, &message, &mut out);
        }
    }
    pairing.finish(&mut out);
    out.len()
}

/// A SQL parser run over one recorded connection, giving its record count.
type SqlParse = fn(&[common::Recorded]) -> usize;

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn parser_throughput() {
    let (http_seg, oslo_seg) = (load("http.seg"), load("oslo.seg"));
    for (name, captures, parse) in [
        (
            "http",
            http_seg.clone(),
            http as fn(&[Vec<Capture>]) -> usize,
        ),
        ("http, 4 KiB prefix", limit(&http_seg, 4096), http),
        ("amqp frames", oslo_seg.clone(), amqp),
        ("amqp + oslo pairing", oslo_seg.clone(), rpc),
    ] {
        let (mb_per_s, records) = measure(&captures, parse);
        println!("{name:>22}: {mb_per_s:8.1} MB/s ({records} records per pass)");
    }
    let sql: [(&str, &str, SqlParse); 2] = [
        ("mysql", "mysql_pymysql.seg", |r| {
            common::run(MysqlParser::new(), r).0.len()
        }),
        ("postgresql", "pg_psycopg2.seg", |r| {
            common::run(PostgresParser::new(), r).0.len()
        }),
    ];
    for (name, fixture, parse_sql) in sql {
        let recorded = common::load(fixture);
        let bytes: usize = recorded.iter().map(|r| r.bytes.len()).sum();
        let parse = || parse_sql(&recorded);
        let records = parse();
        let started = Instant::now();
        let mut passes = 0u64;
        while started.elapsed() < Duration::from_secs(1) {
            std::hint::black_box(parse());
            passes += 1;
        }
        let mb_per_s = bytes as f64 * passes as f64 / started.elapsed().as_secs_f64() / 1e6;
        println!("{name:>22}: {mb_per_s:8.1} MB/s ({records} records per pass)");
    }
}
