//! The manifest-specialised YAML reader: the subset of YAML that manifests use, read straight
//! from the text's bytes into the same [`Node`](super::Node) tree as yaml-rust2's event
//! parser gives (same positions, scalar styles, anchors and aliases, limits).
//!
//! # Why
//! Reading the realistic fleet M (7 MB of YAML) took 0.38 s, of which yaml-rust2's scanner
//! and parser were about 30 % and malloc/free another quarter: its scanner builds a `String`
//! per token character by character, with a look-ahead buffer of `char`s and a token queue,
//! and the parser hands every scalar over in a fresh `String`. Reading the events alone took
//! 0.16 s (libyaml: 0.13 s). This reader goes over the bytes once, finds the end of a scalar
//! with a table lookup per byte, slices it from the text (one allocation, the tree's
//! `Box<str>`; quoted scalars with escapes are the only ones built piece by piece) and keeps
//! the line and column as it goes (the column is counted in characters, as yaml-rust2 does,
//! only when a line is not ASCII). Measured with the fleet bench on the shared 2-core machine
//! (best of several runs): M's load went from 0.31 s to 0.16 s and L's (70 MB) from 3.3 s to
//! 1.8 s; reading and building the tree is now about 12 % of M's load.
//!
//! # The subset
//! - Block mappings and sequences (also a sequence at its key's indentation, and compact
//!   `- key: value` / `- - item` items), keys on one line (plain or quoted, under 1,000 bytes).
//! - Plain scalars on one line; single- and double-quoted scalars on one line (with every
//!   escape YAML defines: `\n`, `\"`, `\xNN`, `\uNNNN`, `\UNNNNNNNN`, …).
//! - Flow sequences and mappings, nested, on one line or several (lines indented past the
//!   enclosing block), JSON-style `{"key":value}` too.
//! - Comments, blank lines, CRLF line ends, `---` and `...` lines between documents.
//! - Anchors (`&name`, names of letters, digits, `_`, `-`, `.`) and aliases, with the same
//!   limits ([`MAX_ALIASES`](super::MAX_ALIASES),
//!   [`MAX_ALIAS_EXPANSION`](super::MAX_ALIAS_EXPANSION)) and the same depth limit
//!   ([`MAX_YAML_DEPTH`](super::MAX_YAML_DEPTH)), applied by the same tree builder.
//!
//! Anything else answers [`Unsupported`], and [`super::parse`] reads the whole text again
//! with yaml-rust2: block scalars (`|`, `>`), multi-line plain or quoted scalars, tags,
//! complex keys (`?`, a collection as a key), directives (`%`), tabs or other control
//! characters anywhere, a byte order mark inside the text, a lone CR, empty list items,
//! empty values in flow collections, trailing commas, anchors on keys, and every syntax
//! error or exceeded limit (so syntax errors and limit errors are always yaml-rust2's, with
//! its positions and messages). Falling back costs the time this reader spent before it
//! stopped. Manifests written by hand or generated stay inside the subset; one exported with
//! a multi-line string (written as a block scalar) is read by yaml-rust2.

use super::{Builder, Parsed, Pos};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// This reader does not handle what the text holds (or the text is not valid YAML): read it
/// with yaml-rust2. `why` names the construct, `at` the byte offset (for tests and debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unsupported {
    pub why: &'static str,
    pub at: usize,
}

type R<T = ()> = Result<T, Unsupported>;

/// Reads every document of `text`, or says it cannot; `stream_configs` as in
/// [`super::parse_manifest`].
///
/// With `stream_configs`, inline configs are written without nodes as they are read; a
/// config that turns out to need its nodes (not clean, or holding an anchor or alias) is
/// noted, and the text is read again with the configs noted so far kept as nodes (and
/// written at their end, when clean). After [`MAX_REREADS`] such readings, every config is
/// read as nodes.
pub(super) fn parse(text: &str, stream_configs: bool) -> Result<Parsed, Unsupported> {
    precheck(text.as_bytes())?;
    let mut keep = HashSet::new();
    for reading in 0.. {
        let direct = (stream_configs && reading <= MAX_REREADS).then(|| std::mem::take(&mut keep));
        let mut r = Reader {
            text,
            s: text.as_bytes(),
            p: 0,
            line: 1,
            line_start: 0,
            ascii_to: Cell::new(0),
            b: Builder {
                stream_configs,
                direct_configs: direct,
                ..Builder::default()
            },
            anchors: HashMap::new(),
            next_anchor: 0,
        };
        let read = r.documents();
        // Stopped, perhaps for want of a config's nodes (an alias of an anchor in it): read
        // again if some config was written without nodes that needed them.
        if read.is_err() {
            r.b.stopped();
        }
        if r.b.redo.is_empty() {
            return read.map(|()| r.b.parsed);
        }
        keep = r.b.direct_configs.take().unwrap_or_default();
        keep.extend(r.b.redo);
    }
    unreachable!("the last reading writes no config without nodes")
}

