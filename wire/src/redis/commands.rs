//! What a Redis command's arguments are, from its name: which name keys, which carry the
//! values it writes, and what its reply tells (hits, value bytes). Commands not listed take
//! a key first, as most do.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    None,
    /// The first argument.
    First,
    /// Every argument (MGET, DEL, EXISTS, ...).
    All,
    /// Every other argument from the first: key value key value (MSET).
    Pairs,
    /// Every argument but the last, a timeout (BLPOP, ...).
    AllButLast,
    /// As many as the second argument says, after it (EVAL script numkeys key ...).
    Counted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Values {
    None,
    At(u64),
    From(u64),
    /// Every other argument from this one (MSET's and HSET's values).
    EveryOtherFrom(u64),
}

/// What the reply of a read tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// Not a read.
    No,
    /// A value or null: one key, found or not (GET, HGET, ...).
    One,
    /// An array of values or nulls, one per key (MGET, HMGET).
    Many,
    /// The number of keys found (EXISTS).
    Exists,
    /// Values, counted in bytes only (HGETALL, LRANGE, ...).
    Values,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Key,
    /// EVAL's number of keys.
    KeyCount,
    Value,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Spec {
    keys: Keys,
    values: Values,
    pub read: Read,
    /// After it the server sends pushes, not replies (SUBSCRIBE, MONITOR, replication).
    pub modal: bool,
}

pub(super) fn spec(command: &str) -> Spec {
    let keys = match command {
        "ping" | "echo" | "select" | "auth" | "hello" | "info" | "client" | "config"
        | "flushdb" | "flushall" | "dbsize" | "multi" | "exec" | "discard" | "script"
        | "publish" | "spublish" | "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe"
        | "punsubscribe" | "sunsubscribe" | "pubsub" | "monitor" | "scan" | "keys" | "quit"
        | "reset" | "command" | "time" | "lastsave" | "save" | "bgsave" | "bgrewriteaof"
        | "slowlog" | "wait" | "role" | "readonly" | "readwrite" | "cluster" | "debug" | "acl"
        | "module" | "function" | "swapdb" | "shutdown" | "replicaof" | "slaveof" | "sync"
        | "psync" | "failover" | "lolwut" | "randomkey" | "latency" | "memory" | "object"
        | "xread" | "xreadgroup" | "sentinel" => Keys::None,
        "mget" | "del" | "unlink" | "exists" | "touch" | "watch" | "sinter" | "sunion"
        | "sdiff" | "pfcount" | "pfmerge" | "rename" | "renamenx" => Keys::All,
        "mset" | "msetnx" => Keys::Pairs,
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "brpoplpush" => Keys::AllButLast,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => Keys::Counted,
        _ => Keys::First,
    };
    let values = match command {
        "set" | "setnx" | "getset" | "append" => Values::At(2),
        "setex" | "psetex" | "setrange" | "lset" | "hsetnx" => Values::At(3),
        "mset" | "msetnx" => Values::EveryOtherFrom(2),
        "hset" | "hmset" => Values::EveryOtherFrom(3),
        "lpush" | "rpush" | "lpushx" | "rpushx" | "sadd" => Values::From(2),
        _ => Values::None,
    };
    let read = match command {
        "get" | "getex" | "getdel" | "hget" => Read::One,
        "mget" | "hmget" => Read::Many,
        "exists" => Read::Exists,
        "getset" | "getrange" | "substr" | "hgetall" | "hvals" | "lrange" | "lindex" | "lpop"
        | "rpop" | "smembers" | "srandmember" | "spop" | "zrange" | "zrangebyscore"
        | "zrevrange" | "zrevrangebyscore" | "hrandfield" | "dump" | "xrange" | "xrevrange" => {
            Read::Values
        }
        _ => Read::No,
    };
    let modal = matches!(
        command,
        "subscribe" | "psubscribe" | "ssubscribe" | "monitor" | "sync" | "psync"
    );
    Spec {
        keys,
        values,
        read,
        modal,
    }
}

impl Spec {
    /// What argument `i` (the command is 0) of `argc` is; `key_count` is EVAL's, once read.
    pub fn role(&self, i: u64, argc: u64, key_count: u64) -> Role {
        let key = match self.keys {
            Keys::None => false,
            Keys::First => i == 1,
            Keys::All => i >= 1,
            Keys::Pairs => !i.is_multiple_of(2),
            Keys::AllButLast => i >= 1 && i + 1 < argc,
            Keys::Counted if i == 2 => return Role::KeyCount,
            Keys::Counted => i >= 3 && i - 3 < key_count,
        };
        let value = match self.values {
            Values::None => false,
            Values::At(at) => i == at,
            Values::From(from) => i >= from,
            Values::EveryOtherFrom(from) => i >= from && (i - from).is_multiple_of(2),
        };
        match (key, value) {
            (true, _) => Role::Key,
            (false, true) => Role::Value,
            (false, false) => Role::Other,
        }
    }
}
