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
    match &mut node.kind {
        NodeKind::Map(entries) => entries.iter_mut().find(|e| e.key_text() == key),
        _ => None,
    }
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
        tag: None,
        kind: NodeKind::Scalar {
            value: value.into(),
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

/// `${var:NAME}` replaced from `vars`; `$${var:` is a literal `${var:`. `Err` names the
/// first unknown variable.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> Result<Option<String>, String> {
    if !s.contains("${var:") {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${var:") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${var:");
            rest = &rest[i + 6..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 6..];
        let Some(end) = after.find('}') else {
            return Err(format!("{} (no closing `}}`)", &rest[i..]));
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
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
            Ok(docs) => {
                let mut docs = docs.into_iter();
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
                let mut diags = Vec::new();
                super::structure::check_yaml_subset(&doc, self.origins, &mut diags);
                self.diags.extend(diags);
                Some(doc)
            }
        }
    }

    // ----- includes -----

    /// Merges the files `node` (the file at `rel_dir`) includes into `root`'s lists.
    fn includes(&mut self, root: &mut Node, rel_dir: &str) {
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

    fn merge_included(&mut self, root: &mut Node, doc: &mut Node, rel: &str) {
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
                    let mut value = e.value;
                    let invites = take(&mut value, "invites");
                    if let NodeKind::Map(rest) = &value.kind
                        && let Some(other) = rest.first()
                    {
                        let k = other.key_text().to_string();
                        self.err(
                            other.key.pos,
                            format!("unknown key `{k}` in `access`"),
                            "allowed: invites",
                        );
                    }
                    let Some(invites) = invites else { continue };
                    match entry_mut(root, "access") {
                        Some(access) => append(&mut access.value, invites),
                        None => push_entry(
                            root,
                            e.key,
                            Node {
                                pos: value.pos,
                                tag: None,
                                kind: NodeKind::Map(vec![invites]),
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
    fn rebase_paths(&mut self, doc: &mut Node, rel_dir: &str) {
        if rel_dir.is_empty() {
            return;
        }
        let rebase = |node: &mut Node, key: &str| {
            if let Some(e) = entry_mut(node, key)
                && let NodeKind::Scalar { value, .. } = &mut e.value.kind
            {
                *value = join(rel_dir, value);
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

    // ----- templates -----

    fn templates(&mut self, root: &mut Node) {
        let mut templates: HashMap<String, Rc<Template>> = HashMap::new();
        if let Some(t) = take(root, "templates") {
            match t.value.kind {
                NodeKind::Seq(items) => {
                    for item in items {
                        let Some((name, tpl)) = self.template(item) else {
                            continue;
                        };
                        if let Some(first) = templates.get(&name) {
                            let first = self.origins.place(first.name_pos);
                            self.err(
                                tpl.name_pos,
                                format!("template `{name}` is declared twice: here and at {first}"),
                                "give each template its own name",
                            );
                        } else {
                            templates.insert(name, Rc::new(tpl));
                        }
                    }
                }
                _ => self.err(
                    t.value.pos,
                    "`templates` must be a list",
                    "write `templates: [ { name: ..., parts: [...] } ]`",
                ),
            }
        }
        self.locations(root, "", &templates);
    }

    /// Reads one template; reports its problems.
    fn template(&mut self, mut node: Node) -> Option<(String, Template)> {
        if !matches!(node.kind, NodeKind::Map(_)) {
            self.err(
                node.pos,
                "a template must be a mapping",
                "write `- name: rover` then `parts: [...]`",
            );
            return None;
        }
        let name = take(&mut node, "name");
        let vars = take(&mut node, "vars");
        let protect = take(&mut node, "protect").map(|e| e.value);
        let parts = take(&mut node, "parts");
        if let NodeKind::Map(rest) = &node.kind {
            for e in rest {
                let k = e.key_text().to_string();
                self.err(
                    e.key.pos,
                    format!("unknown key `{k}` in a template"),
                    "a template takes name, vars, protect and parts",
                );
            }
        }
        let Some(name) = name else {
            self.err(
                node.pos,
                "a template needs a `name`",
                "add `name: <template name>`",
            );
            return None;
        };
        let Some(text) = name
            .value
            .as_str()
            .filter(|_| name.value.scalar_kind() == Some(ScalarKind::Str))
        else {
            self.err(
                name.value.pos,
                "a template's `name` must be a string",
                "write e.g. `name: rover`",
            );
            return None;
        };
        let Some(parts) = parts.filter(|p| matches!(p.value.kind, NodeKind::Seq(_))) else {
            self.err(
                name.value.pos,
                format!("template `{text}` needs a list of `parts`"),
                "add `parts: [ { name: \"${var:name}-main\" } ]`",
            );
            return None;
        };
        let vars = vars.map(|v| self.var_map(&v.value)).unwrap_or_default();
        Some((
            text.to_string(),
            Template {
                name_pos: name.value.pos,
                vars: vars
                    .into_iter()
                    .map(|(k, n)| (k, n.as_str().unwrap_or("").to_string()))
                    .collect(),
                protect,
                parts: parts.value,
            },
        ))
    }

    /// A `vars:` mapping (or an inventory row): names to scalar values.
    fn var_map(&mut self, node: &Node) -> Row {
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                "variables must be a mapping of names to values",
                "write e.g. `{ cam_ip: 10.0.0.11 }`",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            match &e.value.kind {
                NodeKind::Scalar { .. } if e.value.scalar_kind() != Some(ScalarKind::Null) => {
                    out.push((e.key_text().to_string(), e.value.clone()));
                }
                _ => {
                    let k = e.key_text().to_string();
                    self.err(
                        e.value.pos,
                        format!("variable `{k}` must be a string, number or boolean"),
                        "variables are replaced into text: write a single value",
                    );
                }
            }
        }
        out
    }

    fn locations(
        &mut self,
        node: &mut Node,
        path: &str,
        templates: &HashMap<String, Rc<Template>>,
    ) {
        for loc in seq_mut(node, "locations") {
            let name = loc
                .entry("name")
                .and_then(|e| e.value.as_str())
                .unwrap_or("");
            let path = join(path, name);
            if let Some(machines) = entry_mut(loc, "machines")
                && let NodeKind::Seq(items) = &mut machines.value.kind
                && items
                    .iter()
                    .any(|m| m.entry("template").is_some() || m.entry("for_each").is_some())
            {
                let old = std::mem::take(items);
                for m in old {
                    if m.entry("template").is_some() || m.entry("for_each").is_some() {
                        self.instances(m, &path, templates, items);
                    } else {
                        items.push(m);
                    }
                }
            }
            self.locations(loc, &path, templates);
        }
    }

    /// Expands one templated machine entry into `out`.
    fn instances(
        &mut self,
        mut entry: Node,
        location: &str,
        templates: &HashMap<String, Rc<Template>>,
        out: &mut Vec<Node>,
    ) {
        let entry_pos = entry.pos;
        let template = take(&mut entry, "template");
        let name = take(&mut entry, "name");
        let vars = take(&mut entry, "vars");
        let for_each = take(&mut entry, "for_each");
        let patch = take(&mut entry, "patch");
        let id = take(&mut entry, "id");
        let moved_from = take(&mut entry, "moved_from");
        let protect = take(&mut entry, "protect");
        if let NodeKind::Map(rest) = &entry.kind {
            for e in rest {
                let k = e.key_text().to_string();
                self.err(
                    e.key.pos,
                    format!("unknown key `{k}` in a templated machine"),
                    "a templated machine takes template, name or for_each, vars, patch, id, moved_from and protect (the parts come from the template)",
                );
            }
        }
        let Some(template) = template else {
            self.err(
                entry_pos,
                "`for_each` needs a `template`",
                "add `template: <name>`",
            );
            return;
        };
        let Some(tname) = template.value.as_str() else {
            self.err(
                template.value.pos,
                "`template` must be a template's name",
                "write e.g. `template: rover`",
            );
            return;
        };
        let Some(tpl) = templates.get(tname).cloned() else {
            let known: Vec<&str> = templates.keys().map(String::as_str).collect();
            let hint = match super::structure::closest(tname, &known) {
                Some(c) => format!("did you mean `{c}`?"),
                None if known.is_empty() => "declare it under `templates:`".to_string(),
                None => format!("declared templates: {}", sorted(&known)),
            };
            self.err(
                template.value.pos,
                format!("unknown template `{tname}`"),
                hint,
            );
            return;
        };
        let tname = tname.to_string();
        let common = vars.map(|v| self.var_map(&v.value)).unwrap_or_default();
        let rows: Vec<(Option<String>, Row)> = match (&for_each, &name) {
            (Some(f), Some(n)) => {
                let _ = f;
                self.err(
                    n.key.pos,
                    "a machine with `for_each` takes its names from the inventory's `name` column",
                    "remove `name:`",
                );
                return;
            }
            (None, None) => {
                self.err(
                    entry_pos,
                    "a templated machine needs a `name` (or `for_each`)",
                    "add `name: <machine name>`",
                );
                return;
            }
            (None, Some(n)) => vec![(None, vec![("name".to_string(), n.value.clone())])],
            (Some(f), None) => match self.inventory(&f.value) {
                Some((label, rows)) => rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (Some(format!("{label} row {}", i + 1)), r))
                    .collect(),
                None => return,
            },
        };
        let mut seen: HashMap<String, Pos> = HashMap::new();
        for (row_label, row) in rows {
            let Some(name_node) = row
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, n)| n.clone())
            else {
                let at = row.first().map_or(entry_pos, |(_, n)| n.pos);
                self.err(
                    at,
                    "this inventory row has no `name`",
                    "every row needs a `name` column: the machine's name",
                );
                continue;
            };
            let mname = name_node.as_str().unwrap_or("").to_string();
            if let Some(&first) = seen.get(&mname) {
                let first = self.origins.place(first);
                self.err(
                    name_node.pos,
                    format!("machine `{mname}` is expanded twice: here and at {first}"),
                    "machine names must be unique in a location",
                );
                continue;
            }
            seen.insert(mname.clone(), name_node.pos);
            let mut all: BTreeMap<String, String> = tpl.vars.clone();
            for (k, n) in common.iter().chain(row.iter()) {
                all.insert(k.clone(), n.as_str().unwrap_or("").to_string());
            }
            all.insert("name".into(), mname.clone());
            all.insert("location".into(), location.to_string());
            let instance: Rc<str> = match &row_label {
                Some(r) => format!("machine {mname} (template {tname}, {r})"),
                None => format!("machine {mname} (template {tname})"),
            }
            .into();
            let vars = Rc::new(all);
            let mut remap: HashMap<u32, u32> = HashMap::new();
            let mut origin_of = |origins: &mut Origins, src: u32| -> u32 {
                *remap.entry(src).or_insert_with(|| {
                    let file = origins.get(Pos { src, ..Pos::START }).file.clone();
                    origins.add(Origin {
                        file,
                        instance: Some(instance.clone()),
                        vars: Some(vars.clone()),
                    })
                })
            };
            let mut tagged = |origins: &mut Origins, node: &Node| {
                let mut n = node.clone();
                retag(&mut n, &mut |s| origin_of(origins, s));
                n
            };
            let mut machine = Vec::new();
            let key = |k: &str, pos: Pos| scalar(k, true, pos);
            machine.push(Entry {
                key: key("name", name_node.pos),
                value: tagged(self.origins, &name_node),
            });
            for (k, given) in [("id", &id), ("moved_from", &moved_from)] {
                let cell = row
                    .iter()
                    .find(|(c, _)| c == k)
                    .map(|(_, n)| n.clone())
                    .filter(|n| n.as_str() != Some(""));
                if let Some(value) = cell.or_else(|| given.as_ref().map(|e| e.value.clone())) {
                    machine.push(Entry {
                        key: key(k, value.pos),
                        value: tagged(self.origins, &value),
                    });
                }
            }
            if let Some(p) = protect.as_ref().map(|e| &e.value).or(tpl.protect.as_ref()) {
                machine.push(Entry {
                    key: key("protect", p.pos),
                    value: tagged(self.origins, p),
                });
            }
            let mut parts = tagged(self.origins, &tpl.parts);
            self.substitute_all(&mut parts, &vars);
            if let Some(patch) = &patch {
                let mut patch = tagged(self.origins, &patch.value);
                self.substitute_all(&mut patch, &vars);
                self.apply_patches(&mut parts, patch, &tname);
            }
            machine.push(Entry {
                key: key("parts", tpl.parts.pos),
                value: parts,
            });
            out.push(Node {
                pos: tagged(self.origins, &entry).pos,
                tag: None,
                kind: NodeKind::Map(machine),
            });
        }
    }

    /// Replaces `${var:...}` in every scalar (and key) under `node`.
    fn substitute_all(&mut self, node: &mut Node, vars: &BTreeMap<String, String>) {
        let mut unknown = Vec::new();
        substitute_node(node, vars, &mut unknown);
        for (pos, name) in unknown {
            let (message, hint) = unknown_var(&name, vars);
            self.err(pos, message, hint);
        }
    }

    /// Applies `patch` (part name → merge patch) to `parts`.
    fn apply_patches(&mut self, parts: &mut Node, patch: Node, template: &str) {
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
                        tag: None,
                        kind: NodeKind::Map(Vec::new()),
                    };
                    merge_patch(&mut empty, e.value);
                    push_entry(part, scalar("config", true, e.key.pos), empty);
                }
            }
        }
    }

    // ----- inventories -----

    /// The rows of a `for_each` (a file or an inline list), with how rows are named.
    fn inventory(&mut self, node: &Node) -> Option<(String, Vec<Row>)> {
        match &node.kind {
            NodeKind::Seq(_) => Some(("for_each".to_string(), self.list_rows(node)?)),
            NodeKind::Scalar { value, .. } => {
                let rel = value.clone();
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

    fn list_rows(&mut self, node: &Node) -> Option<Vec<Row>> {
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

/// Replaces `${var:...}` in every scalar (and key) under `node`; collects the unknown
/// variables with where they are used.
pub fn substitute_node(
    node: &mut Node,
    vars: &BTreeMap<String, String>,
    unknown: &mut Vec<(Pos, String)>,
) {
    match &mut node.kind {
        NodeKind::Scalar { value, .. } => match substitute(value, vars) {
            Ok(Some(v)) => *value = v,
            Ok(None) => {}
            Err(name) => unknown.push((node.pos, name)),
        },
        NodeKind::Seq(items) => items
            .iter_mut()
            .for_each(|n| substitute_node(n, vars, unknown)),
        NodeKind::Map(entries) => {
            for e in entries {
                substitute_node(&mut e.key, vars, unknown);
                substitute_node(&mut e.value, vars, unknown);
            }
        }
    }
}

/// The message and hint for an unknown `${var:name}`.
pub fn unknown_var(name: &str, vars: &BTreeMap<String, String>) -> (String, String) {
    let known: Vec<&str> = vars.keys().map(String::as_str).collect();
    let hint = match super::structure::closest(name, &known) {
        Some(c) => format!("did you mean `{c}`? (defined: {})", sorted(&known)),
        None => format!(
            "define it in the machine's `vars:`, as an inventory column, or in the template's `vars:` (defined: {})",
            sorted(&known)
        ),
    };
    (format!("unknown variable `{name}`"), hint)
}

/// `a`, `b`, `c` in name order.
fn sorted(names: &[&str]) -> String {
    let mut names = names.to_vec();
    names.sort_unstable();
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 7386 on position trees: a mapping patch merges key by key (`null` removes), anything
/// else replaces.
fn merge_patch(target: &mut Node, patch: Node) {
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
                tag: None,
                kind: NodeKind::Map(Vec::new()),
            };
            merge_patch(&mut value, e.value);
            push_entry(target, e.key, value);
        }
    }
}

/// A CSV inventory: a header row, then one row per machine. Fields are separated by commas
/// and may be double-quoted (`""` is a quote inside); blank lines are skipped. Every cell
/// is a string node at its line and column (origin `src`).
fn parse_csv(text: &str, src: u32) -> Result<Vec<Row>, (Pos, String)> {
    let mut records: Vec<Vec<(String, Pos)>> = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut col) = (1usize, 1usize);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_blank_lines_and_positions() {
        let rows = parse_csv("name,note\r\n\r\nr1,\"a, \"\"b\"\"\"\n\"r2\",\n", 3).expect("csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1].1.as_str(), Some("a, \"b\""));
        assert_eq!(
            rows[0][1].1.pos,
            Pos {
                line: 3,
                column: 4,
                src: 3
            }
        );
        assert_eq!(rows[1][0].1.as_str(), Some("r2"));
        assert_eq!(rows[1][1].1.as_str(), Some(""));
        assert!(parse_csv("", 0).is_err());
        assert!(parse_csv("a,a\n", 0).unwrap_err().1.contains("twice"));
        assert!(
            parse_csv("a\n\"x\n", 0)
                .unwrap_err()
                .1
                .contains("not closed")
        );
    }

    #[test]
    fn variables_replace_and_escape() {
        let vars = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(substitute("x", &vars), Ok(None));
        assert_eq!(
            substitute("${var:a}-${var:a}", &vars),
            Ok(Some("1-1".into()))
        );
        assert_eq!(
            substitute("$${var:a} ${var:a}", &vars),
            Ok(Some("${var:a} 1".into()))
        );
        assert_eq!(substitute("${var:b}", &vars), Err("b".into()));
    }

    #[test]
    fn paths_join_and_patterns_match() {
        assert_eq!(join("sites", "../inv/f.csv"), "inv/f.csv");
        assert_eq!(join("", "a.yaml"), "a.yaml");
        assert_eq!(join("a/b", "./c/../d.yaml"), "a/b/d.yaml");
        assert_eq!(join("a", "../../x"), "../x");
        let m = crate::model::rules::wildcard_match;
        assert!(m("*.yaml", "field.yaml"));
        assert!(m("site-?.yaml", "site-a.yaml"));
        assert!(!m("*.yaml", "field.yml"));
        assert!(!m("?", ""));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let node = |t: &str| span::parse(t).expect("yaml").remove(0);
        let mut target = node("{ a: { b: 1, c: 2 }, d: [1], e: x }");
        merge_patch(
            &mut target,
            node("{ a: { b: null, z: 3 }, d: [2], e: { f: 1 } }"),
        );
        let v: serde_json::Value = super::super::de::from_node(&target).expect("value");
        assert_eq!(
            v,
            serde_json::json!({"a": {"c": 2, "z": 3}, "d": [2], "e": {"f": 1}})
        );
    }
}
