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

use super::{Builder, Frame, Node, NodeKind};

impl Builder {
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
