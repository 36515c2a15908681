//! Part and fragment configs: inline `config:` or `config_file:`, checked and resolved.
//!
//! A config file is relative to the manifest's directory and is JSON (`.json`) or YAML
//! (`.yaml`, `.yml`). Problems inside a file (syntax, duplicate keys, `${env:…}`) are reported
//! at their line and column in that file, with a hint naming where the manifest includes it;
//! a file that cannot be read is reported at the manifest's `config_file:`. A config must be a
//! JSON object, and a part's config may not hold `fragments` (the part's own `fragments:`
//! list says which fragments it uses). `${env:…}` references are resolved last (see `env`).
//! Every config ends in the compact form the model keeps, [`ConfigJson`]; see
//! [`prebuild_inline`] for how an inline one gets there without a `serde_json::Value`.

use super::env::{EnvProblem, resolve_config};
use super::span::{self, Node, NodeKind, Pos, YPath};
use super::structure::check_yaml_subset;
use super::validate::Validator;
use crate::model::{Config, ConfigBuilder, ConfigJson};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How deep a config may nest (objects and lists inside each other, the config itself being
/// level 1). The wire carries a config as a `google.protobuf.Struct`, where each object level
/// costs three nested messages (Struct, map entry, Value), and decoders stop at 100 nested
/// messages: 32 levels is what always gets through.
pub const MAX_CONFIG_DEPTH: usize = 32;

/// The JSON pointer of the first value nested deeper than `max` levels, if any. Nothing is
/// allocated unless one is found.
fn too_deep(value: &Value, max: usize) -> Option<String> {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::Object(map) => {
            if max == 0 {
                return Some(String::new());
            }
            map.iter().find_map(|(key, child)| {
                too_deep(child, max - 1).map(|rest| format!("/{}{rest}", escape(key)))
            })
        }
        Value::Array(items) => {
            if max == 0 {
                return Some(String::new());
            }
            items
                .iter()
                .enumerate()
                .find_map(|(i, child)| too_deep(child, max - 1).map(|rest| format!("/{i}{rest}")))
        }
        _ => None,
    }
}

/// Inline configs built ahead of validation, by the path of the fragment or part they
/// belong to (see [`prebuild_inline`]).
pub type Prebuilt = HashMap<YPath, Prebuild>;

/// One inline config, built from its node.
#[derive(Debug, PartialEq)]
pub enum Prebuild {
    /// *Clean*: no `fragments` key, no nesting past [`MAX_CONFIG_DEPTH`], no `${env:`
    /// reference, so nothing is left to check or resolve in it. Written straight into its
    /// final compact form: no `Value` tree is ever built for it.
    Clean(ConfigJson),
    /// Something in it is to be checked or resolved, on its value.
    Value(Value),
}

/// Configs a template instance's parts already have in their final form (built from the
/// template's nodes while the instance was expanded, see `expand`), by the position of the
/// instance's config node, which is left an empty mapping.
pub type Ready = HashMap<Pos, ConfigJson>;

/// The config at `node` in its final form when it is clean (see [`Prebuild::Clean`]), with
/// every scalar and key first passed through `text` (see
/// [`write_config_with`](super::de::write_config_with)); `None` when it is not clean.
pub fn build_clean<F>(node: &Node, text: &F) -> Result<Option<ConfigJson>, super::de::Error>
where
    F: Fn(&str) -> Result<Option<String>, String>,
{
    let mut b = ConfigBuilder::new();
    super::de::write_config_with(node, &mut b, text)?;
    let clean = b.max_depth <= MAX_CONFIG_DEPTH && !b.env_reference;
    let json = b.finish();
    Ok((clean && !json.has_fragments()).then_some(json))
}

/// Builds the config at `node`: in its final form when it is clean, else as a value.
fn build(node: &Node) -> Result<Prebuild, super::de::Error> {
    match build_clean(node, &|_| Ok(None))? {
        Some(json) => Ok(Prebuild::Clean(json)),
        None => super::de::to_value(node).map(Prebuild::Value),
    }
}

