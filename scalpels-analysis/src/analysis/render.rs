//! Tables as text: aligned columns (coloured on a terminal) or Markdown.

use std::fmt::Write as _;

use super::table::{Kind, Mark, Table, display, is_numeric};

/// Text cells longer than this are shortened on a terminal (Markdown keeps them whole).
const WIDEST_TEXT: usize = 72;

pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colours only on a terminal, and never with NO_COLOR set (https://no-color.org).
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal as _;
        Self {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn shorten(kind: Kind, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= WIDEST_TEXT {
        return text.to_owned();
    }
    let keep = WIDEST_TEXT - 1;
    if kind == Kind::Path {
        format!(
            "…{}",
            chars[chars.len() - keep..].iter().collect::<String>()
        )
    } else {
        format!("{}…", chars[..keep].iter().collect::<String>())
    }
}

pub fn text(table: &Table, style: &Style) -> String {
    let mut out = String::new();
    if !table.title.is_empty() {
        let _ = writeln!(out, "{}", style.paint("1;36", &table.title));
    }
    if let Some(note) = &table.note {
        let _ = writeln!(out, "{}", style.paint("2", note));
    }
    if table.rows.is_empty() {
        let _ = writeln!(out, "  (nothing)\n");
        return out;
    }
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&table.columns)
                .map(|(cell, column)| shorten(column.kind, &display(column.kind, cell)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([column.title.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(&table.columns)
            .zip(&widths)
            .map(|((value, column), &width)| {
                if is_numeric(column.kind) {
                    format!("{value:>width$}")
                } else {
                    format!("{value:<width$}")
                }
            })
            .collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    if table.columns.iter().any(|c| !c.title.is_empty()) {
        let header = line(table.columns.iter().map(|c| c.title.to_string()).collect());
        let _ = writeln!(out, "{}", style.paint("1", &header));
    }
    for (row, mark) in cells.into_iter().zip(&table.marks) {
        let row = line(row);
        let row = match mark {
            Mark::Plain => row,
            Mark::Worse => style.paint("31", &row),
            Mark::Better => style.paint("32", &row),
        };
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
    out
}

pub fn markdown(table: &Table) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", table.title);
    if let Some(note) = &table.note {
        let _ = writeln!(out, "{note}\n");
    }
    if table.rows.is_empty() {
        let _ = writeln!(out, "(nothing)\n");
        return out;
    }
    let escape = |s: &str| s.replace('|', "\\|");
    let titles: Vec<String> = table.columns.iter().map(|c| escape(&c.title)).collect();
    let _ = writeln!(out, "| {} |", titles.join(" | "));
    let rules: Vec<&str> = table
        .columns
        .iter()
        .map(|c| if is_numeric(c.kind) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |", rules.join(" | "));
    for (row, mark) in table.rows.iter().zip(&table.marks) {
        let cells: Vec<String> = row
            .iter()
            .zip(&table.columns)
            .map(|(cell, column)| escape(&display(column.kind, cell)))
            .collect();
        let flag = match mark {
            Mark::Plain => "",
            Mark::Worse => " ⚠",
            Mark::Better => "",
        };
        let _ = writeln!(out, "| {}{flag} |", cells.join(" | "));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::table::{Cell, column};

    fn sample() -> Table {
        let mut t = Table::new(
            "t",
            "System calls",
            vec![
                column("syscall", "syscall", Kind::Text),
                column("calls", "calls", Kind::Count),
                column("total_ns", "total", Kind::Duration),
            ],
        );
        t.push(
            vec![
                Cell::Text("read".into()),
                Cell::Int(1234567),
                Cell::Int(1_500_000),
            ],
            Mark::Plain,
        );
        t.push(
            vec![Cell::Text("fsync|x".into()), Cell::Int(3), Cell::Empty],
            Mark::Worse,
        );
        t
    }

    #[test]
    fn text_aligns_numbers_right_and_uses_no_escapes_off_a_terminal() {
        let out = text(&sample(), &Style { colour: false });
        assert_eq!(
            out,
            "System calls\n  syscall      calls   total\n  read     1,234,567  1.5 ms\n  fsync|x          3\n\n"
        );
        assert!(text(&sample(), &Style { colour: true }).contains("\x1b[31m"));
    }

    #[test]
    fn markdown_escapes_pipes_and_flags_regressions() {
        let out = markdown(&sample());
        assert!(out.contains("| syscall | calls | total |\n| --- | ---: | ---: |\n"));
        assert!(out.contains("| fsync\\|x | 3 |  ⚠ |"));
    }
}
