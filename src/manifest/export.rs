//! The manifest writer: a [`Desired`] model back to version-1 YAML that [`super::parse_str`]
//! reads into the same model. `fleetform import` uses it to write what a cloud holds.
//!
//! # Guarantees
//! - Round trip: parsing the output (with the written config files in place) gives back the
//!   model, except its `digest` (which hashes the text). Keys that hold their default are left
//!   out (`prune: false`, `protect: false`, `visibility: private`, empty configs).
//! - Every string is written plain only when YAML cannot read it as anything else (a number,
//!   a boolean, null, a key/value separator, a comment); otherwise it is double-quoted with
//!   JSON escapes, which YAML reads the same way.
//! - Config strings that contain `${env:` are escaped as `$${env:`, so a literal text from the
//!   cloud is not taken for an environment reference. A value that came from the environment
//!   ([`SensitiveValue`]) is written as its template (`${env:TOKEN}`), never as the value; one
//!   without a template is written as the resolved text.
//! - With [`ExportOptions::config_dir`], each non-empty config goes to its own JSON file:
//!   `DIR/fragments/<name>.json` for fragments and `DIR/<part path>.json` for parts, with file
//!   names made safe (`/`, `..` and unusual characters replaced) and kept distinct.
//!
//! This module only builds text; the caller writes the files.

use crate::model::{
    Config, Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredLocation, DesiredMachine,
    DesiredPart, FragmentRef, FragmentUse, GrantTarget, Identity, OrgRef, TagTarget, Visibility,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// How to write a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Write configs to JSON files under this directory instead of inline. The path is written
    /// into `config_file:` as given, so it must be relative to the manifest's directory (or
    /// absolute). `/`-separated.
    pub config_dir: Option<String>,
    /// Comment lines for the top of the manifest (written as `# line`).
    pub header: Vec<String>,
}

/// A manifest as text, and the config files it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub manifest: String,
    /// Empty unless [`ExportOptions::config_dir`] is set.
    pub files: Vec<ConfigFile>,
}

/// One config file to write next to the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path as written in `config_file:`, relative to the manifest's directory.
    pub path: String,
    /// Pretty JSON, ending with a newline.
    pub contents: String,
}

/// Writes `desired` as manifest YAML (see the module docs for the guarantees).
pub fn export(desired: &Desired, opts: &ExportOptions) -> Exported {
    let mut w = Writer {
        out: String::new(),
        opts,
        files: vec![],
        taken: BTreeSet::new(),
    };
    for line in &opts.header {
        w.line(0, format!("# {line}").trim_end());
    }
    w.line(0, "version: 1");
    let org = match &desired.organization {
        OrgRef::Id(id) | OrgRef::Name(id) => id,
    };
    match &desired.default_fragments {
        None => w.line(0, &format!("organization: {}", scalar(org))),
        Some(uses) => {
            w.line(0, "organization:");
            w.line(2, &format!("name: {}", scalar(org)));
            write_entry(&mut w, 2, "default_fragments", &imports_value(uses));
        }
    }
    if desired.prune {
        w.line(0, "prune: true");
    }
    if !desired.fragments.is_empty() {
        w.line(0, "fragments:");
        for f in &desired.fragments {
            w.item(2, |w, i| w.fragment(i, f));
        }
    }
    if !desired.locations.is_empty() {
        w.line(0, "locations:");
        for l in &desired.locations {
            w.item(2, |w, i| w.location(i, l));
        }
    }
    if let Some(invites) = &desired.invites {
        w.line(0, "access:");
        if invites.is_empty() {
            w.line(2, "invites: []");
        } else {
            w.line(2, "invites:");
            for inv in invites {
                w.item(4, |w, i| w.invite(i, inv));
            }
        }
    }
    Exported {
        manifest: w.out,
        files: w.files,
    }
}

struct Writer<'a> {
    out: String,
    opts: &'a ExportOptions,
    files: Vec<ConfigFile>,
    /// Config file paths already used (lowercased: some file systems ignore case).
    taken: BTreeSet<String>,
}