/// Builds the inline `config:` of every fragment and part from the expanded tree, once, in
/// its final form, and frees each config's subtree as soon as it is built, unless a
/// diagnostic could need a position inside it (a `fragments` key, nesting past
/// [`MAX_CONFIG_DEPTH`], or a `${env:` reference, which may be missing or malformed; only
/// these are placed inside a config). A clean config is written from its nodes straight into
/// its compact form ([`ConfigJson`]: its JSON text and canonical digest, in one walk), with
/// no `serde_json::Value` built; only a config with something left to check or resolve goes
/// through a `Value` (and becomes compact once checked). A config is most of a manifest, so
/// the position tree and the built configs never both hold all of them, and the configs
/// the load keeps take about what their YAML text did. The paths are the ones validation
/// uses. A config that cannot be built is left to validation to report. The configs in
/// `ready` (template instances', and the manifest's own written while it was read, see
/// [`span::parse_manifest`]) are taken as they are.
pub fn prebuild_inline(root: &mut Node, mut ready: Ready) -> Prebuilt {
    let mut out = Prebuilt::new();
    let fragments = YPath::root().key("fragments");
    for (i, fragment) in items_mut(root, "fragments").enumerate() {
        prebuild_one(fragment, fragments.idx(i), &mut ready, &mut out);
    }
    prebuild_locations(root, &YPath::root(), &mut ready, &mut out);
    out
}

fn prebuild_locations(parent: &mut Node, at: &YPath, ready: &mut Ready, out: &mut Prebuilt) {
    let list = at.key("locations");
    for (i, location) in items_mut(parent, "locations").enumerate() {
        let at = list.idx(i);
        prebuild_locations(location, &at, ready, out);
        let machines = at.key("machines");
        for (m, machine) in items_mut(location, "machines").enumerate() {
            let parts = machines.idx(m).key("parts");
            for (p, part) in items_mut(machine, "parts").enumerate() {
                prebuild_one(part, parts.idx(p), ready, out);
            }
        }
    }
}

fn items_mut<'n>(node: &'n mut Node, key: &str) -> impl Iterator<Item = &'n mut Node> {
    node.entry_mut(key)
        .and_then(|e| match &mut e.value.kind {
            NodeKind::Seq(items) => Some(items.iter_mut()),
            _ => None,
        })
        .into_iter()
        .flatten()
}

fn prebuild_one(owner: &mut Node, at: YPath, ready: &mut Ready, out: &mut Prebuilt) {
    let Some(entry) = owner.entry_mut("config") else {
        return;
    };
    if matches!(&entry.value.kind, NodeKind::Map(m) if m.is_empty())
        && let Some(json) = ready.remove(&entry.value.pos)
    {
        out.insert(at, Prebuild::Clean(json));
        return;
    }
    let Ok(built) = build(&entry.value) else {
        return;
    };
    if matches!(built, Prebuild::Clean(_)) {
        // The config's own position stays (a config that is not an object is reported there).
        entry.value.kind = NodeKind::Map(Vec::new());
    }
    out.insert(at, built);
}

/// Whose config it is: only parts forbid a `fragments` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Fragment,
    Part,
}

/// Where a config's text came from, to place its diagnostics.
struct Source<'t> {
    /// The config file; `None` for an inline config (its nodes name their own origin).
    file: Option<PathBuf>,
    /// The config's own node (the whole document for a file), when it could be parsed:
    /// borrowed from the manifest's tree for an inline config.
    tree: Option<Cow<'t, Node>>,
    /// `fleet.yaml:12:18` for a config file; `None` when inline.
    included_from: Option<String>,
}

impl Source<'_> {
    fn pointer_pos(&self, pointer: &str) -> (Pos, Pos) {
        self.tree
            .as_ref()
            .map_or((Pos::START, Pos::START), |t| t.at_pointer(pointer))
    }

    fn hint(&self, hint: &str) -> String {
        match &self.included_from {
            Some(from) => format!("{hint} (file included at {from})"),
            None => hint.to_string(),
        }
    }
}

fn empty() -> Config {
    Config::default()
}

