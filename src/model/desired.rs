//! What the manifest asks for: the validated `Desired` model that planning starts from.
//!
//! Built only by `crate::manifest` after validation, so every invariant below holds: names are
//! unique among siblings, locations nest at most 3 levels, each machine has exactly one main
//! part, fragment references name declared fragments, grants name declared paths, `ignore`
//! entries are valid JSON pointers, and `${env:…}` references are resolved.

use super::{ConfigJson, Role, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The whole manifest, validated.
///
/// `Default` is an empty manifest (no organization name, nothing declared, nothing managed),
/// for building a `Desired` in code: name the fields that matter and end with
/// `..Default::default()`, so a new field does not touch every literal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub organization: OrgRef,
    /// Delete undeclared things inside the managed scope.
    pub prune: bool,
    pub fragments: Vec<DesiredFragment>,
    /// Top-level locations; children nest inside.
    pub locations: Vec<DesiredLocation>,
    /// `None` when the manifest has no `access:` section: invites are then not managed at all.
    pub invites: Option<Vec<DesiredInvite>>,
    /// `None` when the manifest has no `access: keys:`: API keys are then not managed at all.
    #[serde(default)]
    pub keys: Option<Vec<DesiredKey>>,
    /// The organization's default fragments (`organization: {default_fragments: [...]}`);
    /// `None` when the manifest does not say, so they are not managed.
    #[serde(default)]
    pub default_fragments: Option<Vec<FragmentUse>>,
    /// The organization's settings the manifest manages (`organization: {…}`).
    #[serde(default)]
    pub settings: OrgSettings,
    /// Managed metadata (`metadata:` on the organization, locations, machines and parts),
    /// one entry per resource whose declaration has the key, sorted by owner; a resource
    /// without the key has its metadata unmanaged.
    #[serde(default)]
    pub metadata: Vec<DesiredMetadata>,
    /// How part updates and tag moves reach the fleet (`rollout:`); `None`: all at once.
    #[serde(default)]
    pub rollout: Option<super::RolloutPolicy>,
    /// The sections of the registered kinds ([`crate::kinds`]) the manifest has, by kind key,
    /// each in the kind's desired form; a kind without an entry is not managed. A section
    /// declares nothing when its form is an empty list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, serde_json::Value>,
    /// SHA-256 (hex) over the manifest and every file it includes, with sensitive values
    /// hashed, so a saved plan can name exactly what it was made from.
    pub digest: String,
}

/// Organization settings; each `None` is not managed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    /// The organization's name, managed only when the manifest finds the organization by
    /// `id:` (otherwise the name is how it is found, so it never differs).
    pub name: Option<String>,
    /// The public namespace (Viam allows setting it once).
    pub public_namespace: Option<String>,
    /// The default region.
    pub region: Option<String>,
}

impl OrgSettings {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.public_namespace.is_none() && self.region.is_none()
    }
}

/// The metadata one declaration asks for: exactly `data` (an empty map means none at all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredMetadata {
    pub owner: MetadataOwner,
    pub data: super::Metadata,
}

/// Whose metadata, by declared path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataOwner {
    Organization,
    /// A declared location path.
    Location(String),
    /// A declared machine path.
    Machine(String),
    /// A declared part path.
    Part(String),
}

impl Desired {
    /// The metadata the manifest declares for `owner`, when it manages it.
    pub fn metadata_of(&self, owner: &MetadataOwner) -> Option<&super::Metadata> {
        self.metadata
            .iter()
            .find(|m| &m.owner == owner)
            .map(|m| &m.data)
    }
}

/// How the manifest names its organization.
///
/// The default is an empty name, which no organization has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRef {
    /// A UUID: matched against organization ids.
    Id(String),
    /// Anything else: matched against organization names.
    Name(String),
}

impl Default for OrgRef {
    fn default() -> Self {
        OrgRef::Name(String::new())
    }
}

/// Identity options every resource has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `id:` pins the resource to a cloud id (renames and moves keep it).
    pub id: Option<String>,
    /// `moved_from:` the path (or, for fragments, the name) it had before.
    pub moved_from: Option<String>,
    /// `protect: true`: a plan that would delete it fails.
    pub protect: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredFragment {
    pub name: String,
    pub identity: Identity,
    pub visibility: Visibility,
    pub config: Config,
    /// `tags: {stable: 3, beta: current}`, in the order written; `None` when the manifest does
    /// not manage the fragment's tags.
    #[serde(default)]
    pub tags: Option<Vec<(String, TagTarget)>>,
}

/// Where a fragment tag should point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagTarget {
    /// A revision, as the cloud names it (e.g. `"3"`).
    Revision(String),
    /// The revision the fragment has once this apply is done (`current`).
    Current,
}

/// Which fragment a part (or the organization's defaults) imports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FragmentRef {
    /// A fragment the manifest declares, by name.
    Name(String),
    /// Any fragment by id, e.g. another organization's public fragment.
    Id(String),
}

