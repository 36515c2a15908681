//! The plan as data: what would change, in what order, and what each change assumed.
//!
//! A [`Plan`] is produced by [`crate::plan::plan`], printed by the CLI, saved to a file
//! (`--out`), and executed by apply. Each [`Change`] carries an executable [`Op`], the changes
//! it depends on, and a [`Precondition`] on the observed state it was computed from.
//!
//! Serialized plans (saved files and `--output json`) never contain sensitive values: configs
//! are [`PlannedConfig`]s whose sensitive strings serialize as `{"$sensitive": "<sha256>"}`.

use crate::model::{Role, SensitiveValue, Timestamp, Visibility};
use serde::{Deserialize, Serialize};

/// Version of the serialized plan format (`--out` files and `--output json`).
pub const PLAN_FORMAT_VERSION: u32 = 1;

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

/// The kind of resource a change or note is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Fragment,
    Location,
    Machine,
    Part,
    Invite,
    LocationSecret,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fragment => "fragment",
            Kind::Location => "location",
            Kind::Machine => "machine",
            Kind::Part => "part",
            Kind::Invite => "invite",
            Kind::LocationSecret => "location secret",
        }
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
    pub precondition: Option<Precondition>,
    pub depends_on: Vec<String>,
    pub op: Op,
    /// A step through a temporary name, planned so that a swap or rotation of names never
    /// collides: the change that follows it (same `resource_id`) is the move the user asked
    /// for. Shown only in `--detail` and JSON, and not counted in the summary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
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
/// references (resolved to ids at apply time), and which strings are sensitive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlannedConfig {
    pub value: serde_json::Value,
    pub fragments: Vec<IdRef>,
    pub sensitive: Vec<SensitiveValue>,
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
    CreateInvite {
        email: String,
        grants: Vec<PlannedGrant>,
    },
    UpdateInvite {
        email: String,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
    },
    DeleteInvite {
        email: String,
    },
    /// Replaces a location's secrets with one new secret: creates it, then deletes the old
    /// ones (oldest first). When the location already holds the maximum of 2, the oldest is
    /// deleted before creating, so a valid secret exists at every moment.
    RotateSecret {
        location_id: String,
        old_secret_ids: Vec<String>,
    },
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
    fragments: Vec<IdRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sensitive: Vec<SensitiveValue>,
}

impl PlannedConfig {
    /// The value with every sensitive string replaced by `replacement(sensitive)`.
    pub fn masked_with(
        &self,
        replacement: impl Fn(&SensitiveValue) -> serde_json::Value,
    ) -> serde_json::Value {
        let mut v = self.value.clone();
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
            sensitive: self.sensitive.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PlannedConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = PlannedConfigWire::deserialize(deserializer)?;
        Ok(PlannedConfig {
            value: w.value,
            fragments: w.fragments,
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
            value: serde_json::json!({"auth": {"token": "s3cr3t"}, "plain": "x"}),
            fragments: vec![],
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
