//! Protocol detection on the first bytes of every recorded connection, from either end and
//! with the ports hidden: the bytes alone must tell.

mod common;
mod conversations;

use wire::detect::{Evidence, Guess, Protocol, guess};
use wire::stream::Side;

fn first(from: Side, segments: impl IntoIterator<Item = (Side, Vec<u8>)>) -> Vec<u8> {
    segments
        .into_iter()
        .find(|(side, _)| *side == from)
        .map(|(_, bytes)| bytes)
        .unwrap_or_default()
}

/// The guess as the client's tracer and as the server's tracer would make it.
fn both_ends(segments: Vec<(Side, Vec<u8>)>) -> (Guess, Guess) {
    let client = first(Side::Client, segments.clone());
    let server = first(Side::Server, segments);
    let as_client = guess(&Evidence {
        sent: &client,
        received: &server,
        ..Evidence::default()
    });
    let as_server = guess(&Evidence {
        sent: &server,
        received: &client,
        ..Evidence::default()
    });
    (as_client, as_server)
}

fn expect(protocol: Protocol) -> (Guess, Guess) {
    (
        Guess {
            protocol,
            traced_side: Some(Side::Client),
        },
        Guess {
            protocol,
            traced_side: Some(Side::Server),
        },
    )
}

#[test]
fn http_and_amqp_connections() {
    for (fixture, protocol) in [("http.seg", Protocol::Http), ("oslo.seg", Protocol::Amqp)] {
        for (conn, captures) in conversations::by_connection(&conversations::load(fixture)) {
            let segments = captures.into_iter().map(|c| (c.from, c.bytes)).collect();
            assert_eq!(
                both_ends(segments),
                expect(protocol),
                "{fixture} connection {conn}"
            );
        }
    }
}

#[test]
fn sql_connections() {
    for (fixture, protocol) in [
        ("mysql_pymysql.seg", Protocol::Mysql),
        ("mysql_cli.seg", Protocol::Mysql),
        ("pg_psycopg2.seg", Protocol::Postgresql),
        ("pg_psycopg3_extended.seg", Protocol::Postgresql),
    ] {
        let segments = common::load(fixture)
            .into_iter()
            .map(|r| (r.from, r.bytes))
            .collect();
        assert_eq!(both_ends(segments), expect(protocol), "{fixture}");
    }
}

#[test]
fn cache_connections() {
    for (fixture, protocol) in [
        ("memcached_text.seg", Protocol::Memcached),
        ("memcached_meta.seg", Protocol::Memcached),
        ("redis_resp2.seg", Protocol::Redis),
        ("redis_resp3.seg", Protocol::Redis),
    ] {
        let segments = common::load(fixture)
            .into_iter()
            .map(|r| (r.from, r.bytes))
            .collect();
        assert_eq!(both_ends(segments), expect(protocol), "{fixture}");
    }
}

#[test]
fn connections_met_mid_stream() {
    // The trace began after the handshakes: the third message each way is the first seen.
    for (fixture, protocol) in [
        ("mysql_pymysql.seg", Protocol::Mysql),
        ("pg_psycopg2.seg", Protocol::Postgresql),
        ("memcached_text.seg", Protocol::Memcached),
        ("memcached_meta.seg", Protocol::Memcached),
        ("redis_resp2.seg", Protocol::Redis),
        ("redis_resp3.seg", Protocol::Redis),
    ] {
        let recorded = common::load(fixture);
        let later: Vec<_> = recorded
            .into_iter()
            .skip(6)
            .map(|r| (r.from, r.bytes))
            .collect();
        let (as_client, _) = both_ends(later);
        assert_eq!(as_client.protocol, protocol, "{fixture}");
    }
    for (conn, captures) in conversations::by_connection(&conversations::load("oslo.seg")) {
        let later: Vec<_> = captures
            .into_iter()
            .skip(8)
            .map(|c| (c.from, c.bytes))
            .collect();
        assert_eq!(
            both_ends(later).0.protocol,
            Protocol::Amqp,
            "oslo connection {conn}"
        );
    }
}
