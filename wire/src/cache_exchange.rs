//! What the memcached and Redis parsers keep of a command until its reply ends, the record it
//! becomes, and the queue of commands waiting for replies, which both protocols answer in
//! order.

#[cfg(test)]
pub(crate) mod testing;

use std::collections::VecDeque;

use crate::origin::Origin;
use crate::records::{CacheRecord, CacheSystem};
use crate::sql_framing::{latency_ns, lost_end};

/// Keys are kept as far as memcached allows them (a Redis key may be longer).
pub(crate) const KEY_KEEP: usize = 250;
/// Error replies are kept up to this.
pub(crate) const ERROR_KEEP: usize = 512;
/// Commands waiting for a reply, at most (pipelines are a few hundred deep in practice).
const MAX_WAITING: usize = 1024;

#[derive(Debug)]
pub(crate) struct Exchange {
    pub origin: Origin,
    pub command: String,
    pub key: Option<String>,
    pub keys: u32,
    pub hits: Option<u32>,
    pub bytes: u64,
    pub error: Option<String>,
    pub complete: bool,
    /// Part of its reply fell where the framing could not follow.
    pub lost: bool,
    /// Its reply has begun.
    pub answering: bool,
}

impl Exchange {
    pub fn new(origin: Origin, command: String) -> Self {
        Exchange {
            origin,
            command,
            key: None,
            keys: 0,
            hits: None,
            bytes: 0,
            error: None,
            complete: true,
            lost: false,
            answering: false,
        }
    }

    /// Notes one more key, keeping the first.
    pub fn add_key(&mut self, key: &[u8]) {
        if self.key.is_none() {
            self.key = Some(text(key, KEY_KEEP));
        }
        self.keys = self.keys.saturating_add(1);
    }

    pub fn record(self, system: CacheSystem, end_ns: Option<i64>) -> CacheRecord {
        CacheRecord {
            time_ns: self.origin.time_ns,
            tid: self.origin.tid,
            system,
            command: self.command,
            key: self.key,
            keys: self.keys,
            hits: self.hits,
            bytes: self.bytes,
            latency_ns: latency_ns(self.origin.time_ns, end_ns),
            error: self.error,
            complete: self.complete,
            python_stack_id: self.origin.python_stack_id,
        }
    }

    /// The record of a command whose reply was lost, or never came (`last_server_ns` is
    /// then where a lost reply ended, as far as anyone can tell).
    pub fn unanswered(mut self, system: CacheSystem, last_server_ns: i64) -> CacheRecord {
        let end = if self.lost {
            lost_end(self.origin.time_ns, last_server_ns)
        } else {
            None
        };
        if self.lost || self.answering {
            self.complete = false;
        }
        self.hits = None;
        self.record(system, end)
    }
}

/// Text of at most `keep` bytes, invalid UTF-8 replaced.
pub(crate) fn text(bytes: &[u8], keep: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(keep)]).into_owned()
}

/// The commands sent and not yet answered, oldest first.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    queue: VecDeque<T>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            queue: VecDeque::new(),
        }
    }
}

impl<T: AsMut<Exchange>> Waiting<T> {
    /// Queues a command; the oldest leaves unanswered if no reply came for that many, which
    /// returns it.
    pub fn push(&mut self, command: T) -> Option<T> {
        self.queue.push_back(command);
        (self.queue.len() > MAX_WAITING)
            .then(|| self.queue.pop_front())
            .flatten()
    }

    pub fn front(&self) -> Option<&T> {
        self.queue.front()
    }

    pub fn front_mut(&mut self) -> Option<&mut T> {
        self.queue.front_mut()
    }

    pub fn pop_front(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queue.iter()
    }

    /// The server's framing was lost: the replies of all these may have been in the bytes
    /// that could not be read.
    pub fn lose_all(&mut self) {
        for command in &mut self.queue {
            command.as_mut().lost = true;
        }
    }

    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queue.drain(..)
    }
}