impl Writer<'_> {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Writes a list item: `body` writes a block at `indent + 2`, whose first line then gets
    /// `- ` in place of its last two spaces of indentation.
    fn item(&mut self, indent: usize, body: impl FnOnce(&mut Self, usize)) {
        let start = self.out.len();
        body(self, indent + 2);
        let first = &self.out[start..];
        debug_assert!(first.starts_with(&" ".repeat(indent + 2)));
        self.out
            .replace_range(start + indent..start + indent + 2, "- ");
    }

    fn identity(&mut self, indent: usize, id: &Identity) {
        if let Some(pin) = &id.id {
            self.line(indent, &format!("id: {}", scalar(pin)));
        }
        if let Some(from) = &id.moved_from {
            self.line(indent, &format!("moved_from: {}", scalar(from)));
        }
        if id.protect {
            self.line(indent, "protect: true");
        }
    }

    fn fragment(&mut self, indent: usize, f: &DesiredFragment) {
        self.line(indent, &format!("name: {}", scalar(&f.name)));
        self.identity(indent, &f.identity);
        match f.visibility {
            Visibility::Private => {}
            Visibility::Public => self.line(indent, "visibility: public"),
            Visibility::PublicUnlisted => self.line(indent, "visibility: public_unlisted"),
        }
        let file = ["fragments".to_string(), safe_segment(&f.name)];
        self.config(indent, &f.config, &file);
        if let Some(tags) = &f.tags {
            let map: serde_json::Map<String, Value> = tags
                .iter()
                .map(|(tag, target)| {
                    let v = match target {
                        TagTarget::Current => Value::String("current".into()),
                        TagTarget::Revision(r) => Value::String(r.clone()),
                    };
                    (tag.clone(), v)
                })
                .collect();
            if map.is_empty() {
                self.line(indent, "tags: {}");
            } else {
                write_entry(self, indent, "tags", &Value::Object(map));
            }
        }
    }

    fn location(&mut self, indent: usize, l: &DesiredLocation) {
        self.line(indent, &format!("name: {}", scalar(&l.name)));
        self.identity(indent, &l.identity);
        if let Some(d) = l.rotate_secrets_after {
            self.line(
                indent,
                &format!("secrets: {{ rotate_after: {} }}", duration(d)),
            );
        }
        if !l.locations.is_empty() {
            self.line(indent, "locations:");
            for child in &l.locations {
                self.item(indent + 2, |w, i| w.location(i, child));
            }
        }
        if !l.machines.is_empty() {
            self.line(indent, "machines:");
            for m in &l.machines {
                self.item(indent + 2, |w, i| w.machine(i, l, m));
            }
        }
    }

    fn machine(&mut self, indent: usize, l: &DesiredLocation, m: &DesiredMachine) {
        self.line(indent, &format!("name: {}", scalar(&m.name)));
        self.identity(indent, &m.identity);
        if m.parts.is_empty() {
            self.line(indent, "parts: []");
            return;
        }
        self.line(indent, "parts:");
        let several = m.parts.len() > 1;
        for p in &m.parts {
            self.item(indent + 2, |w, i| w.part(i, l, m, p, several));
        }
    }

    fn part(
        &mut self,
        indent: usize,
        l: &DesiredLocation,
        m: &DesiredMachine,
        p: &DesiredPart,
        several: bool,
    ) {
        self.line(indent, &format!("name: {}", scalar(&p.name)));
        self.identity(indent, &p.identity);
        if several && p.main {
            self.line(indent, "main: true");
        }
        if !p.fragments.is_empty() {
            write_entry(self, indent, "fragments", &imports_value(&p.fragments));
        }
        if !p.ignore.is_empty() {
            self.line(indent, &format!("ignore: {}", flow_list(&p.ignore)));
        }
        let mut file: Vec<String> = l.path.split('/').map(safe_segment).collect();
        file.push(safe_segment(&m.name));
        file.push(safe_segment(&p.name));
        self.config(indent, &p.config, &file);
    }

    /// `config:` inline, or `config_file:` plus a file; nothing for an empty config.
    fn config(&mut self, indent: usize, config: &Config, file: &[String]) {
        let value = config_for_text(config);
        if value.as_object().is_some_and(|o| o.is_empty()) {
            return;
        }
        match self.opts.config_dir.clone() {
            None => write_entry(self, indent, "config", &value),
            Some(dir) => {
                let path = self.file_path(&dir, file);
                self.line(indent, &format!("config_file: {}", scalar(&path)));
                let contents =
                    serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n";
                self.files.push(ConfigFile { path, contents });
            }
        }
    }

    /// `DIR/a/b/c.json`, made distinct from every path already used.
    fn file_path(&mut self, dir: &str, segments: &[String]) -> String {
        let dir = dir.trim_end_matches('/');
        let stem = if dir.is_empty() {
            segments.join("/")
        } else {
            format!("{dir}/{}", segments.join("/"))
        };
        let mut n = 1;
        loop {
            let candidate = if n == 1 {
                format!("{stem}.json")
            } else {
                format!("{stem}-{n}.json")
            };
            if self.taken.insert(candidate.to_lowercase()) {
                return candidate;
            }
            n += 1;
        }
    }

    fn invite(&mut self, indent: usize, inv: &DesiredInvite) {
        self.line(indent, &format!("email: {}", scalar(&inv.email)));
        if inv.protect {
            self.line(indent, "protect: true");
        }
        if !inv.send_email {
            self.line(indent, "send_email: false");
        }
        if inv.grants.is_empty() {
            self.line(indent, "grants: []");
            return;
        }
        self.line(indent, "grants:");
        for g in &inv.grants {
            self.line(indent + 2, &format!("- {}", grant(g)));
        }
    }
}

