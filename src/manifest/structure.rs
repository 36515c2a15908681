//! The structural pass: the manifest's shape checked against [`schema()`](super::schema) on
//! the position tree, reporting every unknown key, missing key and wrong type at once.
//!
//! serde stops at the first problem and its messages are terse, so this pass runs first.
//! It also rejects what YAML allows but the manifest does not: duplicate keys, tags, merge
//! keys (`<<`) and non-scalar keys. It applies everywhere, inside configs too, because
//! serde_yaml would otherwise keep the last of two duplicate keys without a word.

use super::error::Diagnostic;
use super::origin::Origins;
use super::span::{Entry, Node, NodeKind, Pos, ScalarKind, Seg, YPath};
use serde_json::Value;
use std::collections::HashMap;

/// Up to this many entries, a mapping's duplicate keys are found by a linear look-back.
const SMALL_MAP: usize = 16;

/// Reports the `tags` written in a document (as [`span::parse`](super::span::parse) lists
/// them), and duplicate keys, merge keys and non-scalar keys anywhere under `node`.
pub fn check_yaml_subset(
    node: &Node,
    tags: &[(Pos, Box<str>)],
    file: &Origins,
    diags: &mut Vec<Diagnostic>,
) {
    check_parsed_subset(node, tags, true, file, diags);
}

/// [`check_yaml_subset`] for a tree as parsed, whose keys are looked at only when the parse
/// found a problem with them ([`Parsed::key_problems`](super::span::Parsed::key_problems)).
pub fn check_parsed_subset(
    node: &Node,
    tags: &[(Pos, Box<str>)],
    key_problems: bool,
    file: &Origins,
    diags: &mut Vec<Diagnostic>,
) {
    for (pos, tag) in tags {
        diags.push(file.diag(
            *pos,
            format!("YAML tags such as `{tag}` are not supported"),
            "remove the tag and write the plain value",
        ));
    }
    if key_problems {
        check_keys(node, file, diags);
    }
}

fn check_keys(node: &Node, file: &Origins, diags: &mut Vec<Diagnostic>) {
    match &node.kind {
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => {
            for item in items {
                check_keys(item, file, diags);
            }
        }
        NodeKind::Map(entries) => {
            // Most mappings are small: their duplicates are found by looking back, without
            // a hash map per mapping; large ones use one.
            let mut seen: HashMap<&str, usize> = HashMap::new();
            let counts = |e: &Entry| {
                matches!(e.key.kind, NodeKind::Scalar { .. })
                    && !(e.key_text() == "<<" && e.key.scalar_kind() == Some(ScalarKind::Str))
            };
            for (i, e) in entries.iter().enumerate() {
                let key = e.key_text();
                let kp = e.key.pos;
                if !matches!(e.key.kind, NodeKind::Scalar { .. }) {
                    diags.push(file.diag(
                        kp,
                        "mapping keys must be strings, not lists or mappings",
                        "write a plain `key: value`",
                    ));
                } else if key == "<<" && e.key.scalar_kind() == Some(ScalarKind::Str) {
                    diags.push(file.diag(
                        kp,
                        "YAML merge keys (`<<`) are not supported",
                        "write the keys out; to share part config, put it in a fragment",
                    ));
                } else if let Some(first) = if entries.len() <= SMALL_MAP {
                    entries[..i]
                        .iter()
                        .find(|p| counts(p) && p.key_text() == key)
                        .map(|p| p.key.pos.line())
                } else {
                    seen.get(key).copied()
                } {
                    diags.push(file.diag(
                        kp,
                        format!("duplicate key `{key}` (first at line {first})"),
                        "a mapping holds each key once; remove or merge one of them",
                    ));
                } else if entries.len() > SMALL_MAP {
                    seen.insert(key, kp.line());
                }
                check_keys(&e.key, file, diags);
                check_keys(&e.value, file, diags);
            }
        }
    }
}

/// Checks the manifest's shape against `schema`; pushes one diagnostic per problem.
pub fn check_shape(schema: &Value, root: &Node, file: &Origins, diags: &mut Vec<Diagnostic>) {
    let mut w = Walker {
        root: schema,
        file,
        diags,
    };
    w.walk(schema, root, &YPath::root(), None);
}

