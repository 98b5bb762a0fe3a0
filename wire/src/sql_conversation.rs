//! The conversation the MySQL and PostgreSQL parsers share: each direction framed into whole
//! packets or messages, what the client asked waiting in order for the server's answer (both
//! servers answer in order, pipelined or not), and what happens when the capture loses the
//! framing. While the client's framing is lost, its bytes count as unparsed until the protocol
//! sees a segment that starts a request; while the server's is, they count until the next
//! request restarts it, and what was waiting may have had its response in the bytes not read.
//! The protocol says what its packets or messages mean: `SqlProtocol`.

use std::collections::VecDeque;

use crate::records::SqlRecord;
use crate::sql_framing::{Framed, Framer};
use crate::stream::{Segment, Side, Unparsed};

/// Client packets and messages carry statements: keep them whole up to this; the server's
/// only need their first bytes (OK/ERR fields, column counts, tags, error fields).
const CLIENT_KEEP: usize = 1 << 20;
const SERVER_KEEP: usize = 4096;

/// What both protocols keep of a connection; `W` is what waits for an answer (a MySQL
/// command, a PostgreSQL batch up to its Sync).
pub(crate) struct Conversation<F, W> {
    pub client: F,
    pub server: F,
    /// Oldest first: the next response answers the front.
    pub waiting: VecDeque<W>,
    /// Time of the last server segment: the end of a response whose framing was lost.
    pub last_server_ns: i64,
    pub unparsed: Unparsed,
}

impl<F: Framer, W> Default for Conversation<F, W> {
    fn default() -> Self {
        Conversation {
            // The client's stream is picked up at a handshake or at a request; the server's
            // first bytes answer one or, on an older connection, fail framing.
            client: F::new(CLIENT_KEEP, false),
            server: F::new(SERVER_KEEP, true),
            waiting: VecDeque::new(),
            last_server_ns: i64::MIN,
            unparsed: Unparsed::default(),
        }
    }
}

impl<F: Framer, W> Conversation<F, W> {
    /// What a server response answers: the oldest waiting. A response to nothing is counted
    /// as unparsed.
    pub fn oldest_waiting(&mut self) -> Option<&mut W> {
        let oldest = self.waiting.front_mut();
        if oldest.is_none() {
            self.unparsed.messages += 1;
        }
        oldest
    }

    /// A new request while the server's responses can no longer be paired with what waits
    /// (its framing was lost, or they were misread): each waiting ends as `settle` says, given
    /// the time of the last server bytes, and the server's bytes are read afresh.
    pub fn restart(&mut self, mut settle: impl FnMut(W, i64)) {
        for waiting in self.waiting.drain(..) {
            settle(waiting, self.last_server_ns);
        }
        self.server.reset();
    }
}

/// What a protocol's parser tells the conversation: where its state is, how its client's
/// stream is picked up, what its packets or messages mean, and what a waiting request
/// becomes when its response is lost or never comes.
pub(crate) trait SqlProtocol {
    type Framer: Framer;
    type Waiting;
    fn conversation(&mut self) -> &mut Conversation<Self::Framer, Self::Waiting>;
    /// TLS, compression, a refused login: nothing more to parse.
    fn is_opaque(&self) -> bool;
    /// While the client's framing is lost: whether this segment starts where it can be picked
    /// up (then the client's reader is reset to read it).
    fn pick_up_client(&mut self, segment: &Segment<'_>) -> bool;
    fn on_client(&mut self, unit: <Self::Framer as Framer>::Unit, out: &mut Vec<SqlRecord>);
    fn on_server(&mut self, unit: <Self::Framer as Framer>::Unit, out: &mut Vec<SqlRecord>);
    /// The server's framing was lost: this one's response may have been in the bytes that
    /// could not be read.
    fn lose(waiting: &mut Self::Waiting);
    /// The records of one still waiting when the connection closes.
    fn unanswered(waiting: Self::Waiting, last_server_ns: i64, out: &mut Vec<SqlRecord>);
}

/// `ConnectionParser::feed` for both protocols.
pub(crate) fn feed<P: SqlProtocol>(
    parser: &mut P,
    segment: &Segment<'_>,
    out: &mut Vec<SqlRecord>,
) {
    if parser.is_opaque() {
        parser.conversation().unparsed.bytes += segment.len;
        return;
    }
    match segment.from {
        Side::Client => read_client(parser, segment, out),
        Side::Server => read_server(parser, segment, out),
    }
}

/// `ConnectionParser::close` for both protocols.
pub(crate) fn close<P: SqlProtocol>(parser: &mut P, out: &mut Vec<SqlRecord>) {
    let conversation = parser.conversation();
    for waiting in conversation.waiting.drain(..) {
        P::unanswered(waiting, conversation.last_server_ns, out);
    }
}

fn read_client<P: SqlProtocol>(parser: &mut P, segment: &Segment<'_>, out: &mut Vec<SqlRecord>) {
    if parser.conversation().client.is_lost() && !parser.pick_up_client(segment) {
        parser.conversation().unparsed.bytes += segment.len;
        return;
    }
    let mut framed = Vec::new();
    parser.conversation().client.push(segment, &mut framed);
    for frame in framed {
        match frame {
            Framed::Whole(unit) => parser.on_client(unit, out),
            Framed::Lost => parser.conversation().unparsed.messages += 1,
        }
    }
}

/// Notes the segment's time, the end of a response whose framing is lost; while the framing
/// is lost the bytes only count as unparsed.
fn read_server<P: SqlProtocol>(parser: &mut P, segment: &Segment<'_>, out: &mut Vec<SqlRecord>) {
    let conversation = parser.conversation();
    conversation.last_server_ns = segment.time_ns;
    if conversation.server.is_lost() {
        conversation.unparsed.bytes += segment.len;
        return;
    }
    let mut framed = Vec::new();
    conversation.server.push(segment, &mut framed);
    for frame in framed {
        match frame {
            Framed::Whole(unit) => parser.on_server(unit, out),
            Framed::Lost => {
                let conversation = parser.conversation();
                conversation.unparsed.messages += 1;
                conversation.waiting.iter_mut().for_each(P::lose);
            }
        }
    }
}