/// `{ role: operator, location: HQ/Assembly }`.
fn grant(g: &DesiredGrant) -> String {
    let target = match &g.target {
        GrantTarget::Organization => "organization: true".to_string(),
        GrantTarget::Location(p) => format!("location: {}", scalar(p)),
        GrantTarget::Machine(p) => format!("machine: {}", scalar(p)),
    };
    format!("{{ role: {}, {target} }}", g.role.as_str())
}

/// `[a, b]`.
fn flow_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A list of fragment imports as the manifest writes them: a bare name, or a mapping with
/// `name:` (or `id:`) first and the import's other keys as they are.
fn imports_value(uses: &[FragmentUse]) -> Value {
    let items = uses
        .iter()
        .map(|u| match (&u.fragment, u.options.is_empty()) {
            (FragmentRef::Name(n), true) => Value::String(n.clone()),
            (fragment, _) => {
                let mut o = serde_json::Map::new();
                match fragment {
                    FragmentRef::Name(n) => o.insert("name".into(), Value::String(n.clone())),
                    FragmentRef::Id(id) => o.insert("id".into(), Value::String(id.clone())),
                };
                o.extend(u.options.clone());
                Value::Object(o)
            }
        })
        .collect();
    Value::Array(items)
}

/// The config as it should appear in the manifest: literal `${env:` escaped, and values that
/// came from the environment replaced by their templates.
fn config_for_text(config: &Config) -> Value {
    let mut value = config.value.clone();
    escape_env(&mut value);
    for s in &config.sensitive {
        if s.template.is_empty() {
            continue;
        }
        if let Some(slot) = value.pointer_mut(&s.pointer) {
            *slot = Value::String(s.template.clone());
        }
    }
    value
}

fn escape_env(v: &mut Value) {
    match v {
        Value::String(s) if s.contains("${env:") => *s = s.replace("${env:", "$${env:"),
        Value::Array(items) => items.iter_mut().for_each(escape_env),
        Value::Object(map) => map.values_mut().for_each(escape_env),
        _ => {}
    }
}

