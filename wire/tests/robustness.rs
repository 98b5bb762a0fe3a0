//! A fixed-count fuzz run inside `cargo test`: the recorded conversations damaged at random
//! (bits flipped, bytes dropped or added, tails not captured) and cut anew, fed to the
//! parsers and their statements to the normalizer. Nothing may panic, loop or grow without
//! bound. The seeds are fixed, so a failure reproduces; `cargo fuzz` (fuzz/) goes further.

mod common;

use std::time::{Duration, Instant};

use common::{Recorded, Rng, load, mutate, run};
use wire::memcached::MemcachedParser;
use wire::mysql::MysqlParser;
use wire::postgres::PostgresParser;
use wire::records::{CacheRecord, SqlRecord};
use wire::redis::RedisParser;
use wire::sql_text::{fingerprint, normalize};
use wire::stream::{ConnectionParser, Side};

const ROUNDS: usize = 400;

/// Every record stands for at least one client message of at least `shortest` bytes, and
/// passes `inspect`.
fn check<P: ConnectionParser>(
    new: impl Fn() -> P,
    fixtures: &[&str],
    shortest: u64,
    inspect: impl Fn(&P::Record),
) {
    let started = Instant::now();
    for name in fixtures {
        let segments = load(name);
        let mut rng = Rng::new(0xdead_beef ^ name.len() as u64);
        for _ in 0..ROUNDS {
            let damaged = mutate(&segments, &mut rng);
            let (records, parser) = run(new(), &damaged);
            let client_bytes: u64 = damaged
                .iter()
                .filter(|s| s.from == Side::Client)
                .map(|s| s.len)
                .sum();
            assert!(records.len() as u64 <= client_bytes / shortest + 1);
            let total: u64 = damaged.iter().map(|s| s.len).sum();
            assert!(parser.unparsed().bytes <= total);
            records.iter().for_each(&inspect);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

fn statement(record: &SqlRecord) {
    fingerprint(&normalize(&record.statement));
}

/// What a cache record keeps is bounded (invalid UTF-8 becomes one character per byte).
fn bounded(record: &CacheRecord) {
    assert!(record.key.as_ref().is_none_or(|k| k.chars().count() <= 250));
    assert!(
        record
            .error
            .as_ref()
            .is_none_or(|e| e.chars().count() <= 512)
    );
    assert!(record.command.chars().count() <= 64);
    assert!(record.key.is_some() || record.keys == 0);
}

#[test]
fn mysql_survives_damaged_streams() {
    check(
        MysqlParser::new,
        &[
            "mysql_pymysql.seg",
            "mysql_cli.seg",
            "mysql_prepared.seg",
            "mysql_deprecate_eof.seg",
        ],
        5,
        statement,
    );
}

#[test]
fn postgres_survives_damaged_streams() {
    check(
        PostgresParser::new,
        &["pg_psycopg2.seg", "pg_psycopg3_extended.seg"],
        5,
        statement,
    );
}

// The shortest requests are a command word and "\n".
#[test]
fn memcached_survives_damaged_streams() {
    check(
        MemcachedParser::new,
        &["memcached_text.seg", "memcached_meta.seg"],
        2,
        bounded,
    );
}

#[test]
fn redis_survives_damaged_streams() {
    check(
        RedisParser::new,
        &["redis_resp2.seg", "redis_resp3.seg"],
        2,
        bounded,
    );
}

#[test]
fn parsers_survive_noise() {
    let mut rng = Rng::new(42);
    for _ in 0..500 {
        let segments: Vec<Recorded> = (0..1 + rng.below(12))
            .map(|i| {
                let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                let len = bytes.len() as u64 + rng.below(3) * rng.below(1 << 20);
                Recorded {
                    from: if rng.below(2) == 0 {
                        Side::Client
                    } else {
                        Side::Server
                    },
                    time_ns: i as i64,
                    bytes,
                    len,
                }
            })
            .collect();
        run(MysqlParser::new(), &segments);
        run(PostgresParser::new(), &segments);
        run(MemcachedParser::new(), &segments)
            .0
            .iter()
            .for_each(bounded);
        run(RedisParser::new(), &segments)
            .0
            .iter()
            .for_each(bounded);
        let text: Vec<u8> = segments.iter().flat_map(|s| s.bytes.clone()).collect();
        normalize(&String::from_utf8_lossy(&text));
    }
}