struct Walker<'a> {
    root: &'a Value,
    file: &'a Origins,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Walker<'a> {
    /// Follows `$ref`s; returns the target and the first description met on the way.
    fn resolve(&self, mut schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let mut description = schema.get("description").and_then(Value::as_str);
        for _ in 0..16 {
            let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(target) = r
                .strip_prefix("#/$defs/")
                .and_then(|name| self.root.get("$defs")?.get(name))
            else {
                break;
            };
            schema = target;
            description = description.or_else(|| schema.get("description").and_then(Value::as_str));
        }
        (schema, description)
    }

    fn push(&mut self, pos: super::span::Pos, message: String, hint: String) {
        self.diags.push(self.file.diag(pos, message, hint));
    }

    fn walk(&mut self, schema: &'a Value, node: &Node, path: &YPath, desc: Option<&'a str>) {
        let (schema, own_desc) = self.resolve(schema);
        let desc = desc.or(own_desc);
        if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
            // The first alternative of the node's type is the one that applies.
            let fits = alternatives.iter().find(|alt| {
                expected_type(self.resolve(alt).0).is_none_or(|t| type_matches(t, node))
            });
            match fits {
                Some(alt) => self.walk(alt, node, path, desc),
                None => {
                    let names: Vec<&str> = alternatives
                        .iter()
                        .filter_map(|alt| expected_type(self.resolve(alt).0))
                        .collect();
                    self.type_error(&names.join("|"), node, path, desc);
                }
            }
            return;
        }
        if let Some(expected) = expected_type(schema)
            && !type_matches(expected, node)
        {
            self.type_error(expected, node, path, desc);
            return;
        }
        match &node.kind {
            NodeKind::Map(entries) => {
                let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                    return;
                };
                let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
                for e in entries {
                    let key = e.key_text();
                    match props.get(key) {
                        Some(p) => {
                            let d = p.get("description").and_then(Value::as_str);
                            self.walk(p, &e.value, &path.key(key), d);
                        }
                        None if closed && key != "<<" => {
                            let allowed: Vec<&str> = props.keys().map(String::as_str).collect();
                            let message = match what(schema, node) {
                                None => format!("unknown top-level key `{key}`"),
                                Some(w) => format!("unknown key `{key}` in {w}"),
                            };
                            let mut hint = String::new();
                            if let Some(s) = closest(key, &allowed) {
                                hint = format!("did you mean `{s}`? ");
                            }
                            hint.push_str(&format!("allowed keys: {}", allowed.join(", ")));
                            self.push(e.key.pos, message, hint);
                        }
                        None => {}
                    }
                }
                for req in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if node.entry(req).is_none() {
                        let message = match what(schema, node) {
                            None => format!("the manifest is missing the required key `{req}`"),
                            Some(w) => format!("{w} is missing the required key `{req}`"),
                        };
                        let hint = props
                            .get(req)
                            .map(|p| self.resolve(p))
                            .and_then(|(p, d)| {
                                d.or_else(|| p.get("description").and_then(Value::as_str))
                            })
                            .map_or_else(
                                || format!("add `{req}:`"),
                                |d| format!("add `{req}:` — {d}"),
                            );
                        self.push(node.pos, message, hint);
                    }
                }
            }
            NodeKind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    let d = item_schema.get("description").and_then(Value::as_str);
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &path.idx(i), d);
                    }
                }
            }
            NodeKind::Scalar { .. } => {}
        }
    }

    fn type_error(&mut self, expected: &str, node: &Node, path: &YPath, desc: Option<&str>) {
        let label = label(path);
        let found = node.describe();
        let message = format!("{label} must be {}, found {found}", type_name(expected));
        let key = path.last_key().unwrap_or("value");
        let is_null = node.scalar_kind() == Some(ScalarKind::Null);
        let hint = match (expected, &node.kind) {
            ("string", NodeKind::Scalar { value, .. }) if !is_null => {
                format!("quote it to make it a string: `\"{value}\"`")
            }
            ("boolean", _) => "write `true` or `false`".to_string(),
            ("integer", _) => "write a whole number without quotes, e.g. `version: 1`".to_string(),
            ("array", _) if is_null => {
                format!("write `{key}: []` for none, or remove `{key}`")
            }
            ("array", NodeKind::Map(_)) => {
                format!("start each item of `{key}` on its own line with `- `")
            }
            ("object", _) if is_null => {
                format!("write `{key}: {{}}` for an empty mapping, or remove `{key}`")
            }
            _ => desc.unwrap_or("see fleetform.schema.json").to_string(),
        };
        self.push(node.pos, message, hint);
    }
}

