//! A large manifest read in two parts at once, on two threads.
//!
//! A fleet manifest is mostly one top-level list (`locations:`). The text is cut at an item
//! of that list near its middle: the first part is read as a whole document (the list ends
//! where the text is cut), the second as the rest of that list followed by the top-level
//! keys after it, from the cut's line number on; the second part's items are appended to the
//! list and its keys to the mapping. Every position is the same as in one reading.
//!
//! The result is used only when it is certain to be the one-reading tree: the text starts
//! with a top-level key, both parts are read without anchors or aliases (their limits count
//! over the whole document), the first part ends inside that list (an empty value at its end
//! would be placed in the second part), the second part reaches the end of the text, and the
//! top-level keys are checked for duplicates over both parts. Otherwise the text is read in
//! one go.

use super::super::{Node, NodeKind, Parsed, keys_clean};
use super::{Reader, precheck};

/// From this size on, a text is read in two parts.
pub(super) const MIN_BYTES: usize = 2 << 20;

/// Where the text is cut: the column of the cut list's `-`, and the byte where the second
/// part starts (the line of one of its items).
struct Cut {
    items: usize,
    at: usize,
}

/// The tree of `text` read in two parts, or `None` when it cannot be (read it in one go).
pub(super) fn parse(text: &str) -> Option<Parsed> {
    let cut = plan(text.as_bytes())?;
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| second_part(text, &cut));
        let first = first_part(text, &cut);
        let second = second
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (first, second)
    });
    let (first, second) = (first?, second?);
    let [mut root] = <[Node; 1]>::try_from(first.docs).ok()?;
    let [rest] = <[Node; 1]>::try_from(second.docs).ok()?;
    let (NodeKind::Map(entries), NodeKind::Map(more)) = (&mut root.kind, rest.kind) else {
        return None;
    };
    let NodeKind::Seq(items) = &mut entries.last_mut()?.value.kind else {
        return None;
    };
    let mut more = more.into_iter();
    let NodeKind::Seq(tail) = more.next()?.value.kind else {
        return None;
    };
    items.extend(tail);
    entries.extend(more);
    let key_problems = first.key_problems || second.key_problems || !keys_clean(entries);
    Some(Parsed {
        docs: vec![root],
        tags: Vec::new(),
        key_problems,
    })
}

/// The start of the line after byte `i` (or the end of the text).
fn next_line(s: &[u8], i: usize) -> usize {
    s[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(s.len(), |n| i + n + 1)
}

/// The start of the line holding byte `i`.
fn line_start(s: &[u8], i: usize) -> usize {
    s[..i]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |n| n + 1)
}

/// Whether the line at `ls` starts, at column 1, with something other than a space, a
/// comment, a line end, or (`dash_too`) a list's `-`.
fn top_level(s: &[u8], ls: usize, dash_too: bool) -> bool {
    match s.get(ls) {
        None | Some(b' ' | b'#' | b'\n' | b'\r') => false,
        Some(b'-') => !dash_too,
        Some(_) => true,
    }
}

/// Where to cut `s`: at the first item, after the middle, of the block list that is the
/// value of the top-level key holding the middle.
fn plan(s: &[u8]) -> Option<Cut> {
    // The text starts with a top-level key.
    let mut ls = 0;
    while ls < s.len() && !top_level(s, ls, false) {
        if s[ls] != b'#' && !s[ls..].starts_with(b"\n") && !s[ls..].starts_with(b"\r\n") {
            return None;
        }
        ls = next_line(s, ls);
    }
    if ls == s.len() || s[ls..].starts_with(b"---") || matches!(s[ls], b'-' | b'%') {
        return None;
    }
    // The top-level key before the middle, written `key:` alone on its line.
    let mid = s.len() / 2;
    let mut key = line_start(s, mid);
    while !top_level(s, key, true) {
        if key == 0 {
            return None;
        }
        key = line_start(s, key - 1);
    }
    let end = next_line(s, key);
    let line = s[key..end].trim_ascii_end();
    if !line.ends_with(b":")
        || line[..line.len() - 1]
            .iter()
            .any(|b| b": #'\"[]{}&*!|>?".contains(b))
    {
        return None;
    }
    // Its value is a block list: the first content line is a `-` at some column.
    let mut first = end;
    while first < s.len()
        && matches!(
            s[first..].iter().find(|&&b| b != b' '),
            Some(b'#' | b'\n' | b'\r')
        )
    {
        first = next_line(s, first);
    }
    let items = s[first..].iter().take_while(|&&b| b == b' ').count();
    let dash = |ls: usize| {
        s.get(ls + items) == Some(&b'-')
            && s[ls..ls + items].iter().all(|&b| b == b' ')
            && matches!(s.get(ls + items + 1), None | Some(b' ' | b'\n' | b'\r'))
    };
    if !dash(first) {
        return None;
    }
    // The first item of that list that starts after the middle.
    let mut at = next_line(s, mid);
    while at < s.len() {
        if top_level(s, at, items == 0) {
            return None;
        }
        if at > first && dash(at) {
            return Some(Cut { items, at });
        }
        at = next_line(s, at);
    }
    None
}

/// The text before the cut, read as a document.
fn first_part(text: &str, cut: &Cut) -> Option<Parsed> {
    let head = &text[..cut.at];
    precheck(head.as_bytes()).ok()?;
    let mut r = Reader::new(head, 0, 1);
    r.truncated = true;
    r.documents().ok()?;
    (r.next_anchor == 0 && r.b.aliases == 0).then_some(r.b.parsed)
}

/// The text from the cut: the rest of the list, then the top-level keys after it, as a
/// mapping whose first entry holds the list's items under an empty key.
fn second_part(text: &str, cut: &Cut) -> Option<Parsed> {
    let s = text.as_bytes();
    precheck(&s[cut.at..]).ok()?;
    let line = 1 + s[..cut.at].iter().filter(|&&b| b == b'\n').count();
    let mut r = Reader::new(text, cut.at, u32::try_from(line).ok()?);
    let pos = r.pos(cut.at);
    // The same depth as in one reading: the top-level mapping, then the list.
    r.open(pos, true, 0).ok()?;
    r.b.scalar(pos, Box::default(), true, 0);
    r.open(pos, false, 0).ok()?;
    r.p += cut.items;
    r.seq_items(cut.items, cut.items == 0).ok()?;
    r.b.close();
    match r.next_content().ok()? {
        Some(0) => {
            let key = r.key(false).ok()?;
            r.map_entries(0, key).ok()?;
        }
        Some(_) => return None,
        None => {}
    }
    if r.next_content().ok()?.is_some() || r.p != s.len() {
        return None;
    }
    r.b.close();
    (r.next_anchor == 0 && r.b.aliases == 0).then_some(r.b.parsed)
}
