//! Validation: raw serde structs plus the position tree in, the `Desired` model out.
//!
//! Checks every rule the schema cannot express and collects every problem before giving up:
//! names (non-empty, no `/`, no surrounding whitespace) and their uniqueness among siblings,
//! location depth (at most 3), one main part per machine, declared fragment references,
//! identity pins (`id:` syntax and uniqueness, `moved_from` paths), durations, emails, roles,
//! grant targets, `ignore` pointers, and (in `config`) config files and `${env:…}` references.
//!
//! This file holds the entry point, names and error reporting; each concept is checked in its
//! own file, as more methods of the one [`Validator`]: `tree` (locations, machines, parts),
//! `fragments` (fragments, imports, tags), `identity` (`id:` pins, `moved_from`) and `access`
//! (invites and grants).
//!
//! Decisions where the design was silent:
//! - `id:` and `moved_from:` together is an error: the id already keeps the resource.
//! - `moved_from` is always a full path (a fragment's is its old name). A part's must be in
//!   its own machine, under either the machine's path or the machine's own `moved_from`.
//!   Two resources may not claim the same `moved_from`. A `moved_from` may not name a path
//!   the manifest declares (also through a location's own `moved_from`: `Old/x` is `New/x`
//!   when `New` moved from `Old`): a swap or rotation by name is ambiguous; pins are the way.
//! - The same `id:` may not be pinned twice, across all kinds of resource.
//! - UUID pins and an organization UUID are lowercased; emails are lowercased and compared
//!   case-insensitively.
//! - A single part with an explicit `main: false` is an error (it is always the main part).
//! - Part names must also be unique within a location, because Viam requires it.
//! - A grant's `organization:` may only be `true`; two grants on one target are an error
//!   whatever their roles.
//! - `rollout:`: see `rollout.rs`.
//! - `rotate_after` must be longer than zero; an `ignore` entry may not be the empty pointer
//!   (that would ignore the whole config).

mod access;
mod fragments;
mod identity;
mod rollout;
mod tree;

use super::error::Diagnostic;
use super::raw::{
    RawFragment, RawGrant, RawInvite, RawKey, RawLocation, RawMachine, RawManifest,
    RawOrganization, RawPart,
};
use super::span::{Node, Pos, YPath};
use super::structure::closest;
use crate::model::rules::{
    MAX_LOCATION_DEPTH, MAX_NAME_CHARS, is_forbidden_char, is_location_id, is_uuid,
};
use crate::model::{
    Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredKey, DesiredLocation,
    DesiredMachine, DesiredPart, FragmentRef, FragmentUse, GrantTarget, Identity, OrgRef,
    OrgSettings, Role, TagTarget, Visibility, parse_duration,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

const NAME_HINT: &str = "names are at most 128 characters of printable text: no control characters (newline, tab, escape, NUL) and no bidirectional-text overrides";

/// Checks a name's length and characters; the error says what is wrong, with the name
/// shown escaped (it may hold characters that would disturb a terminal).
pub fn check_name_chars(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count > MAX_NAME_CHARS {
        let head: String = name.chars().take(20).flat_map(char::escape_debug).collect();
        return Err(format!(
            "`{head}…` is {count} characters long; at most {MAX_NAME_CHARS} are allowed"
        ));
    }
    if let Some(c) = name.chars().find(|&c| is_forbidden_char(c)) {
        let shown: String = name.chars().flat_map(char::escape_debug).collect();
        return Err(format!(
            "`{shown}` contains the control character {}",
            c.escape_unicode()
        ));
    }
    Ok(())
}

/// What kind of resource an identity belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Fragment,
    Location,
    Machine,
    Part,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Fragment => "fragment",
            Kind::Location => "location",
            Kind::Machine => "machine",
            Kind::Part => "part",
        }
    }
}

