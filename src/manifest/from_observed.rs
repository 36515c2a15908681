//! Import's transform: what the cloud holds ([`Observed`]) as the manifest model ([`Desired`])
//! that plans with zero changes against the same cloud. Pure; the CLI's `fleetform import`
//! reads the cloud ([`crate::cloud::observe::observe_scope`]), calls [`build`], and writes the
//! result with [`crate::manifest::export`].
//!
//! # What cannot be expressed, and what import does instead (each is a warning)
//! - Sibling locations, or fragments, that share a name: a manifest names each once. The
//!   oldest (for fragments: the one most parts use) is declared, pinned with `id:` so the plan
//!   is not ambiguous; the others are left out (out of scope at the top level, "unmanaged,
//!   kept" inside a declared location).
//! - Names a manifest cannot hold (empty, containing `/`, surrounding spaces): left out.
//! - A part config that references a fragment the organization does not own (e.g. another
//!   organization's public fragment): the reference is dropped from the manifest, and the
//!   plan will show that part's config as changed.
//! - An invite with a grant on something not in the manifest (outside the chosen locations, or
//!   left out above): the invite is left out (unmanaged, kept).
//! - Machines without parts: left out (a manifest machine has at least one part).
//!
//! `prune` is never written: the imported manifest declares everything it read, but an import
//! limited to some locations also declares their parents, and with prune on their other
//! contents would be deleted.

use crate::model::rules::is_uuid;
use crate::model::{
    Config, Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredLocation, DesiredMachine,
    DesiredMetadata, DesiredPart, Fragment, FragmentRef, FragmentUse, GrantTarget, Identity,
    Location, Machine, MetadataOwner, MetadataTarget, Observed, OrgRef, OrgSettings, Part,
    ResourceKind, TagTarget,
};
use crate::plan::canonical;
use std::collections::{BTreeMap, BTreeSet};

/// How much an import declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub fragments: usize,
    pub locations: usize,
    pub machines: usize,
    pub parts: usize,
    pub invites: usize,
}

impl Counts {
    /// "2 fragments, 1 location, …", for a summary line.
    pub fn describe(&self) -> String {
        let n = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        format!(
            "{}, {}, {}, {} and {}",
            n(self.fragments, "fragment", "fragments"),
            n(self.locations, "location", "locations"),
            n(self.machines, "machine", "machines"),
            n(self.parts, "part", "parts"),
            n(self.invites, "invite", "invites"),
        )
    }
}

/// The model an import writes, what it left out, and how much it holds.
#[derive(Debug)]
pub struct Built {
    pub desired: Desired,
    pub warnings: Vec<String>,
    pub counts: Counts,
}

