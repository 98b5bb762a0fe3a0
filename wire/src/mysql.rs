//! MySQL / MariaDB client/server protocol, from the two byte streams of one connection: the
//! handshake (only the capability flags are kept: never the user's auth data), then commands
//! and their responses, one `SqlRecord` per command.
//!
//! Statements are paired with responses in order, so pipelined commands (MariaDB's direct
//! execute sends COM_STMT_PREPARE and COM_STMT_EXECUTE together) work. When the capture
//! misses bytes the framing cannot skip, the commands waiting for a response become
//! incomplete records and parsing resumes at the next client packet that starts a command.

mod packets;
mod response;

use std::collections::HashMap;

use packets::{Packet, PacketReader};
use response::{Expect, Prepare, Response, Results, Step};

use crate::origin::Origin;
use crate::records::{DbSystem, SqlRecord};
use crate::sql_conversation::{self, Conversation, SqlProtocol};
use crate::sql_framing::{Framer, latency_ns, lost_end};
use crate::stream::{ConnectionParser, Segment, Unparsed};

const CLIENT_COMPRESS: u32 = 0x0000_0020;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
/// HandshakeResponse41 without the user name: what a client sends before starting TLS.
const SSL_REQUEST_LEN: usize = 32;
const PROTOCOL_V10: u8 = 10;
/// COM_STMT_EXECUTE's statement id meaning "the statement prepared last" (MariaDB).
const LAST_PREPARED: u32 = 0xFFFF_FFFF;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet: a greeting starts a handshake, a command means the connection is
    /// older than the trace.
    #[default]
    Unknown,
    /// Greeting seen, waiting for the client's HandshakeResponse.
    Handshake,
    /// Authentication packets, until the server's OK.
    Auth,
    Command,
    /// TLS, compression or a refused login: nothing more to parse.
    Opaque,
}

#[derive(Default)]
pub struct MysqlParser {
    conversation: Conversation<PacketReader, Request>,
    phase: Phase,
    server_caps: u32,
    deprecate_eof: Option<bool>,
    /// Drop the next packet if it is an EOF (see `Response::maybe_trailing_eof`).
    swallow_eof: bool,
    statements: HashMap<u32, String>,
    last_prepare: String,
}

pub(crate) struct Request {
    origin: Origin,
    operation: &'static str,
    statement: String,
    statement_truncated: bool,
    response: Response,
    /// Part of its response was not captured and could not be skipped.
    lost: bool,
}

impl MysqlParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn on_handshake_response(&mut self, packet: &Packet) {
        let Some(caps) = packet.payload.get(..4) else {
            self.conversation.unparsed.messages += 1;
            return;
        };
        let caps = u32::from_le_bytes([caps[0], caps[1], caps[2], caps[3]]) & self.server_caps;
        if caps & CLIENT_SSL != 0 && packet.len == SSL_REQUEST_LEN || caps & CLIENT_COMPRESS != 0 {
            self.phase = Phase::Opaque;
            self.conversation.unparsed.messages += 1;
            return;
        }
        self.deprecate_eof = Some(caps & CLIENT_DEPRECATE_EOF != 0);
        self.phase = Phase::Auth;
    }

    fn on_command(&mut self, packet: Packet, out: &mut Vec<SqlRecord>) {
        self.settle_before_command(out);
        let Some(&command) = packet.payload.first() else {
            self.conversation.unparsed.messages += 1;
            return;
        };
        let args = &packet.payload[1..];
        let text = || String::from_utf8_lossy(args).into_owned();
        let id = args
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let known = |id: Option<u32>| {
            id.and_then(|id| self.statements.get(&id).cloned())
                .unwrap_or_default()
        };
        let (operation, statement, expect) = match command {
            0x03 => ("query", text(), Some(Expect::Results(Results::Start))),
            0x16 => {
                self.last_prepare = text();
                ("prepare", text(), Some(Expect::Prepare(Prepare::Start)))
            }
            0x17 if id == Some(LAST_PREPARED) => (
                "execute",
                self.last_prepare.clone(),
                Some(Expect::Results(Results::Start)),
            ),
            0x17 => ("execute", known(id), Some(Expect::Results(Results::Start))),
            0x19 => {
                let statement = id
                    .and_then(|id| self.statements.remove(&id))
                    .unwrap_or_default();
                ("close", statement, None)
            }
            0x1A => ("reset_statement", known(id), Some(Expect::Single)),
            0x1C => ("fetch", known(id), Some(Expect::Rows)),
            // A parameter's data for a later execute: no response, no record.
            0x18 => return,
            0x02 => ("init_db", text(), Some(Expect::Single)),
            0x0E => ("ping", String::new(), Some(Expect::Single)),
            0x01 => ("quit", String::new(), None),
            // User name and auth data follow: keep none of it.
            0x11 => ("change_user", String::new(), Some(Expect::ChangeUser)),
            0x1F => ("reset_connection", String::new(), Some(Expect::Single)),
            0x1B => ("set_option", String::new(), Some(Expect::Single)),
            0x09 => ("statistics", String::new(), Some(Expect::Single)),
            0x04 => {
                let table = args.split(|&b| b == 0).next().unwrap_or_default();
                let table = String::from_utf8_lossy(table).into_owned();
                ("field_list", table, Some(Expect::Columns))
            }
            0x0C => ("process_kill", String::new(), Some(Expect::Single)),
            _ => ("other", String::new(), Some(Expect::Single)),
        };
        let expect_response = expect.is_some();
        let request = Request {
            origin: packet.origin,
            operation,
            statement,
            statement_truncated: packet.truncated || packet.payload.len() < packet.len,
            response: Response::new(expect.unwrap_or(Expect::Single)),
            lost: false,
        };
        if expect_response {
            self.conversation.waiting.push_back(request);
        } else {
            out.push(record(request, None));
        }
    }

    /// A new command: whatever is still waiting and already had part of its response (or
    /// lost it) was misread or cut short, since MySQL answers commands in order.
    fn settle_before_command(&mut self, out: &mut Vec<SqlRecord>) {
        let stale = self
            .conversation
            .waiting
            .iter()
            .any(|request| request.lost || request.response.started);
        if stale || self.conversation.server.is_lost() {
            self.conversation
                .restart(|request, last_server_ns| out.push(incomplete(request, last_server_ns)));
            self.swallow_eof = false;
        }
    }

    fn on_response_packet(&mut self, packet: &Packet, out: &mut Vec<SqlRecord>) {
        if std::mem::take(&mut self.swallow_eof) && response::is_eof(packet) {
            return;
        }
        let Some(request) = self.conversation.oldest_waiting() else {
            return;
        };
        if request.lost {
            return;
        }
        if let Step::More = request.response.on_packet(packet, &mut self.deprecate_eof) {
            return;
        }
        let Some(request) = self.conversation.waiting.pop_front() else {
            return;
        };
        if let Some(id) = request.response.prepared_id {
            self.statements.insert(id, request.statement.clone());
        }
        self.swallow_eof = request.response.maybe_trailing_eof;
        out.push(record(request, Some(packet.end_ns)));
    }
}

