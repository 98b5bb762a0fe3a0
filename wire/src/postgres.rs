//! PostgreSQL frontend/backend protocol v3, from the two byte streams of one connection:
//! startup (SSLRequest answered 'N' goes on in clear, 'S' means TLS and nothing more to
//! read), authentication (passwords and SASL messages are never kept), then simple Query and
//! the extended Parse/Bind/Describe/Execute/Sync flow, one `SqlRecord` per Query, per
//! Execute (with the text its Parse gave the statement) and per Parse not executed in the
//! same batch.
//!
//! Requests may be pipelined: batches wait in order for their ReadyForQuery. When the capture
//! misses bytes the framing cannot skip, the batches waiting become incomplete records and
//! parsing resumes at the next client message that starts a request.

mod batch;
mod messages;

use std::collections::HashMap;

use batch::{Batch, Entry, Kind};
use messages::{Message, MessageReader, Next};

use crate::origin::Origin;
use crate::records::{DbSystem, SqlRecord};
use crate::sql_conversation::{self, Conversation, SqlProtocol};
use crate::sql_framing::{Framer, latency_ns, lost_end};
use crate::stream::{ConnectionParser, Segment, Unparsed};

const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet: a startup message starts the handshake, a typed message means the
    /// connection is older than the trace.
    #[default]
    Unknown,
    /// SSLRequest / GSSENCRequest sent, waiting for the one-byte answer.
    EncryptionAnswer,
    /// StartupMessage sent: authentication until ReadyForQuery.
    Startup,
    Command,
    /// TLS, GSS encryption, a cancel request or a refused login: nothing more to parse.
    Opaque,
}

struct Portal {
    statement: String,
    origin: Origin,
    /// The batch and entry of the Parse that made its statement, if in the same batch.
    parsed_in: Option<(u64, usize)>,
}

#[derive(Default)]
pub struct PostgresParser {
    /// The batches wait for their ReadyForQuery; the last one may still be open.
    conversation: Conversation<MessageReader, Batch>,
    phase: Phase,
    /// Statement name -> text, as the client's Parse messages set them ("" is the unnamed).
    statements: HashMap<String, String>,
    portals: HashMap<String, Portal>,
    next_serial: u64,
}

