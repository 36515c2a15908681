//! Positions: a YAML tree that remembers where every node and key starts.
//!
//! The manifest text is parsed once into a [`Node`] tree; everything after (expansion, the
//! structural pass, deserializing, validation) works on it. A reader specialised for the YAML
//! manifests use ([`fast`]) builds the tree straight from the text's bytes; for anything
//! else (and for every syntax error) yaml-rust2's event parser builds the same tree.
//! Validation looks nodes up by a [`YPath`] (`locations[0].machines[1].parts[0].name`) or,
//! inside configs, by a JSON pointer, to name the line and column of every problem. Aliases
//! are expanded (the copy keeps the anchor's inner positions); tags are listed beside the
//! tree so that they can be rejected.
//!
//! The tree of a large manifest has millions of nodes, so a node is kept small: a 12-byte
//! [`Pos`], scalars as `Box<str>`, collections allocated once at their final size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

mod configs;
mod fast;

/// A 1-based line and column.
///
/// Twelve bytes: every node of the tree has one, so its size counts for every scalar of the
/// manifest (files are at most a few hundred MiB, far from 4 billion lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    /// Which file (and template instance) the position is in: an index into the load's
    /// [`Origins`](super::origin::Origins); 0 is the manifest itself.
    pub src: u32,
}

impl Pos {
    /// The start of a file.
    pub const START: Pos = Pos::new(1, 1);

    /// `line`:`column` of the manifest itself (saturating at `u32::MAX`).
    pub const fn new(line: usize, column: usize) -> Pos {
        const fn narrow(n: usize) -> u32 {
            if n > u32::MAX as usize {
                u32::MAX
            } else {
                n as u32
            }
        }
        Pos {
            line: narrow(line),
            column: narrow(column),
            src: 0,
        }
    }

    /// The line, for diagnostics.
    pub fn line(self) -> usize {
        self.line as usize
    }

    /// The column, for diagnostics.
    pub fn column(self) -> usize {
        self.column as usize
    }

    /// yaml-rust2 markers have a 1-based line and a 0-based column.
    fn from_marker(m: Marker) -> Pos {
        Pos::new(m.line().max(1), m.col() + 1)
    }
}

/// A YAML node with the position where it starts.
///
/// 48 bytes (a test says so): the tree of a large manifest has millions of them. Tags are
/// not kept on the node (the manifest rejects them; [`parse`] lists them on the side), and a
/// scalar's text is a `Box<str>`, without spare capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// What a [`Node`] holds.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        value: Box<str>,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
}

impl Entry {
    /// The key's text (`<complex key>` for a mapping or list used as a key).
    pub fn key_text(&self) -> &str {
        match &self.key.kind {
            NodeKind::Scalar { value, .. } => value,
            _ => "<complex key>",
        }
    }
}

/// What a plain or quoted scalar means under YAML 1.2's core schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

impl Node {
    /// The type of a scalar node, resolved the way serde_yaml resolves it.
    pub fn scalar_kind(&self) -> Option<ScalarKind> {
        let NodeKind::Scalar { value, plain } = &self.kind else {
            return None;
        };
        Some(scalar_kind_of(value, *plain))
    }

