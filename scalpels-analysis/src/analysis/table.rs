//! The tables `report` and `diff` print: typed columns (so a duration is nanoseconds in JSON
//! and "1.25 ms" on a terminal), rows, and how each row should stand out.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Text whose end matters most (file paths): shortened from the left.
    Path,
    Count,
    /// Nanoseconds.
    Duration,
    Bytes,
    Percent,
    /// A plain number (or number-like text, right-aligned).
    Number,
    /// Per second.
    Rate,
    /// A relative change: +0.25 is "+25%"; infinity is "new".
    Change,
}

#[derive(Clone, Debug)]
pub struct Column {
    /// Name in JSON (durations end in `_ns`).
    pub key: Cow<'static, str>,
    /// Header on a terminal, in Markdown and HTML.
    pub title: Cow<'static, str>,
    pub kind: Kind,
}

pub const fn column(key: &'static str, title: &'static str, kind: Kind) -> Column {
    Column {
        key: Cow::Borrowed(key),
        title: Cow::Borrowed(title),
        kind,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Cell::Empty, Cell::Text)
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Cell::Empty, Cell::Int)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.filter(|f| !f.is_nan()).map_or(Cell::Empty, Cell::Float)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Plain,
    /// A regression (diff): red on a terminal.
    Worse,
    /// An improvement (diff): green on a terminal.
    Better,
}

#[derive(Clone, Debug)]
pub struct Table {
    /// Identifies the table in JSON (`syscalls_by_time`).
    pub key: &'static str,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub marks: Vec<Mark>,
    /// A line under the title: what the numbers mean.
    pub note: Option<String>,
    /// The column (by key) drawn as bars in HTML.
    pub bar: Option<&'static str>,
}

impl Table {
    pub fn new(key: &'static str, title: impl Into<String>, columns: Vec<Column>) -> Self {
        Self {
            key,
            title: title.into(),
            columns,
            rows: Vec::new(),
            marks: Vec::new(),
            note: None,
            bar: None,
        }
    }

    pub fn with_bar(mut self, key: &'static str) -> Self {
        self.bar = Some(key);
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub fn push(&mut self, row: Vec<Cell>, mark: Mark) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
        self.marks.push(mark);
    }

    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .zip(&self.marks)
            .map(|(row, mark)| {
                let mut object = Map::new();
                for (column, cell) in self.columns.iter().zip(row) {
                    object.insert(column.key.to_string(), cell_json(column.kind, cell));
                }
                if *mark != Mark::Plain {
                    object.insert(
                        "mark".into(),
                        json!(if *mark == Mark::Worse {
                            "worse"
                        } else {
                            "better"
                        }),
                    );
                }
                Value::Object(object)
            })
            .collect();
        json!({ "key": self.key, "title": self.title, "note": self.note, "rows": rows })
    }
}

fn cell_json(kind: Kind, cell: &Cell) -> Value {
    match cell {
        Cell::Empty => Value::Null,
        Cell::Text(s) => json!(s),
        Cell::Int(i) => json!(i),
        Cell::Float(f) if kind == Kind::Change && f.is_infinite() => json!("new"),
        Cell::Float(f) => json!(f),
    }
}

/// Three significant digits, without trailing zeros after the point.
fn significant(v: f64) -> String {
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

pub fn duration(ns: f64) -> String {
    let (value, unit) = match ns.abs() {
        n if n >= 1e9 => (ns / 1e9, "s"),
        n if n >= 1e6 => (ns / 1e6, "ms"),
        n if n >= 1e3 => (ns / 1e3, "µs"),
        _ => (ns, "ns"),
    };
    format!("{} {unit}", significant(value))
}

fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{} {}", significant(value), UNITS[unit])
    }
}

fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A cell as people read it.
pub fn display(kind: Kind, cell: &Cell) -> String {
    let number = match cell {
        Cell::Empty => return String::new(),
        Cell::Text(s) => return s.clone(),
        Cell::Int(i) if kind == Kind::Count => return count(*i),
        Cell::Int(i) => *i as f64,
        Cell::Float(f) => *f,
    };
    match kind {
        Kind::Text | Kind::Path | Kind::Count | Kind::Number => significant(number),
        Kind::Duration => duration(number),
        Kind::Bytes => bytes(number),
        Kind::Percent => format!("{}%", significant(number)),
        Kind::Rate => format!("{}/s", significant(number)),
        Kind::Change if number.is_infinite() => "new".into(),
        Kind::Change if number <= -1.0 => "gone".into(),
        Kind::Change => format!("{:+.0}%", number * 100.0),
    }
}

pub fn is_numeric(kind: Kind) -> bool {
    !matches!(kind, Kind::Text | Kind::Path)
}