impl PostgresParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn on_startup(&mut self, message: &Message) {
        let code = message
            .body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match code {
            Some(SSL_REQUEST | GSSENC_REQUEST) => {
                self.phase = Phase::EncryptionAnswer;
                self.conversation.server.expect(Next::Byte);
            }
            Some(PROTOCOL_3) => self.phase = Phase::Startup,
            // CancelRequest (answered by closing) or something else.
            _ => self.phase = Phase::Opaque,
        }
    }

    fn on_request_message(&mut self, message: Message, out: &mut Vec<SqlRecord>) {
        let truncated = message.truncated || message.body.len() < message.len;
        let mut fields = message.body.split(|&b| b == 0);
        let mut text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        match message.tag {
            b'Q' => {
                let statement = text();
                let batch = self.open_batch(out);
                batch.entries.push(Entry::new(
                    Kind::Query,
                    message.origin,
                    statement,
                    truncated,
                ));
                batch.closed = true;
            }
            b'P' => {
                let (name, statement) = (text(), text());
                self.statements.insert(name, statement.clone());
                let batch = self.open_batch(out);
                batch.entries.push(Entry::new(
                    Kind::Parse,
                    message.origin,
                    statement,
                    truncated,
                ));
            }
            b'B' => {
                let (portal, name) = (text(), text());
                let statement = self.statements.get(&name).cloned().unwrap_or_default();
                let batch = self.open_batch(out);
                let parsed_in = batch
                    .entries
                    .iter()
                    .rposition(|e| e.kind == Kind::Parse && e.statement == statement)
                    .map(|i| (batch.serial, i));
                let portal_info = Portal {
                    statement,
                    origin: message.origin,
                    parsed_in,
                };
                self.portals.insert(portal, portal_info);
            }
            b'E' => {
                let portal = text();
                let (statement, mut origin, parsed_in) = match self.portals.get(&portal) {
                    Some(p) => (p.statement.clone(), p.origin, p.parsed_in),
                    None => (String::new(), message.origin, None),
                };
                let batch = self.open_batch(out);
                let index = batch.entries.len();
                let parsed_here = parsed_in.filter(|&(serial, _)| serial == batch.serial);
                if let Some((_, parse)) = parsed_here {
                    // The first Execute of a statement parsed in this batch includes the Parse.
                    if let Some(parse) = batch.entries.get_mut(parse)
                        && parse.folded_into.is_none()
                    {
                        parse.folded_into = Some(index);
                        origin = parse.origin;
                    }
                }
                batch
                    .entries
                    .push(Entry::new(Kind::Execute, origin, statement, false));
            }
            b'C' => {
                let kind = message.body.first().copied();
                let name = message.body.get(1..).unwrap_or_default();
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                let name = String::from_utf8_lossy(name).into_owned();
                match kind {
                    Some(b'S') => self.statements.remove(&name),
                    _ => self.portals.remove(&name).map(|p| p.statement),
                };
                self.open_batch(out);
            }
            b'D' | b'H' => {
                self.open_batch(out);
            }
            b'S' | b'F' => self.open_batch(out).closed = true,
            // Terminate, COPY data from the client: no response of their own.
            b'X' | b'd' | b'c' | b'f' => {}
            _ => self.conversation.unparsed.messages += 1,
        }
    }

    /// The batch the client is adding to, opened if the last one is closed. A new request
    /// while the server's framing is lost settles the batches that were waiting.
    fn open_batch(&mut self, out: &mut Vec<SqlRecord>) -> &mut Batch {
        let conversation = &mut self.conversation;
        let open = conversation.waiting.back().is_some_and(|b| !b.closed);
        if !open {
            if conversation.server.is_lost() {
                conversation.restart(|batch, last_server_ns| emit(batch, last_server_ns, out));
            }
            conversation.waiting.push_back(Batch::new(self.next_serial));
            self.next_serial += 1;
        }
        conversation
            .waiting
            .back_mut()
            .expect("a batch was just opened")
    }

    fn on_response_message(&mut self, message: &Message, out: &mut Vec<SqlRecord>) {
        // Asynchronous messages: they can come at any time and answer nothing.
        if matches!(message.tag, b'N' | b'A' | b'S') {
            return;
        }
        let Some(batch) = self.conversation.oldest_waiting() else {
            return;
        };
        let end = message.end_ns;
        match message.tag {
            b'1' => batch.on_parse_complete(end),
            b'D' => batch.on_data_row(),
            b'C' => {
                let tag = message.body.split(|&b| b == 0).next().unwrap_or_default();
                batch.on_command_end(Some(&String::from_utf8_lossy(tag)), end);
            }
            b'I' | b's' => batch.on_command_end(None, end),
            b'E' => {
                let (code, text) = error_fields(&message.body);
                batch.on_error(code, text, end);
            }
            b'Z' => {
                batch.on_ready(end);
                if let Some(batch) = self.conversation.waiting.pop_front() {
                    emit(batch, self.conversation.last_server_ns, out);
                }
            }
            _ => {}
        }
    }
}

impl SqlProtocol for PostgresParser {
    type Framer = MessageReader;
    type Waiting = Batch;

    fn conversation(&mut self) -> &mut Conversation<MessageReader, Batch> {
        &mut self.conversation
    }

    fn is_opaque(&self) -> bool {
        self.phase == Phase::Opaque
    }

    /// At a startup message, or at a request: then the batch the client was adding to lost
    /// its end (its Sync, at least) in the bytes not captured.
    fn pick_up_client(&mut self, segment: &Segment<'_>) -> bool {
        let conversation = &mut self.conversation;
        if segment.bytes.first() == Some(&0) && self.phase == Phase::Unknown {
            conversation.client.reset();
            conversation.client.expect(Next::Untyped);
        } else if starts_request(segment) {
            conversation.client.reset();
            self.phase = Phase::Command;
            if let Some(open) = conversation.waiting.back_mut().filter(|b| !b.closed) {
                open.closed = true;
                open.lost = true;
            }
        } else {
            return false;
        }
        true
    }