/// One entry of a part's `fragments:` list: the fragment and how it is imported.
///
/// `options` holds every key of the import other than the fragment itself, as written and in
/// order: `version` (a revision or a tag; absent means the latest), `prefix`, `variables`,
/// and any key fleetform does not model, which is written through untouched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FragmentUse {
    pub fragment: FragmentRef,
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl FragmentUse {
    /// An import of the declared fragment `name`, with no options.
    pub fn named(name: impl Into<String>) -> Self {
        FragmentUse {
            fragment: FragmentRef::Name(name.into()),
            options: serde_json::Map::new(),
        }
    }

    /// The pinned version (revision or tag), if any.
    pub fn version(&self) -> Option<&str> {
        self.options
            .get("version")
            .and_then(serde_json::Value::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredLocation {
    pub name: String,
    /// Name path from the top, e.g. `HQ/Assembly`.
    pub path: String,
    pub identity: Identity,
    /// Rotate the location secret when the newest one is older than this.
    pub rotate_secrets_after: Option<Duration>,
    pub locations: Vec<DesiredLocation>,
    pub machines: Vec<DesiredMachine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredMachine {
    pub name: String,
    /// e.g. `HQ/Assembly/arm-01`.
    pub path: String,
    pub identity: Identity,
    /// At least one; exactly one has `main: true`.
    pub parts: Vec<DesiredPart>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredPart {
    pub name: String,
    /// e.g. `HQ/Assembly/arm-01/arm-01-main`.
    pub path: String,
    pub identity: Identity,
    pub main: bool,
    /// The config without its `fragments` key; fragment references are in `fragments`.
    pub config: Config,
    /// The fragments this part imports, in order.
    pub fragments: Vec<FragmentUse>,
    /// JSON pointers into the config that fleetform neither compares nor overwrites.
    pub ignore: Vec<String>,
}

/// A JSON object config, with the places whose values came from `${env:NAME}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The config in compact form (see [`ConfigJson`]); serialized as the JSON value.
    #[serde(rename = "value")]
    pub json: ConfigJson,
    pub sensitive: Vec<SensitiveValue>,
}

impl Config {
    /// The config as a structured value, parsed from its compact text (key order as written).
    pub fn value(&self) -> serde_json::Value {
        self.json.to_value()
    }
}

/// A config with nothing from the environment.
impl From<serde_json::Value> for Config {
    fn from(value: serde_json::Value) -> Self {
        Config {
            json: ConfigJson::from_value(&value),
            sensitive: Vec::new(),
        }
    }
}

/// A value resolved from the environment: shown as `(sensitive)`, saved only as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensitiveValue {
    /// JSON pointer of the string holding the value (the whole string is sensitive).
    pub pointer: String,
    /// The string as written, e.g. `Bearer ${env:TOKEN}` (names only, never a value):
    /// applying a saved plan resolves it again and checks the result against `sha256`.
    #[serde(default)]
    pub template: String,
    /// The environment variable(s) it came from.
    pub env: Vec<String>,
    /// SHA-256 (hex) of the resolved string.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInvite {
    pub email: String,
    /// At least one; an invite written with no grants is an owner of the organization.
    pub grants: Vec<DesiredGrant>,
    pub protect: bool,
    /// Whether the cloud emails the invitation (default true, as the Viam SDK).
    #[serde(default = "yes")]
    pub send_email: bool,
}

/// A member of the organization and every role they should hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredMember {
    pub who: MemberRef,
    /// Each target at most once; empty means the member should hold no role the manifest
    /// can express (their grants are removed under `prune`).
    pub grants: Vec<DesiredGrant>,
    pub protect: bool,
}

/// An API key and every role it should hold. Its secret is never part of the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredKey {
    /// Unique among the manifest's keys; how the key is found in the cloud.
    pub name: String,
    /// `moved_from:` the name the key had before; a key found under it is renamed.
    #[serde(default)]
    pub moved_from: Option<String>,
    /// At least one, each target at most once.
    pub grants: Vec<DesiredGrant>,
    /// A plan never deletes the key or takes a role from it.
    pub protect: bool,
}

/// How the manifest names a member.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberRef {
    /// Compared case-insensitively with any of the member's emails (stored lower-case).
    Email(String),
    UserId(String),
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DesiredGrant {
    pub role: Role,
    pub target: GrantTarget,
}

/// What a grant applies to, by manifest path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    Organization,
    /// A declared location path, e.g. `HQ/Assembly`.
    Location(String),
    /// A declared machine path, e.g. `HQ/Assembly/arm-01`.
    Machine(String),
}

impl Desired {
    /// Every declared location, parents before children.
    pub fn all_locations(&self) -> Vec<&DesiredLocation> {
        fn walk<'a>(ls: &'a [DesiredLocation], out: &mut Vec<&'a DesiredLocation>) {
            for l in ls {
                out.push(l);
                walk(&l.locations, out);
            }
        }
        let mut out = vec![];
        walk(&self.locations, &mut out);
        out
    }

    /// Every declared machine with its location.
    pub fn all_machines(&self) -> Vec<(&DesiredLocation, &DesiredMachine)> {
        self.all_locations()
            .into_iter()
            .flat_map(|l| l.machines.iter().map(move |m| (l, m)))
            .collect()
    }

    /// True when the manifest declares nothing at all (no fragments, locations, invites,
    /// API keys, or anything in a registered kind's section).
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
            && self.locations.is_empty()
            && self.invites.as_ref().is_none_or(|i| i.is_empty())
            && self
                .kinds
                .values()
                .all(|v| v.as_array().is_some_and(Vec::is_empty))
            && self.keys.as_ref().is_none_or(|k| k.is_empty())
    }
}