/// Turns an observation into the manifest model (pure). `roots`: the chosen locations (ids)
/// when `--location` limits the import, else `None` for every top-level location.
/// `org_name_shared`: another visible organization has the same name (so name it by id).
pub fn build(observed: &Observed, roots: Option<&[String]>, org_name_shared: bool) -> Built {
    let mut b = Builder {
        o: observed,
        warnings: vec![],
        counts: Counts::default(),
        children: BTreeMap::new(),
        machines: BTreeMap::new(),
        fragment_names: BTreeMap::new(),
        declared_locations: BTreeMap::new(),
        declared_machines: BTreeMap::new(),
        selected: BTreeSet::new(),
        on_the_way: BTreeSet::new(),
        used_fragments: BTreeMap::new(),
        metadata: vec![],
    };
    b.keep_metadata(
        MetadataTarget::Organization(observed.organization.id.clone()),
        MetadataOwner::Organization,
    );
    for l in &observed.locations {
        b.children.entry(l.parent_id.clone()).or_default().push(l);
    }
    for list in b.children.values_mut() {
        list.sort_by(|a, c| (&a.name, a.created_on, &a.id).cmp(&(&c.name, c.created_on, &c.id)));
    }
    for m in &observed.machines {
        b.machines
            .entry(m.location_id.as_str())
            .or_default()
            .push(m);
    }
    for list in b.machines.values_mut() {
        list.sort_by(|a, c| (&a.name, &a.id).cmp(&(&c.name, &c.id)));
    }
    match roots {
        None => {}
        Some(roots) => {
            // The chosen locations, and their ancestors as containers.
            let by_id: BTreeMap<&str, &Location> = observed
                .locations
                .iter()
                .map(|l| (l.id.as_str(), l))
                .collect();
            for id in roots {
                b.selected.insert(id.clone());
                let mut cur = by_id.get(id.as_str()).and_then(|l| l.parent_id.clone());
                let mut guard = 0;
                while let Some(p) = cur {
                    guard += 1;
                    if guard > 16 || !b.on_the_way.insert(p.clone()) {
                        break;
                    }
                    cur = by_id.get(p.as_str()).and_then(|l| l.parent_id.clone());
                }
            }
        }
    }
    b.fragments_by_usage();
    let limited = roots.is_some();
    let mut locations = b.locations(None, "", !limited, 1);
    let fragments = b.fragments(limited);
    resolve_fragment_refs(&mut locations, &b.fragment_names, observed, &mut b.warnings);
    let invites = b.invites();
    let kinds = crate::kinds::KINDS
        .iter()
        .filter_map(|k| Some((k.key().to_string(), k.import(&mut Importer { b: &mut b })?)))
        .collect();
    let keys = b.keys();
    let organization = if org_name_shared
        || observed.organization.name.trim().is_empty()
        || observed.organization.name.trim() != observed.organization.name
        || is_uuid(&observed.organization.name)
    {
        OrgRef::Id(observed.organization.id.clone())
    } else {
        OrgRef::Name(observed.organization.name.clone())
    };
    Built {
        desired: Desired {
            organization,
            prune: false,
            rollout: None,
            fragments,
            locations,
            invites,
            keys,
            default_fragments: default_fragments(observed, &b.fragment_names, &mut b.warnings),
            // The settings the cloud reports; the name is how the organization is found.
            settings: OrgSettings {
                name: None,
                public_namespace: Some(observed.organization.public_namespace.clone())
                    .filter(|n| !n.is_empty()),
                region: Some(observed.organization.default_region.clone())
                    .filter(|r| !r.is_empty()),
            },
            metadata: {
                b.metadata.sort_by(|x, y| x.owner.cmp(&y.owner));
                std::mem::take(&mut b.metadata)
            },
            kinds,
            digest: String::new(),
        },
        warnings: b.warnings,
        counts: b.counts,
    }
}

/// What a registered kind ([`crate::kinds`]) imports with: the observation, and the rule
/// for roles.
pub struct Importer<'b, 'a> {
    b: &'b mut Builder<'a>,
}

impl<'a> Importer<'_, 'a> {
    pub fn observed(&self) -> &'a Observed {
        self.b.o
    }

    /// Tells the user about something left out of the import.
    pub fn warn(&mut self, warning: String) {
        self.b.warnings.push(warning);
    }

    /// The grants `held` (by `who`, for warnings) as declared: `None` (and a warning: `who`
    /// is left out, and so left alone) when one is on something the manifest does not
    /// declare.
    pub fn declared_grants(
        &mut self,
        held: &[&crate::model::Grant],
        who: &str,
    ) -> Option<Vec<DesiredGrant>> {
        let org_id = self.b.o.organization.id.clone();
        self.b.declared_grants(held, &org_id, who)
    }
}

struct Builder<'a> {
    o: &'a Observed,
    /// The metadata of what is declared: only non-empty metadata is written, so that
    /// resources without any keep it unmanaged.
    metadata: Vec<DesiredMetadata>,
    warnings: Vec<String>,
    counts: Counts,
    /// Parent id (`None`: top level) → child locations, by name then age.
    children: BTreeMap<Option<String>, Vec<&'a Location>>,
    /// Location id → its machines, by name.
    machines: BTreeMap<&'a str, Vec<&'a Machine>>,
    /// Fragment id → the name it is declared under (only declared fragments).
    fragment_names: BTreeMap<String, String>,
    /// Declared location id → path; declared machine id → path (for invite grants).
    declared_locations: BTreeMap<String, String>,
    declared_machines: BTreeMap<String, String>,
    /// `--location`: the chosen locations, and the ancestors leading to them.
    selected: BTreeSet<String>,
    on_the_way: BTreeSet<String>,
    /// Fragment id → how many parts in scope use it.
    used_fragments: BTreeMap<String, usize>,
}

/// Whether a manifest can hold `name`: non-empty, no `/`, no surrounding whitespace.
fn name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name.trim() == name
}

