//! A report as one self-contained HTML page: inline CSS, tables with inline SVG bars, and the
//! flame graphs inlined (each in a sandboxed frame so their scripts keep to themselves). No
//! external assets: the file can be mailed or attached to a ticket.

use std::fmt::Write as _;

use super::table::{Cell, Mark, Table, display, is_numeric};

/// Widest bar, in pixels.
const BAR: f64 = 160.0;

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin: 2em 0 .2em; }
p.note { color: #5b6472; margin: 0 0 .5em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
table { border-collapse: collapse; }
th, td { padding: .2em .6em; text-align: left; white-space: nowrap; }
th { border-bottom: 2px solid #c9ced6; }
tr:nth-child(even) td { background: #f3f5f8; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { max-width: 38em; overflow: hidden; text-overflow: ellipsis; }
tr.worse td { color: #b3261e; } tr.better td { color: #1e7b34; }
svg.bar rect { fill: #4e79a7; }
iframe.flame { width: 100%; border: 1px solid #c9ced6; }
";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(i) => Some(*i as f64),
        Cell::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

fn table(out: &mut String, table: &Table) {
    let _ = writeln!(out, "<section><h2>{}</h2>", escape(&table.title));
    if let Some(note) = &table.note {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    if table.rows.is_empty() {
        out.push_str("<p>(nothing)</p></section>\n");
        return;
    }
    let bar = table
        .bar
        .and_then(|key| table.columns.iter().position(|c| c.key == key));
    let widest = bar.map_or(0.0, |i| {
        table
            .rows
            .iter()
            .filter_map(|row| number(&row[i]))
            .fold(0.0, f64::max)
    });
    out.push_str("<table><thead><tr>");
    for (i, column) in table.columns.iter().enumerate() {
        let class = if is_numeric(column.kind) {
            "num"
        } else {
            "text"
        };
        let _ = write!(out, "<th class=\"{class}\">{}</th>", escape(&column.title));
        if Some(i) == bar {
            out.push_str("<th></th>");
        }
    }
    out.push_str("</tr></thead><tbody>\n");
    for (row, mark) in table.rows.iter().zip(&table.marks) {
        let class = match mark {
            Mark::Plain => "",
            Mark::Worse => " class=\"worse\"",
            Mark::Better => " class=\"better\"",
        };
        let _ = write!(out, "<tr{class}>");
        for (i, (cell, column)) in row.iter().zip(&table.columns).enumerate() {
            let text = display(column.kind, cell);
            let class = if is_numeric(column.kind) {
                "num"
            } else {
                "text"
            };
            let _ = write!(
                out,
                "<td class=\"{class}\" title=\"{0}\">{0}</td>",
                escape(&text)
            );
            if Some(i) == bar {
                let width = match number(cell) {
                    Some(v) if widest > 0.0 => (v / widest * BAR).max(0.0),
                    _ => 0.0,
                };
                let _ = write!(
                    out,
                    "<td><svg class=\"bar\" width=\"{BAR}\" height=\"10\" role=\"img\" \
                     aria-label=\"{}\"><rect width=\"{width:.1}\" height=\"10\" rx=\"2\"/></svg></td>",
                    escape(&text)
                );
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

/// A flame graph to inline: its heading, a note under it, and its SVG document.
pub struct FlameGraph {
    pub title: String,
    pub note: String,
    pub svg: Vec<u8>,
}

/// The page: a summary (a table of field/value rows), the sections, and the flame graphs.
pub fn page(summary: &Table, sections: &[Table], flame_graphs: &[FlameGraph]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{0}</title><style>{STYLE}</style></head><body>\n<h1>{0}</h1>\n<dl>",
        escape(&summary.title)
    );
    for row in &summary.rows {
        if let [Cell::Text(field), Cell::Text(value)] = row.as_slice() {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(field), escape(value));
        }
    }
    out.push_str("</dl>\n");
    for section in sections {
        table(&mut out, section);
    }
    for FlameGraph { title, note, svg } in flame_graphs {
        let svg = String::from_utf8_lossy(svg);
        // The frame's document is HTML: the SVG element alone (no XML prolog), stretched to
        // the frame's width (inferno's script redraws it fluidly) at its own height.
        let svg = &svg[svg.find("<svg").unwrap_or(0)..];
        let height = svg_height(svg).unwrap_or(600) + 4;
        let document = format!(
            "<!DOCTYPE html><style>html, body {{ margin: 0 }} svg {{ width: 100%; height: auto; \
             display: block }}</style>{svg}"
        );
        let _ = writeln!(
            out,
            "<section><h2>{}</h2><p class=\"note\">{}</p><iframe class=\"flame\" \
             sandbox=\"allow-scripts\" height=\"{height}\" srcdoc=\"{}\"></iframe></section>",
            escape(title),
            escape(note),
            escape(&document)
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The `height` attribute of the first `<svg>` element.
fn svg_height(svg: &str) -> Option<u32> {
    let element = &svg[svg.find("<svg")?..];
    let element = &element[..element.find('>')?];
    let value = element.split(" height=\"").nth(1)?;
    value[..value.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::table::{Kind, column};

    #[test]
    fn escapes_text_and_scales_bars_to_the_largest_value() {
        let mut t = Table::new(
            "t",
            "Files <by time>",
            vec![
                column("path", "path", Kind::Path),
                column("total_ns", "total", Kind::Duration),
            ],
        )
        .with_bar("total_ns");
        t.push(
            vec![Cell::Text("/a&b".into()), Cell::Int(2_000_000)],
            Mark::Worse,
        );
        t.push(
            vec![Cell::Text("/c".into()), Cell::Int(500_000)],
            Mark::Plain,
        );
        let summary = Table::new("run", "Report", vec![]);
        let svg =
            b"<?xml version=\"1.0\"?><svg width=\"1200\" height=\"342\"><script>x</script></svg>";
        let flame = FlameGraph {
            title: "Flame".into(),
            note: "Folded <1%".into(),
            svg: svg.to_vec(),
        };
        let html = page(&summary, &[t], &[flame]);
        assert!(html.contains("<h2>Files &lt;by time&gt;</h2>"));
        assert!(html.contains(">/a&amp;b</td>"));
        assert!(html.contains("<tr class=\"worse\">"));
        assert!(html.contains("<rect width=\"160.0\""));
        assert!(html.contains("<rect width=\"40.0\""));
        assert!(html.contains("<h2>Flame</h2><p class=\"note\">Folded &lt;1%</p><iframe"));
        assert!(html.contains("height=\"346\" srcdoc=\"&lt;!DOCTYPE html&gt;"));
        assert!(!html.contains("&lt;?xml"));
        assert!(
            !html.contains("<script>"),
            "the flame graph's script stays escaped"
        );
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