    /// The mapping entry for `key`, when this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| e.key_text() == key),
            _ => None,
        }
    }

    /// The mapping entry for `key`, mutable.
    pub fn entry_mut(&mut self, key: &str) -> Option<&mut Entry> {
        match &mut self.kind {
            NodeKind::Map(entries) => entries.iter_mut().find(|e| e.key_text() == key),
            _ => None,
        }
    }

    /// A scalar's text.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The node at `path`, if it exists.
    pub fn get(&self, path: &YPath) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = node.child(seg)?;
        }
        Some(node)
    }

    fn child(&self, seg: &Seg) -> Option<&Node> {
        match (seg, &self.kind) {
            (Seg::Key(k), NodeKind::Map(_)) => self.entry(k).map(|e| &e.value),
            (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i),
            _ => None,
        }
    }

    /// Where the value at `path` starts; for a path that does not exist, where its nearest
    /// existing ancestor starts.
    pub fn pos_of(&self, path: &YPath) -> Pos {
        let mut node = self;
        for seg in &path.0 {
            match node.child(seg) {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// Where the key of the last segment of `path` starts (`name` in `name: x`); the value's
    /// position for a list item, or the nearest ancestor's when the key is absent.
    pub fn key_pos_of(&self, path: &YPath) -> Pos {
        if let Some((Seg::Key(k), parent)) = path.0.split_last()
            && let Some(parent) = self.get(&YPath(parent.to_vec()))
            && let Some(e) = parent.entry(k)
        {
            return e.key.pos;
        }
        self.pos_of(path)
    }

    /// The node an RFC 6901 JSON pointer names inside this node, with the key position when
    /// the last step is a mapping key. Falls back to the nearest existing ancestor.
    pub fn at_pointer(&self, pointer: &str) -> (Pos, Pos) {
        let mut node = self;
        let mut key_pos = self.pos;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match &node.kind {
                NodeKind::Map(_) => node.entry(&token).map(|e| (e.key.pos, &e.value)),
                NodeKind::Seq(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|n| (n.pos, n)),
                NodeKind::Scalar { .. } => None,
            };
            match next {
                Some((k, n)) => {
                    key_pos = k;
                    node = n;
                }
                None => return (node.pos, node.pos),
            }
        }
        (node.pos, key_pos)
    }

    /// A short description of what this node is, for "found …" in messages.
    pub fn describe(&self) -> &'static str {
        match (&self.kind, self.scalar_kind()) {
            (NodeKind::Map(_), _) => "a mapping",
            (NodeKind::Seq(_), _) => "a list",
            (_, Some(ScalarKind::Null)) => "an empty value",
            (_, Some(ScalarKind::Bool)) => "a boolean",
            (_, Some(ScalarKind::Int | ScalarKind::Float)) => "a number",
            _ => "a string",
        }
    }
}

/// The kind of a scalar with text `value`: a quoted (not `plain`) one is a string.
pub fn scalar_kind_of(value: &str, plain: bool) -> ScalarKind {
    if plain {
        resolve_plain(value)
    } else {
        ScalarKind::Str
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(v: &str) -> ScalarKind {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return ScalarKind::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return ScalarKind::Float,
        _ => {}
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    let is_radix = |prefix: &str, digit: fn(char) -> bool| {
        v.strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.chars().all(digit))
    };
    if (!unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit()))
        || is_radix("0x", |c| c.is_ascii_hexdigit())
        || is_radix("0o", |c| matches!(c, '0'..='7'))
    {
        return ScalarKind::Int;
    }
    let float_chars = unsigned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if float_chars && unsigned.chars().any(|c| c.is_ascii_digit()) && v.parse::<f64>().is_ok() {
        return ScalarKind::Float;
    }
    ScalarKind::Str
}

/// One step of a [`YPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the manifest, e.g. `locations[0].machines[1].name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct YPath(pub Vec<Seg>);

impl YPath {
    /// The document root.
    pub fn root() -> Self {
        YPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        YPath(v)
    }

    /// This path extended by a list index.
    pub fn idx(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        YPath(v)
    }