/// A config's import entry as a manifest import by id (named once the declared fragments
/// are chosen): the id, and every other key as it is.
fn import_use(entry: &serde_json::Value) -> Option<FragmentUse> {
    let (fragment, options) = match entry {
        serde_json::Value::String(id) => (id.clone(), serde_json::Map::new()),
        serde_json::Value::Object(o) => {
            let mut options = o.clone();
            let id = options.shift_remove("id")?.as_str()?.to_string();
            (id, options)
        }
        _ => return None,
    };
    Some(FragmentUse {
        fragment: FragmentRef::Id(fragment),
        options,
    })
}

impl<'a> Builder<'a> {
    /// Counts how many parts of the subtrees in scope use each fragment (to choose among
    /// fragments that share a name, and to limit `--location` imports to used fragments).
    fn fragments_by_usage(&mut self) {
        for parts in self.o.parts.values() {
            for p in parts {
                for id in crate::model::rules::import_ids(&p.config.imports()) {
                    *self.used_fragments.entry(id).or_default() += 1;
                }
            }
        }
    }

    /// The declared fragments: all of the organization's (or, when `limited`, those parts use),
    /// one per name.
    fn fragments(&mut self, limited: bool) -> Vec<DesiredFragment> {
        let org_id = &self.o.organization.id;
        let mut by_name: BTreeMap<&str, Vec<&Fragment>> = BTreeMap::new();
        for f in &self.o.fragments {
            if &f.organization_id == org_id {
                by_name.entry(f.name.as_str()).or_default().push(f);
            }
        }
        let mut out = vec![];
        for (name, group) in by_name {
            // Pinned when the organization has several of that name, imported or not:
            // without the pin the plan could not tell them apart.
            let pin = group.len() > 1;
            let mut group: Vec<&Fragment> = group
                .into_iter()
                .filter(|f| !limited || self.used_fragments.contains_key(&f.id))
                .collect();
            if group.is_empty() {
                continue;
            }
            if !name_ok(name) {
                for f in &group {
                    self.warnings.push(format!(
                        "fragment `{name}` ({}) left out: a manifest name must be non-empty, without `/` or surrounding spaces",
                        f.id
                    ));
                }
                continue;
            }
            // The most used first, then the oldest.
            group.sort_by_key(|f| {
                (
                    std::cmp::Reverse(self.used_fragments.get(&f.id).copied().unwrap_or(0)),
                    f.created_on,
                    f.id.clone(),
                )
            });
            let keep = group[0];
            for other in &group[1..] {
                self.warnings.push(format!(
                    "fragment `{name}` ({}) left out: fragment {} has the same name and is declared (pinned by `id:`); a manifest names each fragment once",
                    other.id, keep.id
                ));
            }
            self.fragment_names
                .insert(keep.id.clone(), name.to_string());
            self.counts.fragments += 1;
            out.push(DesiredFragment {
                name: name.to_string(),
                identity: Identity {
                    id: pin.then(|| keep.id.clone()),
                    moved_from: None,
                    protect: false,
                },
                visibility: keep.visibility,
                config: Config::from(keep.config.clone()),
                tags: self
                    .o
                    .fragment_tags
                    .get(&keep.id)
                    .filter(|t| !t.is_empty())
                    .map(|tags| {
                        tags.iter()
                            .map(|t| (t.tag.clone(), TagTarget::Revision(t.revision.clone())))
                            .collect()
                    }),
            });
        }
        out
    }

