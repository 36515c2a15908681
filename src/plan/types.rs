//! The plan as data: what would change, in what order, and what each change assumed.
//!
//! A [`Plan`] is produced by [`crate::plan::plan`], printed by the CLI, saved to a file
//! (`--out`), and executed by apply. Each [`Change`] carries an executable [`Op`], the changes
//! it depends on, and a [`Precondition`] on the observed state it was computed from.
//!
//! Serialized plans (saved files and `--output json`) never contain sensitive values: configs
//! are [`PlannedConfig`]s whose sensitive strings serialize as `{"$sensitive": "<sha256>"}`.

use crate::model::{ConfigJson, Role, SensitiveValue, Timestamp, Visibility};
use serde::{Deserialize, Serialize};

/// Version of the serialized plan format (`--out` files and `--output json`). Version 2 writes
/// timestamps as RFC 3339 text; version 1 (`{seconds, nanos}`) is still read
/// ([`READABLE_PLAN_FORMAT_VERSIONS`]).
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// The saved-plan versions this fleetform reads: they differ only in how timestamps are
/// written, and [`Timestamp`] reads both forms.
pub const READABLE_PLAN_FORMAT_VERSIONS: [u32; 2] = [1, 2];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// Digest of the manifest the plan was made from.
    pub manifest_digest: String,
    pub organization_id: String,
    pub organization_name: String,
    pub prune: bool,
    /// In a valid execution order (dependencies first).
    pub changes: Vec<Change>,
    /// Things inside the managed scope that the manifest does not declare and the plan keeps.
    pub unmanaged: Vec<Unmanaged>,
    /// What the user should know that is not a change: satisfied `moved_from`s, resources a
    /// `moved_from` still names, and loud warnings such as a delete and a create of the same
    /// name in the same place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// Set when the plan was restricted with `--target` (see [`crate::plan::target`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Targeting>,
    /// The waves and gates of a staged rollout, when the manifest has a `rollout:` policy
    /// and the plan updates parts or moves fragment tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::RolloutPlan>,
}

/// What a targeted plan covers and how much it left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targeting {
    /// The `--target` addresses, as given.
    pub addresses: Vec<String>,
    /// Changes the whole manifest would make that the target left out.
    pub left_out: usize,
}

/// How loudly a [`Notice`] is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// Good to know; nothing is wrong (e.g. a `moved_from` that can be removed).
    Info,
    /// Probably not what the user meant; read before applying.
    Warning,
}

/// A note about one declared or observed resource that is not a change of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub level: NoticeLevel,
    pub kind: Kind,
    /// The declared path (or the observed path, for resources the manifest does not declare).
    pub path: String,
    /// One sentence for people, with a hint where there is something to do.
    pub message: String,
}

/// The kind of resource a change or note is about. Written in plans by [`Kind::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Fragment,
    Location,
    Machine,
    Part,
    Invite,
    LocationSecret,
    /// A fragment's tag; its path is `<fragment>@<tag>`.
    FragmentTag,
    /// The organization's own settings (name, public namespace, region, default fragments);
    /// its path is the organization's name.
    Organization,
    /// The metadata of the organization, a location, a machine or a part; its path is the
    /// owner's (the organization's name for the organization).
    Metadata,
    /// A kind of the registry ([`crate::kinds`]), by its [`key`](Kind::key).
    Registered(&'static str),
    /// An API key and its roles; its path is the key's name (its id when it has none).
    ApiKey,
}

impl Kind {
    /// For people: `location secret`, `API key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LocationSecret => "location secret",
            Kind::FragmentTag => "fragment tag",
            Kind::Registered(key) => crate::kinds::by_key(key).map_or(key, |k| k.label()),
            Kind::ApiKey => "API key",
            other => other.key(),
        }
    }

    /// As written in plans and JSON output: `location_secret`, `api_key`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Fragment => "fragment",
            Kind::Location => "location",
            Kind::Machine => "machine",
            Kind::Part => "part",
            Kind::Invite => "invite",
            Kind::LocationSecret => "location_secret",
            Kind::FragmentTag => "fragment_tag",
            Kind::Organization => "organization",
            Kind::Metadata => "metadata",
            Kind::Registered(key) => key,
            Kind::ApiKey => "api_key",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const BUILT_IN: [Kind; 10] = [
            Kind::Fragment,
            Kind::Location,
            Kind::Machine,
            Kind::Part,
            Kind::Invite,
            Kind::LocationSecret,
            Kind::FragmentTag,
            Kind::Organization,
            Kind::Metadata,
            Kind::ApiKey,
        ];
        let key = std::borrow::Cow::<str>::deserialize(d)?;
        BUILT_IN
            .into_iter()
            .find(|k| k.key() == key)
            .or_else(|| crate::kinds::by_key(&key).map(|k| k.kind()))
            .ok_or_else(|| serde::de::Error::custom(format!("unknown kind `{key}`")))
    }
}

