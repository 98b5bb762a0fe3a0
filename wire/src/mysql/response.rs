//! How far a command's response has come, packet by packet: OK, ERR, result sets (text or
//! binary rows, with or without the EOF packets that CLIENT_DEPRECATE_EOF removes), the
//! PREPARE_OK with its parameter and column definitions.

use super::packets::Packet;

const OK: u8 = 0x00;
const LOCAL_INFILE: u8 = 0xFB;
const EOF: u8 = 0xFE;
const ERR: u8 = 0xFF;
/// Status flag: another result set follows this one (multi-statements, CALL).
const MORE_RESULTS_EXISTS: u16 = 0x0008;
/// Status flag: COM_STMT_EXECUTE opened a cursor; the rows come with COM_STMT_FETCH.
const CURSOR_EXISTS: u16 = 0x0040;
/// A row can only start with 0xFE as an 8-byte length prefix, so a row starting with it
/// is at least this long; anything shorter starting with 0xFE ends the rows.
const MIN_ROW_WITH_FE: usize = 0xFF_FFFF;

/// The response's shape, decided by the command.
#[derive(Debug)]
pub(super) enum Expect {
    /// One packet: OK, ERR, EOF or a string (ping, init_db, statistics, ...).
    Single,
    /// OK, ERR, a LOCAL INFILE request, or result sets (query, execute).
    Results(Results),
    Prepare(Prepare),
    /// Rows until EOF/OK (fetch from a cursor).
    Rows,
    /// Column definitions until EOF (field list).
    Columns,
    /// OK or ERR, with authentication packets before them.
    ChangeUser,
}

#[derive(Debug)]
pub(super) enum Results {
    Start,
    Columns(u64),
    ColumnsEnd,
    Rows,
}

#[derive(Debug)]
pub(super) enum Prepare {
    Start,
    /// Parameter and column definitions still to come, then the final EOF if there is one.
    Definitions {
        left: u64,
        final_eof: bool,
    },
    FinalEof,
}

pub(super) enum Step {
    More,
    Done,
}

/// A command's response as seen so far.
#[derive(Debug)]
pub(super) struct Response {
    pub expect: Expect,
    pub rows: Option<u64>,
    /// (error code, message)
    pub error: Option<(String, String)>,
    /// The statement id a PREPARE_OK gave.
    pub prepared_id: Option<u32>,
    /// The PREPARE_OK ended without knowing whether an EOF follows (CLIENT_DEPRECATE_EOF not
    /// seen in a handshake): the parser drops one EOF if it comes next.
    pub maybe_trailing_eof: bool,
    pub started: bool,
}

impl Response {
    pub fn new(expect: Expect) -> Self {
        Response {
            expect,
            rows: None,
            error: None,
            prepared_id: None,
            maybe_trailing_eof: false,
            started: false,
        }
    }

    /// Takes the next server packet. `deprecate_eof` is what the handshake negotiated
    /// (None when the connection is older than the trace); a result set teaches it.
    pub fn on_packet(&mut self, packet: &Packet, deprecate_eof: &mut Option<bool>) -> Step {
        self.started = true;
        let payload = &packet.payload[..];
        let first = payload.first().copied();
        if first == Some(ERR) {
            self.error = parse_err(payload);
            return Step::Done;
        }
        match &mut self.expect {
            Expect::Single => Step::Done,
            Expect::ChangeUser if first == Some(OK) => Step::Done,
            Expect::ChangeUser => Step::More,
            Expect::Columns if is_end_of_rows(packet) => Step::Done,
            Expect::Columns => Step::More,
            Expect::Rows => self.on_row(packet),
            Expect::Results(state) => match state {
                Results::Start => self.on_results_start(packet),
                Results::Columns(left) => {
                    *left -= 1;
                    if *left == 0 {
                        *state = Results::ColumnsEnd;
                    }
                    Step::More
                }
                Results::ColumnsEnd => {
                    if is_eof(packet) {
                        *deprecate_eof = Some(false);
                        if eof_status(payload) & CURSOR_EXISTS != 0 {
                            return Step::Done;
                        }
                        self.expect = Expect::Results(Results::Rows);
                        self.rows.get_or_insert(0);
                        Step::More
                    } else {
                        *deprecate_eof = Some(true);
                        self.expect = Expect::Results(Results::Rows);
                        self.rows.get_or_insert(0);
                        self.on_row(packet)
                    }
                }
                Results::Rows => self.on_row(packet),
            },
            Expect::Prepare(state) => match state {
                Prepare::Start => {
                    let Some(ok) = parse_prepare_ok(payload) else {
                        return Step::Done;
                    };
                    self.prepared_id = Some(ok.statement_id);
                    let left = u64::from(ok.columns) + u64::from(ok.params);
                    if left == 0 {
                        return Step::Done;
                    }
                    *state = Prepare::Definitions {
                        left,
                        final_eof: *deprecate_eof == Some(false),
                    };
                    Step::More
                }
                Prepare::Definitions { left, final_eof } => {
                    // The EOF between parameter and column definitions counts for nothing.
                    if !is_eof(packet) {
                        *left -= 1;
                    }
                    if *left > 0 {
                        return Step::More;
                    }
                    if *final_eof {
                        *state = Prepare::FinalEof;
                        return Step::More;
                    }
                    self.maybe_trailing_eof = deprecate_eof.is_none();
                    Step::Done
                }
                Prepare::FinalEof => Step::Done,
            },
        }
    }

