//! The MySQL parser on conversations recorded from MariaDB 10.11 (fixtures/make_fixtures.py).

mod common;

use common::{
    Rng, Summary, TID, capture_prefix, client_segment_with, expect, load, rechop, run, summary,
};
use wire::mysql::MysqlParser;
use wire::records::{DbSystem, SqlRecord};
use wire::stream::{ConnectionParser, Unparsed};

fn parse(name: &str) -> Vec<SqlRecord> {
    let (records, parser) = run(MysqlParser::new(), &load(name));
    assert_eq!(parser.unparsed(), Unparsed::default(), "{name}");
    records
}

fn summaries(records: &[SqlRecord]) -> Vec<Summary> {
    records.iter().map(summary).collect()
}

fn pymysql_expected() -> Vec<Summary> {
    let zs = format!("SELECT LENGTH('{}", "z".repeat(45));
    expect(&[
        ("query", "SET NAMES utf8mb4", Some(0), None),
        ("query", "DROP TABLE IF EXISTS items", Some(0), None),
        (
            "query",
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), pr",
            Some(0),
            None,
        ),
        (
            "query",
            "INSERT INTO items VALUES (1, 'apple', 1.50), (2, 'pear', 2.2",
            Some(3),
            None,
        ),
        (
            "query",
            "SELECT id, name FROM items WHERE price > 0.5e0 ORDER BY id",
            Some(3),
            None,
        ),
        (
            "query",
            "UPDATE items SET price = price * 2 WHERE id IN (1, 2)",
            Some(2),
            None,
        ),
        ("query", "SELECT * FROM missing_table", None, Some("1146")),
        (
            "query",
            "SELECT seq, REPEAT('x', 100) FROM seq_1_to_500",
            Some(500),
            None,
        ),
        // Two result sets: 1 row + 2 rows.
        (
            "query",
            "SELECT 1; SELECT 2, 3 UNION SELECT 4, 5",
            Some(3),
            None,
        ),
        ("query", "SELECT * FROM items WHERE id = 99", Some(0), None),
        ("query", "SELECT REPEAT('x', 80000)", Some(1), None),
        ("query", &zs, Some(1), None),
        ("ping", "", None, None),
        ("init_db", "mysql", None, Some("1044")),
        ("init_db", "fix", None, None),
        ("quit", "", None, None),
    ])
}

#[test]
fn pymysql_commands_rows_errors_and_latency() {
    let records = parse("mysql_pymysql.seg");
    assert_eq!(summaries(&records), pymysql_expected());
    let missing = &records[6];
    assert_eq!(
        missing.error.as_deref(),
        Some("Table 'fix.missing_table' doesn't exist")
    );
    for record in &records {
        assert_eq!(record.db_system, DbSystem::Mysql);
        assert_eq!((record.tid, record.python_stack_id), (TID, Some(7)));
        assert!(record.complete, "{record:?}");
        // COM_QUIT has no response; everything else was answered.
        assert_eq!(
            record.latency_ns.is_some(),
            record.operation != "quit",
            "{record:?}"
        );
        assert!(record.latency_ns != Some(0), "{record:?}");
    }
    // Times are the request's: increasing, one per command.
    assert!(records.windows(2).all(|w| w[0].time_ns < w[1].time_ns));
}

#[test]
fn handshake_leaves_nothing_in_records() {
    for name in [
        "mysql_pymysql.seg",
        "mysql_cli.seg",
        "mysql_prepared.seg",
        "mysql_deprecate_eof.seg",
    ] {
        for record in parse(name) {
            let text = format!("{} {:?}", record.statement, record.error);
            assert!(
                !text.contains("mypass") && !text.contains("native_password"),
                "{name}: {text}"
            );
        }
    }
}

#[test]
fn classic_eof_client() {
    assert_eq!(
        summaries(&parse("mysql_cli.seg")),
        expect(&[
            (
                "query",
                "SELECT id, name FROM items ORDER BY id",
                Some(3),
                None
            ),
            ("query", "SELECT * FROM items WHERE id = 99", Some(0), None),
            ("query", "DELETE FROM items WHERE id = 3", Some(1), None),
            ("query", "SELECT nope FROM items", None, Some("1054")),
            ("quit", "", None, None),
        ])
    );
}

#[test]
fn prepared_statements_carry_their_text() {
    let stmt = "SELECT id, name FROM items WHERE id >= ? ORDER BY id";
    let insert = "INSERT INTO items VALUES (?, ?, ?)";
    assert_eq!(
        summaries(&parse("mysql_prepared.seg")),
        expect(&[
            (
                "query",
                "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'",
                Some(0),
                None
            ),
            ("query", "SET @@session.autocommit = OFF", Some(0), None),
            ("ping", "", None, None),
            ("prepare", stmt, None, None),
            ("reset_statement", stmt, None, None),
            ("execute", stmt, Some(2), None),
            ("reset_statement", stmt, None, None),
            ("execute", stmt, Some(1), None),
            ("close", stmt, None, None),
            ("prepare", insert, None, None),
            ("reset_statement", insert, None, None),
            ("execute", insert, Some(1), None),
            ("reset_statement", insert, None, None),
            ("execute", insert, None, Some("1062")),
            ("close", insert, None, None),
            ("quit", "", None, None),
        ])
    );
}