/// The JSON type a schema asks for, from `type`, or from its `const` / `enum` values.
fn expected_type(schema: &Value) -> Option<&str> {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        return Some(t);
    }
    let sample = schema
        .get("const")
        .or_else(|| schema.get("enum").and_then(|e| e.get(0)))?;
    match sample {
        Value::String(_) => Some("string"),
        Value::Bool(_) => Some("boolean"),
        Value::Number(_) => Some("number"),
        _ => None,
    }
}

fn type_matches(expected: &str, node: &Node) -> bool {
    match (&node.kind, node.scalar_kind()) {
        (NodeKind::Map(_), _) => expected == "object",
        (NodeKind::Seq(_), _) => expected == "array",
        (_, Some(ScalarKind::Str)) => expected == "string",
        (_, Some(ScalarKind::Bool)) => expected == "boolean",
        (_, Some(ScalarKind::Int)) => matches!(expected, "integer" | "number"),
        (_, Some(ScalarKind::Float)) => expected == "number",
        _ => false,
    }
}

fn type_name(t: &str) -> String {
    if t.contains('|') {
        let names: Vec<String> = t.split('|').map(type_name).collect();
        return names.join(" or ");
    }
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        _ => "a value",
    }
    .to_string()
}

/// `a machine`, `machine `arm-01``, or `None` at the top level.
fn what(schema: &Value, node: &Node) -> Option<String> {
    let title = schema.get("title").and_then(Value::as_str)?;
    if title == "manifest" {
        return None;
    }
    let name = ["name", "email"]
        .iter()
        .find_map(|k| node.entry(k))
        .filter(|e| e.value.scalar_kind() == Some(ScalarKind::Str))
        .and_then(|e| e.value.as_str());
    Some(match name {
        Some(n) => format!("{title} `{n}`"),
        None if title.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {title}"),
        None => format!("a {title}"),
    })
}

/// `` `name` `` or `item 2 of `machines``.
fn label(path: &YPath) -> String {
    match path.0.as_slice() {
        [] => "the manifest".to_string(),
        [.., Seg::Key(k)] => format!("`{k}`"),
        [.., Seg::Key(k), Seg::Index(i)] => format!("item {} of `{k}`", i + 1),
        [.., Seg::Index(i)] => format!("item {}", i + 1),
    }
}

/// The allowed key closest to `key`, if it is a plausible typo.
pub fn closest<'s>(key: &str, candidates: &[&'s str]) -> Option<&'s str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(key, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::super::{schema::schema, span::parse};
    use super::*;

    fn shape(text: &str) -> Vec<String> {
        let mut parsed = parse(text).expect("yaml");
        let root = parsed.docs.remove(0);
        let mut d = vec![];
        check_yaml_subset(
            &root,
            &parsed.tags,
            &Origins::single(std::path::Path::new("f.yaml")),
            &mut d,
        );
        check_shape(
            &schema(),
            &root,
            &Origins::single(std::path::Path::new("f.yaml")),
            &mut d,
        );
        d.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn reports_every_structural_problem_at_once() {
        let errs = shape(
            "version: 1\norganization: a\nlocatoins: []\nlocations:\n  - name: A\n    machines:\n      - nmae: m\n        parts: {}\n        protect: yes\n",
        );
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("f.yaml:3:1: error: unknown top-level key `locatoins`"));
        assert!(errs[0].contains("did you mean `locations`?"));
        assert!(errs[1].starts_with("f.yaml:7:9: error: unknown key `nmae` in a machine"));
        assert!(errs[2].contains("`parts` must be a list, found a mapping"));
        assert!(errs[3].contains("`protect` must be true or false, found a string"));
        assert!(errs[4].contains("a machine is missing the required key `name`"));
        let missing = shape("version: 1\norganization: a\nlocations:\n  - machines: []\n");
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("a location is missing the required key `name`"));
    }

    #[test]
    fn rejects_duplicate_keys_tags_and_merge_keys() {
        let errs = shape(
            "version: 1\norganization: a\norganization: b\nfragments:\n  - name: !x f\n    config: {a: 1, <<: {b: 2}}\n",
        );
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("duplicate key `organization`"))
        );
        assert!(errs.iter().any(|e| e.contains("YAML tags such as `!x`")));
        assert!(errs.iter().any(|e| e.contains("merge keys")));
    }

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(closest("nmae", &["name", "id"]), Some("name"));
        assert_eq!(
            closest("config_fiel", &["config", "config_file"]),
            Some("config_file")
        );
        assert_eq!(closest("zzz", &["name", "id"]), None);
    }
}
