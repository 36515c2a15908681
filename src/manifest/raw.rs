//! The manifest as written: serde structs that mirror the YAML one to one, read by
//! `validate` and written by `export` (the one source of the manifest's shape: a new key is
//! a field here, its check in `validate`, its line in `export`, and the schema).
//!
//! Fields are in the order `export` writes them; keys that hold their default are not
//! written. Every struct denies unknown keys. Values that need a friendly error (roles, visibility,
//! ids, paths, durations) stay strings here and are checked in `validate`, which turns these
//! structs into the `Desired` model. The structural pass in `structure` runs first, so in
//! practice deserializing these only fails on input that pass could not foresee.

use serde::{Deserialize, Serialize};

/// An inline `config:`. Reading keeps only that one was written (its value stays `Null`):
/// `validate` builds the config straight from the position tree, so that a config is
/// constructed once, in its final form. Writing writes the value it holds.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Inline(pub serde_json::Value);

impl<'de> Deserialize<'de> for Inline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Inline(serde_json::Value::Null))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole manifest.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub version: i64,
    pub organization: RawOrganization,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<RawFragment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<RawLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<RawAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RawRollout>,
}

/// `organization: acme`, or `organization: {name: acme, default_fragments: [...]}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawOrganization {
    Name(String),
    Settings(RawOrgSettings),
}

/// The organization with the settings fleetform manages.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrgSettings {
    pub name: String,
    /// Find the organization by id; `name` is then its wanted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Fragment imports, each a name or an import mapping (checked in `validate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_fragments: Option<Vec<serde_json::Value>>,
    /// Free-form metadata; without the key it is not managed (`{}` means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A fragment: reusable config that parts include by name.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFragment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Inline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// Tag name → revision (a string or a number) or `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A location, with its child locations and machines.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<RawSecrets>,
    /// Free-form metadata; without the key it is not managed (`{}` means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<RawLocation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<RawMachine>,
}

/// A location's secret policy.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    pub rotate_after: String,
}

/// A machine (a robot).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMachine {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// Free-form metadata; without the key it is not managed (`{}` means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub parts: Vec<RawPart>,
}

/// A machine part with its config.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPart {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<bool>,
    /// Each a fragment name or an import mapping (checked in `validate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fragments: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Free-form metadata; without the key it is not managed (`{}` means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Inline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

/// The `access:` section. Its other keys are the sections of the registered kinds
/// ([`crate::kinds`]), kept as written for the kind to read; a key that is neither is
/// reported by the structural pass (the schema lists every key) and by `validate`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawAccess {
    /// Absent: pending invites are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invites: Option<Vec<RawInvite>>,
    /// The registered kinds' sections, by key.
    #[serde(flatten)]
    pub kinds: serde_json::Map<String, serde_json::Value>,
    /// API keys and their roles; absent: API keys are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<RawKey>>,
}

/// An API key of the organization, by name, and the roles it should hold. The secret is
/// never in the manifest.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    /// The name the key had before (it is renamed, keeping its id and secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
}

/// An invitation to the organization with the roles it grants.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawInvite {
    pub email: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_email: Option<bool>,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
}

/// One role on one target.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// The `rollout:` policy (checked in `validate/rollout.rs`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub waves: Vec<RawAmount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_when: Option<RawHealthGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_when: Option<RawAbortWhen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_abort: Option<String>,
}

/// A count (`5`) or a percentage (`"25%"`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawAmount {
    Count(i64),
    Text(String),
}

/// `healthy_when: {online_within: 2m, max_error_logs: 0}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthGate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_within: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_logs: Option<i64>,
}

/// `abort_when: {unhealthy: 1}` or `{unhealthy: 10%}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAbortWhen {
    pub unhealthy: RawAmount,
}
