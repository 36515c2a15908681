//! Conversions between the generated protobuf messages and [`crate::model`] types.
//!
//! This module owns every mapping of wire fields to domain fields: JSON <-> `google.protobuf.Struct`,
//! timestamps, and the Viam messages (locations, robots, parts, fragments, authorizations,
//! invites, members, part history, log entries). It is pure: no I/O, no RPCs.
//!
//! # Authorizations fleetform does not model
//!
//! fleetform manages only role grants (`authorization_type = "role"`, `authorization_id =
//! "<resource_type>_<role>"` with the roles `owner`/`operator` on `organization`, `location` or
//! `robot`). [`grant_from_authorization`] returns [`ConvertError::UnknownAuthorization`] for
//! anything else, and [`invite`] **skips** such authorizations (logging a warning) instead of failing
//! the whole listing: they stay invisible to fleetform and, since updates only ever send the grants
//! fleetform adds or removes, they are never touched either.

use crate::model::{
    ApiKey, ConfigJson, Editor, Fragment, FragmentHistoryEntry, FragmentImport, FragmentRevision,
    FragmentTag, FragmentUsage, Grant, HistoryEntry, Invite, Location, LocationOrganization,
    LocationSecret, LogEntry, Machine, Member, OnlineState, Organization, Part, PartSummary,
    ResourceKind, Role, Sensitive, Timestamp, Visibility,
};
use crate::proto::viam::app::v1 as pb;
use crate::proto::viam::common::v1 as common;
use prost_types::value::Kind;
use serde_json::Value as Json;

/// The largest magnitude below which every integer is exactly representable as an `f64` (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A domain value that cannot be put on the wire, or a wire value fleetform does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A value that must be a JSON object (a config, a log caller or field set) was not one.
    #[error("{what} must be a JSON object")]
    NotAnObject { what: &'static str },
    /// An authorization that is not one of the role grants fleetform models.
    #[error(
        "unsupported authorization (type {authorization_type:?}, id {authorization_id:?}, \
         resource type {resource_type:?})"
    )]
    UnknownAuthorization {
        authorization_type: String,
        authorization_id: String,
        resource_type: String,
    },
}

// ---------------------------------------------------------------------------------------------
// JSON <-> google.protobuf.Struct / Value
// ---------------------------------------------------------------------------------------------

/// Converts a JSON object into a `Struct`; anything but an object is rejected.
pub(super) fn struct_from_json(
    json: &Json,
    what: &'static str,
) -> Result<prost_types::Struct, ConvertError> {
    match json {
        Json::Object(map) => Ok(struct_from_map(map)),
        _ => Err(ConvertError::NotAnObject { what }),
    }
}

fn struct_from_map(map: &serde_json::Map<String, Json>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_from_json(v)))
            .collect(),
    }
}

/// Converts any JSON value into a `google.protobuf.Value` (numbers become `f64`).
pub(super) fn value_from_json(json: &Json) -> prost_types::Value {
    let kind = match json {
        Json::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => n.as_f64().map_or(
            Kind::NullValue(prost_types::NullValue::NullValue as i32),
            Kind::NumberValue,
        ),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_from_map(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Converts an optional `Struct` into a JSON object; an absent struct is `{}`.
/// Metadata from its wire form (absent data is `{}`).
pub(super) fn metadata(s: Option<prost_types::Struct>) -> crate::model::Metadata {
    match json_from_struct(s) {
        Json::Object(map) => map,
        _ => crate::model::Metadata::new(),
    }
}

/// Metadata in its wire form.
pub(super) fn metadata_to_proto(map: &crate::model::Metadata) -> prost_types::Struct {
    struct_from_map(map)
}

pub(super) fn json_from_struct(s: Option<prost_types::Struct>) -> Json {
    let fields = s.map(|s| s.fields).unwrap_or_default();
    Json::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k, json_from_value(v)))
            .collect(),
    )
}

