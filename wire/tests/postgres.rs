//! The PostgreSQL parser on conversations recorded from PostgreSQL 15
//! (fixtures/make_fixtures.py).

mod common;

use common::{
    Rng, Summary, TID, capture_prefix, client_segment_with, expect, load, rechop, run, summary,
};
use wire::postgres::PostgresParser;
use wire::records::{DbSystem, SqlRecord};
use wire::stream::{ConnectionParser, Side, Unparsed};

fn parse(name: &str) -> Vec<SqlRecord> {
    let (records, parser) = run(PostgresParser::new(), &load(name));
    assert_eq!(parser.unparsed(), Unparsed::default(), "{name}");
    records
}

fn summaries(records: &[SqlRecord]) -> Vec<Summary> {
    records.iter().map(summary).collect()
}

fn psycopg2_expected() -> Vec<Summary> {
    let zs = format!("SELECT length('{}", "z".repeat(45));
    expect(&[
        ("query", "DROP TABLE IF EXISTS items", None, None),
        (
            "query",
            "CREATE TABLE items (id int PRIMARY KEY, name text, price nume",
            None,
            None,
        ),
        (
            "query",
            "INSERT INTO items VALUES (1, 'apple', 1.5)",
            Some(1),
            None,
        ),
        (
            "query",
            "INSERT INTO items VALUES (2, 'pear', 2.25), (3, 'plum', 0.75)",
            Some(2),
            None,
        ),
        (
            "query",
            "SELECT id, name FROM items WHERE price > 0.5 ORDER BY id",
            Some(3),
            None,
        ),
        (
            "query",
            "UPDATE items SET price = price * 2 WHERE id IN (1, 2)",
            Some(2),
            None,
        ),
        ("query", "SELECT * FROM missing_table", None, Some("42P01")),
        (
            "query",
            "SELECT g, repeat('x', 100) FROM generate_series(1, 500) g",
            Some(500),
            None,
        ),
        // Three statements in one Query: 1 + 1 + 1 rows.
        (
            "query",
            "SELECT 1; UPDATE items SET name = name WHERE id = 3; SELECT 2",
            Some(3),
            None,
        ),
        ("query", "SELECT repeat('x', 80000)", Some(1), None),
        ("query", &zs, Some(1), None),
    ])
}

#[test]
fn simple_queries_rows_errors_and_latency() {
    let records = parse("pg_psycopg2.seg");
    assert_eq!(summaries(&records), psycopg2_expected());
    assert_eq!(
        records[6].error.as_deref(),
        Some("relation \"missing_table\" does not exist")
    );
    for record in &records {
        assert_eq!(record.db_system, DbSystem::Postgresql);
        assert_eq!((record.tid, record.python_stack_id), (TID, Some(7)));
        assert!(
            record.complete && record.latency_ns.is_some_and(|l| l > 0),
            "{record:?}"
        );
    }
    assert!(records.windows(2).all(|w| w[0].time_ns < w[1].time_ns));
}

#[test]
fn startup_and_password_leave_nothing_in_records() {
    for name in ["pg_psycopg2.seg", "pg_psycopg3_extended.seg"] {
        for record in parse(name) {
            let text = format!("{} {:?}", record.statement, record.error);
            assert!(
                !text.contains("pgpass") && !text.contains("md5"),
                "{name}: {text}"
            );
        }
    }
}

fn extended_expected() -> Vec<Summary> {
    let select = "SELECT id, name FROM items WHERE id >= $1 ORDER BY id";
    let insert = "INSERT INTO items VALUES ($1, $2, $3)";
    expect(&[
        // Parse+Bind+Execute in one batch: one record.
        ("execute", select, Some(3), None),
        // prepare=True: Parse+Describe+Sync first, then Bind+Execute of the named statement.
        ("prepare", select, None, None),
        ("execute", select, Some(2), None),
        ("execute", select, Some(1), None),
        (
            "execute",
            "UPDATE items SET price = $1 WHERE id = $2",
            Some(1),
            None,
        ),
        ("execute", insert, None, Some("23505")),
        // The error comes at Parse; it belongs to the command that was to run it.
        ("execute", "SELEC $1", None, Some("42601")),
        // executemany: one Parse, three Bind/Execute in one pipeline.
        ("execute", insert, Some(1), None),
        ("execute", insert, Some(1), None),
        ("execute", insert, Some(1), None),
    ])
}

