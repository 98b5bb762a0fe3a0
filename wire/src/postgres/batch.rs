//! The commands of one request, as PostgreSQL answers them: a simple Query, or the extended
//! messages up to a Sync. The server answers them in order and ends the request with
//! ReadyForQuery, so responses are matched by position: ParseComplete to the next Parse,
//! DataRow / CommandComplete to the next Execute (or the Query), an ErrorResponse to the
//! first command not yet answered, after which the server skips the rest until the Sync.

use crate::origin::Origin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Parse: a record of its own ("prepare") unless an Execute in the same batch runs it.
    Parse,
    Execute,
    /// Simple Query: possibly several statements, answered until ReadyForQuery.
    Query,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub kind: Kind,
    pub origin: Origin,
    pub statement: String,
    pub truncated: bool,
    /// Rows of the statements completed so far (CommandComplete tags, or DataRows counted).
    pub rows: Option<u64>,
    /// DataRows since the last CommandComplete.
    data_rows: u64,
    pub done_ns: Option<i64>,
    /// This Parse is run by the Execute at that index: one record for both.
    pub folded_into: Option<usize>,
}

impl Entry {
    pub fn new(kind: Kind, origin: Origin, statement: String, truncated: bool) -> Self {
        Entry {
            kind,
            origin,
            statement,
            truncated,
            rows: None,
            data_rows: 0,
            done_ns: None,
            folded_into: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub entry: usize,
    pub code: String,
    pub message: String,
    pub end_ns: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub serial: u64,
    pub entries: Vec<Entry>,
    /// Sync or Query seen: the client's part is over.
    pub closed: bool,
    /// Part of the response was not captured and could not be skipped.
    pub lost: bool,
    pub failure: Option<Failure>,
    next_parse: usize,
    next_execute: usize,
}

impl Batch {
    pub fn new(serial: u64) -> Self {
        Batch {
            serial,
            ..Batch::default()
        }
    }

    pub fn on_parse_complete(&mut self, end_ns: i64) {
        if let Some(i) = self.find(self.next_parse, |k| k == Kind::Parse) {
            self.entries[i].done_ns = Some(end_ns);
            self.next_parse = i + 1;
        }
    }

    pub fn on_data_row(&mut self) {
        if let Some(i) = self.find(self.next_execute, |k| k != Kind::Parse) {
            self.entries[i].data_rows += 1;
        }
    }

    /// CommandComplete (with its tag), EmptyQueryResponse or PortalSuspended (without).
    pub fn on_command_end(&mut self, tag: Option<&str>, end_ns: i64) {
        let Some(i) = self.find(self.next_execute, |k| k != Kind::Parse) else {
            return;
        };
        let entry = &mut self.entries[i];
        let counted = std::mem::take(&mut entry.data_rows);
        let rows = tag
            .and_then(rows_of_tag)
            .or((counted > 0).then_some(counted));
        if let Some(rows) = rows {
            *entry.rows.get_or_insert(0) += rows;
        }
        if entry.kind == Kind::Execute {
            entry.done_ns = Some(end_ns);
            self.next_execute = i + 1;
        }
    }

    pub fn on_error(&mut self, code: String, message: String, end_ns: i64) {
        if self.failure.is_some() {
            return;
        }
        let unanswered = self.entries.iter().position(|e| e.done_ns.is_none());
        let Some(entry) = unanswered.or(self.entries.len().checked_sub(1)) else {
            return;
        };
        self.entries[entry].done_ns.get_or_insert(end_ns);
        self.failure = Some(Failure {
            entry,
            code,
            message,
            end_ns,
        });
    }

    /// ReadyForQuery: the Query entries end here.
    pub fn on_ready(&mut self, end_ns: i64) {
        for entry in &mut self.entries {
            if entry.kind == Kind::Query {
                entry.done_ns.get_or_insert(end_ns);
            }
        }
    }

    fn find(&self, from: usize, kind: impl Fn(Kind) -> bool) -> Option<usize> {
        (from..self.entries.len()).find(|&i| kind(self.entries[i].kind))
    }
}

/// The row count at the end of a CommandComplete tag: "SELECT 3", "INSERT 0 1", "UPDATE 2".
fn rows_of_tag(tag: &str) -> Option<u64> {
    let mut words = tag.split_ascii_whitespace();
    let _command = words.next()?;
    words.next_back()?.parse().ok()
}
