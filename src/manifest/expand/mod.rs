//! Fleet-scale manifests: `include:`, machine `templates:`, `${var:NAME}`, `for_each:`
//! inventories and per-instance `patch:`, expanded on the position tree into the plain form
//! before the structural pass, so the rest of the pipeline (and the planner) only ever sees
//! plain machines. Expansion is pure apart from reading the files named.
//!
//! # Includes
//! `include: [sites/*.yaml, common.yaml]` names more manifest files, relative to the file
//! that says it. A pattern's `*` and `?` match within one path component (no `**`); matches
//! are taken in name order, each file once; a pattern that matches nothing is an error (a
//! typo would otherwise silently drop a site). Included files follow the same root rules as
//! config files. An included file has a manifest's shape: its `fragments`, `templates`,
//! `locations` and `access.invites` are appended to the manifest's; it may include further
//! files. `version` and `organization` (its name) may be left out there or repeated, and must
//! then match; `prune` and an organization's `default_fragments` belong in the main manifest
//! only. A top-level location declared in two files is an error naming both places. Paths in
//! an included file (`config_file`, `for_each`, `include`) are relative to that file.
//!
//! # Templates
//! ```yaml
//! templates:
//!   - name: rover
//!     vars: { cam_ip: 10.0.0.10 }      # optional defaults
//!     protect: false                   # optional, as on a machine
//!     parts: [ ... ]                   # a machine's parts
//! ```
//! A machine entry with `template:` becomes one machine (`name:` given), or one machine per
//! row of `for_each:` (then the names come from the `name` column and `name:` is not
//! written). `for_each` is a `.csv` file (header row; every row a machine), a `.yaml`/
//! `.yml`/`.json` file holding a list of mappings, or such a list written inline. Columns
//! `id` and `moved_from` pin and move the instance like the keys of a plain machine; every
//! column is also a variable. A variable's value is, in order of precedence: the row, the
//! entry's `vars:`, the template's `vars:`; `name` (the machine's name) and `location` (its
//! location path) are always defined.
//!
//! `${var:NAME}` is replaced in every string of the template's parts (keys too), in their
//! inline configs and in the config files they name; `$${var:NAME}` is a literal
//! `${var:NAME}`. A plain (unquoted) YAML scalar that is replaced is typed after replacement
//! (`port: ${var:port}` with `port` = `8080` is the number 8080); a quoted one stays a string;
//! in config files replaced values are always strings.
//!
//! `patch:` maps a part name of the template (after replacement, so `"${var:name}-cam"`) to
//! a JSON merge patch (RFC 7386) applied to that part's inline `config` (a part whose config
//! is a `config_file` cannot be patched: inline it or use a variable).
//!
//! Every diagnostic inside an instance names it: `fleet.yaml:12:9: error: in machine rover-07
//! (template rover, inventory/field.csv row 8): unknown variable `cam_ip``.
//!
//! # Layout
//! - `mod.rs`: the entry point ([`expand`]), the expander's state, file reading and shared
//!   node and path helpers;
//! - `include.rs`: `include:` — merging included files and rebasing their paths;
//! - `templates.rs`: `templates:`, instances and `${var:NAME}` substitution;
//! - `inventory.rs`: `for_each:` inventories (CSV, YAML or JSON rows, or inline lists);
//! - `patch.rs`: per-instance `patch:` (JSON merge patch on parts' configs);
//! - `tests.rs`: unit tests.

mod include;
mod inventory;
mod patch;
mod templates;
#[cfg(test)]
mod tests;

pub use templates::{substitute, substitute_node, unknown_var};