/// What a change does, for people (`+`, `~`, `→`, `-`) and for the summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// A rename and/or a move to another parent.
    Move,
    Delete,
}

impl Action {
    pub fn mark(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Move => "→",
            Action::Delete => "-",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `c1`, `c2`, …: unique within the plan; dependencies refer to it.
    pub id: String,
    pub action: Action,
    pub kind: Kind,
    /// The resource's path after the change (for deletes: its current path). Fragments and
    /// invites use their name and email.
    pub path: String,
    /// The path before a move or rename.
    pub from_path: Option<String>,
    /// The cloud id of an existing resource (`None` for creates).
    pub resource_id: Option<String>,
    /// One line saying why, e.g. "config differs", "not in the manifest (prune)".
    pub reason: String,
    /// Attribute-level differences to show (name, parent, visibility, grants…).
    pub details: Vec<Detail>,
    /// For config changes: the current and the wanted config, masked where sensitive.
    pub config_before: Option<PlannedConfig>,
    pub config_after: Option<PlannedConfig>,
    /// Who last changed the cloud's copy, for drifted part configs.
    pub attribution: Option<Attribution>,
    /// For fragment changes and tag moves: the machines that take the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
    pub precondition: Option<Precondition>,
    pub depends_on: Vec<String>,
    pub op: Op,
    /// A step through a temporary name, planned so that a swap or rotation of names never
    /// collides: the change that follows it (same `resource_id`) is the move the user asked
    /// for. Shown only in `--detail` and JSON, and not counted in the summary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// The ids of the changes `c` waits for, directly or through others; `index` maps a change id
/// to its place in `changes`. A change refers only to resources made by changes it waits for:
/// the planner holds to that (checked in debug builds) and the apply engine relies on it.
pub fn waits_for<'a>(
    changes: &'a [Change],
    index: &std::collections::HashMap<&str, usize>,
    c: &'a Change,
) -> std::collections::HashSet<&'a str> {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&str> = c.depends_on.iter().map(String::as_str).collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id)
            && let Some(&j) = index.get(id)
        {
            stack.extend(changes[j].depends_on.iter().map(String::as_str));
        }
    }
    seen
}

impl Change {
    /// A change with nothing but what every change has: no id yet (the planner numbers the
    /// changes), no details, configs, attribution, precondition or dependencies.
    pub fn new(
        action: Action,
        kind: Kind,
        path: &str,
        reason: impl Into<String>,
        op: Op,
    ) -> Change {
        Change {
            id: String::new(),
            action,
            kind,
            path: path.to_string(),
            from_path: None,
            resource_id: None,
            reason: reason.into(),
            details: vec![],
            config_before: None,
            config_after: None,
            attribution: None,
            blast_radius: None,
            precondition: None,
            depends_on: vec![],
            op,
            temporary: false,
        }
    }
}

/// How many machines a fragment change reaches, from the cloud's usage counts: those that
/// import the fragment at a version the change moves (the latest revision, or a moved tag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Machines in every organization.
    pub machines: i64,
    /// Machines in this organization.
    pub machines_in_org: i64,
    /// Per version the change reaches: `latest`, or the tag or revision imported.
    pub by_version: Vec<VersionUsage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionUsage {
    pub version: String,
    pub machines: i64,
}

/// One attribute that changes: `name: "a" → "b"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Who made the cloud's current version of a drifted part, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub when: Option<Timestamp>,
    pub who: Option<String>,
}

/// What the plan assumed about the resource it changes; a saved plan whose preconditions no
/// longer hold is stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// The resource's `last_updated` (parts, fragments).
    LastUpdated(Timestamp),
    /// SHA-256 over the observed attributes the change depends on (locations, machines,
    /// invites, secrets), computed by [`crate::plan::fingerprint`].
    Fingerprint(String),
    /// The resource must not exist yet under this path (creates).
    Absent,
}

/// An id that exists now, or one that an earlier change of this plan will create.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdRef {
    Existing(String),
    CreatedBy(String),
}