    fn on_results_start(&mut self, packet: &Packet) -> Step {
        let payload = &packet.payload[..];
        match payload.first().copied() {
            Some(OK) => {
                let ok = parse_ok(payload);
                *self.rows.get_or_insert(0) += ok.map_or(0, |ok| ok.affected_rows);
                if ok.is_some_and(|ok| ok.status & MORE_RESULTS_EXISTS != 0) {
                    Step::More
                } else {
                    Step::Done
                }
            }
            // The client sends the file, then the server answers with OK or ERR.
            Some(LOCAL_INFILE) => Step::More,
            _ => match read_lenenc(payload).map(|(count, _)| count) {
                Some(columns) if columns > 0 => {
                    self.expect = Expect::Results(Results::Columns(columns));
                    Step::More
                }
                _ => Step::Done,
            },
        }
    }

    fn on_row(&mut self, packet: &Packet) -> Step {
        if !is_end_of_rows(packet) {
            *self.rows.get_or_insert(0) += 1;
            return Step::More;
        }
        let status = if is_eof(packet) {
            eof_status(&packet.payload)
        } else {
            parse_ok(&packet.payload).map_or(0, |ok| ok.status)
        };
        if status & MORE_RESULTS_EXISTS != 0 {
            self.expect = Expect::Results(Results::Start);
            Step::More
        } else {
            Step::Done
        }
    }
}

/// An EOF packet (protocol 4.1: header, warnings, status: 5 bytes), never an OK with the
/// 0xFE header (at least 7).
pub(super) fn is_eof(packet: &Packet) -> bool {
    packet.payload.first() == Some(&EOF) && packet.len < 7
}

/// The packet that ends rows: EOF, or OK with the 0xFE header under CLIENT_DEPRECATE_EOF.
fn is_end_of_rows(packet: &Packet) -> bool {
    packet.payload.first() == Some(&EOF) && packet.len < MIN_ROW_WITH_FE
}

fn eof_status(payload: &[u8]) -> u16 {
    payload
        .get(3..5)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

#[derive(Clone, Copy)]
struct Ok {
    affected_rows: u64,
    status: u16,
}

fn parse_ok(payload: &[u8]) -> Option<Ok> {
    let (affected_rows, used) = read_lenenc(payload.get(1..)?)?;
    let (_, used_id) = read_lenenc(payload.get(1 + used..)?)?;
    let at = 1 + used + used_id;
    let status = payload.get(at..at + 2)?;
    Some(Ok {
        affected_rows,
        status: u16::from_le_bytes([status[0], status[1]]),
    })
}

struct PrepareOk {
    statement_id: u32,
    columns: u16,
    params: u16,
}

fn parse_prepare_ok(payload: &[u8]) -> Option<PrepareOk> {
    if payload.first() != Some(&OK) {
        return None;
    }
    let b = payload.get(1..9)?;
    Some(PrepareOk {
        statement_id: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        columns: u16::from_le_bytes([b[4], b[5]]),
        params: u16::from_le_bytes([b[6], b[7]]),
    })
}

/// ERR: code, then (protocol 4.1) '#' and a 5-character SQLSTATE, then the message.
fn parse_err(payload: &[u8]) -> Option<(String, String)> {
    let code = payload.get(1..3)?;
    let code = u16::from_le_bytes([code[0], code[1]]);
    let rest = &payload[3..];
    let message = match rest.first() {
        Some(b'#') => rest.get(6..).unwrap_or_default(),
        _ => rest,
    };
    Some((
        code.to_string(),
        String::from_utf8_lossy(message).into_owned(),
    ))
}

/// A length-encoded integer: the value and how many bytes it took.
pub(super) fn read_lenenc(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let width = match first {
        0..=0xFA => return Some((u64::from(first), 1)),
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let digits = bytes.get(1..1 + width)?;
    let value = digits
        .iter()
        .rev()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    Some((value, 1 + width))
}