use super::LoadOptions;
use super::error::Diagnostic;
use super::origin::{Origin, Origins};
use super::span::{self, Entry, Node, NodeKind, Pos, ScalarKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A manifest with its includes merged and templates expanded, and the files read for it.
pub struct Expanded {
    pub root: Node,
    /// Included manifests and inventories (path relative to the manifest, bytes), in the
    /// order read: they enter the digest.
    pub files: Vec<(String, Vec<u8>)>,
    /// Template instances' part configs, built in their final form from the template's
    /// nodes (see `templates`).
    pub configs: super::config::Ready,
}

/// Merges `include`d files into `root` (the manifest at `file`, origin 0) and expands its
/// templates. Returns every problem found.
pub fn expand(
    root: Node,
    file: &Path,
    opts: &LoadOptions,
    origins: &mut Origins,
) -> Result<Expanded, Vec<Diagnostic>> {
    let mut x = Expander {
        dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        opts,
        origins,
        diags: Vec::new(),
        files: Vec::new(),
        seen_files: HashSet::new(),
        top_locations: HashMap::new(),
        configs: HashMap::new(),
    };
    let mut root = root;
    if let Ok(c) = file.canonicalize() {
        x.seen_files.insert(c);
    }
    if root.entry("include").is_some() || root.entry("templates").is_some() || has_templated(&root)
    {
        x.note_locations(&root);
        x.includes(&mut root, "");
        x.templates(&mut root);
    }
    if x.diags.is_empty() {
        Ok(Expanded {
            root,
            files: x.files,
            configs: x.configs,
        })
    } else {
        Err(x.diags)
    }
}

/// Whether any location's machine uses a template (a manifest without `templates:` that
/// does is an error to report, not a plain manifest).
fn has_templated(root: &Node) -> bool {
    seq(root, "locations")
        .any(|l| seq(l, "machines").any(|m| m.entry("template").is_some()) || has_templated(l))
}

fn seq<'n>(node: &'n Node, key: &str) -> impl Iterator<Item = &'n Node> {
    node.entry(key)
        .and_then(|e| match &e.value.kind {
            NodeKind::Seq(items) => Some(items.iter()),
            _ => None,
        })
        .into_iter()
        .flatten()
}

fn seq_mut<'n>(node: &'n mut Node, key: &str) -> impl Iterator<Item = &'n mut Node> {
    entry_mut(node, key)
        .and_then(|e| match &mut e.value.kind {
            NodeKind::Seq(items) => Some(items.iter_mut()),
            _ => None,
        })
        .into_iter()
        .flatten()
}

fn entry_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Entry> {
    node.entry_mut(key)
}

/// Removes and returns the entry `key` of a mapping.
fn take(node: &mut Node, key: &str) -> Option<Entry> {
    match &mut node.kind {
        NodeKind::Map(entries) => {
            let i = entries.iter().position(|e| e.key_text() == key)?;
            Some(entries.remove(i))
        }
        _ => None,
    }
}

fn scalar(value: impl Into<String>, plain: bool, pos: Pos) -> Node {
    Node {
        pos,
        kind: NodeKind::Scalar {
            value: value.into().into_boxed_str(),
            plain,
        },
    }
}

/// Gives every position under `node` the origin `remap` says.
fn retag(node: &mut Node, remap: &mut dyn FnMut(u32) -> u32) {
    node.pos.src = remap(node.pos.src);
    match &mut node.kind {
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => items.iter_mut().for_each(|n| retag(n, remap)),
        NodeKind::Map(entries) => {
            for e in entries {
                retag(&mut e.key, remap);
                retag(&mut e.value, remap);
            }
        }
    }
}

/// `dir/rel` as written in manifests, with `x/..` folded (`sites/../inv.csv` is
/// `inv.csv`; a leading `..` stays, for the root check to refuse).
fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() || Path::new(rel).is_absolute() {
        return rel.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in dir.split('/').chain(rel.split('/')) {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    parts.join("/")
}

fn parent(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

/// The files matching `pattern` below `base`, as paths relative to `base`, sorted.
pub fn glob(base: &Path, pattern: &str) -> Vec<String> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for prefix in &found {
            if comp.contains(['*', '?']) {
                let Ok(entries) = std::fs::read_dir(base.join(prefix)) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.') || comp.starts_with('.'))
                    .filter(|n| crate::model::rules::wildcard_match(comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| join(prefix, &n)));
            } else {
                next.push(join(prefix, comp));
            }
        }
        found = next;
    }
    found.retain(|p| !p.is_empty() && base.join(p).is_file());
    found
}

/// One template, as declared.
struct Template {
    name_pos: Pos,
    vars: BTreeMap<String, String>,
    protect: Option<Node>,
    parts: Node,
}

/// One row of an inventory: column → cell.
type Row = Vec<(String, Node)>;

struct Expander<'a> {
    /// The manifest's directory.
    dir: PathBuf,
    opts: &'a LoadOptions,
    origins: &'a mut Origins,
    diags: Vec<Diagnostic>,
    files: Vec<(String, Vec<u8>)>,
    seen_files: HashSet<PathBuf>,
    /// Top-level location name → where it is declared.
    top_locations: HashMap<String, Pos>,
    /// Instances' part configs already built (see [`Expanded::configs`]).
    configs: super::config::Ready,
}

