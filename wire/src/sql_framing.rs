//! What the MySQL and PostgreSQL parsers share around their framing: each side of a
//! connection is read as whole packets or messages, the server's side stops being read when
//! its framing is lost, and a response cut short ends at the last server bytes seen.

use crate::stream::{Segment, Unparsed};

pub(crate) enum Framed<T> {
    /// A whole packet (MySQL) or message (PostgreSQL).
    Whole(T),
    /// The framing was lost: the bytes that held the next header were not captured.
    Lost,
}

/// A reader that frames one direction of a connection.
pub(crate) trait Framer {
    type Unit;
    fn is_lost(&self) -> bool;
    /// Frames one segment's bytes. While lost, it consumes nothing and returns at once.
    fn push(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed<Self::Unit>>);
}

/// Frames one server segment and notes its time, the end of a response whose framing is
/// lost; while the framing is lost the bytes only count as unparsed.
pub(crate) fn frame_server<R: Framer>(
    server: &mut R,
    segment: &Segment<'_>,
    last_server_ns: &mut i64,
    unparsed: &mut Unparsed,
) -> Vec<Framed<R::Unit>> {
    *last_server_ns = segment.time_ns;
    let mut framed = Vec::new();
    if server.is_lost() {
        unparsed.bytes += segment.len;
    } else {
        server.push(segment, &mut framed);
    }
    framed
}

/// The end of a request started at `start_ns` whose response was partly lost: the last
/// server bytes seen, unless those came before the request.
pub(crate) fn lost_end(start_ns: i64, last_server_ns: i64) -> Option<i64> {
    (last_server_ns >= start_ns).then_some(last_server_ns)
}

pub(crate) fn latency_ns(start_ns: i64, end_ns: Option<i64>) -> Option<u64> {
    end_ns.map(|end| end.saturating_sub(start_ns).max(0) as u64)
}
