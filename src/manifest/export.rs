//! The manifest writer: a [`Desired`] model back to version-1 YAML that [`super::parse_str`]
//! reads into the same model. `fleetform import` uses it to write what a cloud holds.
//!
//! The model is turned into the structs the reader deserializes ([`super::raw`]), which
//! `serde_yaml` serializes; the text is then laid out as `fleetform fmt` would
//! ([`super::layout`]). The shape of a manifest therefore has one source: a new key is a
//! field of a `raw` struct, read by `validate` and written here.
//!
//! # Guarantees
//! - Round trip: parsing the output (with the written config files in place) gives back the
//!   model, except its `digest` (which hashes the text). Keys that hold their default are left
//!   out (`prune: false`, `protect: false`, `visibility: private`, empty configs).
//! - Strings are quoted by `serde_yaml` whenever YAML 1.2, as fleetform reads it, could read
//!   them as anything else (a number, a boolean, null, a key/value separator, a comment).
//! - Config strings that contain `${env:` are escaped as `$${env:`, so a literal text from the
//!   cloud is not taken for an environment reference. A value that came from the environment
//!   ([`SensitiveValue`](crate::model::SensitiveValue)) is written as its template
//!   (`${env:TOKEN}`), never as the value; one without a template is written as the resolved
//!   text.
//! - With [`ExportOptions::config_dir`], each non-empty config goes to its own JSON file:
//!   `DIR/fragments/<name>.json` for fragments and `DIR/<part path>.json` for parts, with file
//!   names made safe (`/`, `..` and unusual characters replaced) and kept distinct.
//!
//! # Layout
//! Keys in the order of the `raw` structs (name, identity, then what the resource holds,
//! children last), two spaces per level, sequences indented under their key, the header
//! options as `# ` comments on top. Lists and mappings are written as blocks: grants, `ignore`
//! paths and `secrets:` each take a few lines where the hand-written writer used to put them
//! on one (`{ role: operator, location: HQ }`); both read the same.
//!
//! This module only builds text; the caller writes the files.
//!
//! # Why `serde_yaml` still writes
//! Reading no longer uses `serde_yaml` (the manifest, `fmt`'s check, the watch list and the
//! lenient organization read all use `span`, the one parser). Writing does: its quoting
//! decisions are libyaml's scalar analysis (plain, single-quoted, double-quoted or literal,
//! per character class), and the exported text (import's output, the golden files, users'
//! committed manifests) must stay byte-identical. Replacing it means porting that analysis
//! and its writers (about 600 lines of libyaml's emitter) with a test over the real-config
//! corpus that the two agree; until then, the deprecated crate stays as a writer only.

use super::raw::{
    Inline, RawAccess, RawFragment, RawGrant, RawInvite, RawKey, RawLocation, RawMachine,
    RawManifest, RawOrgSettings, RawOrganization, RawPart, RawSecrets,
};
use crate::model::{
    Config, Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredKey, DesiredLocation,
    DesiredMachine, DesiredPart, FragmentRef, FragmentUse, GrantTarget, Identity, OrgRef,
    TagTarget, Visibility,
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
        opts,
        files: vec![],
        taken: BTreeSet::new(),
        metadata: &desired.metadata,
    };
    let raw = w.manifest(desired);
    let yaml = serde_yaml::to_string(&raw).expect("manifest structs serialize");
    // The canonical layout when the formatter can produce it without changing a value (it
    // declines a few unusual block scalars); else `serde_yaml`'s own, which reads the same.
    let body = super::layout::format_checked(&yaml).unwrap_or(yaml);
    let mut manifest = String::new();
    for line in &opts.header {
        manifest.push_str(format!("# {line}").trim_end());
        manifest.push('\n');
    }
    manifest.push_str(&body);
    Exported {
        manifest,
        files: w.files,
    }
}

/// Builds the `raw` structs, and the config files when configs go to files.
struct Writer<'a> {
    opts: &'a ExportOptions,
    files: Vec<ConfigFile>,
    /// Config file paths already used (lowercased: some file systems ignore case).
    taken: BTreeSet<String>,
    /// The manifest's managed metadata, looked up by owner.
    metadata: &'a [crate::model::DesiredMetadata],
}