    /// The last mapping key in the path, if any.
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A YAML syntax error: where, and yaml-rust2's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// How far YAML may nest (mappings and lists inside each other). A manifest needs about a
/// dozen levels for its own structure and a config at most [`super::config::MAX_CONFIG_DEPTH`]
/// more; deeper input is hostile or a mistake, and stopping it here bounds every recursive
/// walk of the tree.
pub const MAX_YAML_DEPTH: usize = 64;

/// How many times a document may use an alias (`*name`).
pub const MAX_ALIASES: usize = 10_000;

/// How much content aliases may add to a document, in bytes of scalar text plus
/// [`NODE_WEIGHT`] per node. An alias bomb (aliases of aliases of lists of aliases) grows
/// exponentially; this caps the copies, and so the memory: a sub-kilobyte bomb stops after
/// a few MB (about twice this: the copies, and the anchors kept for further aliases).
/// Sharing large blocks many times over is what fragments and templates are for.
pub const MAX_ALIAS_EXPANSION: u64 = 4 * 1024 * 1024;

/// What one node counts for in [`MAX_ALIAS_EXPANSION`], besides its scalar text: about what
/// a node costs in memory.
const NODE_WEIGHT: u64 = 64;

/// What [`parse`] gives: the documents, and the tags written in them.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub docs: Vec<Node>,
    /// Every `!tag` with where it is written, in text order. The manifest accepts no tags;
    /// they are listed here rather than kept on every node (see [`Node`]).
    pub tags: Vec<(Pos, Box<str>)>,
    /// Whether some mapping has a key the manifest refuses (a duplicate, a merge key `<<`,
    /// a list or mapping as a key): found as each mapping is built, while it is in cache,
    /// so that the structural pass walks the tree for them only when there is one.
    pub key_problems: bool,
    /// The clean inline configs written in their final form while the manifest was read
    /// ([`parse_manifest`] only), by the position of their config node, which the tree holds
    /// as an empty mapping (see `configs`).
    pub configs: super::config::Ready,
}

/// Whether a mapping's keys are all distinct scalars other than `<<` (see
/// [`Parsed::key_problems`]). Small mappings look back; large ones use a set.
fn keys_clean(entries: &[Entry]) -> bool {
    const SMALL: usize = 16;
    fn key(e: &Entry) -> Option<&str> {
        match &e.key.kind {
            NodeKind::Scalar { value, .. } if &**value != "<<" => Some(value),
            _ => None,
        }
    }
    if entries.len() <= SMALL {
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| key(e).is_some_and(|k| !entries[..i].iter().any(|p| p.key_text() == k)))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        entries
            .iter()
            .all(|e| key(e).is_some_and(|k| seen.insert(k)))
    }
}

/// Parses every document of `text` into position trees.
///
/// Stops at the first syntax error, or when the input nests deeper than [`MAX_YAML_DEPTH`],
/// uses more than [`MAX_ALIASES`] aliases, or when aliases expand to more than
/// [`MAX_ALIAS_EXPANSION`]; each is reported where it happens. Neither path recurses more than
/// [`MAX_YAML_DEPTH`] levels, so no input can exhaust the stack.
///
/// The manifest-specialised scanner ([`fast`]) reads the YAML that manifests use; for
/// anything else, and on every error, the whole text is parsed again by yaml-rust2's event
/// parser, which gives the same tree and reports every syntax error.
pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    parse_with(text, false)
}

/// [`parse`] for a manifest: every clean inline part and fragment config is written in its
/// final form as soon as its mapping is read, and the tree keeps an empty mapping in its
/// place (see `configs` for which configs and why).
pub fn parse_manifest(text: &str) -> Result<Parsed, SyntaxError> {
    parse_with(text, true)
}

fn parse_with(text: &str, stream_configs: bool) -> Result<Parsed, SyntaxError> {
    match fast::parse(text, stream_configs) {
        Ok(parsed) => Ok(parsed),
        Err(_) => parse_events(text, stream_configs),
    }
}

/// [`parse_with`] with yaml-rust2's event parser alone.
fn parse_events(text: &str, stream_configs: bool) -> Result<Parsed, SyntaxError> {
    let mut builder = Builder {
        stream_configs,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            pos: Pos::from_marker(*e.marker()),
            message: e.info().to_string(),
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        builder
            .on_event(ev, Pos::from_marker(mark))
            .map_err(|message| SyntaxError {
                pos: Pos::from_marker(mark),
                message,
            })?;
    }
    Ok(builder.parsed)
}

/// An open mapping or list: its children so far are `Builder::pending[start..]`.
struct Frame {
    pos: Pos,
    map: bool,
    anchor: usize,
    start: usize,
    /// The weight of the children so far (see [`MAX_ALIAS_EXPANSION`]).
    weight: u64,
    /// [`Builder::key_problems`] when the collection opened.
    key_problems: u32,
}

