//! `for_each:` inventories: CSV files, YAML/JSON lists of mappings, or inline lists.

use super::*;

impl Expander<'_> {
    /// The rows of a `for_each` (a file or an inline list), with how rows are named.
    pub(super) fn inventory(&mut self, node: &Node) -> Option<(String, Vec<Row>)> {
        match &node.kind {
            NodeKind::Seq(_) => Some(("for_each".to_string(), self.list_rows(node)?)),
            NodeKind::Scalar { value, .. } => {
                let rel = value.to_string();
                let ext = Path::new(&rel)
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if !matches!(ext.as_deref(), Some("csv" | "yaml" | "yml" | "json")) {
                    self.err(
                        node.pos,
                        format!("inventory `{rel}` must be a .csv, .yaml, .yml or .json file"),
                        "name the file by its format",
                    );
                    return None;
                }
                let (_, text) = self.read(&rel, node.pos, "inventory")?;
                let rows = if ext.as_deref() == Some("csv") {
                    let src = self.file_origin(&rel);
                    match parse_csv(&text, src) {
                        Ok(rows) => rows,
                        Err((pos, message)) => {
                            self.err(pos, message, "write one header row, then one row per machine, separated by commas");
                            return None;
                        }
                    }
                } else {
                    let doc = self.parse_file(&rel, &text)?;
                    self.list_rows(&doc)?
                };
                Some((rel, rows))
            }
            NodeKind::Map(_) => {
                self.err(
                    node.pos,
                    "`for_each` must be an inventory file or a list of mappings",
                    "write e.g. `for_each: inventory/field.csv`",
                );
                None
            }
        }
    }

    pub(super) fn list_rows(&mut self, node: &Node) -> Option<Vec<Row>> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                "an inventory must be a list of mappings",
                "write one `- { name: ..., var: ... }` per machine",
            );
            return None;
        };
        Some(items.iter().map(|i| self.var_map(i)).collect())
    }
}

/// A CSV inventory: a header row, then one row per machine. Fields are separated by commas
/// and may be double-quoted (`""` is a quote inside); blank lines are skipped. Every cell
/// is a string node at its line and column (origin `src`).
pub(super) fn parse_csv(text: &str, src: u32) -> Result<Vec<Row>, (Pos, String)> {
    let mut records: Vec<Vec<(String, Pos)>> = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut col) = (1u32, 1u32);
    let mut record: Vec<(String, Pos)> = Vec::new();
    let mut field = String::new();
    let mut start = Pos {
        line,
        column: col,
        src,
    };
    let mut quoted = false;
    let mut in_quotes = false;
    let mut blank = true;
    while let Some(c) = chars.next() {
        let here = Pos {
            line,
            column: col,
            src,
        };
        col += 1;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    col += 1;
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    col = 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                quoted = true;
                in_quotes = true;
                blank = false;
            }
            '"' => return Err((here, "a quote inside an unquoted CSV field".into())),
            ',' => {
                record.push((std::mem::take(&mut field), start));
                quoted = false;
                blank = false;
                start = Pos {
                    line,
                    column: col,
                    src,
                };
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !blank || !field.is_empty() {
                    record.push((std::mem::take(&mut field), start));
                    records.push(std::mem::take(&mut record));
                }
                field.clear();
                quoted = false;
                blank = true;
                line += 1;
                col = 1;
                start = Pos {
                    line,
                    column: col,
                    src,
                };
            }
            _ => {
                if quoted {
                    return Err((here, "text after a closing quote in a CSV field".into()));
                }
                field.push(c);
                blank = false;
            }
        }
    }
    if in_quotes {
        return Err((start, "a quoted CSV field is not closed".into()));
    }
    if !blank || !field.is_empty() {
        record.push((field, start));
        records.push(record);
    }
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return Err((
            Pos { src, ..Pos::START },
            "the inventory is empty: it needs a header row".into(),
        ));
    };
    let mut seen = HashSet::new();
    for (h, pos) in &header {
        if h.trim().is_empty() {
            return Err((*pos, "an empty column name in the header row".into()));
        }
        if !seen.insert(h.trim()) {
            return Err((
                *pos,
                format!("column `{}` appears twice in the header row", h.trim()),
            ));
        }
    }
    let mut rows = Vec::new();
    for rec in records {
        if rec.len() != header.len() {
            let at = rec.first().map_or(Pos { src, ..Pos::START }, |(_, p)| *p);
            return Err((
                at,
                format!(
                    "this row has {} field(s); the header has {}",
                    rec.len(),
                    header.len()
                ),
            ));
        }
        rows.push(
            header
                .iter()
                .zip(rec)
                .map(|((h, _), (v, pos))| (h.trim().to_string(), scalar(v, false, pos)))
                .collect(),
        );
    }
    Ok(rows)
}