/// How many times a text is read again for configs that need their nodes (see [`parse`]).
const MAX_REREADS: usize = 3;

/// Bytes no manifest holds and this reader does not handle: control characters other than
/// LF and CRLF (tabs included), and a byte order mark (U+FEFF) inside the text.
fn precheck(s: &[u8]) -> R {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if SPECIAL[b as usize] & PRE != 0 {
            match b {
                b'\r' if s.get(i + 1) == Some(&b'\n') => {}
                0xEF if !s[i..].starts_with("\u{feff}".as_bytes()) => {}
                _ => {
                    return Err(Unsupported {
                        why: "control character or byte order mark",
                        at: i,
                    });
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// Byte classes (bit flags) for the scanning loops.
const PRE: u8 = 1; // looked at by `precheck`
const BLOCK_STOP: u8 = 2; // may end a plain scalar in block context
const FLOW_STOP: u8 = 4; // may end a plain scalar in flow context
const DOUBLE_STOP: u8 = 8; // may end a run of a double-quoted scalar
const SINGLE_STOP: u8 = 16; // may end a run of a single-quoted scalar

const SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = PRE;
        c += 1;
    }
    t[b'\n' as usize] = BLOCK_STOP | FLOW_STOP | DOUBLE_STOP | SINGLE_STOP;
    t[b'\r' as usize] = PRE | BLOCK_STOP | FLOW_STOP | DOUBLE_STOP | SINGLE_STOP;
    t[0xEF] = PRE;
    t[b' ' as usize] = BLOCK_STOP | FLOW_STOP;
    t[b':' as usize] = BLOCK_STOP | FLOW_STOP;
    t[b',' as usize] = FLOW_STOP;
    t[b'[' as usize] = FLOW_STOP;
    t[b']' as usize] = FLOW_STOP;
    t[b'{' as usize] = FLOW_STOP;
    t[b'}' as usize] = FLOW_STOP;
    t[b'"' as usize] = DOUBLE_STOP;
    t[b'\\' as usize] = DOUBLE_STOP;
    t[b'\'' as usize] = SINGLE_STOP;
    t
};

fn is_flow(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

/// Where a node starts on its line, which decides what may follow it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// First on its line (a block value on the lines below its key or dash).
    LineStart,
    /// After `- ` on the dash's line: a compact mapping or list may start here.
    AfterDash,
    /// After `key: `: a scalar, flow collection or alias only.
    AfterKey,
    /// After an anchor on the same line: what follows `key: ` may (the anchor is not a
    /// key's).
    AfterAnchor,
}

/// A scanned scalar.
struct Scalar<'a> {
    pos: Pos,
    /// Sliced from the text, unless it has escapes.
    value: Cow<'a, str>,
    plain: bool,
}

struct Reader<'a> {
    text: &'a str,
    s: &'a [u8],
    /// The cursor, a byte offset.
    p: usize,
    /// The cursor's 1-based line, and where that line starts.
    line: u32,
    line_start: usize,
    /// The cursor's line is ASCII up to this byte (if it is past the line's start): there a
    /// column is a byte count.
    ascii_to: Cell<usize>,
    b: Builder,
    /// The latest id of every anchor name (a name may be anchored again).
    anchors: HashMap<&'a str, usize>,
    next_anchor: usize,
}

impl<'a> Reader<'a> {
    fn no(&self, why: &'static str) -> Unsupported {
        Unsupported { why, at: self.p }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.p).copied()
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    /// Whether byte `i` is a space, a line end, or the end of the text.
    fn blank_at(&self, i: usize) -> bool {
        matches!(self.peek_at(i), None | Some(b' ' | b'\n' | b'\r'))
    }

    fn eol_at(&self, i: usize) -> bool {
        matches!(self.peek_at(i), None | Some(b'\n' | b'\r'))
    }

