//! Includes: merging `include:`d manifest files and rebasing their paths.

use super::*;

impl Expander<'_> {
    /// Merges the files `node` (the file at `rel_dir`) includes into `root`'s lists.
    pub(super) fn includes(&mut self, root: &mut Node, rel_dir: &str) {
        let Some(include) = take(root, "include") else {
            return;
        };
        let patterns = match &include.value.kind {
            NodeKind::Seq(items) => items.clone(),
            NodeKind::Scalar { .. } => vec![include.value.clone()],
            NodeKind::Map(_) => {
                self.err(
                    include.value.pos,
                    "`include` must be a list of file paths or patterns",
                    "write e.g. `include: [sites/*.yaml]`",
                );
                return;
            }
        };
        for p in patterns {
            let Some(pattern) = p
                .as_str()
                .filter(|_| p.scalar_kind() == Some(ScalarKind::Str))
            else {
                self.err(
                    p.pos,
                    "an `include` entry must be a path string",
                    "write e.g. `sites/*.yaml`",
                );
                continue;
            };
            let base = self.dir.join(rel_dir);
            let matched = glob(&base, pattern);
            if matched.is_empty() {
                self.err(
                    p.pos,
                    format!("`include` pattern `{pattern}` matches no file"),
                    match rel_dir {
                        "" => "paths are relative to the manifest's directory".to_string(),
                        d => format!("paths are relative to the including file's directory `{d}`"),
                    },
                );
            }
            for m in matched {
                let rel = join(rel_dir, &m);
                let canonical = self
                    .dir
                    .join(&rel)
                    .canonicalize()
                    .unwrap_or_else(|_| self.dir.join(&rel));
                if !self.seen_files.insert(canonical) {
                    continue;
                }
                let Some((_, text)) = self.read(&rel, p.pos, "included file") else {
                    continue;
                };
                let Some(mut doc) = self.parse_file(&rel, &text) else {
                    continue;
                };
                self.merge_included(root, &mut doc, &rel);
            }
        }
    }

    pub(super) fn merge_included(&mut self, root: &mut Node, doc: &mut Node, rel: &str) {
        if !matches!(doc.kind, NodeKind::Map(_)) {
            self.err(
                doc.pos,
                "an included file must be a mapping like a manifest",
                "start with e.g. `locations:`",
            );
            return;
        }
        let rel_dir = parent(rel).to_string();
        if let Some(v) = take(doc, "version")
            && (v.value.scalar_kind() != Some(ScalarKind::Int) || v.value.as_str() != Some("1"))
        {
            self.err(
                v.value.pos,
                "an included file's `version` must be 1 like the manifest's",
                "write `version: 1` or leave it out",
            );
        }
        if let Some(o) = take(doc, "organization") {
            let name_node = match &o.value.kind {
                NodeKind::Map(_) => {
                    if let Some(d) = o.value.entry("default_fragments") {
                        self.err(
                            d.key.pos,
                            "`default_fragments` belongs in the main manifest",
                            "move it to the manifest's `organization:`",
                        );
                    }
                    o.value.entry("name").map(|e| e.value.clone())
                }
                _ => Some(o.value.clone()),
            };
            let main = root
                .entry("organization")
                .and_then(|e| match &e.value.kind {
                    NodeKind::Map(_) => e.value.entry("name").and_then(|n| n.value.as_str()),
                    _ => e.value.as_str(),
                });
            if let (Some(n), Some(main)) = (name_node, main)
                && n.as_str() != Some(main)
            {
                let main = main.to_string();
                self.err(
                    n.pos,
                    format!(
                        "organization `{}` does not match the manifest's `{main}`",
                        n.as_str().unwrap_or("")
                    ),
                    "an included file's organization may be left out, or must be the manifest's",
                );
            }
        }
        if let Some(p) = take(doc, "prune") {
            self.err(
                p.key.pos,
                "`prune` belongs in the main manifest",
                "set `prune` once, in the manifest that includes this file",
            );
        }
        self.rebase_paths(doc, &rel_dir);
        for loc in seq(doc, "locations") {
            let Some(name) = loc.entry("name") else {
                continue;
            };
            let (Some(text), pos) = (name.value.as_str(), name.value.pos) else {
                continue;
            };
            if let Some(&first) = self.top_locations.get(text) {
                let first = self.origins.place(first);
                self.err(
                    pos,
                    format!("location `{text}` is declared twice: here and at {first}"),
                    "declare each location once; put its machines in one file",
                );
            } else {
                self.top_locations.insert(text.to_string(), pos);
            }
        }
        // Nested includes are relative to this file.
        self.includes(doc, &rel_dir);
        let NodeKind::Map(entries) = std::mem::replace(&mut doc.kind, NodeKind::Map(Vec::new()))
        else {
            return;
        };
        for e in entries {
            let key = e.key_text().to_string();
            match key.as_str() {
                "fragments" | "templates" | "locations" => append(root, e),
                "access" => {
                    // Each list joins the manifest's (duplicates across files are reported
                    // by validation, like within one file).
                    let mut value = e.value;
                    let lists: Vec<Entry> = crate::manifest::access_keys()
                        .into_iter()
                        .filter_map(|k| take(&mut value, k))
                        .collect();
                    if let NodeKind::Map(rest) = &value.kind
                        && let Some(other) = rest.first()
                    {
                        let k = other.key_text().to_string();
                        self.err(
                            other.key.pos,
                            format!("unknown key `{k}` in `access`"),
                            format!("allowed: {}", crate::manifest::access_keys().join(", ")),
                        );
                    }
                    if lists.is_empty() {
                        continue;
                    }
                    match entry_mut(root, "access") {
                        Some(access) => {
                            for list in lists {
                                append(&mut access.value, list);
                            }
                        }
                        None => push_entry(
                            root,
                            e.key,
                            Node {
                                pos: value.pos,
                                kind: NodeKind::Map(lists),
                            },
                        ),
                    }
                }
                other => {
                    let other = other.to_string();
                    self.err(
                        e.key.pos,
                        format!("unknown key `{other}` in an included file"),
                        "an included file holds include, fragments, templates, locations and access (version and organization may repeat the manifest's)",
                    );
                }
            }
        }
    }

    /// Makes `config_file`, `for_each` and `include` paths of a file at `rel_dir` relative
    /// to the manifest's directory.
    pub(super) fn rebase_paths(&mut self, doc: &mut Node, rel_dir: &str) {
        if rel_dir.is_empty() {
            return;
        }
        let rebase = |node: &mut Node, key: &str| {
            if let Some(e) = entry_mut(node, key)
                && let NodeKind::Scalar { value, .. } = &mut e.value.kind
            {
                *value = join(rel_dir, value).into();
            }
        };
        for f in seq_mut(doc, "fragments") {
            rebase(f, "config_file");
        }
        for t in seq_mut(doc, "templates") {
            for p in seq_mut(t, "parts") {
                rebase(p, "config_file");
            }
        }
        fn locations(node: &mut Node, rebase: &dyn Fn(&mut Node, &str)) {
            for loc in seq_mut(node, "locations") {
                for m in seq_mut(loc, "machines") {
                    rebase(m, "for_each");
                    for p in seq_mut(m, "parts") {
                        rebase(p, "config_file");
                    }
                }
                locations(loc, rebase);
            }
        }
        locations(doc, &rebase);
    }
}