/// Validation state: inputs, the problems found so far, and what the digest needs.
pub struct Validator<'a> {
    /// The manifest's path, as given.
    pub origins: &'a super::origin::Origins,
    /// The directory `config_file` paths are relative to.
    pub dir: PathBuf,
    /// Where files may be read from, and how much.
    pub opts: &'a super::LoadOptions,
    pub tree: &'a Node,
    /// Inline configs already built (taken as they are used).
    pub prebuilt: super::config::Prebuilt,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub diags: Vec<Diagnostic>,
    /// Included files, first use first: (path as written, resolved path, bytes).
    pub includes: Vec<(String, PathBuf, Vec<u8>)>,
    /// Environment variables used, with the SHA-256 of their values.
    pub env_used: BTreeMap<String, String>,
    pins: HashMap<String, (String, usize)>,
    /// Every `moved_from` so far: (kind, path) → (who says it, line, where).
    moves: HashMap<(Kind, String), (String, usize, YPath)>,
    /// Managed metadata, in declaration order.
    metadata: Vec<crate::model::DesiredMetadata>,
}

/// The names and paths a manifest declares, for checking references to them.
#[derive(Default)]
struct Decls {
    fragments: Vec<String>,
    locations: HashSet<String>,
    machines: HashSet<String>,
}

/// The machine a part belongs to.
struct MachineCtx<'m> {
    path: &'m str,
    moved_from: Option<&'m str>,
}

/// Validates `raw` into a [`Desired`], or returns every problem found. The expanded tree
/// is taken: its inline configs are built first, freeing their subtrees (see
/// [`prebuild_inline`](super::config::prebuild_inline)).
pub fn validate(
    raw: &RawManifest,
    digest: super::include::Digester,
    expanded: super::expand::Expanded,
    origins: &super::origin::Origins,
    opts: &super::LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, Vec<Diagnostic>> {
    let super::expand::Expanded {
        root: mut tree,
        files,
        configs,
    } = expanded;
    let prebuilt = super::config::prebuild_inline(&mut tree, configs);
    let tree = &tree;
    let mut v = Validator {
        origins,
        dir: origins
            .manifest()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        opts,
        tree,
        prebuilt,
        env,
        diags: Vec::new(),
        includes: Vec::new(),
        env_used: BTreeMap::new(),
        pins: HashMap::new(),
        moves: HashMap::new(),
        metadata: Vec::new(),
    };
    let root = YPath::root();
    if raw.version != 1 {
        v.err(
            &root.key("version"),
            format!("unsupported manifest version {}", raw.version),
            "this fleetform reads version 1 manifests: write `version: 1`",
        );
    }
    let (organization, settings) = match &raw.organization {
        RawOrganization::Settings(s) => v.organization_settings(s),
        RawOrganization::Name(name) => (v.organization(name), OrgSettings::default()),
    };
    let mut decls = Decls {
        fragments: raw.fragments.iter().map(|f| f.name.clone()).collect(),
        ..Decls::default()
    };
    let default_fragments = match &raw.organization {
        RawOrganization::Settings(s) => s.default_fragments.as_ref().map(|list| {
            let at = root.key("organization").key("default_fragments");
            // The cloud keeps an organization's imports in a fixed form: no other keys.
            for (i, entry) in list.iter().enumerate() {
                for key in entry.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !["name", "id", "version", "prefix", "variables"].contains(&key.as_str()) {
                        v.err_key(
                            &at.idx(i).key(key),
                            format!("unknown key `{key}` in a default fragment import"),
                            "an organization's default fragments take name or id, version, prefix and variables only",
                        );
                    }
                }
            }
            v.fragment_uses(list, &at, "the organization's default fragments", &decls)
        }),
        RawOrganization::Name(_) => None,
    };
    if let RawOrganization::Settings(s) = &raw.organization {
        v.metadata(
            crate::model::MetadataOwner::Organization,
            s.metadata.as_ref(),
        );
    }
    let fragments = v.fragments(&raw.fragments);
    let locations = v.locations(&raw.locations, None, 1, &root.key("locations"), &mut decls);
    let access = raw.access.as_ref();
    let invites = access
        .and_then(|a| a.invites.as_deref())
        .map(|i| v.invites(i, &decls));
    let mut kinds = BTreeMap::new();
    for (section, raw) in access.into_iter().flat_map(|a| &a.kinds) {
        let at = root.key("access").key(section);
        match crate::kinds::KINDS.iter().find(|k| k.section() == section) {
            Some(kind) => {
                let mut sv = SectionValidator {
                    v: &mut v,
                    decls: &decls,
                };
                let desired = kind.validate(&mut sv, raw, &at);
                kinds.insert(kind.key().to_string(), desired);
            }
            None => v.err_key(
                &at,
                format!("unknown key `{section}` in `access`"),
                format!("allowed: {}", super::access_keys().join(", ")),
            ),
        }
    }
    let keys = access
        .and_then(|a| a.keys.as_deref())
        .map(|k| v.keys(k, &decls));
    let rollout = raw.rollout.as_ref().map(|r| v.rollout(r, &locations));
    v.moved_from_declared(&fragments, &locations);
    if !v.diags.is_empty() {
        return Err(v.diags);
    }
    let includes: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .chain(v.includes.into_iter().map(|(rel, _, bytes)| (rel, bytes)))
        .collect();
    Ok(Desired {
        organization,
        prune: raw.prune,
        rollout,
        fragments,
        locations,
        invites,
        keys,
        default_fragments,
        settings,
        metadata: {
            // By owner, so the model does not depend on the order things were declared in.
            v.metadata.sort_by(|a, b| a.owner.cmp(&b.owner));
            std::mem::take(&mut v.metadata)
        },
        kinds,
        digest: digest.finish(&includes, &v.env_used),
    })
}

