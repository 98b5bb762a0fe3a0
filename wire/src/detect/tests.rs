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

#[test]
fn cache_protocols_from_their_first_bytes() {
    use Side::{Client, Server};
    let memcached = |side| g(Protocol::Memcached, side);
    let redis = |side| g(Protocol::Redis, side);
    let cases: &[(&[u8], &[u8], Guess)] = &[
        (b"get foo bar\r\n", b"", memcached(Some(Client))),
        (b"set k 0 0 5\r\nhello\r\n", b"", memcached(Some(Client))),
        (b"mg foo v t\r\n", b"", memcached(Some(Client))),
        (b"version\r\n", b"", memcached(Some(Client))),
        // Captured up to the key: still a request.
        (b"gets user:12", b"", memcached(Some(Client))),
        (
            b"",
            b"VALUE k 0 5\r\nhello\r\nEND\r\n",
            memcached(Some(Client)),
        ),
        (b"STORED\r\n", b"", memcached(Some(Server))),
        (b"END\r\n", b"", memcached(Some(Server))),
        (b"HD c12\r\n", b"", memcached(Some(Server))),
        (b"VA 5 f1\r\nhello\r\n", b"", memcached(Some(Server))),
        (b"EN\r\n", b"", memcached(Some(Server))),
        (b"get k\r\n", b"END\r\n", memcached(Some(Client))),
        (
            b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n",
            b"",
            redis(Some(Client)),
        ),
        (b"", b"*1\r\n$4\r\nping\r\n", redis(Some(Server))),
        (b"+OK\r\n", b"", redis(Some(Server))),
        (b"-ERR unknown command 'x'\r\n", b"", redis(Some(Server))),
        (b":1\r\n", b"", redis(Some(Server))),
        (b"$3\r\nbar\r\n", b"", redis(Some(Server))),
        (b"$-1\r\n", b"", redis(Some(Server))),
        (b"%7\r\n$6\r\nserver\r\n", b"", redis(Some(Server))),
        (b"_\r\n", b"", redis(Some(Server))),
        (b"#t\r\n", b"", redis(Some(Server))),
        // An array of values may be a request or a reply (MGET's).
        (b"*2\r\n$1\r\na\r\n$-1\r\n", b"", redis(None)),
        (b"*2\r\n:1\r\n:2\r\n", b"", redis(Some(Server))),
    ];
    for (sent, received, expected) in cases {
        assert_eq!(
            by_bytes(sent, received),
            *expected,
            "{:?} / {:?}",
            String::from_utf8_lossy(sent),
            String::from_utf8_lossy(received)
        );
    }
}

#[test]
fn other_text_is_not_taken_for_a_cache_protocol() {
    let unknown = g(Protocol::Unknown, None);
    let http = g(Protocol::Http, Some(Side::Client));
    let cases: &[(&[u8], Guess)] = &[
        // HTTP's methods are upper case, memcached's commands lower case.
        (b"GET /v2.1/servers HTTP/1.1\r\n", http),
        (b"GET /index.ht", http),
        (b"DELETE /items/1 HTTP/1.1\r\n", http),
        (b"Get foo\r\n", unknown),
        (b"get\r\n", unknown),
        (b"get", unknown),
        (b"getx foo\r\n", unknown),
        (b"hello world\r\n", unknown),
        (b"VALUE", unknown),
        (b"END of story", unknown),
        (b"+\x00\x01\x02", unknown),
        (b"-not an error\r\n", unknown),
        (b"*x\r\n", unknown),
        (b"$abc\r\n", unknown),
        (b":\r\n", unknown),
        (b"SSH-2.0-OpenSSH_9.2\r\n", unknown),
        (b"220 mail.example.com ESMTP\r\n", unknown),
    ];
    for (sent, expected) in cases {
        assert_eq!(
            by_bytes(sent, b""),
            *expected,
            "{:?}",
            String::from_utf8_lossy(sent)
        );
    }
}

#[test]
fn cache_ports() {
    for (port, protocol) in [
        (11211, Protocol::Memcached),
        (6379, Protocol::Redis),
        (26379, Protocol::Redis),
    ] {
        let as_client = Evidence {
            local_port: Some(40000),
            remote_port: Some(port),
            ..Evidence::default()
        };
        assert_eq!(guess(&as_client), g(protocol, Some(Side::Client)));
        let as_server = Evidence {
            local_port: Some(port),
            remote_port: Some(40000),
            ..Evidence::default()
        };
        assert_eq!(guess(&as_server), g(protocol, Some(Side::Server)));
    }
    assert_eq!(Protocol::Memcached.as_str(), "memcached");
    assert_eq!(Protocol::Redis.as_str(), "redis");
}
