//! Inline configs written in their final form while the manifest is read.
//!
//! A manifest is mostly its part and fragment configs. Kept as nodes until validation, they
//! made the position tree of a large manifest (about four times its text) the load's peak.
//! So while a manifest is read ([`parse_manifest`](super::parse_manifest)), each config's
//! mapping is written into its compact form ([`ConfigJson`](crate::model::ConfigJson): JSON
//! text and canonical digest) as soon as the reader closes it, its nodes are freed at once,
//! and the tree keeps an empty mapping at the config's position;
//! [`prebuild_inline`](crate::manifest::config::prebuild_inline) takes the built config by that
//! position, as it does a template instance's. At most one config's nodes are alive at a
//! time.
//!
//! Which mappings are configs is decided from the open collections, where
//! `prebuild_inline` looks for them: the `config:` of an item of the top-level `fragments:`
//! list, and of a part (`locations[*](.locations[*])*.machines[*].parts[*].config`). Only a
//! *clean* config is written early, by the same rule as `prebuild_inline`'s
//! ([`build_clean`](crate::manifest::config::build_clean)): no `${env:` reference, no
//! `fragments` key, no nesting past 32 levels. Besides, it keeps its nodes when a diagnostic
//! of an earlier step may point inside it or when the same nodes may appear twice:
//! - a mapping in it has a key the manifest refuses (a duplicate, `<<`, a collection as a
//!   key): the structural pass reports it at its position;
//! - it, or a collection around it, has an anchor: an alias would copy the empty mapping,
//!   at another position than the built config's (an alias of such a config or part keeps
//!   the whole config, and `prebuild_inline` builds it later as before).
//!
//! Tags need no nodes (they are listed beside the tree with their positions). Anything kept
//! is built by `prebuild_inline` as before, so every diagnostic is the same.
//!
//! # Without nodes
//! Building a config's nodes only to free them once it is written was most of what was left
//! of a load's time (a `Box<str>` per scalar and a `Vec` per collection, allocated and freed:
//! malloc and free were about a third of the time). So the fast reader writes a config
//! straight from its events into the [`ConfigBuilder`], scalars as slices of the text
//! ([`Direct`]; one builder, its buffers kept from config to config), and builds no node
//! at all; the rule for what is clean is checked as it
//! writes (the builder notes `${env:` references, a repeated key and the depth; a `<<` key,
//! an anchor or an alias in it need nodes). A config that turns out to need its nodes is
//! noted, and the text is read again with it (and every config noted so far) read as nodes,
//! then written at its end if clean, as above; a manifest whose configs are all clean is
//! read once. yaml-rust2's reader (the fallback) always builds the nodes. Both give the same
//! tree and configs (the differential tests check it).

use super::{Builder, Frame, NODE_WEIGHT, Node, NodeKind, Pos};
use crate::model::ConfigBuilder;

/// A config written straight from the reader's events into its final form, without nodes
/// (see [`Builder::begin_direct`]).
pub(super) struct Direct {
    json: ConfigBuilder,
    /// Where its mapping opened (what `redo` names).
    opened: Pos,
    /// The config's position: where its mapping starts (a block mapping at its first key).
    pos: Pos,
    /// The open collections inside it, innermost last: whether each is a mapping that
    /// waits for a key.
    open: Vec<Open>,
    /// Nothing was met that needs nodes: an anchor, an alias, a `<<` key, a collection as
    /// a key.
    plain: bool,
    /// What the config's nodes would weigh (see `MAX_ALIAS_EXPANSION`).
    weight: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    List,
    Map { wants_key: bool },
}

impl Direct {
    /// How deep it nests now.
    pub(super) fn depth(&self) -> usize {
        self.open.len()
    }

    /// Whether the next scalar or collection is a mapping's key.
    fn at_key(&self) -> bool {
        matches!(self.open.last(), Some(Open::Map { wants_key: true }))
    }

    /// After a value: its mapping waits for the next key.
    fn value_done(&mut self) {
        if let Some(Open::Map { wants_key }) = self.open.last_mut() {
            *wants_key = true;
        }
    }

    pub(super) fn open(&mut self, map: bool, anchor: usize) {
        if anchor != 0 || self.at_key() {
            self.plain = false;
        }
        self.weight = self.weight.saturating_add(NODE_WEIGHT);
        if map {
            self.json.begin_obj();
            self.open.push(Open::Map { wants_key: true });
        } else {
            self.json.begin_arr();
            self.open.push(Open::List);
        }
    }

