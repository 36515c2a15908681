//! Unit tests of the conversions between the wire and the domain.

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
        m.config.to_value(),
        json!({"from": "json", "n": 12_345_678_901_234_567_i64})
    );
    let bad = part(pb::RobotPart {
        robot_config_json: Some("not json".into()),
        ..p.clone()
    });
    assert_eq!(bad.config.to_value(), json!({"from": "struct"}));
    let empty = part(pb::RobotPart::default());
    assert_eq!(empty.config.to_value(), json!({}));
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
