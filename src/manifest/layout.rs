//! The canonical layout of a manifest, and the formatter behind `fleetform fmt`.
//!
//! The canonical layout is the one `fleetform import` writes: two spaces per level, block
//! sequences indented under their key (`locations:` then `  - name: HQ`), one space after
//! `key:` and after `-`, no trailing whitespace, no tabs or blank lines at the start, at
//! most one blank line in a row, and one newline at the end.
//!
//! What [`format`] never does:
//! - drop or move a comment (a full-line comment takes the indentation of the line after
//!   it; a comment at the end of a line stays where it is);
//! - reorder keys, or change any value: only whitespace at the start of a line, after `key:`
//!   and after `-` changes, and literal/folded block scalars (`|`, `>`) keep their content
//!   lines exactly, only shifted as a whole.
//!
//! [`format_checked`] refuses a result that does not parse to exactly the same YAML documents
//! as the original (an unusual construct, e.g. a block scalar with an explicit indentation
//! indicator).

/// [`format`], refused unless the result parses to the same documents as `text`.
pub fn format_checked(text: &str) -> Result<String, String> {
    let before = documents(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let formatted = format(text);
    match documents(&formatted) {
        Ok(after) if after == before => Ok(formatted),
        _ => Err("it uses a layout the formatter cannot rewrite without changing a value".into()),
    }
}

/// Every YAML document of `text` with its tags, compared by content alone (not by where
/// things are: that is what formatting changes).
#[derive(Debug)]
struct Documents(super::span::Parsed);

impl PartialEq for Documents {
    fn eq(&self, other: &Self) -> bool {
        use super::span::{Node, NodeKind};
        fn same(a: &Node, b: &Node) -> bool {
            match (&a.kind, &b.kind) {
                (NodeKind::Scalar { value, plain }, NodeKind::Scalar { value: v, plain: p }) => {
                    value == v && plain == p
                }
                (NodeKind::Seq(x), NodeKind::Seq(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                }
                (NodeKind::Map(x), NodeKind::Map(y)) => {
                    x.len() == y.len()
                        && x.iter()
                            .zip(y)
                            .all(|(a, b)| same(&a.key, &b.key) && same(&a.value, &b.value))
                }
                _ => false,
            }
        }
        let (a, b) = (&self.0, &other.0);
        a.docs.len() == b.docs.len()
            && a.docs.iter().zip(&b.docs).all(|(x, y)| same(x, y))
            && a.tags.iter().map(|t| &t.1).eq(b.tags.iter().map(|t| &t.1))
    }
}

/// Every YAML document of `text`; a syntax error says where.
fn documents(text: &str) -> Result<Documents, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    super::span::parse(text).map(Documents).map_err(|e| {
        format!(
            "{} at line {} column {}",
            e.message, e.pos.line, e.pos.column
        )
    })
}

/// One level of block nesting: where its lines started in the input and start in the output.
#[derive(Clone, Copy, Debug)]
struct Level {
    old: usize,
    new: usize,
    /// A block sequence written at its key's own column (`key:` then `- a` below it), which
    /// the canonical layout indents; it ends at the next line at that column that is not `-`.
    compact_seq: bool,
}

/// An open literal or folded block scalar: its content lines are shifted as a whole.
struct Block {
    /// Lines indented more than this (or blank) belong to the scalar.
    parent_old: usize,
    /// Where the scalar's content goes in the output.
    content_new: usize,
    /// The content's indentation in the input, known at its first non-blank line.
    content_old: Option<usize>,
}

/// Rewrites `text` in the canonical layout (see the module docs). Pure and idempotent; the
/// caller checks the meaning is unchanged ([`format_checked`]).
pub fn format(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<String> = Vec::new();
    // Full-line comments (and blank lines, as "") waiting for the next content line, which
    // gives the comments their indentation.
    let mut pending: Vec<&str> = Vec::new();
    let mut levels: Vec<Level> = Vec::new();
    let mut block: Option<Block> = None;
    // Whether the previous content line was `key:` with its value in the lines below.
    let mut prev_opens = false;

    let flush = |out: &mut Vec<String>, pending: &mut Vec<&str>, indent: usize| {
        for c in pending.drain(..) {
            if c.is_empty() {
                if out.last().is_some_and(|l| !l.is_empty()) {
                    out.push(String::new());
                }
            } else {
                out.push(format!("{}{}", " ".repeat(indent), c));
            }
        }
    };

    for raw in text.lines() {
        let line = raw.trim_end();
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = &line[indent..];

        if let Some(b) = &mut block {
            if body.is_empty() {
                out.push(String::new());
                continue;
            }
            if indent > b.parent_old {
                let content_old = *b.content_old.get_or_insert(indent);
                let new_indent = (b.content_new + indent).saturating_sub(content_old);
                out.push(format!("{}{}", " ".repeat(new_indent), body));
                continue;
            }
            block = None;
            // Blank lines after a block scalar separate it from what follows: keep one.
            if out.last().is_some_and(String::is_empty) {
                while out.last().is_some_and(String::is_empty) {
                    out.pop();
                }
                pending.push("");
            }
        }

        if body.is_empty() {
            if pending.last() != Some(&"") {
                pending.push("");
            }
            continue;
        }
        if body.starts_with('#') {
            pending.push(body);
            continue;
        }
        if indent == 0 && (body == "---" || body.starts_with("--- ") || body == "...") {
            flush(&mut out, &mut pending, 0);
            out.push(body.to_string());
            levels.clear();
            prev_opens = false;
            continue;
        }

        // Find this line's level.
        let is_item = body == "-" || body.starts_with("- ");
        while levels.last().is_some_and(|l| l.old > indent) {
            levels.pop();
        }
        if let Some(top) = levels.last()
            && top.compact_seq
            && top.old == indent
            && !is_item
        {
            levels.pop();
        }
        let same_column_as_key = levels.last().is_some_and(|l| l.old == indent);
        let new_indent = match levels.last() {
            Some(top) if top.old == indent => top.new,
            Some(top) if top.old < indent => {
                let new = top.new + 2;
                levels.push(Level {
                    old: indent,
                    new,
                    compact_seq: false,
                });
                new
            }
            _ if levels.is_empty() => {
                levels.push(Level {
                    old: indent,
                    new: 0,
                    compact_seq: false,
                });
                0
            }
            _ => unreachable!("levels above this line's indentation were popped"),
        };
        let new_indent = if is_item && prev_opens && same_column_as_key {
            // `key:` then `- a` at the same column: indent the sequence under its key.
            let new = new_indent + 2;
            levels.push(Level {
                old: indent,
                new,
                compact_seq: true,
            });
            new
        } else {
            new_indent
        };

        // Sequence item markers: `-   x` becomes `- x`, and the item's content (which may be
        // a nested `- y`) opens a level at its own column.
        let mut rest = body;
        let mut col_old = indent;
        let mut col_new = new_indent;
        let mut prefix = String::new();
        while rest == "-" || rest.starts_with("- ") {
            let after = rest[1..].trim_start_matches(' ');
            if after.is_empty() || after.starts_with('#') {
                break;
            }
            let consumed = rest.len() - after.len();
            prefix.push_str("- ");
            col_old += consumed;
            col_new += 2;
            levels.push(Level {
                old: col_old,
                new: col_new,
                compact_seq: false,
            });
            rest = after;
        }
        let rest = normalize_key_spacing(rest);

        flush(&mut out, &mut pending, new_indent);
        let content = format!("{prefix}{rest}");
        out.push(format!("{}{}", " ".repeat(new_indent), content));

        prev_opens = opens_block(&content);
        if let Some(kind) = block_scalar_start(&content) {
            block = Some(Block {
                parent_old: indent,
                content_new: match kind {
                    // The scalar is the value of a `- |` item: content under the item's text.
                    BlockOwner::Item => col_new,
                    BlockOwner::Key => col_new + 2,
                },
                content_old: None,
            });
            if let BlockOwner::Item = kind {
                block.as_mut().expect("just set").parent_old = col_old - 1;
            }
            prev_opens = false;
        }
    }
    // Comments at the end of the file, then no blank lines at its end.
    if block.is_some() {
        while out.last().is_some_and(String::is_empty) {
            out.pop();
        }
    }
    flush(&mut out, &mut pending, 0);
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    if out.is_empty() {
        return String::new();
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Who a block scalar belongs to: a mapping key (`key: |`) or a sequence item (`- |`).
enum BlockOwner {
    Key,
    Item,
}

/// Whether `content` (a line without its indentation) starts a literal or folded block
/// scalar: `key: |`, `key: >-`, `- |+`, optionally followed by a comment.
fn block_scalar_start(content: &str) -> Option<BlockOwner> {
    let without_comment = strip_trailing_comment(content).trim_end();
    let (owner, value) = if let Some(v) = key_value(without_comment) {
        (BlockOwner::Key, v)
    } else {
        let mut v = without_comment;
        let mut item = false;
        while let Some(r) = v.strip_prefix("- ") {
            v = r.trim_start();
            item = true;
        }
        if !item {
            return None;
        }
        (BlockOwner::Item, v)
    };
    let mut chars = value.chars();
    match chars.next() {
        Some('|' | '>') if chars.all(|c| matches!(c, '+' | '-' | '0'..='9')) => Some(owner),
        _ => None,
    }
}

/// Whether `content` is `key:` with its value on the following lines (a nested mapping or a
/// sequence), optionally followed by a comment.
fn opens_block(content: &str) -> bool {
    let c = strip_trailing_comment(content).trim_end();
    let c = c.trim_start_matches("- ").trim_start();
    c.ends_with(':') && plain_key(&c[..c.len() - 1])
}

/// The value after `key:` when `content` starts with a plain key, else `None`.
fn key_value(content: &str) -> Option<&str> {
    let colon = content
        .find(": ")
        .or_else(|| content.strip_suffix(':').map(str::len))?;
    if !plain_key(&content[..colon]) {
        return None;
    }
    Some(content[colon + 1..].trim_start())
}

/// A key fleetform manifests use, written plain: letters, digits, `_`, `-`, `.`, `/`.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('-')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// `key:    value` → `key: value` for a plain key; anything else unchanged.
fn normalize_key_spacing(content: &str) -> String {
    if let Some(colon) = content.find(':')
        && plain_key(&content[..colon])
    {
        let after = &content[colon + 1..];
        if after.starts_with(' ') {
            return format!("{}: {}", &content[..colon], after.trim_start());
        }
    }
    content.to_string()
}

/// `content` without a ` # comment` at its end. Conservative: only when no quote or flow
/// bracket comes before the `#`, since one could hide a `#` inside a string.
fn strip_trailing_comment(content: &str) -> &str {
    match content.find(" #") {
        Some(i) if !content[..i].contains(['"', '\'', '[', '{']) => &content[..i],
        _ => content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn fmt(text: &str) -> String {
        let once = format_checked(text).expect("formats");
        assert_eq!(format(&once), once, "formatting is idempotent");
        once
    }

    #[test]
    fn indentation_becomes_two_spaces_and_sequences_are_indented() {
        let input = "\
organization:    acme
locations:
- name: HQ
  machines:
      -   name: arm-01
          parts:
              - name: main
";
        assert_eq!(
            fmt(input),
            "\
organization: acme
locations:
  - name: HQ
    machines:
      - name: arm-01
        parts:
          - name: main
"
        );
    }

    #[test]
    fn comments_and_key_order_are_kept() {
        let input = "\
# The fleet.
zeta: 1   # last letter first


    # about alpha
alpha:
    # inside
    b: 2
    a: 1
# trailing
";
        assert_eq!(
            fmt(input),
            "\
# The fleet.
zeta: 1   # last letter first

# about alpha
alpha:
  # inside
  b: 2
  a: 1
# trailing
"
        );
    }

    #[test]
    fn block_scalars_keep_their_content() {
        let input = "\
a:
    script: |
        line one
          indented

        after blank
    other: >-
       folded
    list:
    - |
      item text
    - x
";
        let out = fmt(input);
        assert_eq!(
            out,
            "\
a:
  script: |
    line one
      indented

    after blank
  other: >-
    folded
  list:
    - |
      item text
    - x
"
        );
    }

    #[test]
    fn sequences_of_sequences_and_documents() {
        let input = "a:\n- - 1\n  - 2\n---\nb: [1,\n   2]\n";
        assert_eq!(fmt(input), "a:\n  - - 1\n    - 2\n---\nb: [1,\n  2]\n");
    }

    #[test]
    fn a_result_with_another_meaning_is_refused() {
        // An explicit indentation indicator fixes the content's column: shifting it would
        // change the value, so the file is refused rather than rewritten.
        let input = "a:\n    b: |2\n        x\n";
        assert!(format_checked(input).is_err());
        assert!(format_checked("a: [unclosed\n").is_err());
    }

    #[test]
    fn empty_and_blank_files() {
        assert_eq!(format(""), "");
        assert_eq!(fmt("\n\n# only a comment\n\n"), "# only a comment\n");
    }
}