    fn on_client(&mut self, message: Message, out: &mut Vec<SqlRecord>) {
        match self.phase {
            Phase::Unknown | Phase::EncryptionAnswer | Phase::Startup if message.tag == 0 => {
                self.on_startup(&message)
            }
            Phase::Command => self.on_request_message(message, out),
            // Password, SASL and GSS messages: nothing to keep.
            Phase::Unknown | Phase::EncryptionAnswer | Phase::Startup | Phase::Opaque => {}
        }
    }

    fn on_server(&mut self, message: Message, out: &mut Vec<SqlRecord>) {
        match (self.phase, message.tag) {
            (Phase::EncryptionAnswer, b'N') => {
                self.phase = Phase::Startup;
                self.conversation.client.expect(Next::Untyped);
            }
            (Phase::EncryptionAnswer, _) => self.phase = Phase::Opaque,
            (Phase::Startup, b'Z') => self.phase = Phase::Command,
            (Phase::Startup, b'E') => self.phase = Phase::Opaque,
            (Phase::Command, _) => self.on_response_message(&message, out),
            (Phase::Unknown, _) => self.conversation.unparsed.messages += 1,
            (Phase::Startup | Phase::Opaque, _) => {}
        }
    }

    fn lose(batch: &mut Batch) {
        batch.lost = true;
    }

    fn unanswered(batch: Batch, last_server_ns: i64, out: &mut Vec<SqlRecord>) {
        emit(batch, last_server_ns, out);
    }
}

impl ConnectionParser for PostgresParser {
    type Record = SqlRecord;

    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<SqlRecord>) {
        sql_conversation::feed(self, segment, out);
    }

    fn close(&mut self, _time_ns: i64, out: &mut Vec<SqlRecord>) {
        sql_conversation::close(self, out);
    }

    fn unparsed(&self) -> Unparsed {
        self.conversation.unparsed
    }
}

/// Could this segment begin a request? A message type that starts one and a length that
/// fits in what the syscall sent.
fn starts_request(segment: &Segment<'_>) -> bool {
    match segment.bytes {
        [tag, l0, l1, l2, l3, ..] => {
            let len = u64::from(u32::from_be_bytes([*l0, *l1, *l2, *l3]));
            b"QPBDESHCFX".contains(tag) && len >= 4 && len < segment.len
        }
        _ => false,
    }
}

/// ErrorResponse fields: SQLSTATE ('C') and message ('M').
fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut text) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        match field.split_first() {
            Some((b'C', value)) => code = String::from_utf8_lossy(value).into_owned(),
            Some((b'M', value)) => text = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    (code, text)
}

/// The batch's records: a folded Parse is part of its Execute, and commands after a failed
/// one did not run (the server skipped them).
fn emit(batch: Batch, last_server_ns: i64, out: &mut Vec<SqlRecord>) {
    let failed = batch
        .failure
        .as_ref()
        .map(|f| batch.entries[f.entry].folded_into.unwrap_or(f.entry));
    let mut failure = batch.failure;
    for (i, entry) in batch.entries.into_iter().enumerate() {
        if entry.folded_into.is_some() || failed.is_some_and(|f| i > f) {
            continue;
        }
        let error = (failed == Some(i)).then(|| failure.take()).flatten();
        let start = entry.origin.time_ns;
        let end = if batch.lost {
            lost_end(start, last_server_ns)
        } else {
            error.as_ref().map(|f| f.end_ns).or(entry.done_ns)
        };
        let answered = entry.done_ns.is_some() && !batch.lost;
        out.push(SqlRecord {
            time_ns: start,
            tid: entry.origin.tid,
            db_system: DbSystem::Postgresql,
            operation: match entry.kind {
                Kind::Parse => "prepare",
                Kind::Execute => "execute",
                Kind::Query => "query",
            },
            statement: entry.statement,
            rows: if error.is_some() || !answered {
                None
            } else {
                entry.rows
            },
            error_code: error.as_ref().map(|f| f.code.clone()),
            error: error.map(|f| f.message),
            latency_ns: latency_ns(start, end),
            complete: !entry.truncated && !batch.lost,
            python_stack_id: entry.origin.python_stack_id,
        });
    }
}