/// A part: an existing one, one created by a change, or the main part that `NewRobot` made
/// for a machine created by a change (main-part adoption).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartRef {
    Existing(String),
    CreatedBy(String),
    MainPartOf(String),
}

/// Whose metadata a change sets: an existing resource, or one an earlier change creates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataRef {
    Organization(String),
    Location(IdRef),
    Machine(IdRef),
    Part(PartRef),
}

/// A grant in cloud terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedGrant {
    pub role: Role,
    pub target: GrantRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantRef {
    Organization(String),
    Location(IdRef),
    Machine(IdRef),
}

/// A config as it will be written: the JSON object without `fragments`, the fragments it
/// imports (ids resolved at apply time), where the `fragments` key goes, and which strings
/// are sensitive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlannedConfig {
    /// In compact form (shared with the desired model where nothing is merged into it): a
    /// plan holds each config it writes twice (the operation and `config_after`), for
    /// thousands of parts in a cold apply, so as `Value` trees they were most of its memory.
    pub value: ConfigJson,
    pub fragments: Vec<PlannedImport>,
    /// The position of the `fragments` key among the config's keys, kept from the config
    /// being replaced (which then keeps the key even when the list is empty). `None`: after
    /// the other keys, and only when something is imported.
    pub fragments_at: Option<usize>,
    pub sensitive: Vec<SensitiveValue>,
}

/// One entry of a config's `fragments` list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedImport {
    pub fragment: IdRef,
    /// The entry as it will be written, with the id slot filled in at apply time: a bare id
    /// string, or an object whose `id` key is replaced (other keys in order, untouched).
    pub entry: serde_json::Value,
}

impl PlannedImport {
    /// The entry with `id` standing for the fragment.
    pub fn with_id(&self, id: &str) -> serde_json::Value {
        match &self.entry {
            serde_json::Value::Object(o) => {
                let mut o = o.clone();
                match o.get_mut("id") {
                    Some(slot) => *slot = serde_json::Value::String(id.to_string()),
                    None => {
                        o.shift_insert(0, "id".into(), serde_json::Value::String(id.to_string()));
                    }
                }
                serde_json::Value::Object(o)
            }
            _ => serde_json::Value::String(id.to_string()),
        }
    }
}

/// The cloud operation a change performs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateLocation {
        name: String,
        parent: Option<IdRef>,
    },
    /// `name`: `None` keeps it. `parent`: `None` keeps it, `Some(None)` moves to the top level.
    UpdateLocation {
        id: String,
        name: Option<String>,
        parent: Option<Option<IdRef>>,
    },
    DeleteLocation {
        id: String,
    },
    /// Creates the machine and, implicitly, its main part `<name>-main`.
    CreateMachine {
        name: String,
        location: IdRef,
    },
    UpdateMachine {
        id: String,
        name: Option<String>,
        location: Option<IdRef>,
    },
    DeleteMachine {
        id: String,
    },
    /// Creates a part, then (when `config` is given) writes its config.
    CreatePart {
        machine: IdRef,
        name: String,
        config: Option<PlannedConfig>,
    },
    /// Renames and/or reconfigures a part. `config: None` leaves the config as it is.
    UpdatePart {
        part: PartRef,
        name: String,
        config: Option<PlannedConfig>,
    },
    MarkPartAsMain {
        part: PartRef,
    },
    DeletePart {
        id: String,
    },
    CreateFragment {
        name: String,
        config: PlannedConfig,
        visibility: Visibility,
    },
    UpdateFragment {
        id: String,
        name: String,
        config: Option<PlannedConfig>,
        visibility: Option<Visibility>,
    },
    DeleteFragment {
        id: String,
    },
    /// Points a tag at a revision; `revision: None` is the fragment's revision when this
    /// change runs, after the fragment changes it depends on (`current`).
    SetFragmentTag {
        fragment: IdRef,
        tag: String,
        revision: Option<String>,
    },
    DeleteFragmentTag {
        fragment: String,
        tag: String,
    },
    /// Replaces the organization's default fragments.
    SetDefaultFragments {
        fragments: Vec<PlannedImport>,
    },
    /// Changes the organization's settings; `None` keeps that setting.
    UpdateOrganization {
        name: Option<String>,
        public_namespace: Option<String>,
        region: Option<String>,
    },
    /// Replaces the whole metadata object of `target` with `data`.
    SetMetadata {
        target: MetadataRef,
        data: crate::model::Metadata,
    },
    CreateInvite {
        email: String,
        grants: Vec<PlannedGrant>,
        #[serde(default = "send_email_default")]
        send_email: bool,
    },
    UpdateInvite {
        email: String,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
    },
    DeleteInvite {
        email: String,
    },
    /// Creates API key `name` holding `grants`; its id and secret go to whoever applies the
    /// plan (once), never into the plan.
    CreateKey {
        name: String,
        grants: Vec<PlannedGrant>,
    },
    /// Gives key `key_id` the roles `add`, then takes `remove` away (id and secret kept).
    UpdateKeyRoles {
        key_id: String,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
    },
    DeleteKey {
        key_id: String,
    },
    /// Renames key `key_id` to `name` (id and secret kept).
    RenameKey {
        key_id: String,
        name: String,
    },
    /// Replaces a location's secrets with one new secret: creates it, then deletes the old
    /// ones (oldest first). When the location already holds the maximum of 2, the oldest is
    /// deleted before creating, so a valid secret exists at every moment.
    RotateSecret {
        location_id: String,
        old_secret_ids: Vec<String>,
    },
    /// An operation of a registered kind ([`crate::kinds`]), written as the kind writes it
    /// (its own `op` tag), so it is last and untagged: a tag no variant above has is looked
    /// up in the registry.
    #[serde(untagged)]
    Kind(crate::kinds::KindOp),
}

