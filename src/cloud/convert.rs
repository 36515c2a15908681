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
    Editor, Fragment, FragmentHistoryEntry, FragmentImport, FragmentRevision, FragmentTag,
    FragmentUsage, Grant, HistoryEntry, Invite, Location, LocationOrganization, LocationSecret,
    LogEntry, Machine, Member, OnlineState, Organization, Part, ResourceKind, Role, Sensitive,
    Timestamp, Visibility,
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

/// A config from its JSON text when that is present and parses as a JSON object (key order
/// and number forms as written), else from the struct (`{}` when absent).
fn config_from(json: Option<&str>, fallback: Option<prost_types::Struct>) -> Json {
    json.and_then(|s| serde_json::from_str::<Json>(s).ok())
        .filter(Json::is_object)
        .unwrap_or_else(|| json_from_struct(fallback))
}

/// A robot part. The config comes from `robot_config_json` when it is present and parses as a JSON
/// object, else from the `robot_config` struct (`{}` when absent).
pub(super) fn part(p: pb::RobotPart) -> Part {
    let config = config_from(p.robot_config_json.as_deref(), p.robot_config);
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
        config: config_from(f.fragment_config_json.as_deref(), f.fragment),
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
pub(super) fn grant_to_authorization(g: &Grant, org_id: &str) -> pb::Authorization {
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
pub(super) fn grant_from_authorization(a: &pb::Authorization) -> Result<Grant, ConvertError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(j: &Json) -> Json {
        json_from_struct(Some(struct_from_json(j, "config").expect("object")))
    }

    #[test]
    fn json_round_trips_through_struct() {
        let j = json!({
            "a": 1,
            "neg": -42,
            "f": 1.5,
            "s": "x",
            "b": true,
            "n": null,
            "list": [1, "two", {"three": 3}, [], null],
            "nested": {"deep": {"x": 0}},
            "big": 9_007_199_254_740_992_i64,
        });
        assert_eq!(round_trip(&j), j);
        assert_eq!(round_trip(&json!({"a": 1})).to_string(), r#"{"a":1}"#);
    }

    #[test]
    fn numbers_beyond_2_pow_53_stay_floats() {
        let v = json_from_value(prost_types::Value {
            kind: Some(Kind::NumberValue(1e300)),
        });
        assert!(v.is_f64());
        let v = json_from_value(prost_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        });
        assert_eq!(v, Json::Null);
        let v = json_from_value(prost_types::Value {
            kind: Some(Kind::NumberValue(-3.0)),
        });
        assert_eq!(v, json!(-3));
    }

    #[test]
    fn config_must_be_an_object() {
        assert_eq!(
            struct_from_json(&json!([1]), "config"),
            Err(ConvertError::NotAnObject { what: "config" })
        );
        assert_eq!(json_from_struct(None), json!({}));
        assert_eq!(
            json_from_value(prost_types::Value { kind: None }),
            Json::Null
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp {
            seconds: 1_795_634_546,
            nanos: 123_456_000,
        };
        assert_eq!(timestamp(timestamp_to_proto(t)), t);
        assert_eq!(opt_timestamp(None), None);
    }

    #[test]
    fn location_maps_parent_and_secrets() {
        let l = pb::Location {
            id: "loc1".into(),
            name: "Lab".into(),
            parent_location_id: String::new(),
            robot_count: 2,
            auth: Some(pb::LocationAuth {
                location_id: "loc1".into(),
                secrets: vec![
                    pb::SharedSecret {
                        id: "s1".into(),
                        secret: "hunter2".into(),
                        created_on: None,
                        state: pb::shared_secret::State::Enabled as i32,
                    },
                    pb::SharedSecret {
                        id: "s2".into(),
                        state: pb::shared_secret::State::Disabled as i32,
                        ..Default::default()
                    },
                ],
            }),
            ..Default::default()
        };
        let m = location(l.clone());
        assert_eq!(m.parent_id, None);
        assert_eq!(m.robot_count, 2);
        assert_eq!(m.secrets.len(), 2);
        assert!(m.secrets[0].enabled);
        assert!(!m.secrets[1].enabled);
        assert_eq!(m.secrets[0].secret.expose(), "hunter2");
        assert!(!format!("{m:?}").contains("hunter2"));
        let child = location(pb::Location {
            parent_location_id: "root".into(),
            ..l
        });
        assert_eq!(child.parent_id.as_deref(), Some("root"));
    }

    #[test]
    fn robot_maps_to_machine() {
        let m = machine(pb::Robot {
            id: "r1".into(),
            name: "rover".into(),
            location: "loc1".into(),
            online_state: pb::OnlineState::AwaitingSetup as i32,
            ..Default::default()
        });
        assert_eq!(m.location_id, "loc1");
        assert_eq!(m.online_state, OnlineState::AwaitingSetup);
        let unknown = machine(pb::Robot {
            online_state: 99,
            ..Default::default()
        });
        assert_eq!(unknown.online_state, OnlineState::Unknown);
    }

    #[test]
    fn part_prefers_config_json_when_it_parses() {
        let p = pb::RobotPart {
            id: "p1".into(),
            robot: "r1".into(),
            main_part: true,
            robot_config: Some(struct_from_json(&json!({"from": "struct"}), "c").expect("obj")),
            robot_config_json: Some(r#"{"from": "json", "n": 12345678901234567}"#.into()),
            ..Default::default()
        };
        let m = part(p.clone());
        assert_eq!(m.machine_id, "r1");
        assert!(m.main);
        assert_eq!(
            m.config,
            json!({"from": "json", "n": 12_345_678_901_234_567_i64})
        );
        let bad = part(pb::RobotPart {
            robot_config_json: Some("not json".into()),
            ..p.clone()
        });
        assert_eq!(bad.config, json!({"from": "struct"}));
        let empty = part(pb::RobotPart::default());
        assert_eq!(empty.config, json!({}));
    }

    #[test]
    fn fragment_visibility_falls_back_to_public_flag() {
        let base = pb::Fragment {
            id: "f1".into(),
            organization_owner: "org".into(),
            fragment: Some(struct_from_json(&json!({"components": []}), "c").expect("obj")),
            ..Default::default()
        };
        let f = fragment(base.clone());
        assert_eq!(f.organization_id, "org");
        assert_eq!(f.config, json!({"components": []}));
        assert_eq!(f.visibility, Visibility::Private);
        let public = pb::Fragment {
            public: true,
            ..base.clone()
        };
        assert_eq!(fragment(public).visibility, Visibility::Public);
        for v in [
            Visibility::Private,
            Visibility::Public,
            Visibility::PublicUnlisted,
        ] {
            let f = pb::Fragment {
                visibility: visibility_to_proto(v),
                ..base.clone()
            };
            assert_eq!(fragment(f).visibility, v);
        }
    }

    #[test]
    fn fragments_prefer_their_json_text_and_carry_the_revision() {
        let f = fragment(pb::Fragment {
            id: "f1".into(),
            fragment: Some(struct_from_json(&json!({"b": 1, "a": 2}), "c").expect("obj")),
            fragment_config_json: Some(r#"{"b": 1.0, "a": 2}"#.into()),
            revision: "7".into(),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&f.config).unwrap(),
            r#"{"b":1.0,"a":2}"#
        );
        assert_eq!(f.revision, "7");
        let no_text = fragment(pb::Fragment {
            fragment: Some(struct_from_json(&json!({"b": 1}), "c").expect("obj")),
            ..Default::default()
        });
        assert_eq!(no_text.config, json!({"b": 1}));
        assert_eq!(no_text.revision, "");
    }

    #[test]
    #[allow(deprecated)]
    fn fragment_imports_round_trip_and_empty_version_means_latest() {
        let import = FragmentImport {
            fragment_id: "f1".into(),
            version: Some("stable".into()),
            prefix: Some("front".into()),
            variables: [("k".to_string(), "v".to_string())].into(),
            fragment_variables: Some(json!({"n": 8, "s": "x"})),
        };
        let wire = fragment_import_to_proto(&import).expect("valid");
        assert_eq!(wire.version, "stable");
        assert_eq!(fragment_import(wire), import);
        let latest = FragmentImport {
            fragment_id: "f2".into(),
            ..Default::default()
        };
        let wire = fragment_import_to_proto(&latest).expect("valid");
        assert_eq!((wire.version.as_str(), wire.prefix.as_deref()), ("", None));
        assert_eq!(fragment_import(wire), latest);
        let bad = FragmentImport {
            fragment_variables: Some(json!([1])),
            ..latest
        };
        assert!(fragment_import_to_proto(&bad).is_err());
    }

    #[test]
    fn organizations_keep_absent_and_empty_default_fragments_apart() {
        let absent = organization(pb::Organization::default());
        assert_eq!(absent.default_fragments, None);
        let empty = organization(pb::Organization {
            default_fragments: Some(pb::FragmentImportList::default()),
            ..Default::default()
        });
        assert_eq!(empty.default_fragments, Some(vec![]));
    }

    #[test]
    fn locations_usage_and_history_convert() {
        let l = location(pb::Location {
            organizations: vec![
                pb::LocationOrganization {
                    organization_id: "other".into(),
                    primary: false,
                },
                pb::LocationOrganization {
                    organization_id: "owner".into(),
                    primary: true,
                },
            ],
            ..Default::default()
        });
        assert_eq!(l.primary_organization(), Some("owner"));
        assert_eq!(
            location(pb::Location::default()).primary_organization(),
            None
        );
        let u = fragment_usage(pb::FragmentUsage {
            version: Some(String::new()),
            machines: 3,
            ..Default::default()
        });
        assert_eq!((u.version, u.machines), (None, 3));
        let h = fragment_history_entry(pb::FragmentHistoryEntry {
            fragment: "f1".into(),
            revision: "4".into(),
            old: Some(pb::Fragment {
                revision: "3".into(),
                ..Default::default()
            }),
            config: Some(struct_from_json(&json!({"x": 1}), "c").expect("obj")),
            edited_by: Some(pb::AuthenticatorInfo {
                r#type: pb::AuthenticationType::WebOauth as i32,
                value: "a@b.c".into(),
                is_deactivated: false,
            }),
            ..Default::default()
        });
        assert_eq!((h.revision.as_str(), h.old.revision.as_str()), ("4", "3"));
        assert_eq!(h.config, Some(json!({"x": 1})));
        assert_eq!(h.edited_by.map(|e| e.kind), Some("web-oauth".to_string()));
    }

    #[test]
    fn grants_round_trip_through_authorizations() {
        for kind in [
            ResourceKind::Organization,
            ResourceKind::Location,
            ResourceKind::Robot,
        ] {
            for role in [Role::Owner, Role::Operator] {
                let g = Grant {
                    role,
                    resource_kind: kind,
                    resource_id: "res".into(),
                };
                let a = grant_to_authorization(&g, "org1");
                assert_eq!(a.authorization_type, "role");
                assert_eq!(a.organization_id, "org1");
                assert!(a.identity_id.is_empty() && a.identity_type.is_empty());
                assert_eq!(grant_from_authorization(&a), Ok(g));
            }
        }
        let a = grant_to_authorization(
            &Grant {
                role: Role::Operator,
                resource_kind: ResourceKind::Location,
                resource_id: "loc".into(),
            },
            "org1",
        );
        assert_eq!(a.authorization_id, "location_operator");
        assert_eq!(a.resource_type, "location");
    }

    #[test]
    fn unknown_authorizations_are_errors_and_skipped_on_invites() {
        let good = grant_to_authorization(
            &Grant {
                role: Role::Owner,
                resource_kind: ResourceKind::Robot,
                resource_id: "r".into(),
            },
            "org",
        );
        let odd = [
            pb::Authorization {
                authorization_id: "robot_viewer".into(),
                ..good.clone()
            },
            pb::Authorization {
                resource_type: "fragment".into(),
                authorization_id: "fragment_owner".into(),
                ..good.clone()
            },
            pb::Authorization {
                authorization_type: "other".into(),
                ..good.clone()
            },
            pb::Authorization {
                authorization_id: "location_owner".into(),
                ..good.clone()
            },
        ];
        for a in &odd {
            assert!(matches!(
                grant_from_authorization(a),
                Err(ConvertError::UnknownAuthorization { .. })
            ));
        }
        let mut authorizations = odd.to_vec();
        authorizations.push(good);
        let inv = invite(pb::OrganizationInvite {
            email: "a@b.c".into(),
            authorizations,
            ..Default::default()
        });
        assert_eq!(inv.grants.len(), 1);
        assert_eq!(inv.grants[0].role, Role::Owner);
    }

    #[test]
    fn history_entry_maps_editor() {
        let h = history_entry(pb::RobotPartHistoryEntry {
            part: "p1".into(),
            robot: "r1".into(),
            old: Some(pb::RobotPart {
                name: "old-name".into(),
                ..Default::default()
            }),
            edited_by: Some(pb::AuthenticatorInfo {
                r#type: pb::AuthenticationType::ApiKey as i32,
                value: "key-id".into(),
                is_deactivated: false,
            }),
            ..Default::default()
        });
        assert_eq!(h.machine_id, "r1");
        assert_eq!(h.old.name, "old-name");
        assert_eq!(
            h.edited_by,
            Some(Editor {
                kind: "api-key".into(),
                value: "key-id".into()
            })
        );
        assert_eq!(editor_kind(0), "");
        assert_eq!(
            editor_kind(pb::AuthenticationType::LocationSecret as i32),
            "location-secret"
        );
    }

    #[test]
    fn log_entries_round_trip() {
        let e = LogEntry {
            host: "h".into(),
            level: "info".into(),
            time: Some(Timestamp {
                seconds: 5,
                nanos: 6,
            }),
            logger_name: "rdk".into(),
            message: "hello".into(),
            caller: Some(json!({"File": "main.go", "Line": 12})),
            stack: String::new(),
            fields: vec![json!({"k": "v"})],
        };
        let wire = log_entry_to_proto(&e).expect("valid");
        assert_eq!(log_entry(wire), e);
        let bad = LogEntry {
            fields: vec![json!(1)],
            ..e.clone()
        };
        assert!(log_entry_to_proto(&bad).is_err());
        let null_caller = LogEntry {
            caller: Some(Json::Null),
            ..e
        };
        assert_eq!(log_entry_to_proto(&null_caller).expect("ok").caller, None);
    }

    #[test]
    fn members_and_organizations_convert() {
        let m = member(pb::OrganizationMember {
            user_id: "u".into(),
            emails: vec!["a@b.c".into()],
            date_added: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
        });
        assert_eq!(m.emails, vec!["a@b.c".to_string()]);
        assert_eq!(m.date_added.map(|t| t.seconds), Some(1));
        let o = organization(pb::Organization {
            id: "o".into(),
            public_namespace: "ns".into(),
            ..Default::default()
        });
        assert_eq!(o.public_namespace, "ns");
    }
}
