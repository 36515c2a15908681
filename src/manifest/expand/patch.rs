//! Per-instance `patch:`: JSON merge patches (RFC 7386) on parts' inline configs.

use super::templates::sorted;
use super::*;

impl Expander<'_> {
    /// Applies `patch` (part name → merge patch) to `parts`.
    pub(super) fn apply_patches(&mut self, parts: &mut Node, patch: Node, template: &str) {
        let NodeKind::Map(entries) = patch.kind else {
            self.err(
                patch.pos,
                "`patch` must map part names to config patches",
                "write e.g. `patch: { \"${var:name}-cam\": { components: [...] } }`",
            );
            return;
        };
        let NodeKind::Seq(list) = &mut parts.kind else {
            return;
        };
        for e in entries {
            let key = e.key_text().to_string();
            let Some(part) = list
                .iter_mut()
                .find(|p| p.entry("name").and_then(|n| n.value.as_str()) == Some(key.as_str()))
            else {
                let names: Vec<&str> = list
                    .iter()
                    .filter_map(|p| p.entry("name")?.value.as_str())
                    .collect();
                let names = sorted(&names);
                self.err(
                    e.key.pos,
                    format!("patch key `{key}` matches no part of template `{template}`"),
                    format!("key a patch by a part's expanded name (parts: {names})"),
                );
                continue;
            };
            if let Some(f) = part.entry("config_file") {
                let pos = f.key.pos;
                self.err(
                    e.key.pos,
                    format!(
                        "part `{key}` takes its config from a file, which a patch cannot change"
                    ),
                    format!(
                        "give the part an inline `config:` (config_file at {}), or use a variable",
                        self.origins.place(pos)
                    ),
                );
                continue;
            }
            if !matches!(e.value.kind, NodeKind::Map(_)) {
                self.err(
                    e.value.pos,
                    "a config patch must be a mapping (a JSON merge patch)",
                    "write the keys to change, `null` to remove one",
                );
                continue;
            }
            match entry_mut(part, "config") {
                Some(c) => merge_patch(&mut c.value, e.value),
                None => {
                    let mut empty = Node {
                        pos: e.value.pos,
                        kind: NodeKind::Map(Vec::new()),
                    };
                    merge_patch(&mut empty, e.value);
                    push_entry(part, scalar("config", true, e.key.pos), empty);
                }
            }
        }
    }
}

/// RFC 7386 on position trees: a mapping patch merges key by key (`null` removes), anything
/// else replaces.
pub(super) fn merge_patch(target: &mut Node, patch: Node) {
    let NodeKind::Map(entries) = patch.kind else {
        *target = patch;
        return;
    };
    if !matches!(target.kind, NodeKind::Map(_)) {
        target.kind = NodeKind::Map(Vec::new());
        target.pos = patch.pos;
    }
    for e in entries {
        let key = e.key_text().to_string();
        if e.value.scalar_kind() == Some(ScalarKind::Null) {
            take(target, &key);
        } else if let Some(existing) = entry_mut(target, &key) {
            merge_patch(&mut existing.value, e.value);
        } else {
            let mut value = Node {
                pos: e.value.pos,
                kind: NodeKind::Map(Vec::new()),
            };
            merge_patch(&mut value, e.value);
            push_entry(target, e.key, value);
        }
    }
}
