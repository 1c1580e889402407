//! Layouts for command output: aligned columns ([`Table`]), `Key: value`
//! blocks ([`Fields`]) and one-line JSON ([`write_json`]). Both render into any `io::Write`, so
//! tests snapshot them from a `Vec<u8>`.
//!
//! Unlike buildctl's tabwriter output, columns are padded with spaces (tabs
//! shift with the terminal's tab stops) and no line ends in whitespace.

use std::io::{self, Write};

/// Columns separated by this many spaces.
pub(crate) const GAP: usize = 3;

/// Rows of cells under upper-case headers, each column as wide as its widest cell.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<const N: usize>(headers: [&str; N]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// A table with these headers (a list known only at run time).
    pub(crate) fn from_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Self {
        Self { headers: headers.into_iter().map(str::to_owned).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra cells are kept as extra columns.
    pub(crate) fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let columns = self.rows.iter().map(Vec::len).chain([self.headers.len()]).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (index, width) in widths.iter().enumerate() {
                let cell = line.get(index).map_or("", String::as_str);
                text.push_str(cell);
                let pad = width - cell.chars().count() + GAP;
                text.extend(std::iter::repeat_n(' ', pad));
            }
            writeln!(out, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

/// `Key: value` lines with the values aligned; a key may hold nested lines
/// (indented by two spaces), as in `fbuild workers --verbose`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    lines: Vec<(usize, String, String)>,
}

impl Fields {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn field(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.lines.push((0, format!("{key}:"), value.to_string()));
        self
    }

    /// A field one level in, under the previous heading.
    pub(crate) fn nested(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.lines.push((1, format!("{key}:"), value.to_string()));
        self
    }

    /// A line that opens a group of nested fields.
    pub(crate) fn heading(&mut self, key: &str) -> &mut Self {
        self.lines.push((0, format!("{key}:"), String::new()));
        self
    }

    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let key_width = |lines: &[(usize, String, String)]| {
            lines.iter().filter(|(_, _, value)| !value.is_empty()).map(|(_, key, _)| key.chars().count()).max()
        };
        // Top-level keys align across the block; nested keys align within
        // their group only (label names are much longer than GC rule keys).
        let top: Vec<_> = self.lines.iter().filter(|(level, ..)| *level == 0).cloned().collect();
        let top_width = key_width(&top).unwrap_or(0);
        let mut index = 0;
        while index < self.lines.len() {
            let level = self.lines[index].0;
            let run = self.lines[index..].iter().take_while(|(l, ..)| *l == level).count();
            let group = &self.lines[index..index + run];
            let width = if level == 0 { top_width } else { key_width(group).unwrap_or(0) };
            let indent = "  ".repeat(level);
            for (_, key, value) in group {
                if value.is_empty() {
                    writeln!(out, "{indent}{key}")?;
                } else {
                    writeln!(out, "{indent}{key:<width$} {value}")?;
                }
            }
            index += run;
        }
        Ok(())
    }
}

/// One JSON document on one line (compact, like buildctl's `{{json .}}`).
pub(crate) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// What `write` renders, as text: for the commands' snapshot tests.
#[cfg(test)]
pub(crate) fn rendered(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("tables are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut table = Table::new(["ID", "PLATFORMS"]);
        table.row(["w1".to_owned(), "linux/amd64,linux/386".to_owned()]);
        table.row(["worker-two".to_owned(), "linux/arm64".to_owned()]);
        table.row(["µ".to_owned()]);
        let text = rendered(|out| table.write_to(out));
        insta::assert_snapshot!(text, @r"
        ID           PLATFORMS
        w1           linux/amd64,linux/386
        worker-two   linux/arm64
        µ
        ");
    }

    #[test]
    fn fields_align_per_level() {
        let mut fields = Fields::new();
        fields.field("ID", "w1").field("Platforms", "linux/amd64").heading("Labels");
        fields.nested("org.mobyproject.buildkit.worker.executor", "oci");
        fields.nested("short", "x");
        let text = rendered(|out| fields.write_to(out));
        insta::assert_snapshot!(text, @r"
        ID:        w1
        Platforms: linux/amd64
        Labels:
          org.mobyproject.buildkit.worker.executor: oci
          short:                                    x
        ");
    }
}