/// Writes `key: value` at `indent`, as a block for non-empty objects and arrays.
fn write_entry(w: &mut Writer<'_>, indent: usize, key: &str, v: &Value) {
    let key = scalar(key);
    match v {
        Value::Object(o) if !o.is_empty() => {
            w.line(indent, &format!("{key}:"));
            for (k, v) in o {
                write_entry(w, indent + 2, k, v);
            }
        }
        Value::Array(a) if !a.is_empty() => match flow(a, indent + key.len() + 2) {
            Some(flow) => w.line(indent, &format!("{key}: {flow}")),
            None => {
                w.line(indent, &format!("{key}:"));
                for item in a {
                    write_item(w, indent + 2, item);
                }
            }
        },
        other => w.line(indent, &format!("{key}: {}", json_scalar(other))),
    }
}

/// A short list of scalars on one line (`[arm, gripper]`), when it fits in 100 columns.
fn flow(items: &[Value], column: usize) -> Option<String> {
    if items
        .iter()
        .any(|v| matches!(v, Value::Array(_) | Value::Object(_)))
    {
        return None;
    }
    let text = format!(
        "[{}]",
        items.iter().map(json_scalar).collect::<Vec<_>>().join(", ")
    );
    (column + text.len() <= 100).then_some(text)
}

fn write_item(w: &mut Writer<'_>, indent: usize, v: &Value) {
    match v {
        Value::Object(o) if !o.is_empty() => w.item(indent, |w, i| {
            for (k, v) in o {
                write_entry(w, i, k, v);
            }
        }),
        Value::Array(a) if !a.is_empty() => w.item(indent, |w, i| {
            for item in a {
                write_item(w, i, item);
            }
        }),
        other => w.line(indent, &format!("- {}", json_scalar(other))),
    }
}

/// A JSON scalar (or an empty object or array) as YAML.
fn json_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => scalar(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// A number that YAML reads back as the same JSON number: integers as digits, floats always
/// with a `.` (so `1.0` stays a float) and an explicit exponent sign.
fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let text = n.to_string();
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.to_string()
            } else {
                format!("{mantissa}.0")
            };
            let exp = if exp.starts_with('-') || exp.starts_with('+') {
                exp.to_string()
            } else {
                format!("+{exp}")
            };
            format!("{mantissa}e{exp}")
        }
        None if text.contains('.') => text,
        None => format!("{text}.0"),
    }
}

/// A string as a YAML scalar: plain when unmistakable, else double-quoted (JSON escapes).
pub fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

/// Conservative: a letter, `_`, `/`, `./` or `../` first; then letters, digits and `_ . / @ + - :`, inner
/// spaces (`:` never before a space or at the end); never a word YAML reads as a boolean,
/// null or a special float.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let relative_path = s.starts_with("./") || s.starts_with("../");
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/' || relative_path)
        || s.ends_with(' ')
    {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _./@+-:".contains(c))
    {
        return false;
    }
    // `:` only inside a word (`rdk:component:arm`, `http://x`): never before a space or at
    // the end, where YAML would read a key.
    if s.ends_with(':') || s.contains(": ") {
        return false;
    }
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf", "infinity",
    ];
    !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A duration in the largest unit that divides it, as `parse_duration` reads it.
