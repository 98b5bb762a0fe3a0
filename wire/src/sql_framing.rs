//! What the MySQL and PostgreSQL parsers share around their framing: each side of a
//! connection is read as whole packets or messages, and a response cut short ends at the
//! last server bytes seen.

use crate::stream::Segment;

pub(crate) enum Framed<T> {
    /// A whole packet (MySQL) or message (PostgreSQL).
    Whole(T),
    /// The framing was lost: the bytes that held the next header were not captured.
    Lost,
}

/// A reader that frames one direction of a connection.
pub(crate) trait Framer {
    type Unit;
    /// `keep`: bytes kept of each unit's body, the rest is counted, not stored. `in_step`:
    /// whether the stream is known to start at a unit's boundary (a reader that is not waits,
    /// as if lost, to be reset where one starts).
    fn new(keep: usize, in_step: bool) -> Self;
    fn is_lost(&self) -> bool;
    /// Forgets everything buffered: the next byte is taken as the start of a unit.
    fn reset(&mut self);
    /// Frames one segment's bytes. While lost, it consumes nothing and returns at once.
    fn push(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed<Self::Unit>>);
}

/// The end of a request started at `start_ns` whose response was partly lost: the last
/// server bytes seen, unless those came before the request.
pub(crate) fn lost_end(start_ns: i64, last_server_ns: i64) -> Option<i64> {
    (last_server_ns >= start_ns).then_some(last_server_ns)
}

pub(crate) fn latency_ns(start_ns: i64, end_ns: Option<i64>) -> Option<u64> {
    end_ns.map(|end| end.saturating_sub(start_ns).max(0) as u64)
}