    pub(super) fn scalar(&mut self, pos: Pos, value: &str, plain: bool, anchor: usize) {
        if anchor != 0 {
            self.plain = false;
        }
        self.weight = self.weight.saturating_add(NODE_WEIGHT + value.len() as u64);
        if let Some(Open::Map { wants_key }) = self.open.last_mut()
            && *wants_key
        {
            *wants_key = false;
            if value == "<<" {
                self.plain = false;
            }
            // A block mapping starts at its first key.
            if self.open.len() == 1 {
                self.pos = self.pos.min(pos);
            }
            self.json.key(value);
        } else {
            crate::manifest::de::write_scalar(value, plain, &mut self.json);
            self.value_done();
        }
    }

    /// An alias: the config is read again as nodes.
    pub(super) fn alias(&mut self) {
        self.plain = false;
        self.json.null();
        self.value_done();
    }

    /// Closes the innermost collection; whether that was the config itself.
    fn close(&mut self) -> bool {
        match self.open.pop() {
            Some(Open::Map { .. }) => self.json.end_obj(),
            Some(Open::List) => self.json.end_arr(),
            None => {}
        }
        self.value_done();
        self.open.is_empty()
    }
}

impl Builder {
    /// At the opening of a mapping at `pos`: when it is an inline config to write without
    /// nodes, starts doing so. The configs of a [`parse_manifest`](super::parse_manifest)
    /// are written this way while the fast reader reads; one that turns out not clean is
    /// noted in `redo`, and the text is read again with it kept as nodes (see
    /// `fast::parse`).
    pub(super) fn begin_direct(&mut self, pos: Pos) -> bool {
        let Some(keep) = &self.direct_configs else {
            return false;
        };
        if keep.contains(&pos)
            || !self.at_inline_config()
            || self.stack.iter().any(|f| f.anchor != 0)
        {
            return false;
        }
        let mut json = self.spare_json.take().unwrap_or_default();
        json.begin_obj();
        self.direct = Some(Direct {
            json,
            opened: pos,
            pos,
            open: vec![Open::Map { wants_key: true }],
            plain: true,
            weight: NODE_WEIGHT,
        });
        true
    }

    /// When the reader stops inside a config written without nodes (say at an alias of an
    /// anchor in it, which has no node), that config is to be read again as nodes.
    pub(super) fn stopped(&mut self) {
        if let Some(direct) = self.direct.take() {
            self.redo.push(direct.opened);
        }
    }

    /// Closes a collection of the config being written without nodes; at the config's end,
    /// keeps it, and puts an empty mapping in the tree.
    pub(super) fn close_direct(&mut self) {
        let Some(direct) = &mut self.direct else {
            return;
        };
        if !direct.close() {
            return;
        }
        let Some(Direct {
            mut json,
            opened,
            pos,
            plain,
            weight,
            open: _,
        }) = self.direct.take()
        else {
            return;
        };
        let clean = plain
            && !json.repeated_key
            && json.max_depth <= crate::manifest::config::MAX_CONFIG_DEPTH
            && !json.env_reference;
        let built = json.finish_and_clear();
        self.spare_json = Some(json);
        if clean && !built.has_fragments() {
            self.parsed.configs.insert(pos, built);
        } else {
            self.redo.push(opened);
        }
        let node = Node {
            pos,
            kind: NodeKind::Map(Vec::new()),
        };
        self.finish(node, 0, weight);
    }

    /// The mapping `node`, just closed (its `frame` popped): the node itself, or, when it is
    /// a clean inline config, an empty mapping at its position, its final form kept in
    /// [`Parsed::configs`](super::Parsed::configs).
    pub(super) fn stream_config(&mut self, node: Node, frame: &Frame) -> Node {
        if frame.anchor != 0
            || frame.key_problems != self.key_problems
            || !self.at_inline_config()
            || self.stack.iter().any(|f| f.anchor != 0)
        {
            return node;
        }
        match crate::manifest::config::build_clean(&node, &|_| Ok(None)) {
            Ok(Some(json)) => {
                self.parsed.configs.insert(node.pos, json);
                Node {
                    pos: node.pos,
                    kind: NodeKind::Map(Vec::new()),
                }
            }
            _ => node,
        }
    }