fn duration(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}s", d.as_secs_f64());
    }
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A file or directory name made from a resource name: letters, digits, `.`, `_` and `-`
/// kept, everything else `_`, and never `.`/`..` or a hidden name.
fn safe_segment(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, SensitiveValue};
    use serde_json::json;
    use std::path::Path;

    fn identity() -> Identity {
        Identity::default()
    }

    fn part(path: &str, main: bool, config: Value, fragments: &[&str]) -> DesiredPart {
        DesiredPart {
            name: path.rsplit('/').next().unwrap().to_string(),
            path: path.to_string(),
            identity: identity(),
            main,
            config: Config {
                value: config,
                sensitive: vec![],
            },
            fragments: fragments.iter().map(|s| FragmentUse::named(*s)).collect(),
            ignore: vec![],
        }
    }

    /// A model that uses every feature the writer has.
    fn sample() -> Desired {
        let tricky = json!({
            "components": [
                {
                    "name": "cam",
                    "type": "camera",
                    "attributes": {
                        "fps": 30,
                        "gain": 1.0,
                        "tiny": 1.5e-7,
                        "huge": 1e30,
                        "neg": -4,
                        "flags": [true, false, null],
                        "yes": "yes",
                        "number_text": "0123",
                        "colon": "a: b",
                        "hash": "x #y",
                        "multi": "line1\nline2\t\"quoted\"",
                        "literal_env": "${env:NOT_A_REF} and $${env:X}",
                        "empty": "",
                        "empty_obj": {},
                        "empty_list": [],
                        "nested": [[1, 2], [{"a": 1}], []],
                        "unicode": "größe ✓",
                        "- dash": "- x",
                        "quote'": "'",
                        "api": "rdk:component:camera",
                        "url": "http://10.0.0.1:8080/x",
                        "colon_end": "a:",
                        "tags": ["a:b", "http://x", "c d", "1", "", "yes"],
                        "mixed": [1, 2.5, "x", null, false],
                    }
                }
            ],
            "services": []
        });
        let main = part(
            "HQ/Assembly/arm-01/arm-01-main",
            true,
            tricky,
            &["camera-kit"],
        );
        let mut aux = part("HQ/Assembly/arm-01/arm-01-aux", false, json!({}), &[]);
        aux.ignore = vec!["/components/0/attributes/calibration".into()];
        aux.identity.id = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
        let mut solo = part(
            "HQ/rover/rover-main",
            true,
            json!({"a": {"b": [1]}}),
            &["kit:v2", "camera-kit"],
        );
        // An import with options (in their written order, an unknown key among them), and
        // another organization's fragment by id.
        solo.fragments[1]
            .options
            .insert("prefix".into(), json!("front"));
        solo.fragments[1]
            .options
            .insert("version".into(), json!("3"));
        solo.fragments[1]
            .options
            .insert("later_key".into(), json!({"b": 1, "a": [2.0]}));
        solo.fragments.push(FragmentUse {
            fragment: FragmentRef::Id("3b4e28ba-2fa1-11d2-883f-0016d3cca427".into()),
            options: serde_json::Map::new(),
        });
        Desired {
            organization: OrgRef::Name("acme".into()),
            prune: true,
            default_fragments: Some(vec![
                FragmentUse::named("camera-kit"),
                FragmentUse {
                    fragment: FragmentRef::Name("kit:v2".into()),
                    options: [("version".to_string(), json!("stable"))]
                        .into_iter()
                        .collect(),
                },
            ]),
            fragments: vec![
                DesiredFragment {
                    name: "camera-kit".into(),
                    identity: identity(),
                    visibility: Visibility::Public,
                    config: Config {
                        value: json!({"components": [{"name": "c"}]}),
                        sensitive: vec![],
                    },
                    tags: Some(vec![
                        ("stable".into(), TagTarget::Revision("2".into())),
                        ("beta".into(), TagTarget::Current),
                    ]),
                },
                DesiredFragment {
                    name: "kit:v2".into(),
                    identity: identity(),
                    visibility: Visibility::PublicUnlisted,
                    config: Config {
                        value: json!({}),
                        sensitive: vec![],
                    },
                    tags: None,
                },
                DesiredFragment {
                    name: "true".into(),
                    identity: Identity {
                        id: Some("2b4e28ba-2fa1-11d2-883f-0016d3cca427".into()),
                        moved_from: None,
                        protect: true,
                    },
                    visibility: Visibility::Private,
                    config: Config {
                        value: json!({}),
                        sensitive: vec![],
                    },
                    tags: None,
                },
            ],
            locations: vec![DesiredLocation {
                name: "HQ".into(),
                path: "HQ".into(),
                identity: Identity {
                    id: Some("abcde12345".into()),
                    moved_from: None,
                    protect: false,
                },
                rotate_secrets_after: Some(Duration::from_secs(90 * 86_400)),
                locations: vec![DesiredLocation {
                    name: "Assembly".into(),
                    path: "HQ/Assembly".into(),
                    identity: Identity {
                        id: None,
                        moved_from: Some("Old/Assembly".into()),
                        protect: true,
                    },
                    rotate_secrets_after: None,
                    locations: vec![],
                    machines: vec![DesiredMachine {
                        name: "arm-01".into(),
                        path: "HQ/Assembly/arm-01".into(),
                        identity: identity(),
                        parts: vec![main, aux],
                    }],
                }],
                machines: vec![DesiredMachine {
                    name: "rover".into(),
                    path: "HQ/rover".into(),
                    identity: identity(),
                    parts: vec![solo],
                }],
            }],
            invites: Some(vec![DesiredInvite {
                email: "ops@acme.example".into(),
                grants: vec![
                    DesiredGrant {
                        role: Role::Owner,
                        target: GrantTarget::Organization,
                    },
                    DesiredGrant {
                        role: Role::Operator,
                        target: GrantTarget::Location("HQ/Assembly".into()),
                    },
                    DesiredGrant {
                        role: Role::Operator,
                        target: GrantTarget::Machine("HQ/rover".into()),
                    },
                ],
                protect: false,
                send_email: true,
            }]),
            digest: String::new(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str, dir: &Path) -> Desired {
        let mut d = crate::manifest::parse_str(text, &dir.join("fleet.yaml"), &no_env)
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        d.digest.clear();
        d
    }

    #[test]
    fn inline_export_parses_back_to_the_same_model() {
        let source = sample();
        let out = export(
            &source,
            &ExportOptions {
                config_dir: None,
                header: vec!["written by a test".into()],
            },
        );
        assert!(out.files.is_empty());
        assert!(
            out.manifest
                .starts_with("# written by a test\nversion: 1\n")
        );
        let back = parse(&out.manifest, Path::new("."));
        assert_eq!(back, source, "\n{}", out.manifest);
    }

    #[test]
    fn file_export_parses_back_to_the_same_model() {
        let source = sample();
        let out = export(
            &source,
            &ExportOptions {
                config_dir: Some("configs".into()),
                header: vec![],
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<&str> = out.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "configs/fragments/camera-kit.json",
                "configs/HQ/Assembly/arm-01/arm-01-main.json",
                "configs/HQ/rover/rover-main.json",
            ]
        );
        for f in &out.files {
            let path = dir.path().join(&f.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &f.contents).unwrap();
        }
        assert!(!out.manifest.contains("config:"), "{}", out.manifest);
        let back = parse(&out.manifest, dir.path());
        assert_eq!(back, source, "\n{}", out.manifest);
    }

    #[test]
    fn sensitive_values_are_written_as_their_templates() {
        let mut d = sample();
        let p = &mut d.locations[0].machines[0].parts[0];
        p.config.value = json!({"auth": {"token": "Bearer s3cr3t"}});
        p.config.sensitive = vec![SensitiveValue {
            pointer: "/auth/token".into(),
            template: "Bearer ${env:TOKEN}".into(),
            env: vec!["TOKEN".into()],
            sha256: "x".into(),
        }];
        let out = export(&d, &ExportOptions::default());
        assert!(!out.manifest.contains("s3cr3t"), "{}", out.manifest);
        assert!(
            out.manifest.contains("token: \"Bearer ${env:TOKEN}\""),
            "{}",
            out.manifest
        );
    }

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(scalar("HQ/Assembly"), "HQ/Assembly");
        assert_eq!(scalar("ops@acme.example"), "ops@acme.example");
        assert_eq!(scalar("arm 01"), "arm 01");
        assert_eq!(scalar("rdk:component:arm"), "rdk:component:arm");
        assert_eq!(scalar("../configs/a.json"), "../configs/a.json");
        for s in [
            "", "yes", "No", "null", "~", "1", "1.5", "0x1f", "-x", ".inf", "a: b", "a:", ":a",
            ".5", "..", ".x", "a #b", "[x]", "x,y", "a ", " a",
        ] {
            assert!(scalar(s).starts_with('"'), "{s:?} must be quoted");
        }
    }

    #[test]
    fn names_become_safe_file_names() {
        assert_eq!(safe_segment("arm-01.main"), "arm-01.main");
        assert_eq!(safe_segment(".."), "_.");
        assert_eq!(safe_segment("a b/c"), "a_b_c");
        assert_eq!(safe_segment(""), "_");
    }

    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }
}
