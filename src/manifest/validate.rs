//! Validation: raw serde structs plus the position tree in, the `Desired` model out.
//!
//! Checks every rule the schema cannot express and collects every problem before giving up:
//! names (non-empty, no `/`, no surrounding whitespace) and their uniqueness among siblings,
//! location depth (at most 3), one main part per machine, declared fragment references,
//! identity pins (`id:` syntax and uniqueness, `moved_from` paths), durations, emails, roles,
//! grant targets, `ignore` pointers, and (in `config`) config files and `${env:…}` references.
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
//! - `rotate_after` must be longer than zero; an `ignore` entry may not be the empty pointer
//!   (that would ignore the whole config).

use super::error::Diagnostic;
use super::raw::{
    RawAccess, RawFragment, RawLocation, RawMachine, RawManifest, RawOrganization, RawPart,
};
use super::span::{Node, Pos, YPath};
use super::structure::closest;
use crate::model::rules::{
    MAX_LOCATION_DEPTH, MAX_NAME_CHARS, is_forbidden_char, is_location_id, is_uuid,
};
use crate::model::{
    Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredLocation, DesiredMachine,
    DesiredPart, FragmentRef, FragmentUse, GrantTarget, Identity, OrgRef, Role, TagTarget,
    Visibility, parse_duration,
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
    pub file: &'a Path,
    /// The directory `config_file` paths are relative to.
    pub dir: PathBuf,
    /// Where files may be read from, and how much.
    pub opts: &'a super::LoadOptions,
    pub tree: &'a Node,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub diags: Vec<Diagnostic>,
    /// Included files, first use first: (path as written, resolved path, bytes).
    pub includes: Vec<(String, PathBuf, Vec<u8>)>,
    /// Environment variables used, with the SHA-256 of their values.
    pub env_used: BTreeMap<String, String>,
    pins: HashMap<String, (String, usize)>,
    /// Every `moved_from` so far: (kind, path) → (who says it, line, where).
    moves: HashMap<(Kind, String), (String, usize, YPath)>,
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

/// Validates `raw` into a [`Desired`], or returns every problem found.
pub fn validate(
    raw: &RawManifest,
    text: &str,
    tree: &Node,
    file: &Path,
    opts: &super::LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, Vec<Diagnostic>> {
    let mut v = Validator {
        file,
        dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        opts,
        tree,
        env,
        diags: Vec::new(),
        includes: Vec::new(),
        env_used: BTreeMap::new(),
        pins: HashMap::new(),
        moves: HashMap::new(),
    };
    let root = YPath::root();
    if raw.version != 1 {
        v.err(
            &root.key("version"),
            format!("unsupported manifest version {}", raw.version),
            "this fleetform reads version 1 manifests: write `version: 1`",
        );
    }
    let organization = v.organization(raw.organization.name());
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
    let fragments = v.fragments(&raw.fragments);
    let locations = v.locations(&raw.locations, None, 1, &root.key("locations"), &mut decls);
    let invites = raw.access.as_ref().map(|a| v.invites(a, &decls));
    v.moved_from_declared(&fragments, &locations);
    if !v.diags.is_empty() {
        return Err(v.diags);
    }
    let includes: Vec<(String, Vec<u8>)> = v
        .includes
        .into_iter()
        .map(|(rel, _, bytes)| (rel, bytes))
        .collect();
    Ok(Desired {
        organization,
        prune: raw.prune,
        fragments,
        locations,
        invites,
        default_fragments,
        digest: super::include::digest(text, &includes, &v.env_used),
    })
}

impl Validator<'_> {
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
        self.diags.push(Diagnostic::new(
            self.file, pos.line, pos.column, message, hint,
        ));
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
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            let at = list.idx(i).key("name");
            let line = self.tree.pos_of(&at).line;
            match seen.get(name) {
                Some(first) => {
                    let noun = kind.noun();
                    self.err(
                        &at,
                        format!("duplicate {noun} name `{name}`{scope} (first at line {first})"),
                        format!("{noun} names must be unique{scope}; rename or merge one of them"),
                    );
                }
                None => {
                    seen.insert(name, line);
                }
            }
        }
    }

    fn fragments(&mut self, raw: &[RawFragment]) -> Vec<DesiredFragment> {
        let list = YPath::root().key("fragments");
        self.check_unique(
            raw.iter().map(|f| f.name.as_str()),
            &list,
            Kind::Fragment,
            "",
        );
        raw.iter()
            .enumerate()
            .map(|(i, f)| {
                let at = list.idx(i);
                self.check_name(&f.name, &at, Kind::Fragment);
                if f.name == crate::lease::LEASE_FRAGMENT {
                    self.err(
                        &at.key("name"),
                        format!("the fragment name `{}` is reserved", f.name),
                        "fleetform keeps the organization's lease in a fragment of that name; choose another",
                    );
                }
                let identity = self.identity(
                    Kind::Fragment,
                    &f.name,
                    f.id.as_deref(),
                    f.moved_from.as_deref(),
                    f.protect,
                    &at,
                    None,
                );
                let visibility = match f.visibility.as_deref() {
                    None | Some("private") => Visibility::Private,
                    Some("public") => Visibility::Public,
                    Some("public_unlisted") => Visibility::PublicUnlisted,
                    Some(other) => {
                        self.err(
                            &at.key("visibility"),
                            format!("unknown fragment visibility `{other}`"),
                            "use `private` (the default), `public` or `public_unlisted`",
                        );
                        Visibility::Private
                    }
                };
                let config = self.config(
                    f.config.is_some(),
                    f.config_file.as_deref(),
                    &at,
                    super::config::Owner::Fragment,
                );
                let tags = f.tags.as_ref().map(|t| self.tags(t, &at.key("tags")));
                DesiredFragment {
                    name: f.name.clone(),
                    identity,
                    visibility,
                    config,
                    tags,
                }
            })
            .collect()
    }

    fn locations(
        &mut self,
        raw: &[RawLocation],
        parent: Option<&str>,
        depth: usize,
        list: &YPath,
        decls: &mut Decls,
    ) -> Vec<DesiredLocation> {
        let scope = match parent {
            Some(p) => format!(" in location `{p}`"),
            None => " among top-level locations".to_string(),
        };
        self.check_unique(
            raw.iter().map(|l| l.name.as_str()),
            list,
            Kind::Location,
            &scope,
        );
        raw.iter()
            .enumerate()
            .map(|(i, l)| self.location(l, parent, depth, &list.idx(i), decls))
            .collect()
    }

    fn location(
        &mut self,
        raw: &RawLocation,
        parent: Option<&str>,
        depth: usize,
        at: &YPath,
        decls: &mut Decls,
    ) -> DesiredLocation {
        let path = join(parent, &raw.name);
        self.check_name(&raw.name, at, Kind::Location);
        if depth == MAX_LOCATION_DEPTH + 1 {
            self.err(
                &at.key("name"),
                format!(
                    "location `{path}` is nested {depth} levels deep; Viam allows at most {MAX_LOCATION_DEPTH}"
                ),
                "move it up a level: locations nest at most 3 deep (e.g. Site/Building/Line)",
            );
        }
        decls.locations.insert(path.clone());
        let identity = self.identity(
            Kind::Location,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            None,
        );
        let rotate_secrets_after = raw.secrets.as_ref().and_then(|s| {
            let at = at.key("secrets").key("rotate_after");
            match parse_duration(&s.rotate_after) {
                Ok(d) if d.is_zero() => {
                    self.err(
                        &at,
                        "`rotate_after` must be longer than zero",
                        "write a duration such as `90d`, or remove `secrets:` to never rotate",
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        &at,
                        format!("bad `rotate_after`: {e}"),
                        "write a number and a unit (ms, s, m, h or d), e.g. `90d` or `12h`",
                    );
                    None
                }
            }
        });
        let machine_list = at.key("machines");
        self.check_unique(
            raw.machines.iter().map(|m| m.name.as_str()),
            &machine_list,
            Kind::Machine,
            &format!(" in location `{path}`"),
        );
        let machines: Vec<DesiredMachine> = raw
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| self.machine(m, &path, &machine_list.idx(i), decls))
            .collect();
        self.check_part_names_in_location(raw, &path, &machine_list);
        let locations = self.locations(
            &raw.locations,
            Some(&path),
            depth + 1,
            &at.key("locations"),
            decls,
        );
        DesiredLocation {
            name: raw.name.clone(),
            path,
            identity,
            rotate_secrets_after,
            locations,
            machines,
        }
    }

    /// Viam requires part names to be unique within a location, across its machines.
    fn check_part_names_in_location(&mut self, raw: &RawLocation, path: &str, machines: &YPath) {
        let mut seen: HashMap<&str, (&str, usize)> = HashMap::new();
        for (mi, m) in raw.machines.iter().enumerate() {
            for (pi, p) in m.parts.iter().enumerate() {
                let at = machines.idx(mi).key("parts").idx(pi).key("name");
                match seen.get(p.name.as_str()) {
                    Some((other, line)) if *other != m.name => {
                        let message = format!(
                            "part name `{}` is already used by machine `{other}` in location `{path}` (line {line})",
                            p.name
                        );
                        self.err(
                            &at,
                            message,
                            "Viam requires part names to be unique within a location; rename one (e.g. prefix it with the machine's name)",
                        );
                    }
                    Some(_) => {}
                    None => {
                        let line = self.tree.pos_of(&at).line;
                        seen.insert(&p.name, (&m.name, line));
                    }
                }
            }
        }
    }

    fn machine(
        &mut self,
        raw: &RawMachine,
        location: &str,
        at: &YPath,
        decls: &mut Decls,
    ) -> DesiredMachine {
        let path = join(Some(location), &raw.name);
        self.check_name(&raw.name, at, Kind::Machine);
        decls.machines.insert(path.clone());
        let identity = self.identity(
            Kind::Machine,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            None,
        );
        let list = at.key("parts");
        self.check_unique(
            raw.parts.iter().map(|p| p.name.as_str()),
            &list,
            Kind::Part,
            &format!(" in machine `{path}`"),
        );
        let mains = self.main_flags(raw, &path, at);
        let ctx = MachineCtx {
            path: &path,
            moved_from: identity.moved_from.as_deref(),
        };
        let parts = raw
            .parts
            .iter()
            .zip(mains)
            .enumerate()
            .map(|(i, (p, main))| self.part(p, &ctx, main, &list.idx(i), decls))
            .collect();
        DesiredMachine {
            name: raw.name.clone(),
            path,
            identity,
            parts,
        }
    }

    /// Which parts are main, reporting a machine without exactly one main part.
    fn main_flags(&mut self, raw: &RawMachine, path: &str, at: &YPath) -> Vec<bool> {
        let list = at.key("parts");
        match raw.parts.as_slice() {
            [] => {
                self.err_key(
                    &list,
                    format!("machine `{path}` has no parts"),
                    format!(
                        "a machine always has a main part; add one, e.g. `parts: [{{ name: {}-main }}]`",
                        raw.name
                    ),
                );
                vec![]
            }
            [only] => {
                if only.main == Some(false) {
                    self.err(
                        &list.idx(0).key("main"),
                        format!("the only part of machine `{path}` cannot be `main: false`"),
                        "a machine always has a main part, and a single part is main implicitly; remove `main: false`",
                    );
                }
                vec![true]
            }
            parts => {
                let mains: Vec<bool> = parts.iter().map(|p| p.main == Some(true)).collect();
                let names: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.main == Some(true))
                    .map(|p| p.name.as_str())
                    .collect();
                if names.is_empty() {
                    self.err_key(
                        &list,
                        format!(
                            "machine `{path}` has {} parts but none is `main: true`",
                            parts.len()
                        ),
                        "mark exactly one part `main: true`",
                    );
                } else if names.len() > 1 {
                    let first = names[0];
                    for (i, _) in mains.iter().enumerate().filter(|(_, m)| **m).skip(1) {
                        self.err(
                            &list.idx(i).key("main"),
                            format!(
                                "machine `{path}` has more than one main part: `{first}` and `{}`",
                                parts[i].name
                            ),
                            "exactly one part per machine is main; remove `main: true` from the others",
                        );
                    }
                }
                mains
            }
        }
    }

    fn part(
        &mut self,
        raw: &RawPart,
        machine: &MachineCtx<'_>,
        main: bool,
        at: &YPath,
        decls: &Decls,
    ) -> DesiredPart {
        let path = join(Some(machine.path), &raw.name);
        self.check_name(&raw.name, at, Kind::Part);
        let identity = self.identity(
            Kind::Part,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            Some(machine),
        );
        let fragments = self.fragment_uses(
            &raw.fragments,
            &at.key("fragments"),
            &format!("part `{path}`"),
            decls,
        );
        let config = self.config(
            raw.config.is_some(),
            raw.config_file.as_deref(),
            at,
            super::config::Owner::Part,
        );
        for (i, pointer) in raw.ignore.iter().enumerate() {
            if let Err(why) = check_pointer(pointer) {
                self.err(
                    &at.key("ignore").idx(i),
                    format!("`ignore` entry `{pointer}` {why}"),
                    "a JSON pointer (RFC 6901) starts with `/` and writes `~` as `~0` and `/` as `~1`, e.g. `/components/0/attributes/calibration`",
                );
            }
        }
        DesiredPart {
            name: raw.name.clone(),
            path,
            identity,
            main,
            config,
            fragments,
            ignore: raw.ignore.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn identity(
        &mut self,
        kind: Kind,
        own: &str,
        id: Option<&str>,
        moved_from: Option<&str>,
        protect: bool,
        at: &YPath,
        machine: Option<&MachineCtx<'_>>,
    ) -> Identity {
        let noun = kind.noun();
        let what = format!("{noun} `{own}`");
        let pinned = id.and_then(|raw| {
            let id_at = at.key("id");
            if kind == Kind::Location {
                if !is_location_id(raw) {
                    self.err(
                        &id_at,
                        format!("location id `{raw}` is malformed"),
                        "a location id is 10 lowercase letters or digits, e.g. `abcde12345` (copy it from the Viam app)",
                    );
                    return None;
                }
            } else if !is_uuid(raw) {
                self.err(
                    &id_at,
                    format!("{noun} id `{raw}` is not a UUID"),
                    format!("a {noun} id looks like `1b4e28ba-2fa1-11d2-883f-0016d3cca427` (copy it from the Viam app)"),
                );
                return None;
            }
            let id = if kind == Kind::Location {
                raw.to_string()
            } else {
                raw.to_ascii_lowercase()
            };
            let line = self.tree.pos_of(&id_at).line;
            match self.pins.get(&id) {
                Some((first, first_line)) => {
                    let message = format!(
                        "id `{id}` is pinned twice: by {first} (line {first_line}) and by {what}"
                    );
                    self.err(&id_at, message, "an id names one resource; remove the wrong pin");
                }
                None => {
                    self.pins.insert(id.clone(), (what.clone(), line));
                }
            }
            Some(id)
        });
        let moved_from = match moved_from {
            None => None,
            Some(_) if id.is_some() => {
                self.err_key(
                    &at.key("moved_from"),
                    "id pins the resource; moved_from is not needed",
                    format!("remove `moved_from`: the pinned id already keeps {what} across renames and moves"),
                );
                None
            }
            Some(m) => self.moved_from(kind, own, &what, m, at, machine),
        };
        Identity {
            id: pinned,
            moved_from,
            protect,
        }
    }

    fn moved_from(
        &mut self,
        kind: Kind,
        own: &str,
        what: &str,
        m: &str,
        at: &YPath,
        machine: Option<&MachineCtx<'_>>,
    ) -> Option<String> {
        let m_at = at.key("moved_from");
        if m == own {
            self.err(
                &m_at,
                format!("moved_from names {what}'s own path"),
                "set it to the path the resource had before, or remove `moved_from`",
            );
            return None;
        }
        let segments: Vec<&str> = m.split('/').collect();
        let segments_ok = segments.iter().all(|s| !s.is_empty() && s.trim() == *s);
        let (range, example) = match kind {
            Kind::Fragment => (
                1..=1,
                "a fragment's moved_from is its previous name, without `/`",
            ),
            Kind::Location => (
                1..=MAX_LOCATION_DEPTH,
                "a location path is the names from the top joined by `/`, e.g. `HQ/Assembly`",
            ),
            Kind::Machine => (
                2..=MAX_LOCATION_DEPTH + 1,
                "a machine path is its location's path and its name, e.g. `HQ/Assembly/arm-00`",
            ),
            Kind::Part => (
                3..=MAX_LOCATION_DEPTH + 2,
                "a part path is its machine's path and its name, e.g. `HQ/Assembly/arm-01/arm-01-old`",
            ),
        };
        if !segments_ok || !range.contains(&segments.len()) {
            self.err(
                &m_at,
                format!("`moved_from: {m}` is not a valid {} path", kind.noun()),
                example,
            );
            return None;
        }
        if let Some(machine) = machine {
            let parent = m.rsplit_once('/').map_or("", |(p, _)| p);
            if parent != machine.path && Some(parent) != machine.moved_from {
                self.err(
                    &m_at,
                    format!(
                        "a part's moved_from must be in the same machine: `{m}` is not in `{}`",
                        machine.path
                    ),
                    format!(
                        "parts cannot move between machines; write `{}/<old name>`, or declare a new part instead",
                        machine.path
                    ),
                );
                return None;
            }
        }
        let line = self.tree.pos_of(&m_at).line;
        match self.moves.get(&(kind, m.to_string())) {
            Some((first, first_line, _)) => {
                let message =
                    format!("{what} and {first} (line {first_line}) both say `moved_from: {m}`");
                self.err(
                    &m_at,
                    message,
                    "only one resource can take over the old one; remove one of the moved_from",
                );
                None
            }
            None => {
                self.moves
                    .insert((kind, m.to_string()), (what.to_string(), line, m_at));
                Some(m.to_string())
            }
        }
    }

    /// A `moved_from` naming a path the manifest itself declares is ambiguous on its face (a
    /// swap or rotation written by name, or a move onto a declared resource): an error
    /// whatever the cloud holds. Paths under a location that has `moved_from` count at the
    /// location's new path too: `moved_from: Old/x` names `New/x` when `New` moved from `Old`.
    fn moved_from_declared(
        &mut self,
        fragments: &[DesiredFragment],
        locations: &[DesiredLocation],
    ) {
        fn walk(
            ls: &[DesiredLocation],
            out: &mut HashSet<(Kind, String)>,
            moved: &mut Vec<(String, String)>,
        ) {
            for l in ls {
                out.insert((Kind::Location, l.path.clone()));
                if let Some(old) = &l.identity.moved_from {
                    moved.push((format!("{old}/"), format!("{}/", l.path)));
                }
                for m in &l.machines {
                    out.insert((Kind::Machine, m.path.clone()));
                    out.extend(m.parts.iter().map(|p| (Kind::Part, p.path.clone())));
                }
                walk(&l.locations, out, moved);
            }
        }
        let mut declared: HashSet<(Kind, String)> = fragments
            .iter()
            .map(|f| (Kind::Fragment, f.name.clone()))
            .collect();
        let mut moved = vec![];
        walk(locations, &mut declared, &mut moved);
        // The path `m` has in this manifest, when one of its locations moved.
        let follow = |m: &str| {
            moved.iter().find_map(|(old, new)| {
                m.strip_prefix(old.as_str())
                    .map(|rest| format!("{new}{rest}"))
            })
        };
        let mut found: Vec<(usize, String, YPath)> = self
            .moves
            .iter()
            .filter_map(|((kind, m), (what, line, at))| {
                let noun = kind.noun();
                let message = if declared.contains(&(*kind, m.clone())) {
                    format!("{what} says `moved_from: {m}`, but this manifest declares {noun} `{m}`")
                } else {
                    let now = follow(m).filter(|p| declared.contains(&(*kind, p.clone())))?;
                    format!(
                        "{what} says `moved_from: {m}`, but that {noun} is declared as `{now}` (its location moved)"
                    )
                };
                Some((*line, message, at.clone()))
            })
            .collect();
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, message, at) in found {
            self.err(
                &at,
                message,
                "a swap or rotation by name is ambiguous: pin each resource with `id:` instead of `moved_from` (fleetform applies it through temporary names); if the move is done, remove `moved_from`",
            );
        }
    }

    fn invites(&mut self, access: &RawAccess, decls: &Decls) -> Vec<DesiredInvite> {
        let list = YPath::root().key("access").key("invites");
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, inv) in access.invites.iter().enumerate() {
            let at = list.idx(i);
            let email = inv.email.trim().to_ascii_lowercase();
            let email_at = at.key("email");
            if !is_email(&inv.email) {
                self.err(
                    &email_at,
                    format!("`{}` is not a valid email address", inv.email),
                    "write a full address such as `ops@acme.example`",
                );
            } else if let Some(first) = seen.get(&email) {
                self.err(
                    &email_at,
                    format!("duplicate invite for `{email}` (first at line {first})"),
                    "one invite per email: merge their grants into one invite",
                );
            } else {
                seen.insert(email.clone(), self.tree.pos_of(&email_at).line);
            }

            let mut targets: HashMap<GrantTarget, usize> = HashMap::new();
            let mut grants = Vec::new();
            for (gi, g) in inv.grants.iter().enumerate() {
                let gat = at.key("grants").idx(gi);
                let role = Role::parse(&g.role);
                if role.is_none() {
                    self.err(
                        &gat.key("role"),
                        format!("unknown role `{}`", g.role),
                        "roles are `owner` and `operator`",
                    );
                }
                let Some(target) = self.grant_target(g, &gat, decls) else {
                    continue;
                };
                let line = self.tree.pos_of(&gat).line;
                if let Some(first) = targets.get(&target) {
                    self.err(
                        &gat,
                        format!(
                            "two grants on the same target {} for `{email}` (first at line {first})",
                            describe_target(&target)
                        ),
                        "keep one grant per target; `owner` already includes what `operator` allows",
                    );
                } else {
                    targets.insert(target.clone(), line);
                }
                if let Some(role) = role {
                    grants.push(DesiredGrant { role, target });
                }
            }
            if inv.grants.is_empty() {
                // As on the Viam cloud: an invite without authorizations makes an owner.
                grants.push(DesiredGrant {
                    role: Role::Owner,
                    target: GrantTarget::Organization,
                });
            }
            out.push(DesiredInvite {
                email,
                grants,
                protect: inv.protect,
                send_email: inv.send_email.unwrap_or(true),
            });
        }
        out
    }

    /// Checks a list of fragment imports (a part's `fragments:` or the organization's
    /// `default_fragments:`); `owner` names whose list it is in messages.
    fn fragment_uses(
        &mut self,
        raw: &[Value],
        list: &YPath,
        owner: &str,
        decls: &Decls,
    ) -> Vec<FragmentUse> {
        let mut out: Vec<FragmentUse> = Vec::new();
        // One fragment may be imported more than once (e.g. under two prefixes), but not
        // twice the same way.
        let mut listed: HashMap<(FragmentRef, String), usize> = HashMap::new();
        for (i, entry) in raw.iter().enumerate() {
            let at = list.idx(i);
            let Some(u) = self.fragment_use(entry, &at, owner, decls) else {
                continue;
            };
            let line = self.tree.pos_of(&at).line;
            let key = (
                u.fragment.clone(),
                Value::Object(u.options.clone()).to_string(),
            );
            if let Some(first) = listed.get(&key) {
                self.err(
                    &at,
                    format!(
                        "fragment `{}` is listed twice in {owner} (first at line {first})",
                        match &u.fragment {
                            FragmentRef::Name(n) | FragmentRef::Id(n) => n,
                        }
                    ),
                    "list each import once; import a fragment again only with other options, e.g. another `prefix`",
                );
                continue;
            }
            listed.insert(key, line);
            out.push(u);
        }
        out
    }

    /// One import: a declared fragment's name, or a mapping with `name:` or `id:` and options.
    fn fragment_use(
        &mut self,
        entry: &Value,
        at: &YPath,
        owner: &str,
        decls: &Decls,
    ) -> Option<FragmentUse> {
        let (name_at, fragment, mut options) = match entry {
            Value::String(name) => (
                at.clone(),
                FragmentRef::Name(name.clone()),
                serde_json::Map::new(),
            ),
            Value::Object(o) => {
                let mut options = o.clone();
                let name = options.shift_remove("name");
                let id = options.shift_remove("id");
                match (name, id) {
                    (Some(Value::String(n)), None) => {
                        (at.key("name"), FragmentRef::Name(n), options)
                    }
                    (None, Some(Value::String(id))) => {
                        if !is_uuid(&id) {
                            self.err(
                                &at.key("id"),
                                format!("fragment id `{id}` is not a UUID"),
                                "a fragment id looks like 1b4e28ba-2fa1-11d2-883f-0016d3cca427; to import a declared fragment write `name:` instead",
                            );
                            return None;
                        }
                        (
                            at.key("id"),
                            FragmentRef::Id(id.to_ascii_lowercase()),
                            options,
                        )
                    }
                    (Some(_), Some(_)) => {
                        self.err(
                            at,
                            "a fragment import has both `name` and `id`",
                            "use `name:` for a fragment this manifest declares, `id:` for any other",
                        );
                        return None;
                    }
                    _ => {
                        self.err(
                            at,
                            "a fragment import needs `name` (a declared fragment) or `id`",
                            "write e.g. `{ name: camera-kit, version: stable }`",
                        );
                        return None;
                    }
                }
            }
            _ => return None, // the structural pass reported the type
        };
        if let FragmentRef::Name(f) = &fragment
            && !decls.fragments.iter().any(|d| d == f)
        {
            let declared: Vec<&str> = decls.fragments.iter().map(String::as_str).collect();
            let hint = match (closest(f, &declared), declared.is_empty()) {
                (_, true) => format!(
                    "no fragments are declared; add `{{ name: {f} }}` under the top-level `fragments:`, or import it by `id:`"
                ),
                (Some(c), false) => format!(
                    "did you mean `{c}`? declared fragments: {}",
                    declared.join(", ")
                ),
                (None, false) => format!(
                    "declare it under the top-level `fragments:`, or import it by `id:`; declared fragments: {}",
                    declared.join(", ")
                ),
            };
            self.err(
                &name_at,
                format!("{owner} uses undeclared fragment `{f}`"),
                hint,
            );
            return None;
        }
        // `version: 3` is the revision "3": Viam names revisions and tags with strings.
        if let Some(Value::Number(n)) = options.get("version") {
            let text = n.to_string();
            options.insert("version".into(), Value::String(text));
        }
        let known = ["name", "id", "version", "prefix", "variables"];
        for key in options.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            if let Some(c) = closest(key, &known) {
                self.err_key(
                    &at.key(key),
                    format!("unknown key `{key}` in a fragment import"),
                    format!("did you mean `{c}`? Keys other than name, id, version, prefix and variables are written to the cloud as given"),
                );
            }
        }
        Some(FragmentUse { fragment, options })
    }

    /// A fragment's `tags:` mapping.
    fn tags(
        &mut self,
        raw: &serde_json::Map<String, Value>,
        at: &YPath,
    ) -> Vec<(String, TagTarget)> {
        let mut out = Vec::new();
        for (tag, target) in raw {
            let tat = at.key(tag);
            if tag.is_empty() || tag.trim() != tag || tag.chars().any(char::is_control) {
                self.err_key(
                    &tat,
                    format!("invalid tag name `{tag}`"),
                    "a tag name is non-empty, without surrounding spaces, e.g. `stable`",
                );
                continue;
            }
            let target = match target {
                Value::String(s) if s == "current" => TagTarget::Current,
                Value::String(s) if !s.trim().is_empty() => TagTarget::Revision(s.clone()),
                Value::Number(n) if n.is_u64() => TagTarget::Revision(n.to_string()),
                _ => {
                    self.err(
                        &tat,
                        format!("tag `{tag}` must name a revision or `current`"),
                        "write a revision such as `3`, or `current` for the revision this apply leaves the fragment at",
                    );
                    continue;
                }
            };
            out.push((tag.clone(), target));
        }
        out
    }

    fn grant_target(
        &mut self,
        g: &super::raw::RawGrant,
        at: &YPath,
        decls: &Decls,
    ) -> Option<GrantTarget> {
        if g.organization == Some(false) {
            self.err(
                &at.key("organization"),
                "`organization: false` is not a grant target",
                "write `organization: true` for an organization-wide grant, or use `location:` or `machine:` instead",
            );
            return None;
        }
        let mut set = Vec::new();
        if g.organization == Some(true) {
            set.push("organization");
        }
        if g.location.is_some() {
            set.push("location");
        }
        if g.machine.is_some() {
            set.push("machine");
        }
        match set.len() {
            0 => {
                self.err(
                    at,
                    "grant has no target",
                    "add exactly one of `organization: true`, `location: PATH` or `machine: PATH`",
                );
                return None;
            }
            1 => {}
            _ => {
                self.err(
                    at,
                    format!("grant has more than one target ({})", set.join(", ")),
                    "a grant applies to exactly one target; split it into one grant per target",
                );
                return None;
            }
        }
        let targets = [
            (
                &g.location,
                &decls.locations,
                "location",
                GrantTarget::Location as fn(String) -> GrantTarget,
            ),
            (&g.machine, &decls.machines, "machine", GrantTarget::Machine),
        ];
        for (path, declared, noun, target) in targets {
            let Some(path) = path else { continue };
            if !declared.contains(path) {
                self.err(
                    &at.key(noun),
                    format!("grant on undeclared {noun} `{path}`"),
                    undeclared_hint(path, declared, noun),
                );
                return None;
            }
            return Some(target(path.clone()));
        }
        Some(GrantTarget::Organization)
    }
}

fn describe_target(t: &GrantTarget) -> String {
    match t {
        GrantTarget::Organization => "the organization".to_string(),
        GrantTarget::Location(l) => format!("location `{l}`"),
        GrantTarget::Machine(m) => format!("machine `{m}`"),
    }
}

fn undeclared_hint(path: &str, declared: &HashSet<String>, noun: &str) -> String {
    let mut all: Vec<&str> = declared.iter().map(String::as_str).collect();
    all.sort_unstable();
    let base = format!("grants can name only {noun}s declared in this manifest, by full path");
    match closest(path, &all) {
        Some(c) => format!("did you mean `{c}`? {base}"),
        None if all.is_empty() => format!("{base}; none are declared"),
        None => {
            let shown: Vec<&str> = all.iter().take(8).copied().collect();
            let more = if all.len() > shown.len() { ", …" } else { "" };
            format!("{base}: {}{more}", shown.join(", "))
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