impl Writer<'_> {
    /// The `metadata:` to write for `owner`: only when the manifest manages it.
    fn metadata(
        &self,
        owner: crate::model::MetadataOwner,
    ) -> Option<serde_json::Map<String, Value>> {
        self.metadata
            .iter()
            .find(|m| m.owner == owner)
            .map(|m| m.data.clone())
    }

    fn manifest(&mut self, d: &Desired) -> RawManifest {
        let org = match &d.organization {
            OrgRef::Id(id) | OrgRef::Name(id) => id.clone(),
        };
        RawManifest {
            version: 1,
            organization: match (
                &d.default_fragments,
                self.metadata(crate::model::MetadataOwner::Organization),
            ) {
                (None, None) if d.settings.is_empty() => RawOrganization::Name(org),
                (uses, metadata) => {
                    // A managed name means the organization is found by id.
                    let (name, id) = match (&d.settings.name, &d.organization) {
                        (Some(name), OrgRef::Id(id)) => (name.clone(), Some(id.clone())),
                        _ => (org, None),
                    };
                    RawOrganization::Settings(RawOrgSettings {
                        name,
                        id,
                        public_namespace: d.settings.public_namespace.clone(),
                        region: d.settings.region.clone(),
                        default_fragments: uses.as_ref().map(|u| imports(u)),
                        metadata,
                    })
                }
            },
            prune: d.prune,
            fragments: d.fragments.iter().map(|f| self.fragment(f)).collect(),
            locations: d.locations.iter().map(|l| self.location(l)).collect(),
            access: (d.invites.is_some() || !d.kinds.is_empty() || d.keys.is_some()).then(|| {
                RawAccess {
                    invites: d.invites.as_ref().map(|i| i.iter().map(invite).collect()),
                    kinds: crate::kinds::KINDS
                        .iter()
                        .filter_map(|k| {
                            let desired = d.kinds.get(k.key())?;
                            Some((k.section().to_string(), k.export(desired)))
                        })
                        .collect(),
                    keys: d.keys.as_ref().map(|k| k.iter().map(key).collect()),
                }
            }),
            rollout: d.rollout.as_ref().map(rollout),
        }
    }

    fn fragment(&mut self, f: &DesiredFragment) -> RawFragment {
        let (id, moved_from, protect) = identity(&f.identity);
        let file = ["fragments".to_string(), safe_segment(&f.name)];
        let (config, config_file) = self.config(&f.config, &file);
        RawFragment {
            name: f.name.clone(),
            id,
            moved_from,
            protect,
            visibility: match f.visibility {
                Visibility::Private => None,
                Visibility::Public => Some("public".into()),
                Visibility::PublicUnlisted => Some("public_unlisted".into()),
            },
            config,
            config_file,
            tags: f.tags.as_ref().map(|tags| {
                tags.iter()
                    .map(|(tag, target)| {
                        let v = match target {
                            TagTarget::Current => "current".to_string(),
                            TagTarget::Revision(r) => r.clone(),
                        };
                        (tag.clone(), Value::String(v))
                    })
                    .collect()
            }),
        }
    }

    fn location(&mut self, l: &DesiredLocation) -> RawLocation {
        let (id, moved_from, protect) = identity(&l.identity);
        RawLocation {
            name: l.name.clone(),
            id,
            moved_from,
            protect,
            secrets: l.rotate_secrets_after.map(|d| RawSecrets {
                rotate_after: duration(d),
            }),
            metadata: self.metadata(crate::model::MetadataOwner::Location(l.path.clone())),
            locations: l.locations.iter().map(|c| self.location(c)).collect(),
            machines: l.machines.iter().map(|m| self.machine(l, m)).collect(),
        }
    }

    fn machine(&mut self, l: &DesiredLocation, m: &DesiredMachine) -> RawMachine {
        let (id, moved_from, protect) = identity(&m.identity);
        let several = m.parts.len() > 1;
        RawMachine {
            name: m.name.clone(),
            id,
            moved_from,
            protect,
            metadata: self.metadata(crate::model::MetadataOwner::Machine(m.path.clone())),
            parts: m
                .parts
                .iter()
                .map(|p| self.part(l, m, p, several))
                .collect(),
        }
    }

    fn part(
        &mut self,
        l: &DesiredLocation,
        m: &DesiredMachine,
        p: &DesiredPart,
        several: bool,
    ) -> RawPart {
        let (id, moved_from, protect) = identity(&p.identity);
        let mut file: Vec<String> = l.path.split('/').map(safe_segment).collect();
        file.push(safe_segment(&m.name));
        file.push(safe_segment(&p.name));
        let (config, config_file) = self.config(&p.config, &file);
        RawPart {
            name: p.name.clone(),
            id,
            moved_from,
            protect,
            // With one part, the part is the main one without saying so.
            main: (several && p.main).then_some(true),
            fragments: imports(&p.fragments),
            ignore: p.ignore.clone(),
            metadata: self.metadata(crate::model::MetadataOwner::Part(p.path.clone())),
            config,
            config_file,
        }
    }

    /// `config:` inline, or `config_file:` plus a file; neither for an empty config.
    fn config(&mut self, config: &Config, file: &[String]) -> (Option<Inline>, Option<String>) {
        let value = config_for_text(config);
        if value.as_object().is_some_and(|o| o.is_empty()) {
            return (None, None);
        }
        match self.opts.config_dir.clone() {
            None => (Some(Inline(value)), None),
            Some(dir) => {
                let path = self.file_path(&dir, file);
                let contents =
                    serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n";
                self.files.push(ConfigFile {
                    path: path.clone(),
                    contents,
                });
                (None, Some(path))
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
}

/// `id`, `moved_from` and `protect`, as every resource writes them.
fn identity(id: &Identity) -> (Option<String>, Option<String>, bool) {
    (id.id.clone(), id.moved_from.clone(), id.protect)
}

fn invite(inv: &DesiredInvite) -> RawInvite {
    RawInvite {
        email: inv.email.clone(),
        protect: inv.protect,
        send_email: (!inv.send_email).then_some(false),
        grants: inv.grants.iter().map(grant).collect(),
    }
}

fn key(k: &DesiredKey) -> RawKey {
    RawKey {
        name: k.name.clone(),
        moved_from: k.moved_from.clone(),
        protect: k.protect,
        grants: k.grants.iter().map(grant).collect(),
    }
}

/// `role: operator` and `location: HQ/Assembly` (or `machine:`, or `organization: true`).
/// A grant as written.
pub fn grant(g: &DesiredGrant) -> RawGrant {
    let mut raw = RawGrant {
        role: g.role.as_str().to_string(),
        organization: None,
        location: None,
        machine: None,
    };
    match &g.target {
        GrantTarget::Organization => raw.organization = Some(true),
        GrantTarget::Location(p) => raw.location = Some(p.clone()),
        GrantTarget::Machine(p) => raw.machine = Some(p.clone()),
    }
    raw
}

/// A list of fragment imports as the manifest writes them: a bare name, or a mapping with
/// `name:` (or `id:`) first and the import's other keys as they are.
fn imports(uses: &[FragmentUse]) -> Vec<Value> {
    uses.iter()
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
        .collect()
}

/// The config as it should appear in the manifest: literal `${env:` escaped, and values that
/// came from the environment replaced by their templates.
fn config_for_text(config: &Config) -> Value {
    let mut value = config.value();
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

/// A duration in the largest unit that divides it, as `parse_duration` reads it.
/// A rollout policy as written, defaults left out.
fn rollout(r: &crate::model::RolloutPolicy) -> crate::manifest::raw::RawRollout {
    use crate::manifest::raw::{RawAbortWhen, RawAmount, RawHealthGate};
    use crate::model::{Amount, HealthGate, OnAbort};
    let amount = |a: Amount| match a {
        Amount::Count(n) => RawAmount::Count(i64::from(n)),
        Amount::Percent(_) => RawAmount::Text(a.to_string()),
    };
    let gate = HealthGate::default();
    crate::manifest::raw::RawRollout {
        waves: r.waves.iter().map(|a| amount(*a)).collect(),
        order: r.order.clone(),
        wait: (!r.wait.is_zero()).then(|| duration(r.wait)),
        healthy_when: (r.healthy_when != gate).then(|| RawHealthGate {
            online_within: (r.healthy_when.online_within != gate.online_within)
                .then(|| duration(r.healthy_when.online_within)),
            max_error_logs: (r.healthy_when.max_error_logs != gate.max_error_logs)
                .then_some(i64::from(r.healthy_when.max_error_logs)),
        }),
        abort_when: (r.abort_when != Amount::Count(1)).then(|| RawAbortWhen {
            unhealthy: amount(r.abort_when),
        }),
        on_abort: (r.on_abort != OnAbort::Rollback).then(|| "stop".to_string()),
    }
}

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
    use crate::model::{DesiredMember, MemberRef, Role, SensitiveValue};
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
            config: Config::from(config),
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
            rollout: None,
            prune: true,
            metadata: vec![],
            settings: Default::default(),
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
                    config: Config::from(json!({"components": [{"name": "c"}]})),
                    tags: Some(vec![
                        ("stable".into(), TagTarget::Revision("2".into())),
                        ("beta".into(), TagTarget::Current),
                    ]),
                },
                DesiredFragment {
                    name: "kit:v2".into(),
                    identity: identity(),
                    visibility: Visibility::PublicUnlisted,
                    config: Config::from(json!({})),
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
                    config: Config::from(json!({})),
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
            kinds: [(
                "member".to_string(),
                serde_json::to_value(vec![
                    DesiredMember {
                        who: MemberRef::Email("lead@acme.example".into()),
                        grants: vec![DesiredGrant {
                            role: Role::Owner,
                            target: GrantTarget::Organization,
                        }],
                        protect: true,
                    },
                    DesiredMember {
                        who: MemberRef::UserId("user-2".into()),
                        grants: vec![DesiredGrant {
                            role: Role::Operator,
                            target: GrantTarget::Location("HQ/Assembly".into()),
                        }],
                        protect: false,
                    },
                ])
                .unwrap(),
            )]
            .into(),
            keys: Some(vec![DesiredKey {
                name: "line-robot".into(),
                moved_from: Some("old-robot".into()),
                grants: vec![
                    DesiredGrant {
                        role: Role::Operator,
                        target: GrantTarget::Location("HQ/Assembly".into()),
                    },
                    DesiredGrant {
                        role: Role::Owner,
                        target: GrantTarget::Machine("HQ/rover".into()),
                    },
                ],
                protect: true,
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
        // Already in the layout `fleetform fmt` writes.
        assert_eq!(crate::manifest::layout::format(&out.manifest), out.manifest);
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
        p.config.json =
            crate::model::ConfigJson::from_value(&json!({"auth": {"token": "Bearer s3cr3t"}}));
        p.config.sensitive = vec![SensitiveValue {
            pointer: "/auth/token".into(),
            template: "Bearer ${env:TOKEN}".into(),
            env: vec!["TOKEN".into()],
            sha256: "x".into(),
        }];
        let out = export(&d, &ExportOptions::default());
        assert!(!out.manifest.contains("s3cr3t"), "{}", out.manifest);
        assert!(
            out.manifest.contains("Bearer ${env:TOKEN}"),
            "{}",
            out.manifest
        );
        let env = |name: &str| (name == "TOKEN").then(|| "s3cr3t".to_string());
        let back = crate::manifest::parse_str(&out.manifest, Path::new("fleet.yaml"), &env)
            .unwrap_or_else(|e| panic!("{e}\n---\n{}", out.manifest));
        let config = &back.locations[0].machines[0].parts[0].config;
        assert_eq!(config.value(), json!({"auth": {"token": "Bearer s3cr3t"}}));
        let token = &config.sensitive[0];
        assert_eq!(token.template, "Bearer ${env:TOKEN}");
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
