//! The sqlite probes' events made into `sql` rows: statement handles named by the text they
//! were prepared from, an execution per row, a failure given the message the program asked
//! `sqlite3_errmsg` for and an INSERT/UPDATE/DELETE the count it asked `sqlite3_changes` for.
//! Those questions come right after the step on the same thread, so the row of a thread's
//! last execution waits for them until that thread calls SQLite again, or a few polls.

use std::collections::HashMap;

use tracers::protocols::sqlite::{
    ChangesEvent, ErrmsgEvent, FinalizeEvent, PrepareEvent, RunEvent, SQL_BYTES, SQLITE_ROW, kind,
};
use wire::records::{DbSystem, SqlRecord};

use crate::clock::Clock;

/// `sqlite3_step`'s "finished without error".
const SQLITE_DONE: i32 = 101;
/// Polls a row waits for its message or count before it is written without.
const HOLD_POLLS: u32 = 4;

pub enum Event {
    Prepare(Box<PrepareEvent>),
    Run(RunEvent),
    Finalize(FinalizeEvent),
    Errmsg(Box<ErrmsgEvent>),
    Changes(ChangesEvent),
}

/// A `T` at the start of `bytes`, if there is room for one.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: T is a #[repr(C)] record of plain integers and bytes the kernel wrote.
        .then(|| unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl Event {
    /// Decodes one ring-buffer record; `None` for a record of unknown kind or cut short.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match read::<u32>(bytes)? {
            kind::PREPARE => read(bytes).map(|e| Event::Prepare(Box::new(e))),
            kind::RUN => read(bytes).map(Event::Run),
            kind::FINALIZE => read(bytes).map(Event::Finalize),
            kind::ERRMSG => read(bytes).map(|e| Event::Errmsg(Box::new(e))),
            kind::CHANGES => read(bytes).map(Event::Changes),
            _ => None,
        }
    }
}

/// A command of a process.
pub struct Command {
    pub pid: u32,
    pub record: SqlRecord,
}

/// A command ready to be written, with the (tid, kernel time) of its Python stack if one was
/// taken.
pub type Ready = (Command, Option<(u32, u64)>);

struct Statement {
    text: String,
    /// The text was not cut at the copy limit.
    whole: bool,
}

#[derive(PartialEq, Eq)]
enum Wants {
    Message,
    Changes,
}

struct Held {
    row: Command,
    stack: Option<(u32, u64)>,
    wants: Wants,
    polls: u32,
}

pub struct Executions {
    clock: Clock,
    /// (tgid, statement handle) -> its text.
    statements: HashMap<(u32, u64), Statement>,
    /// By thread: its last row, waiting for what the program asks next.
    held: HashMap<u32, Held>,
}

/// SQLite's primary result codes, by number (an extended code's low byte is its primary).
fn code_name(rc: i32) -> String {
    const NAMES: [&str; 27] = [
        "SQLITE_OK",
        "SQLITE_ERROR",
        "SQLITE_INTERNAL",
        "SQLITE_PERM",
        "SQLITE_ABORT",
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_NOMEM",
        "SQLITE_READONLY",
        "SQLITE_INTERRUPT",
        "SQLITE_IOERR",
        "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND",
        "SQLITE_FULL",
        "SQLITE_CANTOPEN",
        "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",
        "SQLITE_SCHEMA",
        "SQLITE_TOOBIG",
        "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH",
        "SQLITE_MISUSE",
        "SQLITE_NOLFS",
        "SQLITE_AUTH",
        "SQLITE_FORMAT",
        "SQLITE_RANGE",
        "SQLITE_NOTADB",
    ];
    NAMES
        .get((rc & 0xff) as usize)
        .map_or_else(|| format!("SQLITE_{rc}"), |name| name.to_string())
}