/// Converts a `google.protobuf.Value` into JSON.
///
/// Integral numbers within ±2^53 come back as JSON integers (so `{"a": 1}` round-trips as `1`,
/// not `1.0`); non-finite numbers, which JSON cannot hold, become `null`.
pub(super) fn json_from_value(v: prost_types::Value) -> Json {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => json_number(n),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(l)) => {
            Json::Array(l.values.into_iter().map(json_from_value).collect())
        }
        Some(Kind::StructValue(s)) => json_from_struct(Some(s)),
    }
}

fn json_number(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        // Exact: |n| <= 2^53 and integral, so the cast loses nothing.
        return Json::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
}

// ---------------------------------------------------------------------------------------------
// Timestamps and enums
// ---------------------------------------------------------------------------------------------

/// A wire timestamp as a domain timestamp, unchanged.
pub(super) fn timestamp(t: prost_types::Timestamp) -> Timestamp {
    Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

/// An optional wire timestamp as an optional domain timestamp.
pub(super) fn opt_timestamp(t: Option<prost_types::Timestamp>) -> Option<Timestamp> {
    t.map(timestamp)
}

/// A domain timestamp as a wire timestamp, unchanged.
pub(super) fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

fn online_state(raw: i32) -> OnlineState {
    match pb::OnlineState::try_from(raw) {
        Ok(pb::OnlineState::Online) => OnlineState::Online,
        Ok(pb::OnlineState::Offline) => OnlineState::Offline,
        Ok(pb::OnlineState::AwaitingSetup) => OnlineState::AwaitingSetup,
        _ => OnlineState::Unknown,
    }
}

/// The wire value of a fragment visibility.
pub(super) fn visibility_to_proto(v: Visibility) -> i32 {
    let wire = match v {
        Visibility::Private => pb::FragmentVisibility::Private,
        Visibility::Public => pb::FragmentVisibility::Public,
        Visibility::PublicUnlisted => pb::FragmentVisibility::PublicUnlisted,
    };
    wire as i32
}

/// A fragment's visibility; unspecified (or unknown) falls back to the deprecated `public` flag.
fn visibility(raw: i32, public: bool) -> Visibility {
    match pb::FragmentVisibility::try_from(raw) {
        Ok(pb::FragmentVisibility::Private) => Visibility::Private,
        Ok(pb::FragmentVisibility::Public) => Visibility::Public,
        Ok(pb::FragmentVisibility::PublicUnlisted) => Visibility::PublicUnlisted,
        _ if public => Visibility::Public,
        _ => Visibility::Private,
    }
}

fn editor_kind(raw: i32) -> &'static str {
    match pb::AuthenticationType::try_from(raw) {
        Ok(pb::AuthenticationType::ApiKey) => "api-key",
        Ok(pb::AuthenticationType::WebOauth) => "web-oauth",
        Ok(pb::AuthenticationType::RobotPartSecret) => "robot-part-secret",
        Ok(pb::AuthenticationType::LocationSecret) => "location-secret",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations, locations, machines, parts, fragments
// ---------------------------------------------------------------------------------------------

/// An organization; absent `default_fragments` stay `None` (unknown), not an empty list.
pub(super) fn organization(o: pb::Organization) -> Organization {
    Organization {
        id: o.id,
        name: o.name,
        public_namespace: o.public_namespace,
        default_region: o.default_region,
        created_on: opt_timestamp(o.created_on),
        default_fragments: o
            .default_fragments
            .map(|list| list.fragments.into_iter().map(fragment_import).collect()),
    }
}

/// A wire fragment import; an empty `version` means the latest revision.
#[allow(deprecated)] // `variables` is deprecated on the wire but still carried.
pub(super) fn fragment_import(f: pb::FragmentImport) -> FragmentImport {
    FragmentImport {
        fragment_id: f.fragment_id,
        version: Some(f.version).filter(|v| !v.is_empty()),
        prefix: f.prefix,
        variables: f.variables.into_iter().collect(),
        fragment_variables: f.fragment_variables.map(|s| json_from_struct(Some(s))),
    }
}

/// A fragment import for the wire; `fragment_variables` must be a JSON object when present.
#[allow(deprecated)] // `variables` is deprecated on the wire but still carried.
pub(super) fn fragment_import_to_proto(
    f: &FragmentImport,
) -> Result<pb::FragmentImport, ConvertError> {
    let fragment_variables = match &f.fragment_variables {
        None | Some(Json::Null) => None,
        Some(v) => Some(struct_from_json(v, "fragment_variables")?),
    };
    Ok(pb::FragmentImport {
        fragment_id: f.fragment_id.clone(),
        version: f.version.clone().unwrap_or_default(),
        prefix: f.prefix.clone(),
        variables: f
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fragment_variables,
    })
}

/// A location; an empty `parent_location_id` means top level.
pub(super) fn location(l: pb::Location) -> Location {
    Location {
        id: l.id,
        name: l.name,
        parent_id: Some(l.parent_location_id).filter(|p| !p.is_empty()),
        robot_count: l.robot_count,
        created_on: opt_timestamp(l.created_on),
        secrets: location_secrets(l.auth),
        organizations: l
            .organizations
            .into_iter()
            .map(|o| LocationOrganization {
                organization_id: o.organization_id,
                primary: o.primary,
            })
            .collect(),
    }
}

/// The secrets of a location's auth (none when the auth is absent).
pub(super) fn location_secrets(auth: Option<pb::LocationAuth>) -> Vec<LocationSecret> {
    auth.map(|a| a.secrets)
        .unwrap_or_default()
        .into_iter()
        .map(location_secret)
        .collect()
}

fn location_secret(s: pb::SharedSecret) -> LocationSecret {
    LocationSecret {
        id: s.id,
        secret: Sensitive::new(s.secret),
        created_on: opt_timestamp(s.created_on),
        enabled: s.state == pb::shared_secret::State::Enabled as i32,
    }
}

/// A robot as a machine (`location` is the location id).
pub(super) fn machine(r: pb::Robot) -> Machine {
    Machine {
        id: r.id,
        name: r.name,
        location_id: r.location,
        created_on: opt_timestamp(r.created_on),
        last_access: opt_timestamp(r.last_access),
        online_state: online_state(r.online_state),
    }
}

/// The part summaries of a `ListMachineSummaries` answer, flattened (location, machine, part
/// in the order the cloud gave).
pub(super) fn part_summaries(r: pb::ListMachineSummariesResponse) -> Vec<PartSummary> {
    let mut out = vec![];
    for l in r.location_summaries {
        for m in l.machine_summaries {
            for p in m.part_summaries {
                out.push(PartSummary {
                    part_id: p.part_id,
                    part_name: p.part_name,
                    machine_id: m.machine_id.clone(),
                    machine_name: m.machine_name.clone(),
                    location_id: l.location_id.clone(),
                    online_state: online_state(p.online_state),
                    last_access: opt_timestamp(p.last_access),
                });
            }
        }
    }
    out
}

/// A config from its JSON text when that is present and parses as a JSON object (key order
/// and number forms as written), else from the struct `fallback` gives (`{}` when absent);
/// `fallback` is called only then.
fn config_from(json: Option<&str>, fallback: impl FnOnce() -> Option<prost_types::Struct>) -> Json {
    json.and_then(|s| serde_json::from_str::<Json>(s).ok())
        .filter(Json::is_object)
        .unwrap_or_else(|| json_from_struct(fallback()))
}

/// A part config in compact form, from the same sources as [`config_from`]: the JSON text is
/// read in one pass into its compact text and digest, with no tree built; a `Struct` (only
/// when the text is absent or not an object) goes through its JSON value.
fn compact_config_from(
    json: Option<&str>,
    fallback: impl FnOnce() -> Option<prost_types::Struct>,
) -> ConfigJson {
    json.and_then(|s| ConfigJson::from_json(s).ok())
        .filter(ConfigJson::is_object)
        .unwrap_or_else(|| ConfigJson::from_value(&json_from_struct(fallback())))
}

/// A robot part. The config comes from `robot_config_json` when it is present and parses as a JSON
/// object, else from the `robot_config` struct (`{}` when absent).
pub(super) fn part(p: pb::RobotPart) -> Part {
    let config = compact_config_from(p.robot_config_json.as_deref(), || p.robot_config);
    Part {
        id: p.id,
        name: p.name,
        machine_id: p.robot,
        location_id: p.location_id,
        main: p.main_part,
        config,
        last_updated: opt_timestamp(p.last_updated),
        created_on: opt_timestamp(p.created_on),
        last_access: opt_timestamp(p.last_access),
        online_state: online_state(p.online_state),
    }
}

/// A fragment (`organization_owner` is its organization id). The config comes from
/// `fragment_config_json` when present and valid, else from the `fragment` struct.
pub(super) fn fragment(f: pb::Fragment) -> Fragment {
    Fragment {
        visibility: visibility(f.visibility, f.public),
        config: config_from(f.fragment_config_json.as_deref(), || f.fragment),
        id: f.id,
        name: f.name,
        organization_id: f.organization_owner,
        robot_part_count: f.robot_part_count,
        created_on: opt_timestamp(f.created_on),
        last_updated: opt_timestamp(f.last_updated),
        revision: f.revision,
    }
}

pub(super) fn fragment_revision(r: pb::FragmentRevision) -> FragmentRevision {
    FragmentRevision {
        revision: r.revision,
        created_at: opt_timestamp(r.created_at),
    }
}

pub(super) fn fragment_tag(t: pb::FragmentTag) -> FragmentTag {
    FragmentTag {
        tag: t.tag,
        revision: t.revision,
    }
}

/// A usage count; an empty `version` means the latest revision, like an absent one.
pub(super) fn fragment_usage(u: pb::FragmentUsage) -> FragmentUsage {
    FragmentUsage {
        version: u.version.filter(|v| !v.is_empty()),
        organizations: u.organizations,
        machines: u.machines,
        machines_in_current_org: u.machines_in_current_org,
    }
}

/// One fragment-history entry; `old` is the fragment before the edit.
pub(super) fn fragment_history_entry(h: pb::FragmentHistoryEntry) -> FragmentHistoryEntry {
    FragmentHistoryEntry {
        fragment_id: h.fragment,
        revision: h.revision,
        when: opt_timestamp(h.edited_on),
        old: fragment(h.old.unwrap_or_default()),
        config: h.config.map(|c| json_from_struct(Some(c))),
        edited_by: editor(h.edited_by),
    }
}

fn editor(e: Option<pb::AuthenticatorInfo>) -> Option<Editor> {
    e.map(|e| Editor {
        kind: editor_kind(e.r#type).to_string(),
        value: e.value,
    })
}

// ---------------------------------------------------------------------------------------------
// Access: authorizations, invites, members
// ---------------------------------------------------------------------------------------------

/// A grant as a role authorization in `org_id` (identity fields left empty, as invites expect).
pub fn grant_to_authorization(g: &Grant, org_id: &str) -> pb::Authorization {
    let resource_type = g.resource_kind.as_str();
    pb::Authorization {
        authorization_type: "role".to_string(),
        authorization_id: format!("{resource_type}_{}", g.role.as_str()),
        resource_type: resource_type.to_string(),
        resource_id: g.resource_id.clone(),
        identity_id: String::new(),
        organization_id: org_id.to_string(),
        identity_type: String::new(),
    }
}

/// A role authorization as a grant; anything fleetform does not model is an error.
pub fn grant_from_authorization(a: &pb::Authorization) -> Result<Grant, ConvertError> {
    let parsed = (a.authorization_type == "role")
        .then(|| ResourceKind::parse(&a.resource_type))
        .flatten()
        .and_then(|kind| {
            let role = a
                .authorization_id
                .strip_prefix(kind.as_str())?
                .strip_prefix('_')
                .and_then(Role::parse)?;
            Some((kind, role))
        });
    let (resource_kind, role) = parsed.ok_or_else(|| ConvertError::UnknownAuthorization {
        authorization_type: a.authorization_type.clone(),
        authorization_id: a.authorization_id.clone(),
        resource_type: a.resource_type.clone(),
    })?;
    Ok(Grant {
        role,
        resource_kind,
        resource_id: a.resource_id.clone(),
    })
}

/// An API key as listed; roles fleetform does not model are skipped with a warning.
pub(super) fn api_key(k: pb::ApiKeyWithAuthorizations) -> ApiKey {
    let key = k.api_key.unwrap_or_default();
    let mut grants: Vec<Grant> = k
        .authorizations
        .iter()
        .filter_map(|a| {
            let as_auth = pb::Authorization {
                authorization_type: a.authorization_type.clone(),
                authorization_id: a.authorization_id.clone(),
                resource_type: a.resource_type.clone(),
                resource_id: a.resource_id.clone(),
                ..Default::default()
            };
            match grant_from_authorization(&as_auth) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(key_id = %key.id, error = %e, "skipping authorization of API key");
                    None
                }
            }
        })
        .collect();
    grants.sort();
    grants.dedup();
    ApiKey {
        id: key.id,
        name: key.name,
        created_on: key.created_on.map(timestamp),
        grants,
    }
}

/// An API key's role as an authorization of `org_id`.
pub(super) fn key_role_to_authorization(
    key_id: &str,
    g: &Grant,
    org_id: &str,
) -> pb::Authorization {
    pb::Authorization {
        identity_id: key_id.to_string(),
        identity_type: "api-key".to_string(),
        ..grant_to_authorization(g, org_id)
    }
}

/// An invite; authorizations that are not modelled role grants are skipped with a warning.
pub(super) fn invite(i: pb::OrganizationInvite) -> Invite {
    let grants = i
        .authorizations
        .iter()
        .filter_map(|a| match grant_from_authorization(a) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(email = %i.email, error = %e, "skipping authorization on invite");
                None
            }
        })
        .collect();
    Invite {
        email: i.email,
        grants,
        created_on: opt_timestamp(i.created_on),
    }
}