    /// The declared children of `parent` (top level: `None`), `depth` 1-based.
    fn locations(
        &mut self,
        parent: Option<&str>,
        parent_path: &str,
        inside: bool,
        depth: usize,
    ) -> Vec<DesiredLocation> {
        let children: Vec<&Location> = self
            .children
            .get(&parent.map(String::from))
            .cloned()
            .unwrap_or_default();
        // Group siblings by name (they are sorted by name, then age).
        let mut groups: Vec<Vec<&Location>> = vec![];
        for l in children {
            match groups.last_mut() {
                Some(g) if g[0].name == l.name => g.push(l),
                _ => groups.push(vec![l]),
            }
        }
        let mut out = vec![];
        for group in groups {
            // With --location, only chosen locations and those on the way to them.
            let in_scope = |l: &Location| {
                inside || self.selected.contains(&l.id) || self.on_the_way.contains(&l.id)
            };
            // Pinned when the cloud has siblings of the same name, in scope or not: without
            // the pin the plan could not tell them apart.
            let pin = group.len() > 1;
            let group: Vec<&Location> = group.into_iter().filter(|l| in_scope(l)).collect();
            let Some(first) = group.first().copied() else {
                continue;
            };
            let path = if parent_path.is_empty() {
                first.name.clone()
            } else {
                format!("{parent_path}/{}", first.name)
            };
            if !name_ok(&first.name) {
                for l in &group {
                    self.warnings.push(format!(
                        "location `{}` ({}) left out with everything inside it: a manifest name must be non-empty, without `/` or surrounding spaces",
                        l.name, l.id
                    ));
                }
                continue;
            }
            if depth > 3 {
                for l in &group {
                    self.warnings.push(format!(
                        "location `{path}` ({}) left out: it nests deeper than 3 levels",
                        l.id
                    ));
                }
                continue;
            }
            for other in &group[1..] {
                self.warnings.push(format!(
                    "location `{path}` ({}) left out with everything inside it: location {} has the same name there and is declared (pinned by `id:`); a manifest names each location once",
                    other.id, first.id
                ));
            }
            let chosen = inside || self.selected.contains(&first.id);
            self.keep_metadata(
                MetadataTarget::Location(first.id.clone()),
                MetadataOwner::Location(path.clone()),
            );
            self.declared_locations
                .insert(first.id.clone(), path.clone());
            self.counts.locations += 1;
            let locations = self.locations(Some(&first.id), &path, chosen, depth + 1);
            let machines = if chosen {
                self.machines_of(first, &path)
            } else {
                vec![]
            };
            out.push(DesiredLocation {
                name: first.name.clone(),
                path,
                identity: Identity {
                    id: pin.then(|| first.id.clone()),
                    moved_from: None,
                    protect: false,
                },
                rotate_secrets_after: None,
                locations,
                machines,
            });
        }
        out
    }

    /// Declares the observed metadata of `target` under `owner`, when there is any.
    fn keep_metadata(&mut self, target: MetadataTarget, owner: MetadataOwner) {
        if let Some(data) = self.o.metadata_of(&target).filter(|d| !d.is_empty()) {
            self.metadata.push(DesiredMetadata {
                owner,
                data: data.clone(),
            });
        }
    }

    fn machines_of(&mut self, l: &Location, path: &str) -> Vec<DesiredMachine> {
        let machines: Vec<&Machine> = self
            .machines
            .get(l.id.as_str())
            .cloned()
            .unwrap_or_default();
        let mut out = vec![];
        for m in machines {
            let mpath = format!("{path}/{}", m.name);
            if !name_ok(&m.name) {
                self.warnings.push(format!(
                    "machine `{mpath}` ({}) left out: a manifest name must be non-empty, without `/` or surrounding spaces",
                    m.id
                ));
                continue;
            }
            let Some(observed_parts) = self.o.parts.get(&m.id) else {
                self.warnings.push(format!(
                    "machine `{mpath}` ({}) left out: its parts were not read",
                    m.id
                ));
                continue;
            };
            let mut parts: Vec<&Part> = observed_parts.iter().collect();
            parts.sort_by(|a, c| (!a.main, &a.name).cmp(&(!c.main, &c.name)));
            if parts.is_empty() {
                self.warnings.push(format!(
                    "machine `{mpath}` ({}) left out: it has no parts, and a manifest machine needs at least one",
                    m.id
                ));
                continue;
            }
            if let Some(bad) = parts.iter().find(|p| p.main && !name_ok(&p.name)) {
                self.warnings.push(format!(
                    "machine `{mpath}` ({}) left out: its main part's name `{}` cannot be written in a manifest",
                    m.id, bad.name
                ));
                continue;
            }
            let mut declared = vec![];
            for p in parts {
                if !name_ok(&p.name) {
                    self.warnings.push(format!(
                        "part `{mpath}/{}` ({}) left out: a manifest name must be non-empty, without `/` or surrounding spaces",
                        p.name, p.id
                    ));
                    continue;
                }
                declared.push(self.part(p, &mpath));
            }
            if !declared.iter().any(|p: &DesiredPart| p.main) {
                self.warnings.push(format!(
                    "machine `{mpath}` ({}) has no main part in the cloud; `{}` is declared main, so the plan will mark it",
                    m.id, declared[0].name
                ));
                declared[0].main = true;
            }
            self.keep_metadata(
                MetadataTarget::Machine(m.id.clone()),
                MetadataOwner::Machine(mpath.clone()),
            );
            self.declared_machines.insert(m.id.clone(), mpath.clone());
            self.counts.machines += 1;
            self.counts.parts += declared.len();
            out.push(DesiredMachine {
                name: m.name.clone(),
                path: mpath,
                identity: Identity::default(),
                parts: declared,
            });
        }
        out
    }