/// Builds the tree from parser events. The children of every open collection wait on one
/// shared stack (`pending`), so that a finished collection is allocated once, at its exact
/// size, rather than grown (and copied) child by child.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    pending: Vec<Node>,
    parsed: Parsed,
    /// Anchored nodes with their weights, by anchor id.
    anchors: HashMap<usize, (Node, u64)>,
    /// Aliases used so far.
    aliases: usize,
    /// The weight aliases added so far.
    expanded: u64,
    /// How many mappings so far have a key the manifest refuses (see
    /// [`Parsed::key_problems`]).
    key_problems: u32,
    /// Whether clean inline configs are written in their final form as they are read.
    stream_configs: bool,
    /// The inline config being written straight from the reader's events, without nodes
    /// (see `configs`).
    direct: Option<configs::Direct>,
    /// Whether inline configs may be written that way, and the configs (by position) not
    /// to be.
    direct_configs: Option<std::collections::HashSet<Pos>>,
    /// The configs written that way that turned out not clean: to be read again as nodes.
    redo: Vec<Pos>,
    /// The compact writer of the last config so written, to reuse its buffers.
    spare_json: Option<crate::model::ConfigBuilder>,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize, weight: u64) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        match self.stack.last_mut() {
            None => self.parsed.docs.push(node),
            Some(frame) => {
                frame.weight = frame.weight.saturating_add(weight);
                self.pending.push(node);
            }
        }
    }

    fn open(&mut self, pos: Pos, map: bool, anchor: usize) -> Result<(), String> {
        let inner = self.direct.as_ref().map_or(0, configs::Direct::depth);
        if self.stack.len() + inner >= MAX_YAML_DEPTH {
            return Err(format!(
                "nested more than {MAX_YAML_DEPTH} levels deep (mappings and lists inside each other)"
            ));
        }
        if let Some(direct) = &mut self.direct {
            direct.open(map, anchor);
            return Ok(());
        }
        if map && anchor == 0 && self.begin_direct(pos) {
            return Ok(());
        }
        self.stack.push(Frame {
            pos,
            map,
            anchor,
            start: self.pending.len(),
            weight: NODE_WEIGHT,
            key_problems: self.key_problems,
        });
        Ok(())
    }

    fn close(&mut self) {
        if self.direct.is_some() {
            return self.close_direct();
        }
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let mut children = self.pending.drain(frame.start..);
        let node = if frame.map {
            let mut entries = Vec::with_capacity(children.len() / 2);
            while let (Some(key), Some(value)) = (children.next(), children.next()) {
                entries.push(Entry { key, value });
            }
            drop(children);
            if !keys_clean(&entries) {
                self.parsed.key_problems = true;
                self.key_problems += 1;
            }
            // A block mapping's start marker lies after its first key.
            let pos = entries
                .first()
                .map_or(frame.pos, |e| frame.pos.min(e.key.pos));
            let node = Node {
                pos,
                kind: NodeKind::Map(entries),
            };
            if self.stream_configs {
                self.stream_config(node, &frame)
            } else {
                node
            }
        } else {
            Node {
                pos: frame.pos,
                kind: NodeKind::Seq(children.collect()),
            }
        };
        self.finish(node, frame.anchor, frame.weight);
    }

    fn tag(&mut self, pos: Pos, tag: Option<yaml_rust2::parser::Tag>) {
        if let Some(t) = tag {
            let text = format!("{}{}", t.handle, t.suffix).into_boxed_str();
            self.parsed.tags.push((pos, text));
        }
    }

    /// A scalar; `anchor` is the anchor's id, 0 for none.
    fn scalar(&mut self, pos: Pos, value: Cow<'_, str>, plain: bool, anchor: usize) {
        if let Some(direct) = &mut self.direct {
            return direct.scalar(pos, &value, plain, anchor);
        }
        let value = value.into_owned().into_boxed_str();
        let weight = NODE_WEIGHT + value.len() as u64;
        let node = Node {
            pos,
            kind: NodeKind::Scalar { value, plain },
        };
        self.finish(node, anchor, weight);
    }

    /// Whether the node anchored as `id` is complete (an alias may name it).
    fn has_anchor(&self, id: usize) -> bool {
        self.anchors.contains_key(&id)
    }

    /// An alias of the node anchored as `id`, written at `pos`: a copy of it (an unknown
    /// anchor reads as an empty value), within [`MAX_ALIASES`] and [`MAX_ALIAS_EXPANSION`].
    fn alias(&mut self, pos: Pos, id: usize) -> Result<(), String> {
        if let Some(direct) = &mut self.direct {
            direct.alias();
            return Ok(());
        }
        self.aliases += 1;
        if self.aliases > MAX_ALIASES {
            return Err(format!(
                "more than {MAX_ALIASES} aliases (`*name`) in one document"
            ));
        }
        let (mut node, weight) = match self.anchors.get(&id) {
            Some((node, weight)) => {
                self.expanded = self.expanded.saturating_add(*weight);
                if self.expanded > MAX_ALIAS_EXPANSION {
                    return Err(format!(
                        "aliases expand to more than {} MiB; this looks like an alias bomb",
                        MAX_ALIAS_EXPANSION / (1024 * 1024)
                    ));
                }
                (node.clone(), *weight)
            }
            None => (
                Node {
                    pos,
                    kind: NodeKind::Scalar {
                        value: Box::default(),
                        plain: true,
                    },
                },
                NODE_WEIGHT,
            ),
        };
        node.pos = pos;
        self.finish(node, 0, weight);
        Ok(())
    }

    fn on_event(&mut self, ev: Event, pos: Pos) -> Result<(), String> {
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                self.tag(pos, tag);
                let plain = style == TScalarStyle::Plain;
                self.scalar(pos, Cow::Owned(value), plain, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                self.tag(pos, tag);
                self.open(pos, false, anchor)?;
            }
            Event::MappingStart(anchor, tag) => {
                self.tag(pos, tag);
                self.open(pos, true, anchor)?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => self.alias(pos, id)?,
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Node {
        parse(text).expect("valid YAML").docs.remove(0)
    }

    #[test]
    fn nodes_are_small_and_tags_are_listed() {
        assert_eq!(size_of::<Pos>(), 12);
        assert_eq!(size_of::<Node>(), 48);
        let parsed = parse(
            "a: !x 1
b: !!str [c]
",
        )
        .expect("valid YAML");
        let tags: Vec<(Pos, &str)> = parsed.tags.iter().map(|(p, t)| (*p, &**t)).collect();
        assert_eq!(
            tags,
            [
                (Pos::new(1, 7), "!x"),
                (Pos::new(2, 10), "tag:yaml.org,2002:str")
            ]
        );
    }

    #[test]
    fn key_problems_are_noted_while_building() {
        for (text, problems) in [
            ("a: 1\nb: {c: 1, d: [e]}\n", false),
            ("a: 1\nb: {c: 1, c: 2}\n", true),
            ("a: 1\na: 2\n", true),
            ("<<: {a: 1}\n", true),
            ("? [a]\n: b\n", true),
        ] {
            assert_eq!(parse(text).expect("valid").key_problems, problems, "{text}");
            assert_eq!(
                parse_events(text, false).expect("valid").key_problems,
                problems,
                "{text}"
            );
        }
        let big: String = (0..40).map(|i| format!("k{i}: 1\n")).collect();
        assert!(!parse(&big).expect("valid").key_problems);
        assert!(parse(&format!("{big}k7: 2\n")).expect("valid").key_problems);
    }

    #[test]
    fn positions_are_one_based() {
        let root = doc("# c\nname: x\nitems:\n  - a: b\n  - {a: \"q\"}\n");
        assert_eq!(root.pos, Pos::new(2, 1));
        let p = YPath::root().key("items").idx(0);
        assert_eq!(root.pos_of(&p), Pos::new(4, 5));
        assert_eq!(root.key_pos_of(&p.key("a")), Pos::new(4, 5));
        assert_eq!(root.pos_of(&p.key("a")), Pos::new(4, 8));
        let q = YPath::root().key("items").idx(1);
        assert_eq!(root.pos_of(&q), Pos::new(5, 5));
        assert_eq!(root.pos_of(&q.key("a")), Pos::new(5, 9));
        // Missing paths fall back to the nearest ancestor.
        assert_eq!(root.pos_of(&q.key("zzz")), Pos::new(5, 5));
        assert_eq!(p.to_string(), "items[0]");
    }

    #[test]
    fn pointers_find_nodes() {
        let root = doc("components:\n  - name: cam\n    attributes:\n      a/b: 1\n");
        let (pos, key) = root.at_pointer("/components/0/attributes/a~1b");
        assert_eq!(pos, Pos::new(4, 12));
        assert_eq!(key, Pos::new(4, 7));
        assert_eq!(root.at_pointer("").0, root.pos);
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        for (v, k) in [
            ("", ScalarKind::Null),
            ("~", ScalarKind::Null),
            ("true", ScalarKind::Bool),
            ("yes", ScalarKind::Str),
            ("12", ScalarKind::Int),
            ("-3", ScalarKind::Int),
            ("0x1f", ScalarKind::Int),
            ("1.5", ScalarKind::Float),
            ("1e3", ScalarKind::Float),
            (".inf", ScalarKind::Float),
            ("inf", ScalarKind::Str),
            ("90d", ScalarKind::Str),
            ("1_000", ScalarKind::Str),
        ] {
            assert_eq!(resolve_plain(v), k, "{v:?}");
        }
    }

    #[test]
    fn aliases_expand_and_syntax_errors_have_positions() {
        let root = doc("a: &x {b: 1}\nc: *x\n");
        assert!(root.get(&YPath::root().key("c").key("b")).is_some());
        let err = parse("a: b\n c: d\n").expect_err("invalid");
        assert_eq!(err.pos, Pos::new(2, 3));
    }

    /// A billion-laughs document: `levels` anchors, each a list of nine aliases of the one
    /// before.
    pub(crate) fn alias_bomb(levels: usize) -> String {
        let mut t = String::from("a0: &a0 [\"lol\"]\n");
        for l in 1..=levels {
            let refs = vec![format!("*a{}", l - 1); 9].join(", ");
            t.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
        }
        t
    }

    #[test]
    fn alias_bombs_stop_with_a_position() {
        let err = parse(&alias_bomb(12)).expect_err("a bomb");
        assert!(err.message.contains("alias bomb"), "{err:?}");
        // Level 5 (9^5 copies) is the first past the limit; the error names its line.
        assert_eq!(err.pos.line, 6, "{err:?}");
        // A few levels are fine.
        assert!(parse(&alias_bomb(3)).is_ok());
    }

    #[test]
    fn too_many_aliases_stop() {
        let mut t = String::from("a: &x 1\nb: [");
        t.push_str(&vec!["*x"; MAX_ALIASES + 1].join(", "));
        t.push_str("]\n");
        let err = parse(&t).expect_err("too many");
        assert!(err.message.contains("more than 10000 aliases"), "{err:?}");
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_YAML_DEPTH),
            "]".repeat(MAX_YAML_DEPTH)
        );
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_YAML_DEPTH + 1),
            "]".repeat(MAX_YAML_DEPTH + 1)
        );
        let err = parse(&deep).expect_err("too deep");
        assert!(
            err.message.contains("nested more than 64 levels"),
            "{err:?}"
        );
        assert_eq!(err.pos, Pos::new(1, 65));
        // Block nesting on one line (`- - - …`) has no flow-level limit of its own.
        let block = "- ".repeat(100_000) + "x\n";
        let err = parse(&block).expect_err("too deep");
        assert!(err.message.contains("nested more than"), "{err:?}");
    }
}