/// The hint for a config that is not a mapping.
const NOT_AN_OBJECT: &str =
    "write the config as a mapping, e.g. `{ components: [...] }`; an empty config is `{}`";

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// serde's messages end with " at line N column M"; the diagnostic says that already.
fn strip_location(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

impl<'a> Validator<'a> {
    /// Loads, checks and resolves the config of the fragment or part at `at`: the inline
    /// `config:` (when `inline`), built straight from the manifest's tree, or the file.
    pub(super) fn config(
        &mut self,
        inline: bool,
        file: Option<&str>,
        at: &YPath,
        owner: Owner,
    ) -> Config {
        let (value, source) = match (inline, file) {
            (false, None) => return empty(),
            (true, Some(_)) => {
                self.err_key(
                    &at.key("config_file"),
                    "set either `config` or `config_file`, not both",
                    "keep the inline `config:` or move it into the file, then remove the other key",
                );
                return empty();
            }
            (true, None) => {
                let tree: &'a Node = self.tree;
                let Some(node) = tree.get(&at.key("config")) else {
                    return empty();
                };
                let built = self.prebuilt.remove(at).map_or_else(|| build(node), Ok);
                let value = match built {
                    Ok(Prebuild::Value(value)) => value,
                    Ok(Prebuild::Clean(json)) => {
                        if !json.is_object() {
                            let message = format!(
                                "config must be a JSON object, found {}",
                                describe(&json.to_value())
                            );
                            self.err_at(node.pos, message, NOT_AN_OBJECT);
                            return empty();
                        }
                        return Config {
                            json,
                            sensitive: Vec::new(),
                        };
                    }
                    Err(e) => {
                        self.err_at(
                            e.pos.unwrap_or(node.pos),
                            format!("invalid config: {}", e.message),
                            "write the config as a mapping, e.g. `{ components: [...] }`",
                        );
                        return empty();
                    }
                };
                let source = Source {
                    file: None,
                    tree: Some(Cow::Borrowed(node)),
                    included_from: None,
                };
                (value, source)
            }
            (false, Some(rel)) => match self.read_config_file(rel, &at.key("config_file")) {
                Some(loaded) => loaded,
                None => return empty(),
            },
        };
        self.finish(value, &source, owner)
    }

    fn source_err(&mut self, source: &Source<'_>, pos: Pos, message: String, hint: &str) {
        let d = match &source.file {
            Some(file) => super::error::Diagnostic::new(
                file,
                pos.line(),
                pos.column(),
                message,
                source.hint(hint),
            ),
            None => self.origins.diag(pos, message, source.hint(hint)),
        };
        self.diags.push(d);
    }

    fn finish(&mut self, value: Value, source: &Source<'_>, owner: Owner) -> Config {
        let root_pos = source.pointer_pos("").0;
        let mut map = match value {
            Value::Object(map) => map,
            other => {
                let message = format!("config must be a JSON object, found {}", describe(&other));
                self.source_err(source, root_pos, message, NOT_AN_OBJECT);
                return empty();
            }
        };
        if owner == Owner::Part && map.shift_remove("fragments").is_some() {
            let key_pos = source.pointer_pos("/fragments").1;
            self.source_err(
                source,
                key_pos,
                "a part's config must not contain `fragments`".to_string(),
                "list fragment names in the part's own `fragments:` key instead, e.g. `fragments: [camera-kit]`",
            );
        }
        let mut value = Value::Object(map);
        if let Some(pointer) = too_deep(&value, MAX_CONFIG_DEPTH) {
            let pos = source.pointer_pos(&pointer).0;
            self.source_err(
                source,
                pos,
                format!("config nests deeper than {MAX_CONFIG_DEPTH} levels (at `{pointer}`)"),
                "flatten the config: the cloud carries at most 32 levels of objects and lists",
            );
            return empty();
        }
        let resolution = resolve_config(&mut value, self.env);
        for problem in &resolution.problems {
            match problem {
                EnvProblem::Missing { pointer, name } => {
                    let pos = source.pointer_pos(pointer).0;
                    let hint = format!(
                        "set {name} in the environment fleetform runs in, or write `$${{env:{name}}}` for a literal `${{env:{name}}}`"
                    );
                    self.source_err(
                        source,
                        pos,
                        format!("environment variable `{name}` is not set"),
                        &hint,
                    );
                }
                EnvProblem::Malformed { pointer, reference } => {
                    let pos = source.pointer_pos(pointer).0;
                    self.source_err(
                        source,
                        pos,
                        format!("malformed environment reference `{reference}`"),
                        "write `${env:NAME}` where NAME is letters, digits and `_`, not starting with a digit; `$${env:` is a literal `${env:`",
                    );
                }
            }
        }
        self.env_used.extend(resolution.used);
        Config {
            json: ConfigJson::from_value(&value),
            sensitive: resolution.sensitive,
        }
    }

    /// Reads, records (for the digest) and parses a config file.
    fn read_config_file(&mut self, rel: &str, at: &YPath) -> Option<(Value, Source<'a>)> {
        let pos = self.tree.pos_of(at);
        let ext = Path::new(rel)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let json = match ext.as_deref() {
            Some("json") => true,
            Some("yaml" | "yml") => false,
            _ => {
                self.err_at(
                    pos,
                    format!("config_file `{rel}` must be a .json, .yaml or .yml file"),
                    "name the file by its format: JSON (.json) or YAML (.yaml, .yml)",
                );
                return None;
            }
        };
        let full = self.dir.join(rel);
        let root = match &self.opts.root {
            Some(root) => super::files::canonical_root(root),
            None => super::files::default_root(&self.dir),
        };
        let resolved = match root {
            Ok(root) => super::files::resolve_inside(&root, &self.dir, rel).map_err(|e| {
                (
                    format!("config_file `{rel}` {e}"),
                    "keep config files inside the manifest's directory (or the repository) and name them by a relative path"
                        .to_string(),
                )
            }),
            Err(e) => Err((
                format!("cannot read config file `{rel}`: {e}"),
                String::new(),
            )),
        };
        let bytes = match resolved.and_then(|real| {
            super::files::read_bounded(&real, self.opts.max_file_bytes).map_err(|e| {
                let hint = format!(
                    "config_file paths are relative to the manifest's directory; looked for `{}`",
                    full.display()
                );
                (format!("cannot read config file `{rel}`: {e}"), hint)
            })
        }) {
            Ok(b) => b,
            Err((message, hint)) => {
                self.err_at(pos, message, hint);
                return None;
            }
        };
        if !self.includes.iter().any(|(_, p, _)| *p == full) {
            self.includes
                .push((rel.to_string(), full.clone(), bytes.clone()));
        }
        let included_from = self.origins.place(pos);
        let Ok(text) = String::from_utf8(bytes) else {
            self.err_at(
                pos,
                format!("config file `{rel}` is not UTF-8 text"),
                "save it as UTF-8 JSON or YAML",
            );
            return None;
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        let mut source = Source {
            file: Some(full.clone()),
            tree: None,
            included_from: Some(included_from),
        };
        match span::parse(&text) {
            Ok(parsed) => {
                if let Some(second) = parsed.docs.get(1) {
                    self.source_err(
                        &source,
                        second.pos,
                        "config file holds more than one YAML document".to_string(),
                        "keep one document (remove the `---` separator)",
                    );
                }
                if let Some(mut doc) = parsed.docs.into_iter().next() {
                    if let Some(vars) = self.origins.get(pos).vars.clone() {
                        let mut unknown = Vec::new();
                        super::expand::substitute_node(&mut doc, &vars, &mut unknown);
                        for (at, name) in unknown {
                            let (message, hint) = super::expand::unknown_var(&name, &vars);
                            let instance = self.origins.get(pos).instance.clone();
                            let message = match instance {
                                Some(i) => format!("in {i}: {message}"),
                                None => message,
                            };
                            self.source_err(&source, at, message, &hint);
                        }
                    }
                    let mut diags = Vec::new();
                    let file = super::origin::Origins::single(&full);
                    check_yaml_subset(&doc, &parsed.tags, &file, &mut diags);
                    for d in diags {
                        let hint = source.hint(&d.hint);
                        self.diags.push(super::error::Diagnostic { hint, ..d });
                    }
                    source.tree = Some(Cow::Owned(doc));
                }
            }
            Err(e) if !json => {
                self.source_err(
                    &source,
                    e.pos,
                    format!("invalid YAML in config file: {}", e.message),
                    "check the indentation and quoting here",
                );
                return None;
            }
            // serde_json below gives JSON's own error.
            Err(_) => {}
        }
        let parsed = if json {
            serde_json::from_str::<Value>(&text).map_err(|e| {
                let message = format!(
                    "invalid JSON in config file: {}",
                    strip_location(&e.to_string())
                );
                (Pos::new(e.line(), e.column()), message)
            })
        } else {
            // YAML: built from the tree parsed above, not parsed again.
            match source.tree.as_deref() {
                None => Ok(Value::Null),
                Some(doc) => super::de::to_value(doc).map_err(|e| {
                    (
                        e.pos.unwrap_or(doc.pos),
                        format!("invalid YAML in config file: {}", e.message),
                    )
                }),
            }
        };
        match parsed {
            Ok(mut v) => {
                // YAML files were replaced on their tree above (keeping plain scalars typed).
                if json
                    && let Some(vars) = self.origins.get(pos).vars.clone()
                    && let Err(name) = substitute_value(&mut v, &vars)
                {
                    self.err_at(
                        pos,
                        format!("config file `{rel}` uses an unknown variable `{name}`"),
                        "define it in the machine's `vars:`, as an inventory column, or in the template's `vars:`",
                    );
                    return None;
                }
                Some((v, source))
            }
            Err((p, message)) => {
                self.source_err(&source, p, message, "fix the file's syntax here");
                None
            }
        }
    }
}

/// Replaces `${var:NAME}` in every string (and key) of a template instance's config file.
fn substitute_value(
    v: &mut Value,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(new) = super::expand::substitute(s, vars)? {
                *s = new;
            }
        }
        Value::Array(items) => {
            for item in items {
                substitute_value(item, vars)?;
            }
        }
        Value::Object(map) => {
            if map.keys().any(|k| k.contains("${var:")) {
                let old = std::mem::take(map);
                for (k, mut child) in old {
                    let k = super::expand::substitute(&k, vars)?.unwrap_or(k);
                    substitute_value(&mut child, vars)?;
                    map.insert(k, child);
                }
            } else {
                for child in map.values_mut() {
                    substitute_value(child, vars)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_configs_are_built_once_and_freed_unless_a_position_inside_may_be_needed() {
        let text = "fragments:
  - name: a
    config: {x: [1, {y: z}]}
  - name: b
    config: {x: \"${env:T}\"}
locations:
  - name: L
    locations:
      - name: M
        machines:
          - name: m
            parts:
              - name: p
                config: {fragments: [q]}
              - name: r
                config: {k: v}
";
        let mut root = span::parse(text).expect("yaml").docs.remove(0);
        let built = prebuild_inline(&mut root, Ready::new());
        let fragments = YPath::root().key("fragments");
        let parts = YPath::root()
            .key("locations")
            .idx(0)
            .key("locations")
            .idx(0)
            .key("machines")
            .idx(0)
            .key("parts");
        assert_eq!(built.len(), 4);
        assert_eq!(
            built[&fragments.idx(0)],
            Prebuild::Clean(ConfigJson::from_value(&json!({"x": [1, {"y": "z"}]})))
        );
        assert_eq!(
            built[&parts.idx(0)],
            Prebuild::Value(json!({"fragments": ["q"]}))
        );
        assert_eq!(
            built[&fragments.idx(1)],
            Prebuild::Value(json!({"x": "${env:T}"}))
        );
        // A clean config's subtree is freed; its own position stays.
        let a = root.get(&fragments.idx(0).key("config")).expect("kept");
        assert_eq!(
            (a.pos, &a.kind),
            (Pos::new(3, 13), &NodeKind::Map(Vec::new()))
        );
        assert!(root.get(&parts.idx(1).key("config").key("k")).is_none());
        // Where a diagnostic may point inside, the subtree stays.
        assert!(root.get(&fragments.idx(1).key("config").key("x")).is_some());
        assert!(
            root.get(&parts.idx(0).key("config").key("fragments"))
                .is_some()
        );
    }
}