fn text_of(bytes: &[u8], captured: u32) -> String {
    let end = (captured as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Executions {
    pub fn new(clock: Clock) -> Self {
        Executions {
            clock,
            statements: HashMap::new(),
            held: HashMap::new(),
        }
    }

    pub fn on_event(&mut self, event: Event, out: &mut Vec<Ready>) {
        match event {
            Event::Prepare(e) => {
                self.release(e.tid, out);
                self.on_prepare(&e, out);
            }
            Event::Run(e) => {
                self.release(e.tid, out);
                self.on_run(&e, out);
            }
            Event::Finalize(e) => {
                self.statements.remove(&(e.tgid, e.stmt));
            }
            Event::Errmsg(e) => {
                if let Some(mut held) = self.take_held(e.tid, Wants::Message) {
                    held.row.record.error = Some(text_of(&e.text, e.captured));
                    out.push((held.row, held.stack));
                }
            }
            Event::Changes(e) => {
                if let Some(mut held) = self.take_held(e.tid, Wants::Changes) {
                    let changed = u64::try_from(e.changes).unwrap_or(0);
                    held.row.record.rows = held.row.record.rows.max(Some(changed));
                    out.push((held.row, held.stack));
                }
            }
        }
    }

    fn on_prepare(&mut self, e: &PrepareEvent, out: &mut Vec<Ready>) {
        let captured = e.captured as usize;
        // The handle is made of the SQL up to `pzTail`: the first statement of the text.
        let len = match e.sql_len as usize {
            0 => captured,
            len => len.min(captured),
        };
        let statement = Statement {
            text: text_of(&e.sql, len as u32),
            whole: (e.sql_len as usize) <= captured && captured < SQL_BYTES - 1,
        };
        if e.rc == 0 {
            self.statements.insert((e.tgid, e.stmt), statement);
            return;
        }
        let mut row = self.row(
            e.tgid,
            e.tid,
            e.start_ns,
            "prepare",
            statement,
            e.end_ns.saturating_sub(e.start_ns),
        );
        row.record.error_code = Some(code_name(e.rc));
        self.hold(row, e.python_stack, (e.tid, e.end_ns), Wants::Message, out);
    }

    fn on_run(&mut self, e: &RunEvent, out: &mut Vec<Ready>) {
        let statement = match self.statements.get(&(e.tgid, e.stmt)) {
            Some(s) => Statement {
                text: s.text.clone(),
                whole: s.whole,
            },
            // Prepared before the probes were attached.
            None => Statement {
                text: String::new(),
                whole: false,
            },
        };
        let mut row = self.row(e.tgid, e.tid, e.start_ns, "execute", statement, e.busy_ns);
        row.record.rows = Some(e.rows);
        let stack = (e.tid, e.start_ns);
        let failed = e.finished != 0 && e.rc != SQLITE_DONE && e.rc != SQLITE_ROW;
        if failed {
            row.record.rows = None;
            row.record.error_code = Some(code_name(e.rc));
            self.hold(row, e.python_stack, stack, Wants::Message, out);
        } else if e.finished != 0 {
            self.hold(row, e.python_stack, stack, Wants::Changes, out);
        } else {
            out.push((row, (e.python_stack != 0).then_some(stack)));
        }
    }

    fn row(
        &self,
        tgid: u32,
        tid: u32,
        start_ns: u64,
        operation: &'static str,
        statement: Statement,
        latency_ns: u64,
    ) -> Command {
        Command {
            pid: tgid,
            record: SqlRecord {
                time_ns: self.clock.to_utc_ns(start_ns),
                tid,
                db_system: DbSystem::Sqlite,
                operation,
                statement: statement.text,
                rows: None,
                error_code: None,
                error: None,
                latency_ns: Some(latency_ns),
                complete: statement.whole,
                python_stack_id: None,
            },
        }
    }

    fn hold(
        &mut self,
        row: Command,
        python_stack: u32,
        stack: (u32, u64),
        wants: Wants,
        out: &mut Vec<Ready>,
    ) {
        let tid = row.record.tid;
        self.release(tid, out);
        self.held.insert(
            tid,
            Held {
                row,
                stack: (python_stack != 0).then_some(stack),
                wants,
                polls: 0,
            },
        );
    }

    fn take_held(&mut self, tid: u32, wants: Wants) -> Option<Held> {
        if self.held.get(&tid)?.wants != wants {
            return None;
        }
        self.held.remove(&tid)
    }

    fn release(&mut self, tid: u32, out: &mut Vec<Ready>) {
        if let Some(held) = self.held.remove(&tid) {
            out.push((held.row, held.stack));
        }
    }

    /// A poll ended: rows that waited long enough go without what they waited for.
    pub fn age(&mut self, out: &mut Vec<Ready>) {
        let mut expired = Vec::new();
        for (&tid, held) in &mut self.held {
            held.polls += 1;
            if held.polls > HOLD_POLLS {
                expired.push(tid);
            }
        }
        for tid in expired {
            self.release(tid, out);
        }
    }

    /// The run ends: every row goes.
    pub fn drain(&mut self, out: &mut Vec<Ready>) {
        let tids: Vec<u32> = self.held.keys().copied().collect();
        for tid in tids {
            self.release(tid, out);
        }
    }
}
