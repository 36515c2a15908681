//! Preconditions: the fingerprints of observed state that a change records at plan time and
//! apply checks again just before making it (see `apply::stale`), so a change made against a
//! resource that changed since planning is refused instead of overwriting it.

use super::*;

/// SHA-256 over the given fields, for [`Precondition::Fingerprint`].
pub fn fingerprint(fields: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Fingerprint of an observed location's name and parent.
pub fn location_fingerprint(l: &Location) -> String {
    fingerprint(&["location", &l.name, l.parent_id.as_deref().unwrap_or("")])
}

/// Fingerprint of an observed machine's name and location.
pub fn machine_fingerprint(m: &Machine) -> String {
    fingerprint(&["machine", &m.name, &m.location_id])
}

/// `role:kind:id` of each grant, sorted.
fn sorted_grants(grants: &[Grant]) -> Vec<String> {
    let mut g: Vec<String> = grants
        .iter()
        .map(|g| {
            format!(
                "{}:{}:{}",
                g.role.as_str(),
                g.resource_kind.as_str(),
                g.resource_id
            )
        })
        .collect();
    g.sort();
    g
}

/// Fingerprint of an invite's grants (order-insensitive).
pub fn grants_fingerprint(email: &str, grants: &[Grant]) -> String {
    let g = sorted_grants(grants);
    let mut fields = vec!["invite", email];
    fields.extend(g.iter().map(String::as_str));
    fingerprint(&fields)
}

/// Fingerprint of an API key: its name and roles (order-insensitive).
pub fn key_fingerprint(key: &crate::model::ApiKey) -> String {
    let g = sorted_grants(&key.grants);
    let mut fields = vec!["api key", key.id.as_str(), key.name.as_str()];
    fields.extend(g.iter().map(String::as_str));
    fingerprint(&fields)
}

/// Fingerprint of a location's secret ids.
pub fn secrets_fingerprint(location_id: &str, secret_ids: &[String]) -> String {
    let mut ids: Vec<&str> = secret_ids.iter().map(String::as_str).collect();
    ids.sort();
    let mut fields = vec!["secrets", location_id];
    fields.extend(ids);
    fingerprint(&fields)
}

/// The precondition of a tag change: the fragment, the tag and where it pointed.
pub fn tag_fingerprint(fragment_id: &str, tag: &str, revision: Option<&str>) -> String {
    fingerprint(&["tag", fragment_id, tag, revision.unwrap_or("")])
}

/// The precondition of a default-fragments change: the organization's list as observed.
pub fn default_fragments_fingerprint(org: &crate::model::Organization) -> String {
    let list: Vec<serde_json::Value> = org
        .default_fragments
        .iter()
        .flatten()
        .map(import_entry)
        .collect();
    let text = serde_json::Value::Array(list).to_string();
    fingerprint(&["default_fragments", &org.id, &text])
}

/// The precondition of a metadata change: the owner (its [`MetadataTarget::key`]) and its
/// metadata as observed, in canonical form.
///
/// [`MetadataTarget::key`]: crate::model::MetadataTarget::key
pub fn metadata_fingerprint(target_key: &str, data: Option<&crate::model::Metadata>) -> String {
    let text = data
        .map(|d| canonical(&serde_json::Value::Object(d.clone())).to_string())
        .unwrap_or_default();
    fingerprint(&["metadata", target_key, &text])
}

/// The precondition of an organization-settings change: its name, namespace and region.
pub fn org_settings_fingerprint(org: &crate::model::Organization) -> String {
    fingerprint(&[
        "organization",
        &org.id,
        &org.name,
        &org.public_namespace,
        &org.default_region,
    ])
}