impl SqlProtocol for MysqlParser {
    type Framer = PacketReader;
    type Waiting = Request;

    fn conversation(&mut self) -> &mut Conversation<PacketReader, Request> {
        &mut self.conversation
    }

    fn is_opaque(&self) -> bool {
        self.phase == Phase::Opaque
    }

    fn pick_up_client(&mut self, segment: &Segment<'_>) -> bool {
        let starts = starts_with_command(segment.bytes);
        if starts {
            self.conversation.client.reset();
        }
        starts
    }

    fn on_client(&mut self, packet: Packet, out: &mut Vec<SqlRecord>) {
        match self.phase {
            Phase::Unknown | Phase::Command if packet.seq == 0 => {
                self.phase = Phase::Command;
                self.on_command(packet, out);
            }
            Phase::Handshake => self.on_handshake_response(&packet),
            // LOCAL INFILE contents, authentication data: nothing to keep.
            Phase::Unknown | Phase::Command | Phase::Auth | Phase::Opaque => {}
        }
    }

    fn on_server(&mut self, packet: Packet, out: &mut Vec<SqlRecord>) {
        let first = packet.payload.first().copied();
        match self.phase {
            Phase::Unknown if packet.seq == 0 && first == Some(PROTOCOL_V10) => {
                self.server_caps = greeting_capabilities(&packet.payload);
                self.phase = Phase::Handshake;
                self.conversation.client.reset();
            }
            Phase::Auth if first == Some(0x00) => self.phase = Phase::Command,
            Phase::Handshake | Phase::Auth if first == Some(0xFF) => self.phase = Phase::Opaque,
            Phase::Command => self.on_response_packet(&packet, out),
            Phase::Unknown => self.conversation.unparsed.messages += 1,
            Phase::Handshake | Phase::Auth | Phase::Opaque => {}
        }
    }

    fn lose(request: &mut Request) {
        request.lost = true;
    }

    fn unanswered(request: Request, last_server_ns: i64, out: &mut Vec<SqlRecord>) {
        if request.lost {
            out.push(incomplete(request, last_server_ns));
        } else {
            let complete = !request.response.started;
            let mut row = record(request, None);
            row.rows = None;
            row.complete &= complete;
            out.push(row);
        }
    }
}

impl ConnectionParser for MysqlParser {
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

/// Could these bytes begin a command packet? Sequence 0 and a command byte MySQL defines.
fn starts_with_command(bytes: &[u8]) -> bool {
    match bytes {
        [l0, l1, l2, 0, command, ..] => {
            let len = u32::from_le_bytes([*l0, *l1, *l2, 0]);
            len >= 1 && *command <= 0x1F
        }
        _ => false,
    }
}

/// The capability flags of a protocol-10 greeting: the low half after the version string,
/// connection id and first scramble part; the high half after charset and status.
fn greeting_capabilities(payload: &[u8]) -> u32 {
    let Some(nul) = payload.iter().skip(1).position(|&b| b == 0) else {
        return 0;
    };
    let at = 1 + nul + 1 + 4 + 8 + 1;
    let half = |at: usize| {
        payload
            .get(at..at + 2)
            .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])))
    };
    half(at) | half(at + 5) << 16
}

fn record(request: Request, end_ns: Option<i64>) -> SqlRecord {
    let (error_code, error) = request.response.error.unzip();
    SqlRecord {
        time_ns: request.origin.time_ns,
        tid: request.origin.tid,
        db_system: DbSystem::Mysql,
        operation: request.operation,
        statement: request.statement,
        rows: if error_code.is_some() {
            None
        } else {
            request.response.rows
        },
        error_code,
        error,
        latency_ns: latency_ns(request.origin.time_ns, end_ns),
        complete: !request.statement_truncated,
        python_stack_id: request.origin.python_stack_id,
    }
}

/// A command whose response was partly lost: its end is taken as the last server bytes
/// seen before the next command.
fn incomplete(request: Request, last_server_ns: i64) -> SqlRecord {
    let start = request.origin.time_ns;
    let mut row = record(request, lost_end(start, last_server_ns));
    row.rows = None;
    row.complete = false;
    row
}
