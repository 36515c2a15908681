//! The manifest as written: serde structs that mirror the YAML one to one.
//!
//! Every struct denies unknown keys. Values that need a friendly error (roles, visibility,
//! ids, paths, durations) stay strings here and are checked in `validate`, which turns these
//! structs into the `Desired` model. The structural pass in `structure` runs first, so in
//! practice deserializing these only fails on input that pass could not foresee.

use serde::Deserialize;

/// An inline `config:` was written. Its value is not kept here: `validate` builds it
/// straight from the position tree, so that a config is constructed once, in its final form.
#[derive(Debug)]
pub struct Inline;

impl<'de> Deserialize<'de> for Inline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Inline)
    }
}

/// The whole manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub version: i64,
    pub organization: RawOrganization,
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub fragments: Vec<RawFragment>,
    #[serde(default)]
    pub locations: Vec<RawLocation>,
    #[serde(default)]
    pub access: Option<RawAccess>,
}

/// `organization: acme`, or `organization: {name: acme, default_fragments: [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawOrganization {
    Name(String),
    Settings(RawOrgSettings),
}

/// The organization with the settings fleetform manages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrgSettings {
    pub name: String,
    /// Fragment imports, each a name or an import mapping (checked in `validate`).
    #[serde(default)]
    pub default_fragments: Option<Vec<serde_json::Value>>,
}

impl RawOrganization {
    pub fn name(&self) -> &str {
        match self {
            RawOrganization::Name(n) => n,
            RawOrganization::Settings(s) => &s.name,
        }
    }
}

/// A fragment: reusable config that parts include by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFragment {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub moved_from: Option<String>,
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub config: Option<Inline>,
    #[serde(default)]
    pub config_file: Option<String>,
    /// Tag name → revision (a string or a number) or `current`.
    #[serde(default)]
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A location, with its child locations and machines.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub moved_from: Option<String>,
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub secrets: Option<RawSecrets>,
    #[serde(default)]
    pub locations: Vec<RawLocation>,
    #[serde(default)]
    pub machines: Vec<RawMachine>,
}

/// A location's secret policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    pub rotate_after: String,
}

/// A machine (a robot).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMachine {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub moved_from: Option<String>,
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub parts: Vec<RawPart>,
}

/// A machine part with its config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPart {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub moved_from: Option<String>,
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub main: Option<bool>,
    /// Each a fragment name or an import mapping (checked in `validate`).
    #[serde(default)]
    pub fragments: Vec<serde_json::Value>,
    #[serde(default)]
    pub config: Option<Inline>,
    #[serde(default)]
    pub config_file: Option<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// The `access:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub invites: Vec<RawInvite>,
}

/// An invitation to the organization with the roles it grants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInvite {
    pub email: String,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
    #[serde(default)]
    pub protect: bool,
    #[serde(default)]
    pub send_email: Option<bool>,
}

/// One role on one target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub role: String,
    #[serde(default)]
    pub organization: Option<bool>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub machine: Option<String>,
}