    fn part(&mut self, p: &Part, mpath: &str) -> DesiredPart {
        let path = format!("{mpath}/{}", p.name);
        self.keep_metadata(
            MetadataTarget::Part(p.id.clone()),
            MetadataOwner::Part(path.clone()),
        );
        // `fragments` holds ids until `resolve_fragment_refs` names them, once the declared
        // fragments are chosen.
        DesiredPart {
            name: p.name.clone(),
            path,
            identity: Identity::default(),
            main: p.main,
            config: Config::from(canonical::without_fragments(&p.config.to_value())),
            fragments: p.config.imports().iter().filter_map(import_use).collect(),
            ignore: vec![],
        }
    }

    /// A grant's target as the manifest names it; `None` when it is not declared.
    fn grant_target(&self, g: &crate::model::Grant, org_id: &str) -> Option<GrantTarget> {
        match g.resource_kind {
            ResourceKind::Organization if g.resource_id == org_id => {
                Some(GrantTarget::Organization)
            }
            ResourceKind::Organization => None,
            ResourceKind::Location => self
                .declared_locations
                .get(&g.resource_id)
                .cloned()
                .map(GrantTarget::Location),
            ResourceKind::Robot => self
                .declared_machines
                .get(&g.resource_id)
                .cloned()
                .map(GrantTarget::Machine),
        }
    }

    /// `held` as grants on declared targets, sorted; `None` (with a warning naming `who`,
    /// which is then left out) when one is on something the manifest does not declare, and
    /// when there are none.
    fn declared_grants(
        &mut self,
        held: &[&crate::model::Grant],
        org_id: &str,
        who: &str,
    ) -> Option<Vec<DesiredGrant>> {
        let mut grants = Vec::with_capacity(held.len());
        for g in held {
            let Some(target) = self.grant_target(g, org_id) else {
                self.warnings.push(format!(
                    "{who} left out: it holds {} on {} {}, which the manifest does not declare",
                    g.role.as_str(),
                    g.resource_kind.as_str(),
                    g.resource_id
                ));
                return None;
            };
            grants.push(DesiredGrant {
                role: g.role,
                target,
            });
        }
        grants.sort();
        (!grants.is_empty()).then_some(grants)
    }