    /// Whether the value being closed is the `config:` of a fragment or a part (see the
    /// module docs), read from the open collections: every open mapping's current key is
    /// the last of its children so far.
    fn at_inline_config(&self) -> bool {
        let frames = &self.stack;
        let Some(owner) = frames.len().checked_sub(1) else {
            return false;
        };
        // The owner (fragment or part) is a mapping waiting for the value of `config`.
        let waiting = (self.pending.len() - frames[owner].start) % 2 == 1;
        if !frames[owner].map
            || !waiting
            || self.pending.last().and_then(Node::as_str) != Some("config")
        {
            return false;
        }
        match self.list_key(owner) {
            Some("fragments") => owner == 2,
            Some("parts") => self.in_machines(owner - 2),
            _ => false,
        }
    }

    /// When the mapping `frames[item]` is an item of a list that is the value of a key of
    /// the mapping `frames[item - 2]`: that key.
    fn list_key(&self, item: usize) -> Option<&str> {
        let frames = &self.stack;
        let (list, parent) = (item.checked_sub(1)?, item.checked_sub(2)?);
        if !frames[item].map || frames[list].map || !frames[parent].map {
            return None;
        }
        // The parent's children so far: keys at even offsets, values at odd ones.
        let start = frames[list].start;
        if (start - frames[parent].start).is_multiple_of(2) {
            return None;
        }
        self.pending[start - 1].as_str()
    }

    /// Whether `frames[machine]` is an item of a location's `machines:` list, the location
    /// an item of the top-level `locations:` or (nested) of a location's.
    fn in_machines(&self, machine: usize) -> bool {
        if self.list_key(machine) != Some("machines") {
            return false;
        }
        let mut location = machine - 2;
        loop {
            if self.list_key(location) != Some("locations") {
                return false;
            }
            match location - 2 {
                0 => return true,
                parent => location = parent,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NodeKind, Pos, YPath, parse, parse_manifest};

    const MANIFEST: &str = "version: 1
organization: o
fragments:
  - name: f
    config: {a: [1, {b: c}]}
  - name: g
    config: &g {a: 1}
templates:
  - name: t
    parts:
      - name: p
        config: {x: 1}
locations:
  - name: L
    config: {not: a config}
    locations:
      - name: M
        machines:
          - name: m
            parts:
              - name: p
                config:
                  components:
                    - name: c
                      config: {nested: true}
              - name: q
                config: {k: \"${env:T}\"}
              - name: r
                config: {k: 1, k: 2}
              - &part
                name: s
                config: {k: 1}
              - name: u
                config: {fragments: [f]}
          - name: n
            parts:
              - name: v
                config:
                  k: 1
";

    #[test]
    fn clean_inline_configs_are_written_as_they_are_read() {
        let parsed = parse_manifest(MANIFEST).expect("valid");
        let root = &parsed.docs[0];
        let machines = YPath::root()
            .key("locations")
            .idx(0)
            .key("locations")
            .idx(0)
            .key("machines");
        let config = |path: YPath| root.get(&path.key("config")).expect("config");
        let part = |m: usize, p: usize| machines.idx(m).key("parts").idx(p);
        let fragment = YPath::root().key("fragments").idx(0);
        // Written: the fragment's, and the parts' in block and flow style.
        let mut written: Vec<Pos> = parsed.configs.keys().copied().collect();
        written.sort();
        assert_eq!(
            written,
            [Pos::new(5, 13), Pos::new(23, 19), Pos::new(39, 19)]
        );
        for path in [fragment, part(0, 0), part(1, 0)] {
            let node = config(path);
            assert_eq!(node.kind, NodeKind::Map(Vec::new()));
            assert!(parsed.configs.contains_key(&node.pos));
        }
        assert_eq!(
            parsed.configs[&Pos::new(23, 19)].text(),
            r#"{"components":[{"name":"c","config":{"nested":true}}]}"#
        );
        // Kept: an `${env:` reference, a duplicate key, a part with an anchor, a `fragments`
        // key, an anchored config, a template's, and what is not a part's or fragment's.
        for path in [
            part(0, 1),
            part(0, 2),
            part(0, 3),
            part(0, 4),
            YPath::root().key("fragments").idx(1),
            YPath::root().key("templates").idx(0).key("parts").idx(0),
            YPath::root().key("locations").idx(0),
        ] {
            let NodeKind::Map(entries) = &config(path.clone()).kind else {
                panic!("{path}: not a mapping");
            };
            assert!(!entries.is_empty(), "{path}");
        }
        // Without streaming, the same text keeps every config.
        let plain = parse(MANIFEST).expect("valid");
        assert!(plain.configs.is_empty());
        assert!(
            plain.docs[0]
                .get(&part(0, 0).key("config").key("components"))
                .is_some()
        );
    }
}
