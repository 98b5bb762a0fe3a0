//! The tables' documentation checked against their schemas: each tracer's page in
//! `docs/tracers/` must name every column its tables have, and its column tables no column
//! they lack, so the page cannot go stale unnoticed. (Descriptions are written by hand; the
//! columns come from the code.)

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;
use tracers::catalogue;

/// Asserts that `tables` are the tables the catalogue gives `tracer`, and that
/// `docs/tracers/TRACER.md` documents each one's columns and no others.
pub fn assert_documented(tracer: &str, tables: &[(&str, SchemaRef)]) {
    let info = catalogue::find(tracer).expect("a tracer of the catalogue");
    let names: Vec<&str> = tables.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, info.tables, "{tracer}: tables against the catalogue");
    let path = format!("{}/../docs/tracers/{tracer}.md", env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (table, schema) in tables {
        let section = section(&page, table)
            .unwrap_or_else(|| panic!("{path}: no section headed \"### `{table}.parquet`\""));
        let columns: BTreeSet<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let named = named(section);
        let undocumented: Vec<&&str> = columns
            .iter()
            .filter(|column| !named.iter().any(|name| name.covers(column)))
            .collect();
        assert!(
            undocumented.is_empty(),
            "{path}: `{table}` columns not documented: {undocumented:?}"
        );
        let unknown: Vec<&str> = table_rows_columns(section)
            .filter(|name| !columns.contains(name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{path}: `{table}` documents columns it does not have: {unknown:?}"
        );
    }
}

/// The text under the heading of `table`, up to the next heading.
fn section<'a>(page: &'a str, table: &str) -> Option<&'a str> {
    let heading = format!("### `{table}.parquet`");
    let start = page.find(&heading)? + heading.len();
    let rest = &page[start..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A name the documentation gives: one column, or a numbered range written `` `a0`..`a5` ``.
enum Named<'a> {
    One(&'a str),
    Range(&'a str, u32, u32),
}

impl Named<'_> {
    fn covers(&self, column: &str) -> bool {
        match *self {
            Named::One(name) => name == column,
            Named::Range(prefix, first, last) => column
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (first..=last).contains(&n)),
        }
    }
}

/// Every `` `code` `` span of `text`, ranges joined.
fn named(text: &str) -> Vec<Named<'_>> {
    let spans: Vec<(usize, &str)> = code_spans(text).collect();
    let mut named: Vec<Named<'_>> = spans.iter().map(|&(_, span)| Named::One(span)).collect();
    for pair in spans.windows(2) {
        let [(_, first), (at, last)] = [pair[0], pair[1]];
        let between_is_dots = text[..at].ends_with("`..");
        let split = |s: &'_ str| {
            let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let (prefix, n) = s.split_at(s.len() - digits);
            Some((prefix.to_owned(), n.parse::<u32>().ok()?))
        };
        if between_is_dots
            && let (Some((prefix, from)), Some((prefix_to, to))) = (split(first), split(last))
            && prefix == prefix_to
        {
            named.push(Named::Range(&first[..prefix.len()], from, to));
        }
    }
    named
}

/// The code spans of `text`, with the byte offset of each one's opening backtick.
fn code_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = 0;
    std::iter::from_fn(move || {
        let open = rest + text[rest..].find('`')?;
        let close = open + 1 + text[open + 1..].find('`')?;
        rest = close + 1;
        Some((open, &text[open + 1..close]))
    })
}

/// The column names in the first cells of the section's Markdown table rows.
fn table_rows_columns(section: &str) -> impl Iterator<Item = &str> {
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| code_spans(cell).map(|(_, span)| span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tracers_page_documents_every_column() {
        assert_documented(
            "syscalls",
            &[
                ("syscalls", crate::syscalls::tables::stats_schema()),
                ("syscall_events", crate::syscalls::tables::events_schema()),
            ],
        );
        assert_documented(
            "block",
            &[
                ("block_io", crate::block::tables::events_schema()),
                ("block_io_stats", crate::block::tables::stats_schema()),
            ],
        );
        assert_documented(
            "files",
            &[
                ("file_io", crate::files::tables::stats_schema()),
                ("file_io_events", crate::files::tables::events_schema()),
            ],
        );
        assert_documented(
            "protocols",
            &[
                (
                    "connections",
                    crate::protocols::tables::connections_schema(),
                ),
                ("sql", crate::protocols::tables::sql_schema()),
                ("http", crate::protocols::tables::http_schema()),
                ("rpc", crate::protocols::tables::rpc_schema()),
                ("cache", crate::protocols::cache::cache_schema()),
            ],
        );
        assert_documented(
            "proc",
            &[
                ("proc_stats", crate::proc::tables::proc_schema()),
                ("system_stats", crate::proc::tables::system_schema()),
                ("disk_stats", crate::proc::tables::disk_schema()),
                ("net_stats", crate::proc::tables::net_schema()),
            ],
        );
        assert_documented(
            "python",
            &[
                ("python_samples", crate::python::tables::samples_schema()),
                ("python_stacks", crate::python::tables::stacks_schema()),
                ("python_calls", crate::python::tables::calls_schema()),
            ],
        );
    }

    #[test]
    fn ranges_and_table_cells_are_read() {
        let text = "| `a`, `b` | uint32 | x |\n| `c` | y |\n`arg0`..`arg5` (uint64)";
        let named = named(text);
        assert!(named.iter().any(|n| n.covers("arg3")));
        assert!(!named.iter().any(|n| n.covers("arg6")));
        assert!(named.iter().any(|n| n.covers("b")));
        let cells: Vec<&str> = table_rows_columns(text).collect();
        assert_eq!(cells, ["a", "b", "c"]);
        let page = "### `t.parquet`: rows\nbody `x`\n### `u.parquet`\n";
        assert_eq!(section(page, "t"), Some(": rows\nbody `x`"));
        assert_eq!(section(page, "v"), None);
    }
}