#[test]
fn extended_protocol_statements_and_errors() {
    let records = parse("pg_psycopg3_extended.seg");
    assert_eq!(summaries(&records), extended_expected());
    for record in &records {
        assert!(
            record.complete && record.latency_ns.is_some_and(|l| l > 0),
            "{record:?}"
        );
    }
    assert_eq!(
        records[5].error.as_deref(),
        Some("duplicate key value violates unique constraint \"items_pkey\"")
    );
}

#[test]
fn connection_older_than_the_trace() {
    let segments = load("pg_psycopg3_extended.seg");
    let from = client_segment_with(&segments, b"UPDATE items SET price");
    let (records, _) = run(PostgresParser::new(), &segments[from..]);
    assert_eq!(summaries(&records), extended_expected()[4..].to_vec());
}

#[test]
fn same_records_however_the_stream_is_cut() {
    for name in ["pg_psycopg2.seg", "pg_psycopg3_extended.seg"] {
        let segments = load(name);
        let whole = summaries(&run(PostgresParser::new(), &segments).0);
        let mut rng = Rng::new(0xfeed);
        for round in 0..40 {
            let (records, parser) = run(PostgresParser::new(), &rechop(&segments, &mut rng));
            assert_eq!(summaries(&records), whole, "{name} round {round}");
            assert_eq!(parser.unparsed(), Unparsed::default());
            assert!(records.iter().all(|r| r.complete));
        }
    }
}

#[test]
fn uncaptured_tail_of_a_large_row_is_skipped_by_length() {
    let mut segments = load("pg_psycopg2.seg");
    let request = client_segment_with(&segments, b"repeat('x', 80000)");
    let response: Vec<usize> = (request + 1..segments.len())
        .take_while(|&i| segments[i].from == Side::Server)
        .collect();
    assert!(response.len() >= 2, "the row spans segments");
    for &i in &response[..response.len() - 1] {
        capture_prefix(&mut segments, i, 64);
    }
    let (records, parser) = run(PostgresParser::new(), &segments);
    assert_eq!(summaries(&records), psycopg2_expected());
    assert!(records.iter().all(|r| r.complete));
    assert_eq!(parser.unparsed(), Unparsed::default());
}

#[test]
fn truncated_statement_is_kept_as_far_as_captured() {
    let mut segments = load("pg_psycopg2.seg");
    let request = client_segment_with(&segments, b"SELECT length('zzz");
    capture_prefix(&mut segments, request, 4096);
    let (records, _) = run(PostgresParser::new(), &segments);
    assert_eq!(summaries(&records), psycopg2_expected());
    let cut = &records[10];
    assert!(!cut.complete);
    assert_eq!(cut.statement.len(), 4096 - 5, "type byte and length");
    assert_eq!(records.iter().filter(|r| !r.complete).count(), 1);
}

#[test]
fn lost_framing_gives_an_incomplete_record_and_resyncs() {
    let mut segments = load("pg_psycopg2.seg");
    let request = client_segment_with(&segments, b"generate_series(1, 500)");
    capture_prefix(&mut segments, request + 1, 200);
    let (records, parser) = run(PostgresParser::new(), &segments);
    let mut expected = psycopg2_expected();
    expected[7].2 = None;
    assert_eq!(summaries(&records), expected);
    assert!(!records[7].complete && records[7].latency_ns.is_some_and(|l| l > 0));
    assert_eq!(records.iter().filter(|r| !r.complete).count(), 1);
    assert_eq!(parser.unparsed().messages, 1);
}