fn deprecate_eof_expected() -> Vec<Summary> {
    let select = "SELECT id, name, price FROM items WHERE id > ?";
    let by_id = "SELECT id FROM items WHERE id = ?";
    expect(&[
        (
            "query",
            "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'",
            Some(0),
            None,
        ),
        ("query", "set autocommit=1", Some(0), None),
        ("ping", "", None, None),
        (
            "query",
            "SELECT id, name FROM items ORDER BY id",
            Some(2),
            None,
        ),
        ("query", "SELECT * FROM items WHERE id = 99", Some(0), None),
        (
            "query",
            "UPDATE items SET name = 'fig' WHERE id = 7",
            Some(0),
            None,
        ),
        ("query", "SELECT nope FROM items", None, Some("1054")),
        ("ping", "", None, None),
        ("prepare", select, None, None),
        ("reset_statement", select, None, None),
        ("execute", select, Some(2), None),
        ("close", select, None, None),
        ("prepare", by_id, None, None),
        ("reset_statement", by_id, None, None),
        ("execute", by_id, Some(0), None),
        ("reset_statement", by_id, None, None),
        ("close", by_id, None, None),
        ("quit", "", None, None),
    ])
}

#[test]
fn deprecate_eof_results_end_with_ok() {
    assert_eq!(
        summaries(&parse("mysql_deprecate_eof.seg")),
        deprecate_eof_expected()
    );
}

#[test]
fn connection_older_than_the_trace() {
    // Start at the first SELECT: no greeting, no handshake, CLIENT_DEPRECATE_EOF unknown.
    let segments = load("mysql_deprecate_eof.seg");
    let from = client_segment_with(&segments, b"SELECT id, name FROM items ORDER BY id");
    let (records, _) = run(MysqlParser::new(), &segments[from..]);
    assert_eq!(summaries(&records), deprecate_eof_expected()[3..].to_vec());
}

#[test]
fn same_records_however_the_stream_is_cut() {
    for name in [
        "mysql_pymysql.seg",
        "mysql_cli.seg",
        "mysql_prepared.seg",
        "mysql_deprecate_eof.seg",
    ] {
        let segments = load(name);
        let whole = summaries(&run(MysqlParser::new(), &segments).0);
        let mut rng = Rng::new(0x5eed);
        for round in 0..40 {
            let (records, parser) = run(MysqlParser::new(), &rechop(&segments, &mut rng));
            assert_eq!(summaries(&records), whole, "{name} round {round}");
            assert_eq!(parser.unparsed(), Unparsed::default());
            assert!(records.iter().all(|r| r.complete));
        }
    }
}

#[test]
fn uncaptured_tail_of_a_large_row_is_skipped_by_length() {
    let mut segments = load("mysql_pymysql.seg");
    let request = client_segment_with(&segments, b"REPEAT('x', 80000)");
    // The row arrives in several segments; the kernel copied only the start of all but the last.
    let response: Vec<usize> = (request + 1..segments.len())
        .take_while(|&i| segments[i].from == wire::stream::Side::Server)
        .collect();
    assert!(response.len() >= 2, "the row spans segments");
    for &i in &response[..response.len() - 1] {
        capture_prefix(&mut segments, i, 64);
    }
    let (records, parser) = run(MysqlParser::new(), &segments);
    assert_eq!(summaries(&records), pymysql_expected());
    assert!(records.iter().all(|r| r.complete));
    assert_eq!(parser.unparsed(), Unparsed::default());
}

#[test]
fn truncated_statement_is_kept_as_far_as_captured() {
    let mut segments = load("mysql_pymysql.seg");
    let request = client_segment_with(&segments, b"SELECT LENGTH('zzz");
    capture_prefix(&mut segments, request, 4096);
    let (records, _) = run(MysqlParser::new(), &segments);
    assert_eq!(summaries(&records), pymysql_expected());
    let cut = &records[11];
    assert!(!cut.complete);
    assert_eq!(
        cut.statement.len(),
        4096 - 5,
        "4-byte header and the command byte"
    );
    assert!(records.iter().filter(|r| !r.complete).count() == 1);
}

#[test]
fn lost_framing_gives_an_incomplete_record_and_resyncs() {
    let mut segments = load("mysql_pymysql.seg");
    let request = client_segment_with(&segments, b"FROM seq_1_to_500");
    // The first segment of the 500 rows loses the headers of the packets after its prefix.
    capture_prefix(&mut segments, request + 1, 200);
    let (records, parser) = run(MysqlParser::new(), &segments);
    let mut expected = pymysql_expected();
    expected[7].2 = None;
    assert_eq!(summaries(&records), expected);
    let lost = &records[7];
    assert!(!lost.complete);
    assert!(lost.latency_ns.is_some_and(|l| l > 0));
    assert!(records.iter().filter(|r| !r.complete).count() == 1);
    assert_eq!(parser.unparsed().messages, 1);
}
