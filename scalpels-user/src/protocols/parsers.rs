//! The protocol parsers of the `wire` crate behind one interface, so that a connection holds
//! whichever parser its protocol needs, and what they produce, sorted by kind.

use wire::{
    amqp::AmqpParser,
    detect::Protocol,
    http::HttpParser,
    memcached::MemcachedParser,
    mysql::MysqlParser,
    postgres::PostgresParser,
    records::{AmqpMessage, CacheRecord, HttpRecord, SqlRecord},
    redis::RedisParser,
    stream::{ConnectionParser, Segment, Unparsed},
};

/// Records parsed from one connection's segments, by kind.
#[derive(Default)]
pub struct Parsed {
    pub sql: Vec<SqlRecord>,
    pub http: Vec<HttpRecord>,
    pub amqp: Vec<AmqpMessage>,
    pub cache: Vec<CacheRecord>,
}

/// The parser of one connection, whatever its protocol.
pub trait Parse {
    fn feed(&mut self, segment: &Segment<'_>, out: &mut Parsed);
    fn close(&mut self, time_ns: i64, out: &mut Parsed);
    fn unparsed(&self) -> Unparsed;
}

/// A `wire` parser whose records go to one list of [`Parsed`].
struct Sorted<P: ConnectionParser> {
    parser: P,
    list: fn(&mut Parsed) -> &mut Vec<P::Record>,
}

impl<P: ConnectionParser> Parse for Sorted<P> {
    fn feed(&mut self, segment: &Segment<'_>, out: &mut Parsed) {
        self.parser.feed(segment, (self.list)(out));
    }

    fn close(&mut self, time_ns: i64, out: &mut Parsed) {
        self.parser.close(time_ns, (self.list)(out));
    }

    fn unparsed(&self) -> Unparsed {
        self.parser.unparsed()
    }
}

/// A parser for `protocol`, if there is one.
pub fn for_protocol(protocol: Protocol) -> Option<Box<dyn Parse>> {
    match protocol {
        Protocol::Mysql => Some(Box::new(Sorted {
            parser: MysqlParser::new(),
            list: |parsed| &mut parsed.sql,
        })),
        Protocol::Postgresql => Some(Box::new(Sorted {
            parser: PostgresParser::new(),
            list: |parsed| &mut parsed.sql,
        })),
        Protocol::Http => Some(Box::new(Sorted {
            parser: HttpParser::new(),
            list: |parsed| &mut parsed.http,
        })),
        Protocol::Amqp => Some(Box::new(Sorted {
            parser: AmqpParser::new(),
            list: |parsed| &mut parsed.amqp,
        })),
        Protocol::Memcached => Some(Box::new(Sorted {
            parser: MemcachedParser::new(),
            list: |parsed| &mut parsed.cache,
        })),
        Protocol::Redis => Some(Box::new(Sorted {
            parser: RedisParser::new(),
            list: |parsed| &mut parsed.cache,
        })),
        Protocol::Unknown => None,
    }
}