/// What a registered kind ([`crate::kinds`]) validates its section with: the problems found
/// (reported at their place in the manifest), and the grants shared by every holder of
/// roles.
pub struct SectionValidator<'v, 'a> {
    v: &'v mut Validator<'a>,
    decls: &'v Decls,
}

impl SectionValidator<'_, '_> {
    /// Reports a problem at `at`.
    pub fn err(&mut self, at: &YPath, message: impl Into<String>, hint: impl Into<String>) {
        self.v.err(at, message, hint);
    }

    /// The line `at` is on.
    pub fn line(&self, at: &YPath) -> usize {
        self.v.tree.pos_of(at).line()
    }

    /// The grants of the entry at `at` (named `who` in messages), each parsed, its target
    /// resolved to a declared path, one grant per target.
    pub fn grants(&mut self, raw: &[RawGrant], at: &YPath, who: &str) -> Vec<DesiredGrant> {
        self.v.grants(raw, at, who, self.decls)
    }
}

impl Validator<'_> {
    /// Records the `metadata:` of one declaration, when it has the key. Metadata is taken as
    /// written: no `${env:…}` substitution (it is stored in plain text and read by other tools).
    pub fn metadata(
        &mut self,
        owner: crate::model::MetadataOwner,
        data: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        if let Some(data) = data {
            self.metadata.push(crate::model::DesiredMetadata {
                owner,
                data: data.clone(),
            });
        }
    }

    /// Reports a problem at the value of `at`.
    pub fn err(&mut self, at: &YPath, message: impl Into<String>, hint: impl Into<String>) {
        let pos = self.tree.pos_of(at);
        self.err_at(pos, message, hint);
    }

    /// Reports a problem at the key of `at` (`moved_from` in `moved_from: x`).
    pub fn err_key(&mut self, at: &YPath, message: impl Into<String>, hint: impl Into<String>) {
        let pos = self.tree.key_pos_of(at);
        self.err_at(pos, message, hint);
    }

    /// Reports a problem at a position in the manifest.
    pub fn err_at(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        let d = self.origins.diag(pos, message, hint);
        self.diags.push(d);
    }

    /// `organization:` as a mapping: how the organization is found, and the settings managed.
    /// With `id:` the organization is found by id and `name:` is its wanted name; without it,
    /// `name:` (a name or an id) finds it and no name is managed.
    fn organization_settings(&mut self, s: &super::raw::RawOrgSettings) -> (OrgRef, OrgSettings) {
        let at = YPath::root().key("organization");
        let org = match &s.id {
            Some(id) => {
                if !is_uuid(id) {
                    self.err(
                        &at.key("id"),
                        format!("organization id `{id}` is not a UUID"),
                        "write the organization's id as shown by `fleetform org show`, or remove `id:` to find it by name",
                    );
                }
                // The wanted name must be a valid organization name.
                self.organization(&s.name);
                OrgRef::Id(id.to_ascii_lowercase())
            }
            None => self.organization(&s.name),
        };
        let mut text = |key: &str, value: &Option<String>| {
            let value = value.as_ref()?;
            if value.trim().is_empty() || value.trim() != value {
                self.err(
                    &at.key(key),
                    format!("`{key}` must not be empty or have surrounding spaces"),
                    format!("write the organization's {key}, or remove the key to leave it alone"),
                );
            }
            Some(value.clone())
        };
        let public_namespace = text("public_namespace", &s.public_namespace);
        let region = text("region", &s.region);
        let settings = OrgSettings {
            name: s.id.as_ref().map(|_| s.name.clone()),
            public_namespace,
            region,
        };
        (org, settings)
    }

    fn organization(&mut self, org: &str) -> OrgRef {
        let at = match self
            .tree
            .get(&YPath::root().key("organization").key("name"))
        {
            Some(_) => YPath::root().key("organization").key("name"),
            None => YPath::root().key("organization"),
        };
        if org.trim().is_empty() {
            self.err(
                &at,
                "`organization` must not be empty",
                "write the organization's name or id, e.g. `organization: acme`",
            );
        } else if let Err(problem) = check_name_chars(org) {
            self.err(&at, format!("organization {problem}"), NAME_HINT);
        } else if org.trim() != org {
            self.err(
                &at,
                format!("organization `{org}` has leading or trailing whitespace"),
                "remove the surrounding spaces",
            );
        }
        if is_uuid(org) {
            OrgRef::Id(org.to_ascii_lowercase())
        } else {
            OrgRef::Name(org.to_string())
        }
    }

    /// Checks a name's syntax; `at` is the object holding `name:`.
    fn check_name(&mut self, name: &str, at: &YPath, kind: Kind) {
        let at = at.key("name");
        let noun = kind.noun();
        if name.is_empty() {
            self.err(
                &at,
                format!("{noun} name must not be empty"),
                format!("give the {noun} a name"),
            );
        } else if let Err(problem) = check_name_chars(name) {
            self.err(&at, format!("{noun} name {problem}"), NAME_HINT);
        } else if name.contains('/') {
            self.err(
                &at,
                format!("{noun} name `{name}` contains `/`"),
                "`/` separates the names in a path such as `HQ/Assembly/arm-01`; choose a name without it",
            );
        } else if name.trim() != name {
            self.err(
                &at,
                format!("{noun} name `{name}` has leading or trailing whitespace"),
                "remove the surrounding spaces",
            );
        }
    }

    /// Reports siblings that share a name; `list` is the path of the list holding them.
    fn check_unique<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
        list: &YPath,
        kind: Kind,
        scope: &str,
    ) {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for (i, name) in names.enumerate() {
            let at = list.idx(i).key("name");
            let pos = self.tree.pos_of(&at);
            match seen.get(name) {
                Some(&first) => {
                    let first = self.origins.line_ref(first, pos);
                    let noun = kind.noun();
                    self.err(
                        &at,
                        format!("duplicate {noun} name `{name}`{scope} (first at {first})"),
                        format!("{noun} names must be unique{scope}; rename or merge one of them"),
                    );
                }
                None => {
                    seen.insert(name, pos);
                }
            }
        }
    }
}

fn join(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}/{name}"),
        None => name.to_string(),
    }
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
}

/// Checks an `ignore` entry: a non-empty RFC 6901 pointer. The error completes "entry `x` …".
pub fn check_pointer(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("is the empty pointer, which would ignore the whole config");
    }
    if !p.starts_with('/') {
        return Err("is not a JSON pointer: it must start with `/`");
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("is not a JSON pointer: `~` must be followed by `0` or `1`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_emails_and_pointers() {
        assert!(is_email("ops@acme.example"));
        for bad in [
            "ops",
            "ops@",
            "@acme.example",
            "ops@acme",
            "o ps@acme.example",
            "a@b@c.d",
            "ops@acme.",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(check_pointer("/components/0/attributes/a~1b~0c").is_ok());
        assert!(check_pointer("").is_err());
        assert!(check_pointer("components").is_err());
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }
}