    /// API keys with their roles, by name. A key holding a role on something the manifest
    /// does not declare, or whose name is empty or shared with another key, is left out, and
    /// so left alone.
    fn keys(&mut self) -> Option<Vec<crate::model::DesiredKey>> {
        use crate::model::DesiredKey;
        let keys = self.o.api_keys.as_ref()?;
        let org_id = self.o.organization.id.clone();
        let mut out = vec![];
        for k in keys {
            if k.name.trim().is_empty() || k.name.trim() != k.name {
                self.warnings.push(format!(
                    "API key {} left out: its name {:?} cannot name it in a manifest",
                    k.id, k.name
                ));
                continue;
            }
            if keys.iter().filter(|o| o.name == k.name).count() > 1 {
                self.warnings.push(format!(
                    "API key {} left out: another key is also named `{}`; rename one to manage it",
                    k.id, k.name
                ));
                continue;
            }
            let held: Vec<&crate::model::Grant> = k.grants.iter().collect();
            let label = format!("API key `{}`", k.name);
            let Some(grants) = self.declared_grants(&held, &org_id, &label) else {
                continue;
            };
            out.push(DesiredKey {
                name: k.name.clone(),
                moved_from: None,
                grants,
                protect: false,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        // Declaring `keys: []` would manage every key as one to delete under prune.
        (!out.is_empty()).then_some(out)
    }

    fn invites(&mut self) -> Option<Vec<crate::model::DesiredInvite>> {
        let observed = self.o.invites.as_ref()?;
        let org_id = self.o.organization.id.clone();
        let mut out = vec![];
        let mut invites: Vec<_> = observed.iter().collect();
        invites.sort_by_key(|a| a.email.to_lowercase());
        'invites: for inv in invites {
            let mut grants: Vec<DesiredGrant> = vec![];
            for g in &inv.grants {
                let target = self.grant_target(g, &org_id);
                let Some(target) = target else {
                    self.warnings.push(format!(
                        "invite for `{}` left out: it grants {} on {} {}, which the manifest does not declare",
                        inv.email,
                        g.role.as_str(),
                        g.resource_kind.as_str(),
                        g.resource_id
                    ));
                    continue 'invites;
                };
                if grants.iter().any(|d| d.target == target) {
                    self.warnings.push(format!(
                        "invite for `{}` left out: it holds two roles on one {} ({}); a manifest grants one role per target",
                        inv.email,
                        g.resource_kind.as_str(),
                        g.resource_id
                    ));
                    continue 'invites;
                }
                grants.push(DesiredGrant {
                    role: g.role,
                    target,
                });
            }
            if grants.is_empty() {
                self.warnings.push(format!(
                    "invite for `{}` left out: it grants nothing, and a manifest invite needs a grant",
                    inv.email
                ));
                continue;
            }
            grants.sort();
            self.counts.invites += 1;
            out.push(DesiredInvite {
                email: inv.email.to_lowercase(),
                grants,
                protect: false,
                send_email: true,
            });
        }
        if out.is_empty() && !observed.is_empty() {
            // Declaring `access: { invites: [] }` would manage invites as "none".
            return None;
        }
        Some(out)
    }
}

/// The organization's default fragments as manifest imports (declared ones by name, others
/// by id); `None` when it has none, so the manifest leaves them unmanaged.
fn default_fragments(
    observed: &Observed,
    names: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Option<Vec<FragmentUse>> {
    let list = observed.organization.default_fragments.as_ref()?;
    if list.is_empty() {
        return None;
    }
    let mut out = vec![];
    for f in list {
        let Some(mut u) = import_use(&canonical::import_entry(f)) else {
            continue;
        };
        match names.get(&f.fragment_id) {
            Some(name) => u.fragment = FragmentRef::Name(name.clone()),
            None if is_uuid(&f.fragment_id) => {}
            None => {
                warnings.push(format!(
                    "default fragment `{}` left out: it is not a fragment id (a UUID)",
                    f.fragment_id
                ));
                continue;
            }
        }
        out.push(u);
    }
    Some(out)
}

/// Replaces the fragment ids of every part with declared fragment names, dropping (with a
/// warning) references the manifest cannot express.
fn resolve_fragment_refs(
    locations: &mut [DesiredLocation],
    names: &BTreeMap<String, String>,
    observed: &Observed,
    warnings: &mut Vec<String>,
) {
    for l in locations {
        resolve_fragment_refs(&mut l.locations, names, observed, warnings);
        for m in &mut l.machines {
            for p in &mut m.parts {
                let uses = std::mem::take(&mut p.fragments);
                for mut u in uses {
                    let FragmentRef::Id(id) = &u.fragment else {
                        p.fragments.push(u);
                        continue;
                    };
                    if let Some(name) = names.get(id) {
                        u.fragment = FragmentRef::Name(name.clone());
                        p.fragments.push(u);
                        continue;
                    }
                    let owned = observed
                        .fragments
                        .iter()
                        .find(|f| &f.id == id)
                        .filter(|f| f.organization_id == observed.organization.id);
                    match owned {
                        // Another organization's fragment (e.g. a public one): by id.
                        None if is_uuid(id) => p.fragments.push(u),
                        None => warnings.push(format!(
                            "part `{}` imports fragment `{id}`, left out of the manifest: it is not a fragment id (a UUID); `fleetform plan` will show this part's config as changed",
                            p.path
                        )),
                        Some(f) => warnings.push(format!(
                            "part `{}` imports fragment {id}, left out of the manifest: its fragment `{}` is not declared; `fleetform plan` will show this part's config as changed",
                            p.path, f.name
                        )),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