    /// The position of byte `off` on the cursor's line (yaml-rust2 counts characters).
    fn pos(&self, off: usize) -> Pos {
        let known = self.ascii_to.get().max(self.line_start);
        if off <= known || self.s[known..off].is_ascii() {
            self.ascii_to.set(off.max(known));
            return Pos {
                line: self.line,
                column: u32::try_from(off - self.line_start + 1).unwrap_or(u32::MAX),
                src: 0,
            };
        }
        self.pos_in(self.line, self.line_start, off)
    }

    /// The position of byte `off` on `line`, which starts at byte `start`.
    fn pos_in(&self, line: u32, start: usize, off: usize) -> Pos {
        let seg = &self.s[start..off];
        let col = if seg.is_ascii() {
            seg.len()
        } else {
            seg.iter().filter(|&&b| (b as i8) >= -0x40).count()
        };
        Pos {
            line,
            column: u32::try_from(col + 1).unwrap_or(u32::MAX),
            src: 0,
        }
    }

    /// Where yaml-rust2 places an empty value at the end of the text, in a mapping at
    /// column `indent`: at the text's end when that is left of the mapping's column (the
    /// mapping closes there), else at the start of the line after the text.
    fn eof_pos(&self, indent: usize) -> Pos {
        let breaks = self.s.iter().filter(|&&b| b == b'\n').count();
        let last = self
            .s
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let end = self.pos_in(breaks as u32 + 1, last, self.s.len());
        if (end.column as usize) <= indent {
            end
        } else if end.column > 1 {
            Pos::new(breaks + 2, 1)
        } else {
            end
        }
    }

    /// Skips spaces; whether there were any.
    fn skip_spaces(&mut self) -> bool {
        let start = self.p;
        while self.peek() == Some(b' ') {
            self.p += 1;
        }
        self.p > start
    }

    /// Moves past the line break at the cursor (or stays at the end of the text).
    fn next_line(&mut self) {
        match self.peek() {
            Some(b'\r') => self.p += 2,
            Some(b'\n') => self.p += 1,
            _ => return,
        }
        self.line += 1;
        self.line_start = self.p;
    }

    /// Moves to the end of the line (a comment's text).
    fn skip_to_eol(&mut self) {
        while !self.eol_at(self.p) {
            self.p += 1;
        }
    }

    /// After a node on its line: spaces, an optional comment, the line break.
    fn finish_line(&mut self) -> R {
        self.skip_spaces();
        match self.peek() {
            None => Ok(()),
            Some(b'\n' | b'\r') => {
                self.next_line();
                Ok(())
            }
            Some(b'#') if self.p == self.line_start || self.s[self.p - 1] == b' ' => {
                self.skip_to_eol();
                self.next_line();
                Ok(())
            }
            Some(_) => Err(self.no("content after a node on its line")),
        }
    }

    /// Whether the cursor is at a document marker (`---` or `...` at column 1).
    fn at_doc_marker(&self) -> bool {
        self.p == self.line_start
            && (self.s[self.p..].starts_with(b"---") || self.s[self.p..].starts_with(b"..."))
            && self.blank_at(self.p + 3)
    }

