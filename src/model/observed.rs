//! What the cloud reported: the `Observed` model that planning compares against.
//!
//! Built by `crate::cloud::observe` from list calls. It covers the manifest's scope: every
//! location, machine and fragment of the organization (list calls return them anyway), the
//! parts of machines inside managed locations, invites when the manifest manages access,
//! what the registered kinds read, fresh secrets for locations with a rotation policy, and the metadata of the owners whose
//! declaration manages it.

use super::{
    ApiKey, Fragment, FragmentTag, FragmentUsage, Invite, Location, LocationSecret, Machine,
    Member, Organization, Part, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `Default` is an empty organization observed at the epoch with nothing read, for building
/// an `Observed` in code: name the fields that matter and end with `..Default::default()`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub organization: Organization,
    /// All locations of the organization, flat (`parent_id` links them).
    pub locations: Vec<Location>,
    /// All machines of the organization.
    pub machines: Vec<Machine>,
    /// Parts by machine id, for machines in managed locations (and pinned machines).
    pub parts: BTreeMap<String, Vec<Part>>,
    /// The organization's own fragments.
    pub fragments: Vec<Fragment>,
    /// `None` when access is not managed (not read).
    pub invites: Option<Vec<Invite>>,
    pub members: Vec<Member>,
    /// The organization's API keys; `None` when keys are not managed (not read).
    #[serde(default)]
    pub api_keys: Option<Vec<ApiKey>>,
    /// The id of the API key this observation was made with, when the client says: the key
    /// a plan must never delete or take roles from.
    #[serde(default)]
    pub own_key_id: Option<String>,
    /// Freshly read secrets for locations with a rotation policy, by location id.
    pub secrets: BTreeMap<String, Vec<LocationSecret>>,
    /// Tags of the fragments whose declaration manages tags, by fragment id.
    #[serde(default)]
    pub fragment_tags: BTreeMap<String, Vec<FragmentTag>>,
    /// Revisions of the fragments whose declaration manages tags, by fragment id, oldest first.
    #[serde(default)]
    pub fragment_revisions: BTreeMap<String, Vec<String>>,
    /// How many machines import each declared fragment, per version, by fragment id.
    #[serde(default)]
    pub fragment_usage: BTreeMap<String, Vec<FragmentUsage>>,
    /// Metadata read for the declarations that manage it (everything in scope, for import),
    /// by [`super::MetadataTarget::key`]. A resource not in the map was not read.
    #[serde(default)]
    pub metadata: BTreeMap<String, super::Metadata>,
    /// What each registered kind ([`crate::kinds`]) the manifest manages read, by kind key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, serde_json::Value>,
    /// When the observation was made (for secret ages).
    pub observed_at: Timestamp,
}

impl Observed {
    /// The metadata observed for `target`, when it was read.
    pub fn metadata_of(&self, target: &super::MetadataTarget) -> Option<&super::Metadata> {
        self.metadata.get(&target.key())
    }
}

/// The name path from the top (`HQ/Assembly/Line-1`) of every observed location, by id.
///
/// Locations whose parent chain is broken — a parent id not in the list, or a cycle — are left
/// out: they have no well-defined path and so never match a declared path.
pub fn location_paths(locations: &[Location]) -> BTreeMap<String, String> {
    let by_id: BTreeMap<&str, &Location> = locations.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut paths = BTreeMap::new();
    'locations: for location in locations {
        let mut names = vec![location.name.as_str()];
        let mut seen = BTreeSet::from([location.id.as_str()]);
        let mut current = location;
        while let Some(parent_id) = current.parent_id.as_deref() {
            let Some(parent) = by_id.get(parent_id) else {
                continue 'locations; // dangling parent
            };
            if !seen.insert(parent.id.as_str()) {
                continue 'locations; // cycle
            }
            names.push(parent.name.as_str());
            current = parent;
        }
        names.reverse();
        paths.insert(location.id.clone(), names.join("/"));
    }
    paths
}

/// What a temporary name ends with.
pub const TEMPORARY_SUFFIX: &str = "-fleetform-tmp";

/// The temporary name a resource bound for `name` holds while a swap or rotation of names is
/// applied. A resource found under it where `name` is declared is that declaration's
/// (an apply was interrupted between the two steps), so both observe and plan know it.
pub fn temporary_name(name: &str) -> String {
    format!("{name}{TEMPORARY_SUFFIX}")
}