impl Expander<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        let d = self.origins.diag(pos, message, hint);
        self.diags.push(d);
    }

    fn note_locations(&mut self, root: &Node) {
        for loc in seq(root, "locations") {
            if let Some(name) = loc.entry("name").and_then(|e| e.value.as_str()) {
                self.top_locations
                    .entry(name.to_string())
                    .or_insert(loc.entry("name").map_or(loc.pos, |e| e.value.pos));
            }
        }
    }

    /// Reads a file named in the manifest (relative to the manifest's directory), under the
    /// same root and size rules as config files. Reports at `at` when it cannot.
    fn read(&mut self, rel: &str, at: Pos, what: &str) -> Option<(PathBuf, String)> {
        let root = match &self.opts.root {
            Some(root) => super::files::canonical_root(root),
            None => super::files::default_root(&self.dir),
        };
        let read = root
            .map_err(|e| e.to_string())
            .and_then(|root| {
                super::files::resolve_inside(&root, &self.dir, rel).map_err(|e| e.to_string())
            })
            .and_then(|real| {
                super::files::read_bounded(&real, self.opts.max_file_bytes)
                    .map(|b| (real, b))
                    .map_err(|e| e.to_string())
            });
        match read {
            Ok((real, bytes)) => {
                self.files.push((rel.to_string(), bytes.clone()));
                match String::from_utf8(bytes) {
                    Ok(text) => Some((real, text.trim_start_matches('\u{feff}').to_string())),
                    Err(_) => {
                        self.err(
                            at,
                            format!("{what} `{rel}` is not UTF-8 text"),
                            "save it as UTF-8",
                        );
                        None
                    }
                }
            }
            Err(e) => {
                self.err(
                    at,
                    format!("cannot read {what} `{rel}`: {e}"),
                    "paths are relative to the file that names them, inside the manifest's directory or repository",
                );
                None
            }
        }
    }

    /// A new origin for the file `rel` (relative to the manifest's directory).
    fn file_origin(&mut self, rel: &str) -> u32 {
        self.origins.add(Origin {
            file: self.dir.join(rel),
            instance: None,
            vars: None,
        })
    }

    /// Parses `text` (the file `rel`) as one YAML document with positions of its own origin.
    fn parse_file(&mut self, rel: &str, text: &str) -> Option<Node> {
        let src = self.file_origin(rel);
        let at = |p: Pos| Pos { src, ..p };
        match span::parse(text) {
            Err(e) => {
                self.err(
                    at(e.pos),
                    format!("invalid YAML: {}", e.message),
                    "check the indentation and quoting here",
                );
                None
            }
            Ok(parsed) => {
                let mut docs = parsed.docs.into_iter();
                let Some(mut doc) = docs.next() else {
                    self.err(at(Pos::START), "the file is empty", "");
                    return None;
                };
                if let Some(second) = docs.next() {
                    self.err(
                        at(second.pos),
                        "the file holds more than one YAML document",
                        "keep one document per file (remove the `---` separator)",
                    );
                }
                retag(&mut doc, &mut |_| src);
                let tags: Vec<_> = parsed.tags.into_iter().map(|(p, t)| (at(p), t)).collect();
                let mut diags = Vec::new();
                super::structure::check_parsed_subset(
                    &doc,
                    &tags,
                    parsed.key_problems,
                    self.origins,
                    &mut diags,
                );
                self.diags.extend(diags);
                Some(doc)
            }
        }
    }
}

fn append(root: &mut Node, e: Entry) {
    let key = e.key_text().to_string();
    match entry_mut(root, &key) {
        Some(existing) => {
            if let (NodeKind::Seq(items), NodeKind::Seq(more)) =
                (&mut existing.value.kind, e.value.kind)
            {
                items.extend(more);
            }
            // A wrong shape on either side is the structural pass's to report (the
            // manifest's value is kept).
        }
        None => push_entry(root, e.key, e.value),
    }
}

fn push_entry(root: &mut Node, key: Node, value: Node) {
    if let NodeKind::Map(entries) = &mut root.kind {
        entries.push(Entry { key, value });
    }
}