    /// Moves over blank and comment lines to the next line with content, and puts the cursor
    /// on its first character: its indentation, or `None` at the end of the text or at a
    /// document marker (both close every open block). The cursor may already be there.
    fn next_content(&mut self) -> R<Option<usize>> {
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Ok(None),
                Some(b'\n' | b'\r') => self.next_line(),
                Some(b'#') => {
                    self.skip_to_eol();
                    self.next_line();
                }
                Some(b'%') if self.p == self.line_start => return Err(self.no("directive")),
                Some(_) if self.at_doc_marker() => return Ok(None),
                Some(_) => return Ok(Some(self.p - self.line_start)),
            }
        }
    }

    /// Whether the cursor is at a block list's `-` (followed by a space or the line end).
    fn at_dash(&self) -> bool {
        self.peek() == Some(b'-') && self.blank_at(self.p + 1)
    }

    fn documents(&mut self) -> R {
        loop {
            let indent = match self.next_content()? {
                Some(indent) => indent,
                None if self.p == self.s.len() => return Ok(()),
                None if self.s[self.p] == b'-' => {
                    self.p += 3;
                    self.finish_line()?;
                    self.next_content()?
                        .ok_or_else(|| self.no("empty document"))?
                }
                None => return Err(self.no("`...` without a document")),
            };
            self.line_node(indent, -1, 0)?;
            match self.next_content()? {
                Some(_) => return Err(self.no("content after the document's root")),
                None if self.p == self.s.len() => return Ok(()),
                None if self.s[self.p] == b'.' => {
                    self.p += 3;
                    self.finish_line()?;
                    // After `...` only another `---` document or the end may follow.
                    match self.next_content()? {
                        None if self.p == self.s.len() || self.s[self.p] == b'-' => {}
                        _ => return Err(self.no("content after `...`")),
                    }
                }
                None => {}
            }
        }
    }

    /// A node starting a line at `indent` (deeper than its parent block's `parent`).
    fn line_node(&mut self, indent: usize, parent: i64, anchor: usize) -> R {
        if self.at_dash() {
            self.block_seq(indent, false, anchor)
        } else {
            self.inline_node(parent, Ctx::LineStart, anchor)
        }
    }

    /// The value of a key or list item written on the lines below it (cursor at the start
    /// of the next line): a node indented deeper than `parent`, a list at `parent`'s own
    /// indentation when `indentless` (a mapping's value), or else an empty value (`empty`).
    fn block_value(&mut self, parent: i64, indentless: bool, empty: bool, anchor: usize) -> R {
        match self.next_content()? {
            Some(k) if k as i64 > parent => self.line_node(k, parent, anchor),
            Some(k) if k as i64 == parent && indentless && self.at_dash() && anchor == 0 => {
                self.block_seq(k, true, 0)
            }
            next if empty && anchor == 0 => {
                // yaml-rust2 places an empty value at the next token.
                let pos = match next {
                    None if self.p == self.s.len() => self.eof_pos(parent.max(0) as usize),
                    _ => self.pos(self.p),
                };
                self.b.scalar(pos, Cow::Borrowed(""), true, 0);
                Ok(())
            }
            _ => Err(self.no("empty list item or anchored empty value")),
        }
    }

    /// Opens a collection in the tree (past the depth limit, yaml-rust2 reports it).
    fn open(&mut self, pos: Pos, map: bool, anchor: usize) -> R {
        self.b
            .open(pos, map, anchor)
            .map_err(|_| self.no("too deep"))
    }

    /// Whether only a comment (after spaces, when `spaced`) or nothing is left on the line.
    fn at_line_end(&self, spaced: bool) -> bool {
        self.eol_at(self.p) || (spaced && self.peek() == Some(b'#'))
    }

    /// The value after a key's `:` (`map`) or a list's `-` (cursor just after it), of a
    /// collection at column `indent`: on this line, or on the lines below.
    fn after_indicator(&mut self, indent: usize, map: bool) -> R {
        let spaced = self.skip_spaces();
        if self.at_line_end(spaced) {
            self.finish_line()?;
            self.block_value(indent as i64, map, map, 0)
        } else {
            let ctx = if map { Ctx::AfterKey } else { Ctx::AfterDash };
            self.inline_node(indent as i64, ctx, 0)
        }
    }

    /// A block list whose `-` is at the cursor, at column `indent`; `indentless` when it is
    /// a mapping's value at the key's own indentation.
    fn block_seq(&mut self, indent: usize, indentless: bool, anchor: usize) -> R {
        let pos = if indentless {
            // yaml-rust2 places such a list after its first dash and the spaces and comment
            // after it on that line.
            let mut i = self.p + 1;
            while self.peek_at(i) == Some(b' ') {
                i += 1;
            }
            if self.peek_at(i) == Some(b'#') {
                while !self.eol_at(i) {
                    i += 1;
                }
            }
            self.pos(i)
        } else {
            self.pos(self.p)
        };
        self.open(pos, false, anchor)?;
        loop {
            self.p += 1;
            self.after_indicator(indent, false)?;
            match self.next_content()? {
                Some(k) if k == indent && self.at_dash() => {}
                Some(k) if k > indent || (k == indent && !indentless) => {
                    return Err(self.no("list item continued or misaligned"));
                }
                _ => break,
            }
        }
        self.b.close();
        Ok(())
    }

    /// A block mapping whose first key is scanned (cursor after its `:`), at column `indent`;
    /// `anchor` was written on a line above.
    fn block_map(&mut self, indent: usize, first: Scalar<'a>, anchor: usize) -> R {
        self.open(first.pos, true, anchor)?;
        let mut key = first;
        loop {
            self.b.scalar(key.pos, key.value, key.plain, 0);
            self.after_indicator(indent, true)?;
            match self.next_content()? {
                Some(k) if k == indent => key = self.key(false)?,
                Some(k) if k > indent => return Err(self.no("mapping value continued")),
                _ => break,
            }
        }
        self.b.close();
        Ok(())
    }

    /// A mapping key at the cursor, with its `:` (cursor left after the `:`); in block
    /// context the `:` is followed by a space or the line's end.
    fn key(&mut self, flow: bool) -> R<Scalar<'a>> {
        let start = self.p;
        let key = match self.peek() {
            Some(b'"' | b'\'') => self.quoted()?,
            Some(c) if self.plain_start(c, flow) => self.plain(flow)?,
            _ => return Err(self.no("complex key")),
        };
        self.skip_spaces();
        if self.peek() != Some(b':') || (!flow && !self.blank_at(self.p + 1)) {
            return Err(self.no("a key without `:`"));
        }
        self.past_colon(start)?;
        Ok(key)
    }

    /// Moves past the `:` at the cursor of a key that starts at byte `start` (yaml-rust2
    /// refuses keys of more than 1,024 characters).
    fn past_colon(&mut self, start: usize) -> R {
        if self.p - start > 1000 {
            return Err(self.no("key longer than 1,000 bytes"));
        }
        self.p += 1;
        Ok(())
    }

    /// A node at the cursor on its line: a scalar, flow collection or alias that ends the
    /// line, or (`LineStart`, `AfterDash`) a block mapping starting with a key here, or
    /// (`AfterDash`) a compact list. Its block parent is at indentation `parent`.
    fn inline_node(&mut self, parent: i64, ctx: Ctx, anchor: usize) -> R {
        let start = self.p;
        let c = self.s[start];
        let scalar = match c {
            b'-' if self.blank_at(start + 1) => {
                if ctx != Ctx::AfterDash || anchor != 0 {
                    return Err(self.no("list where a value belongs"));
                }
                return self.block_seq(start - self.line_start, false, 0);
            }
            b'&' => {
                if anchor != 0 {
                    return Err(self.no("two anchors"));
                }
                let id = self.anchor()?;
                let spaced = self.skip_spaces();
                if self.at_line_end(spaced) {
                    if ctx == Ctx::LineStart {
                        return Err(self.no("anchor alone on its line"));
                    }
                    self.finish_line()?;
                    return self.block_value(parent, false, false, id);
                }
                if !spaced {
                    return Err(self.no("anchor not followed by a space"));
                }
                return self.inline_node(parent, Ctx::AfterAnchor, id);
            }
            b'*' => {
                if anchor != 0 {
                    return Err(self.no("anchored alias"));
                }
                self.alias()?;
                return self.end_of_inline();
            }
            b'[' | b'{' => {
                self.flow(parent, anchor)?;
                return self.end_of_inline();
            }
            b'"' | b'\'' => self.quoted()?,
            _ if self.plain_start(c, false) => self.plain(false)?,
            _ => return Err(self.no("block scalar, tag, or other indicator")),
        };
        let after = self.p;
        self.skip_spaces();
        if self.peek() == Some(b':') && self.blank_at(self.p + 1) {
            // A key: the node is a block mapping.
            if matches!(ctx, Ctx::AfterKey | Ctx::AfterAnchor) {
                return Err(self.no("mapping where a value belongs, or anchored key"));
            }
            self.past_colon(start)?;
            return self.block_map(start - self.line_start, scalar, anchor);
        }
        self.p = after;
        self.b
            .scalar(scalar.pos, scalar.value, scalar.plain, anchor);
        self.finish_line()
    }

    /// After a flow collection or alias in block context: not a key, then the line's end.
    fn end_of_inline(&mut self) -> R {
        let after = self.p;
        self.skip_spaces();
        if self.peek() == Some(b':') {
            return Err(self.no("complex key"));
        }
        self.p = after;
        self.finish_line()
    }

    /// Whether `c` at the cursor starts a plain scalar (in flow context when `flow`).
    fn plain_start(&self, c: u8, flow: bool) -> bool {
        match c {
            b'-' => {
                let n = self.peek_at(self.p + 1);
                !(self.blank_at(self.p + 1) || flow && n.is_some_and(is_flow))
            }
            b'[' | b']' | b'{' | b'}' | b',' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
            | b'"' | b'%' | b'@' | b'`' | b'?' | b':' | b' ' | b'\n' | b'\r' => false,
            _ => true,
        }
    }

    /// A plain scalar on one line at the cursor (its first character checked); the cursor
    /// is left after its last non-space character.
    fn plain(&mut self, flow: bool) -> R<Scalar<'a>> {
        let s = self.s;
        let stop = if flow { FLOW_STOP } else { BLOCK_STOP };
        // `:` ends the scalar when a space, the line's end or (in flow) `,[]{}` follows.
        let ends_at_colon = |i: usize| match s.get(i + 1) {
            None | Some(b' ' | b'\n' | b'\r') => true,
            Some(&n) => flow && is_flow(n),
        };
        let start = self.p;
        let mut i = start;
        let end = loop {
            while i < s.len() && SPECIAL[s[i] as usize] & stop == 0 {
                i += 1;
            }
            match s.get(i) {
                Some(b':') if !ends_at_colon(i) => i += 1,
                Some(b' ') => {
                    let mut j = i + 1;
                    while s.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    match s.get(j) {
                        None | Some(b'#' | b'\n' | b'\r') => break i,
                        Some(&c) if flow && is_flow(c) => break i,
                        Some(b':') if ends_at_colon(j) => break i,
                        // yaml-rust2 refuses a word `-` followed by `,[]{}` in flow context.
                        Some(b'-') if flow && s.get(j + 1).is_some_and(|&n| is_flow(n)) => {
                            return Err(self.no("`-` before a flow indicator"));
                        }
                        Some(_) => i = j,
                    }
                }
                _ => break i,
            }
        };
        self.p = end;
        Ok(Scalar {
            pos: self.pos(start),
            value: self.text[start..end].into(),
            plain: true,
        })
    }

    /// A single- or double-quoted scalar on one line at the cursor; the cursor is left after
    /// the closing quote. Only a scalar with escapes (or `''`) is built piece by piece.
    fn quoted(&mut self) -> R<Scalar<'a>> {
        let s = self.s;
        let pos = self.pos(self.p);
        let single = s[self.p] == b'\'';
        let stop = if single { SINGLE_STOP } else { DOUBLE_STOP };
        let from = self.p + 1;
        let (mut i, mut run) = (from, from);
        let mut owned: Option<String> = None;
        loop {
            while i < s.len() && SPECIAL[s[i] as usize] & stop == 0 {
                i += 1;
            }
            match s.get(i) {
                Some(b'\'') if s.get(i + 1) == Some(&b'\'') => {
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(&self.text[run..=i]);
                    i += 2;
                    run = i;
                }
                Some(b'\'' | b'"') => break,
                Some(b'\\') => {
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.text[run..i]);
                    let (ch, len) = self.escape(i)?;
                    o.push(ch);
                    i += len;
                    run = i;
                }
                _ => return Err(self.no("multi-line quoted scalar")),
            }
        }
        self.p = i + 1;
        let value = match owned {
            None => self.text[from..i].into(),
            Some(mut o) => {
                o.push_str(&self.text[run..i]);
                Cow::Owned(o)
            }
        };
        Ok(Scalar {
            pos,
            value,
            plain: false,
        })
    }

    /// The escape sequence whose `\` is at byte `i`: the character and the sequence's length.
    fn escape(&self, i: usize) -> R<(char, usize)> {
        let bad = Unsupported {
            why: "unknown or invalid escape",
            at: i,
        };
        let simple = match self.peek_at(i + 1).ok_or(bad)? {
            b'0' => '\0',
            b'a' => '\x07',
            b'b' => '\x08',
            b't' => '\t',
            b'n' => '\n',
            b'v' => '\x0b',
            b'f' => '\x0c',
            b'r' => '\r',
            b'e' => '\x1b',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            c @ (b'x' | b'u' | b'U') => {
                let n = match c {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = self.s.get(i + 2..i + 2 + n).ok_or(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad);
                }
                let code = hex.iter().fold(0u32, |v, &h| {
                    (v << 4) | (h as char).to_digit(16).unwrap_or(0)
                });
                return Ok((char::from_u32(code).ok_or(bad)?, 2 + n));
            }
            _ => return Err(bad),
        };
        Ok((simple, 2))
    }

    /// An anchor `&name` at the cursor: registers the name, returns its id.
    fn anchor(&mut self) -> R<usize> {
        let name = self.anchor_name()?;
        self.next_anchor += 1;
        self.anchors.insert(name, self.next_anchor);
        Ok(self.next_anchor)
    }

    /// An alias `*name` at the cursor, of a complete anchored node.
    fn alias(&mut self) -> R {
        let pos = self.pos(self.p);
        let name = self.anchor_name()?;
        let id = match self.anchors.get(name) {
            Some(&id) if self.b.has_anchor(id) => id,
            _ => return Err(self.no("alias of an unknown or open anchor")),
        };
        self.b.alias(pos, id).map_err(|_| self.no("alias limit"))
    }

    /// The name after `&` or `*` at the cursor.
    fn anchor_name(&mut self) -> R<&'a str> {
        let from = self.p + 1;
        let mut i = from;
        while self
            .peek_at(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            i += 1;
        }
        let next = self.peek_at(i);
        if i == from || !matches!(next, None | Some(b' ' | b'\n' | b'\r' | b',' | b']' | b'}')) {
            return Err(self.no("anchor name"));
        }
        self.p = i;
        Ok(&self.text[from..i])
    }

    /// Spaces, comments and line breaks inside a flow collection; a new line must be
    /// indented deeper than the enclosing block (`parent`).
    fn flow_space(&mut self, parent: i64) -> R {
        loop {
            let spaced = self.skip_spaces();
            match self.peek() {
                None => return Err(self.no("unclosed flow collection")),
                Some(b'#') if spaced || self.p == self.line_start => self.skip_to_eol(),
                Some(b'\n' | b'\r') => {
                    self.next_line();
                    self.skip_spaces();
                    let indent = self.p - self.line_start;
                    let blank = self.eol_at(self.p) || self.peek() == Some(b'#');
                    if !blank && indent as i64 <= parent {
                        return Err(self.no("flow continuation line not indented"));
                    }
                    self.p = self.line_start;
                    if self.at_doc_marker() {
                        return Err(self.no("document marker inside a flow collection"));
                    }
                }
                Some(_) => return Ok(()),
            }
        }
    }

    /// A flow sequence or mapping at the cursor (its `[` or `{`).
    fn flow(&mut self, parent: i64, anchor: usize) -> R {
        let map = self.s[self.p] == b'{';
        let close = if map { b'}' } else { b']' };
        self.open(self.pos(self.p), map, anchor)?;
        self.p += 1;
        self.flow_space(parent)?;
        if self.peek() != Some(close) {
            loop {
                if map {
                    let key = self.key(true)?;
                    self.b.scalar(key.pos, key.value, key.plain, 0);
                    self.flow_space(parent)?;
                    if matches!(self.peek(), Some(b',' | b'}')) {
                        return Err(self.no("empty value in a flow mapping"));
                    }
                    self.flow_node(parent, 0)?;
                } else {
                    self.flow_node(parent, 0)?;
                    self.skip_spaces();
                    if self.peek() == Some(b':') {
                        return Err(self.no("mapping inside a flow sequence"));
                    }
                }
                self.flow_space(parent)?;
                match self.peek() {
                    Some(c) if c == close => break,
                    Some(b',') => {
                        self.p += 1;
                        self.flow_space(parent)?;
                        if self.peek() == Some(close) {
                            return Err(self.no("trailing comma"));
                        }
                    }
                    _ => return Err(self.no("flow entries not separated by a comma")),
                }
            }
        }
        self.p += 1;
        self.b.close();
        Ok(())
    }

    /// A node inside a flow collection.
    fn flow_node(&mut self, parent: i64, anchor: usize) -> R {
        let c = self.s[self.p];
        match c {
            b'[' | b'{' => self.flow(parent, anchor),
            b'"' | b'\'' => {
                let sc = self.quoted()?;
                self.b.scalar(sc.pos, sc.value, false, anchor);
                Ok(())
            }
            b'*' if anchor == 0 => self.alias(),
            b'&' if anchor == 0 => {
                let id = self.anchor()?;
                self.flow_space(parent)?;
                if matches!(self.peek(), Some(b',' | b']' | b'}')) {
                    return Err(self.no("anchored empty value"));
                }
                self.flow_node(parent, id)
            }
            _ if self.plain_start(c, true) => {
                let sc = self.plain(true)?;
                self.b.scalar(sc.pos, sc.value, true, anchor);
                Ok(())
            }
            _ => Err(self.no("indicator inside a flow collection")),
        }
    }
}

#[cfg(test)]
mod tests;
