//! Templates and their instances; `${var:NAME}` substitution.

use super::*;

impl Expander<'_> {
    pub(super) fn templates(&mut self, root: &mut Node) {
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
    pub(super) fn template(&mut self, mut node: Node) -> Option<(String, Template)> {
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
    pub(super) fn var_map(&mut self, node: &Node) -> Row {
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

    pub(super) fn locations(
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
    pub(super) fn instances(
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
            let hint = match crate::manifest::structure::closest(tname, &known) {
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
            // A copy of a node for this instance, with `${var:...}` replaced when `with`.
            let mut unknown = Vec::new();
            let mut copy = |origins: &mut Origins, node: &Node, with: Option<&Vars>| {
                instantiate(node, &mut |s| origin_of(origins, s), with, &mut unknown)
            };
            let mut machine = Vec::new();
            let key = |k: &str, pos: Pos| scalar(k, true, pos);
            machine.push(Entry {
                key: key("name", name_node.pos),
                value: copy(self.origins, &name_node, None),
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
                        value: copy(self.origins, &value, None),
                    });
                }
            }
            if let Some(p) = protect.as_ref().map(|e| &e.value).or(tpl.protect.as_ref()) {
                machine.push(Entry {
                    key: key("protect", p.pos),
                    value: copy(self.origins, p, None),
                });
            }
            let patch = patch
                .as_ref()
                .map(|p| copy(self.origins, &p.value, Some(&vars)));
            let pos = copy(self.origins, &entry, None).pos;
            // A patched instance's configs are built once patched; the others' now.
            let ready = patch.is_none().then_some(&mut self.configs);
            let mut parts = instantiate_parts(
                &tpl.parts,
                &mut |s| origin_of(self.origins, s),
                &vars,
                &mut unknown,
                ready,
            );
            self.report_unknown(unknown, &vars);
            if let Some(patch) = patch {
                self.apply_patches(&mut parts, patch, &tname);
            }
            machine.push(Entry {
                key: key("parts", tpl.parts.pos),
                value: parts,
            });
            out.push(Node {
                pos,
                kind: NodeKind::Map(machine),
            });
        }
    }

    /// Reports the unknown `${var:...}` found with where they are used.
    fn report_unknown(&mut self, unknown: Vec<(Pos, String)>, vars: &BTreeMap<String, String>) {
        for (pos, name) in unknown {
            let (message, hint) = unknown_var(&name, vars);
            self.err(pos, message, hint);
        }
    }
}

/// A template's variables by name.
type Vars = BTreeMap<String, String>;

/// One instance's copy of `node`, in one walk: every position in the origin `remap` gives
/// it and, with `vars`, `${var:...}` replaced in every scalar and key (each string allocated
/// once); unknown variables are collected with where they are used.
fn instantiate(
    node: &Node,
    remap: &mut dyn FnMut(u32) -> u32,
    vars: Option<&Vars>,
    unknown: &mut Vec<(Pos, String)>,
) -> Node {
    let pos = Pos {
        src: remap(node.pos.src),
        ..node.pos
    };
    let kind = match &node.kind {
        NodeKind::Scalar { value, plain } => {
            let value = match vars.map_or(Ok(None), |vars| substitute(value, vars)) {
                Ok(Some(v)) => v.into_boxed_str(),
                Ok(None) => value.clone(),
                Err(name) => {
                    unknown.push((pos, name));
                    value.clone()
                }
            };
            NodeKind::Scalar {
                value,
                plain: *plain,
            }
        }
        NodeKind::Seq(items) => NodeKind::Seq(
            items
                .iter()
                .map(|n| instantiate(n, remap, vars, unknown))
                .collect(),
        ),
        NodeKind::Map(entries) => NodeKind::Map(
            entries
                .iter()
                .map(|e| Entry {
                    key: instantiate(&e.key, remap, vars, unknown),
                    value: instantiate(&e.value, remap, vars, unknown),
                })
                .collect(),
        ),
    };
    Node { pos, kind }
}

/// One instance's copy of a template's `parts` (see [`instantiate`]), except that with
/// `ready`, a part's `config:` mapping is not copied when it can be built in its final form
/// straight from the template's nodes, substituting as it is written: clean (see
/// [`Prebuild::Clean`](crate::manifest::config::Prebuild)) and with every variable known.
/// Such a config is put in `ready` by the position of the instance's config node, which is
/// left an empty mapping, as building it from a copy would have left it. Any other config is
/// copied, so that its diagnostics (unknown variables, `${env:` references, a `fragments`
/// key, depth) are found and placed as in a copy.
fn instantiate_parts(
    parts: &Node,
    remap: &mut dyn FnMut(u32) -> u32,
    vars: &Vars,
    unknown: &mut Vec<(Pos, String)>,
    ready: Option<&mut crate::manifest::config::Ready>,
) -> Node {
    let (Some(ready), NodeKind::Seq(items)) = (ready, &parts.kind) else {
        return instantiate(parts, remap, Some(vars), unknown);
    };
    let part = |node: &Node,
                remap: &mut dyn FnMut(u32) -> u32,
                unknown: &mut Vec<_>,
                ready: &mut crate::manifest::config::Ready| {
        let NodeKind::Map(entries) = &node.kind else {
            return instantiate(node, remap, Some(vars), unknown);
        };
        let entries = entries
            .iter()
            .map(|e| {
                let built = (e.key.as_str() == Some("config")
                    && matches!(e.value.kind, NodeKind::Map(_)))
                .then(|| crate::manifest::config::build_clean(&e.value, &|s| substitute(s, vars)))
                .and_then(|r| r.ok().flatten());
                let key = instantiate(&e.key, remap, Some(vars), unknown);
                let value = match built {
                    Some(json) => {
                        let pos = Pos {
                            src: remap(e.value.pos.src),
                            ..e.value.pos
                        };
                        ready.insert(pos, json);
                        Node {
                            pos,
                            kind: NodeKind::Map(Vec::new()),
                        }
                    }
                    None => instantiate(&e.value, remap, Some(vars), unknown),
                };
                Entry { key, value }
            })
            .collect();
        Node {
            pos: Pos {
                src: remap(node.pos.src),
                ..node.pos
            },
            kind: NodeKind::Map(entries),
        }
    };
    Node {
        pos: Pos {
            src: remap(parts.pos.src),
            ..parts.pos
        },
        kind: NodeKind::Seq(
            items
                .iter()
                .map(|n| part(n, remap, unknown, ready))
                .collect(),
        ),
    }
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

/// Replaces `${var:...}` in every scalar (and key) under `node`; collects the unknown
/// variables with where they are used.
pub fn substitute_node(
    node: &mut Node,
    vars: &BTreeMap<String, String>,
    unknown: &mut Vec<(Pos, String)>,
) {
    match &mut node.kind {
        NodeKind::Scalar { value, .. } => match substitute(value, vars) {
            Ok(Some(v)) => *value = v.into(),
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
    let hint = match crate::manifest::structure::closest(name, &known) {
        Some(c) => format!("did you mean `{c}`? (defined: {})", sorted(&known)),
        None => format!(
            "define it in the machine's `vars:`, as an inventory column, or in the template's `vars:` (defined: {})",
            sorted(&known)
        ),
    };
    (format!("unknown variable `{name}`"), hint)
}

/// `a`, `b`, `c` in name order.
pub(super) fn sorted(names: &[&str]) -> String {
    let mut names = names.to_vec();
    names.sort_unstable();
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
