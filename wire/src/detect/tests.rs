use super::*;

fn by_bytes(sent: &[u8], received: &[u8]) -> Guess {
    guess(&Evidence {
        sent,
        received,
        ..Evidence::default()
    })
}

fn g(protocol: Protocol, side: Option<Side>) -> Guess {
    Guess {
        protocol,
        traced_side: side,
    }
}

const MYSQL_GREETING: &[u8] =
    b"\x4a\x00\x00\x00\x0a10.11.6-MariaDB\x00\x08\x00\x00\x00abcdefgh\x00\xfe\xf7";

#[test]
fn first_bytes_tell_protocol_and_side() {
    use Side::{Client, Server};
    let cases: &[(&[u8], &[u8], Guess)] = &[
        (
            b"GET /v2.1/servers HTTP/1.1\r\nHost: x\r\n\r\n",
            b"",
            g(Protocol::Http, Some(Client)),
        ),
        (
            b"",
            b"POST /v3/auth/tokens HTTP/1.1\r\n",
            g(Protocol::Http, Some(Server)),
        ),
        (b"HTTP/1.1 200 OK\r\n", b"", g(Protocol::Http, Some(Server))),
        (
            b"AMQP\x00\x00\x09\x01",
            b"",
            g(Protocol::Amqp, Some(Client)),
        ),
        // Connection.Start from the broker.
        (
            b"",
            b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0a\xce",
            g(Protocol::Amqp, Some(Client)),
        ),
        // A heartbeat mid-stream tells the protocol, not the side.
        (
            b"\x08\x00\x00\x00\x00\x00\x00\xce",
            b"",
            g(Protocol::Amqp, None),
        ),
        (b"", MYSQL_GREETING, g(Protocol::Mysql, Some(Client))),
        (MYSQL_GREETING, b"", g(Protocol::Mysql, Some(Server))),
        (
            b"\x09\x00\x00\x00\x03SELECT 1",
            b"",
            g(Protocol::Mysql, Some(Client)),
        ),
        (
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"",
            g(Protocol::Postgresql, Some(Client)),
        ),
        (
            b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00me\x00\x00",
            b"",
            g(Protocol::Postgresql, Some(Client)),
        ),
        (
            b"Q\x00\x00\x00\x0dSELECT 1\x00",
            b"",
            g(Protocol::Postgresql, Some(Client)),
        ),
        (
            b"",
            b"Z\x00\x00\x00\x05I",
            g(Protocol::Postgresql, Some(Client)),
        ),
        (b"\x16\x03\x01\x02\x00\x01", b"", g(Protocol::Unknown, None)),
    ];
    for (sent, received, expected) in cases {
        assert_eq!(
            by_bytes(sent, received),
            *expected,
            "{sent:?} / {received:?}"
        );
    }
}

#[test]
fn ports_decide_when_the_bytes_cannot() {
    let evidence = Evidence {
        local_port: Some(41000),
        remote_port: Some(5672),
        ..Evidence::default()
    };
    assert_eq!(guess(&evidence), g(Protocol::Amqp, Some(Side::Client)));
    let evidence = Evidence {
        local_port: Some(8774),
        remote_port: Some(50123),
        sent: b"\x08\x00",
        ..Evidence::default()
    };
    assert_eq!(guess(&evidence), g(Protocol::Http, Some(Side::Server)));
    // The bytes win over the port, and the port still gives the side of a heartbeat.
    let evidence = Evidence {
        local_port: Some(40000),
        remote_port: Some(5672),
        sent: b"\x08\x00\x00\x00\x00\x00\x00\xce",
        ..Evidence::default()
    };
    assert_eq!(guess(&evidence), g(Protocol::Amqp, Some(Side::Client)));
    let evidence = Evidence {
        remote_port: Some(3306),
        sent: b"GET / HTTP/1.1\r\n",
        ..Evidence::default()
    };
    assert_eq!(guess(&evidence), g(Protocol::Http, Some(Side::Client)));
}