/// An organization member.
pub(super) fn member(m: pb::OrganizationMember) -> Member {
    Member {
        user_id: m.user_id,
        emails: m.emails,
        date_added: opt_timestamp(m.date_added),
    }
}

// ---------------------------------------------------------------------------------------------
// Part history and logs
// ---------------------------------------------------------------------------------------------

/// One part-history entry; `old` is the part before the edit.
pub(super) fn history_entry(h: pb::RobotPartHistoryEntry) -> HistoryEntry {
    HistoryEntry {
        part_id: h.part,
        machine_id: h.robot,
        when: opt_timestamp(h.when),
        old: part(h.old.unwrap_or_default()),
        edited_by: editor(h.edited_by),
    }
}

/// A wire log entry as a domain log entry.
pub(super) fn log_entry(e: common::LogEntry) -> LogEntry {
    LogEntry {
        host: e.host,
        level: e.level,
        time: opt_timestamp(e.time),
        logger_name: e.logger_name,
        message: e.message,
        caller: e.caller.map(|c| json_from_struct(Some(c))),
        stack: e.stack,
        fields: e
            .fields
            .into_iter()
            .map(|f| json_from_struct(Some(f)))
            .collect(),
    }
}

/// A domain log entry as a wire log entry; `caller` and each of `fields` must be JSON objects
/// (a `null` caller is sent as absent).
pub(super) fn log_entry_to_proto(e: &LogEntry) -> Result<common::LogEntry, ConvertError> {
    let caller = match &e.caller {
        None | Some(Json::Null) => None,
        Some(c) => Some(struct_from_json(c, "log caller")?),
    };
    let fields = e
        .fields
        .iter()
        .map(|f| struct_from_json(f, "log field set"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(common::LogEntry {
        host: e.host.clone(),
        level: e.level.clone(),
        time: e.time.map(timestamp_to_proto),
        logger_name: e.logger_name.clone(),
        message: e.message.clone(),
        caller,
        stack: e.stack.clone(),
        fields,
    })
}

mod parts_reply;
pub(crate) use parts_reply::{GetRobotPartsReply, part_from_reply};

#[cfg(test)]
mod tests;