fn send_email_default() -> bool {
    true
}

/// Something inside the managed scope that the manifest does not declare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmanaged {
    pub kind: Kind,
    pub path: String,
    pub id: String,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    #[serde(rename = "move")]
    pub moves: usize,
    pub delete: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in self.changes.iter().filter(|c| !c.temporary) {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Move => s.moves += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn change(&self, id: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.id == id)
    }
}

// -- Serialization of configs: sensitive strings become hashes. ---------------------------------

/// The serialized form of a [`PlannedConfig`].
#[derive(Serialize, Deserialize)]
struct PlannedConfigWire {
    value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fragments: Vec<PlannedImport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fragments_at: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sensitive: Vec<SensitiveValue>,
}

impl PlannedConfig {
    /// The whole config: `value` (this config's value, possibly masked) with the `fragments`
    /// list put back at its position; `id` gives each import's fragment id (or label).
    pub fn assemble<E>(
        &self,
        value: serde_json::Value,
        id: impl Fn(&IdRef) -> Result<String, E>,
    ) -> Result<serde_json::Value, E> {
        let serde_json::Value::Object(mut o) = value else {
            return Ok(value);
        };
        if self.fragments.is_empty() && self.fragments_at.is_none() {
            return Ok(serde_json::Value::Object(o));
        }
        let list = self
            .fragments
            .iter()
            .map(|f| Ok(f.with_id(&id(&f.fragment)?)))
            .collect::<Result<Vec<_>, E>>()?;
        let at = self.fragments_at.unwrap_or(o.len()).min(o.len());
        o.shift_insert(at, "fragments".into(), serde_json::Value::Array(list));
        Ok(serde_json::Value::Object(o))
    }

    /// The value with every sensitive string replaced by `replacement(sensitive)`.
    pub fn masked_with(
        &self,
        replacement: impl Fn(&SensitiveValue) -> serde_json::Value,
    ) -> serde_json::Value {
        let mut v = self.value.to_value();
        for s in &self.sensitive {
            if let Some(slot) = v.pointer_mut(&s.pointer) {
                *slot = replacement(s);
            }
        }
        v
    }
}

impl Serialize for PlannedConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PlannedConfigWire {
            value: self.masked_with(|s| serde_json::json!({ "$sensitive": s.sha256 })),
            fragments: self.fragments.clone(),
            fragments_at: self.fragments_at,
            sensitive: self.sensitive.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PlannedConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = PlannedConfigWire::deserialize(deserializer)?;
        Ok(PlannedConfig {
            value: ConfigJson::from_value(&w.value),
            fragments: w.fragments,
            fragments_at: w.fragments_at,
            sensitive: w.sensitive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_serialize_as_hashes() {
        let cfg = PlannedConfig {
            value: serde_json::json!({"auth": {"token": "s3cr3t"}, "plain": "x"}).into(),
            fragments: vec![],
            fragments_at: None,
            sensitive: vec![SensitiveValue {
                pointer: "/auth/token".into(),
                template: "${env:TOKEN}".into(),
                env: vec!["TOKEN".into()],
                sha256: "abc123".into(),
            }],
        };
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains(r#"{"$sensitive":"abc123"}"#), "{text}");
        assert!(text.contains(r#""plain":"x""#));
    }
}
