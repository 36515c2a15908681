//! The local cloud's wire behaviour, RPC by RPC, through raw generated gRPC clients.

use crate::common;

use common::{Cloud, assert_code, authenticate, bearer, json_struct};
use fleetform::proto::viam::app::v1 as pb;
use fleetform::proto::viam::common::v1::LogEntry;
use serde_json::json;
use tonic::Code;

async fn location(
    app: &mut common::App,
    org: &str,
    name: &str,
    parent: Option<&str>,
) -> pb::Location {
    app.create_location(pb::CreateLocationRequest {
        organization_id: org.into(),
        name: name.into(),
        parent_location_id: parent.map(String::from),
    })
    .await
    .expect("create location")
    .into_inner()
    .location
    .expect("location")
}

async fn robot(app: &mut common::App, name: &str, location: &str) -> String {
    app.new_robot(pb::NewRobotRequest {
        name: name.into(),
        location: location.into(),
    })
    .await
    .expect("new robot")
    .into_inner()
    .id
}

async fn parts(app: &mut common::App, robot_id: &str) -> Vec<pb::RobotPart> {
    app.get_robot_parts(pb::GetRobotPartsRequest {
        robot_id: robot_id.into(),
    })
    .await
    .expect("parts")
    .into_inner()
    .parts
}

fn log(level: &str, message: &str) -> LogEntry {
    LogEntry {
        host: "h".into(),
        level: level.into(),
        time: None,
        logger_name: "test".into(),
        message: message.into(),
        caller: None,
        stack: String::new(),
        fields: vec![],
    }
}

// -- Authentication ---------------------------------------------------------------------------

#[tokio::test]
async fn authenticate_accepts_only_the_configured_key() {
    let cloud = Cloud::start().await;
    let ch = cloud.channel().await;
    assert!(authenticate(&ch, &cloud.key_id, &cloud.key).await.is_ok());
    let wrong = authenticate(&ch, &cloud.key_id, "not-the-key")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    assert!(
        !wrong.message().contains(&cloud.key),
        "error must not echo a key"
    );
    let unknown = authenticate(&ch, &uuid_like(), &cloud.key)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::PermissionDenied);

    let mut auth =
        fleetform::proto::rpc::v1::auth_service_client::AuthServiceClient::new(ch.clone());
    let other_type = auth
        .authenticate(fleetform::proto::rpc::v1::AuthenticateRequest {
            entity: cloud.key_id.clone(),
            credentials: Some(fleetform::proto::rpc::v1::Credentials {
                r#type: "robot-secret".into(),
                payload: cloud.key.clone(),
            }),
        })
        .await;
    assert_code(other_type, Code::InvalidArgument, "credential type");
    let none = auth
        .authenticate(fleetform::proto::rpc::v1::AuthenticateRequest {
            entity: cloud.key_id.clone(),
            credentials: None,
        })
        .await;
    assert_code(none, Code::InvalidArgument, "credentials required");
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("timestamp");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

#[tokio::test]
async fn app_calls_need_a_valid_bearer_token() {
    let cloud = Cloud::start().await;
    let ch = cloud.channel().await;
    let mut bare = pb::app_service_client::AppServiceClient::new(ch.clone());
    assert_code(
        bare.list_organizations(pb::ListOrganizationsRequest {})
            .await,
        Code::Unauthenticated,
        "authentication required",
    );
    let mut forged = pb::app_service_client::AppServiceClient::with_interceptor(
        ch.clone(),
        bearer("forged".into()),
    );
    assert_code(
        forged
            .list_organizations(pb::ListOrganizationsRequest {})
            .await,
        Code::Unauthenticated,
        "invalid or expired",
    );
    let mut robot = pb::robot_service_client::RobotServiceClient::new(ch.clone());
    assert_code(
        robot
            .log(pb::LogRequest {
                id: uuid_like(),
                logs: vec![],
            })
            .await,
        Code::Unauthenticated,
        "authentication required",
    );
    let mut app = cloud.app().await;
    let orgs = app
        .list_organizations(pb::ListOrganizationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orgs.organizations.len(), 1);
    assert_eq!(orgs.organizations[0].id, cloud.org_id);
    assert_eq!(orgs.organizations[0].name, "test-org");
}

#[tokio::test]
async fn tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let key = fleetform::localcloud::init(&db, "o", "a@b.example").unwrap();
    let mut opts = fleetform::localcloud::ServerOptions::new(&db);
    opts.token_ttl = std::time::Duration::from_millis(1000);
    let server = fleetform::localcloud::start(&opts).await.unwrap();
    let ch = tonic::transport::Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = authenticate(&ch, &key.key_id, key.key.expose())
        .await
        .unwrap();
    let mut app = pb::app_service_client::AppServiceClient::with_interceptor(ch, bearer(token));
    assert!(
        app.list_organizations(pb::ListOrganizationsRequest {})
            .await
            .is_ok()
    );
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_code(
        app.list_organizations(pb::ListOrganizationsRequest {})
            .await,
        Code::Unauthenticated,
        "expired",
    );
    server.shutdown().await.unwrap();
}

// -- Organizations ----------------------------------------------------------------------------

#[tokio::test]
async fn organizations_and_namespaces() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = app
        .get_organization(pb::GetOrganizationRequest {
            organization_id: cloud.org_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(org.name, "test-org");
    assert!(org.created_on.is_some());
    assert_code(
        app.get_organization(pb::GetOrganizationRequest {
            organization_id: uuid_like(),
        })
        .await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        app.get_organization(pb::GetOrganizationRequest {
            organization_id: "nope".into(),
        })
        .await,
        Code::InvalidArgument,
        "organization_id",
    );
    let ns = |n: &str| pb::GetOrganizationNamespaceAvailabilityRequest {
        public_namespace: n.into(),
        organization_id: String::new(),
    };
    assert!(
        app.get_organization_namespace_availability(ns("my-robots"))
            .await
            .unwrap()
            .into_inner()
            .available
    );
    assert_code(
        app.get_organization_namespace_availability(ns("")).await,
        Code::InvalidArgument,
        "public_namespace",
    );
    assert_code(
        app.get_organization_namespace_availability(ns("Bad_NS"))
            .await,
        Code::InvalidArgument,
        "lowercase",
    );
}

#[tokio::test]
async fn invites_lifecycle() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let hq = location(&mut app, &org, "HQ", None).await;
    let auth = |rt: &str, rid: &str, role: &str| pb::Authorization {
        authorization_type: "role".into(),
        authorization_id: format!("{rt}_{role}"),
        resource_type: rt.into(),
        resource_id: rid.into(),
        identity_id: String::new(),
        organization_id: org.clone(),
        identity_type: String::new(),
    };
    let create = |email: &str, auths: Vec<pb::Authorization>| pb::CreateOrganizationInviteRequest {
        organization_id: org.clone(),
        email: email.into(),
        authorizations: auths,
        send_email_invite: Some(false),
    };
    assert_code(
        app.create_organization_invite(create(
            "not-an-email",
            vec![auth("organization", &org, "operator")],
        ))
        .await,
        Code::InvalidArgument,
        "email",
    );
    // Without authorizations an invite makes an owner of the organization; the SDK default
    // (send_email_invite absent) is to email it, and the choice is recorded.
    let owner = app
        .create_organization_invite(pb::CreateOrganizationInviteRequest {
            send_email_invite: None,
            ..create("boss@acme.example", vec![])
        })
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert_eq!(owner.authorizations.len(), 1);
    assert_eq!(
        owner.authorizations[0].authorization_id,
        "organization_owner"
    );
    assert_eq!(owner.authorizations[0].resource_id, org);
    app.create_organization_invite(create(
        "quiet@acme.example",
        vec![auth("organization", &org, "operator")],
    ))
    .await
    .unwrap();
    let db = rusqlite::Connection::open(&cloud.db).unwrap();
    let send_email = |email: &str| -> bool {
        db.query_row(
            "SELECT send_email FROM invites WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(send_email("boss@acme.example"));
    assert!(!send_email("quiet@acme.example"));
    for email in ["boss@acme.example", "quiet@acme.example"] {
        app.delete_organization_invite(pb::DeleteOrganizationInviteRequest {
            organization_id: org.clone(),
            email: email.into(),
        })
        .await
        .unwrap();
    }
    assert_code(
        app.create_organization_invite(create(
            "ops@acme.example",
            vec![auth("location", "zzzzzzzzzz", "owner")],
        ))
        .await,
        Code::NotFound,
        "location",
    );
    assert_code(
        app.create_organization_invite(create(
            "ops@acme.example",
            vec![auth("planet", "x", "owner")],
        ))
        .await,
        Code::InvalidArgument,
        "resource_type",
    );
    let inv = app
        .create_organization_invite(create(
            "ops@acme.example",
            vec![auth("location", &hq.id, "operator")],
        ))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert_eq!(inv.authorizations.len(), 1);
    assert_code(
        app.create_organization_invite(create(
            "ops@acme.example",
            vec![auth("organization", &org, "owner")],
        ))
        .await,
        Code::AlreadyExists,
        "already exists",
    );

    let update = |add: Vec<pb::Authorization>, remove: Vec<pb::Authorization>| {
        pb::UpdateOrganizationInviteAuthorizationsRequest {
            organization_id: org.clone(),
            email: "ops@acme.example".into(),
            add_authorizations: add,
            remove_authorizations: remove,
        }
    };
    let inv = app
        .update_organization_invite_authorizations(update(
            vec![auth("organization", &org, "operator")],
            vec![],
        ))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert_eq!(inv.authorizations.len(), 2);
    assert_code(
        app.update_organization_invite_authorizations(update(vec![], vec![]))
            .await,
        Code::InvalidArgument,
        "both empty",
    );
    assert_code(
        app.update_organization_invite_authorizations(update(
            vec![auth("organization", &org, "owner")],
            vec![],
        ))
        .await,
        Code::InvalidArgument,
        "one role",
    );
    // Swapping a role in one call is fine.
    let inv = app
        .update_organization_invite_authorizations(update(
            vec![auth("organization", &org, "owner")],
            vec![auth("organization", &org, "operator")],
        ))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert!(
        inv.authorizations
            .iter()
            .any(|a| a.authorization_id == "organization_owner")
    );
    assert_code(
        app.update_organization_invite_authorizations(update(
            vec![],
            vec![auth("location", &hq.id, "owner")],
        ))
        .await,
        Code::NotFound,
        "no authorization",
    );
    let inv = app
        .update_organization_invite_authorizations(update(
            vec![],
            vec![auth("organization", &org, "owner")],
        ))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert_eq!(
        inv.authorizations,
        vec![auth("location", &hq.id, "operator")]
    );
    assert_code(
        app.update_organization_invite_authorizations(update(
            vec![],
            vec![auth("location", &hq.id, "operator")],
        ))
        .await,
        Code::FailedPrecondition,
        "delete the invite",
    );

    let members = app
        .list_organization_members(pb::ListOrganizationMembersRequest {
            organization_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert_eq!(
        members.members[0].emails,
        vec!["owner@example.com".to_string()]
    );
    assert_eq!(members.invites.len(), 1);
    assert_eq!(members.invites[0].authorizations.len(), 1);

    let del = |email: &str| pb::DeleteOrganizationInviteRequest {
        organization_id: org.clone(),
        email: email.into(),
    };
    app.delete_organization_invite(del("ops@acme.example"))
        .await
        .unwrap();
    assert_code(
        app.delete_organization_invite(del("ops@acme.example"))
            .await,
        Code::NotFound,
        "no invite",
    );
    let members = app
        .list_organization_members(pb::ListOrganizationMembersRequest {
            organization_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(members.invites.is_empty());
}

// -- Locations --------------------------------------------------------------------------------

#[tokio::test]
async fn locations_nest_at_most_three_levels_and_never_cycle() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let a = location(&mut app, &org, "A", None).await;
    assert_eq!(a.id.len(), 10);
    assert!(
        a.id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(a.parent_location_id, "");
    let b = location(&mut app, &org, "B", Some(&a.id)).await;
    let c = location(&mut app, &org, "C", Some(&b.id)).await;
    assert_eq!(c.parent_location_id, b.id);
    let fourth = app
        .create_location(pb::CreateLocationRequest {
            organization_id: org.clone(),
            name: "D".into(),
            parent_location_id: Some(c.id.clone()),
        })
        .await;
    assert_code(fourth, Code::FailedPrecondition, "3 levels");
    assert_code(
        app.create_location(pb::CreateLocationRequest {
            organization_id: org.clone(),
            name: " ".into(),
            parent_location_id: None,
        })
        .await,
        Code::InvalidArgument,
        "name",
    );
    assert_code(
        app.create_location(pb::CreateLocationRequest {
            organization_id: org.clone(),
            name: "x".into(),
            parent_location_id: Some("abcdefghij".into()),
        })
        .await,
        Code::NotFound,
        "abcdefghij",
    );

    let upd = |id: &str, name: Option<&str>, parent: Option<&str>| pb::UpdateLocationRequest {
        location_id: id.into(),
        name: name.map(String::from),
        parent_location_id: parent.map(String::from),
        region: None,
    };
    // Cycle: A under its own grandchild.
    assert_code(
        app.update_location(upd(&a.id, None, Some(&c.id))).await,
        Code::InvalidArgument,
        "descendant",
    );
    assert_code(
        app.update_location(upd(&a.id, None, Some(&a.id))).await,
        Code::InvalidArgument,
        "itself",
    );
    // Depth: a two-level subtree (B/C) under C's sibling at level 3 would make 4 levels... move B under a new level-2 location.
    let e = location(&mut app, &org, "E", Some(&a.id)).await;
    assert_code(
        app.update_location(upd(&b.id, None, Some(&e.id))).await,
        Code::FailedPrecondition,
        "levels",
    );
    // Unset fields stay as they are.
    let renamed = app
        .update_location(upd(&c.id, Some("C2"), None))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.parent_location_id.as_str()),
        ("C2", b.id.as_str())
    );
    let moved = app
        .update_location(upd(&c.id, None, Some(&e.id)))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.parent_location_id.as_str()),
        ("C2", e.id.as_str())
    );
    // Present-but-empty parent: to the top level.
    let top = app
        .update_location(upd(&c.id, None, Some("")))
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(top.parent_location_id, "");
    assert_eq!(top.name, "C2");

    assert_code(
        app.get_location(pb::GetLocationRequest {
            location_id: "zzzzzzzzzz".into(),
        })
        .await,
        Code::NotFound,
        "zzzzzzzzzz",
    );
    assert_code(
        app.get_location(pb::GetLocationRequest {
            location_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "location_id",
    );
    assert_code(
        app.get_location(pb::GetLocationRequest {
            location_id: "UPPER".into(),
        })
        .await,
        Code::InvalidArgument,
        "location_id",
    );
    let got = app
        .get_location(pb::GetLocationRequest {
            location_id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(got.name, "B");
    let all = app
        .list_locations(pb::ListLocationsRequest {
            organization_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn delete_location_refuses_machines_and_children() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let a = location(&mut app, &org, "A", None).await;
    let b = location(&mut app, &org, "B", Some(&a.id)).await;
    let del = |id: &str| pb::DeleteLocationRequest {
        location_id: id.into(),
    };
    assert_code(
        app.delete_location(del(&a.id)).await,
        Code::FailedPrecondition,
        "child location",
    );
    let r = robot(&mut app, "m1", &b.id).await;
    assert_code(
        app.delete_location(del(&b.id)).await,
        Code::FailedPrecondition,
        "machine",
    );
    let loc = app
        .get_location(pb::GetLocationRequest {
            location_id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(loc.robot_count, 1);
    app.delete_robot(pb::DeleteRobotRequest { id: r })
        .await
        .unwrap();
    app.delete_location(del(&b.id)).await.unwrap();
    app.delete_location(del(&a.id)).await.unwrap();
    assert_code(
        app.delete_location(del(&a.id)).await,
        Code::NotFound,
        "not found",
    );
}

#[tokio::test]
async fn location_secrets_start_at_one_and_cap_at_two() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let a = location(&mut app, &cloud.org_id, "A", None).await;
    let first = a.auth.unwrap().secrets;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].state, pb::shared_secret::State::Enabled as i32);
    let auth = app
        .create_location_secret(pb::CreateLocationSecretRequest {
            location_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .auth
        .unwrap();
    assert_eq!(auth.secrets.len(), 2);
    assert_code(
        app.create_location_secret(pb::CreateLocationSecretRequest {
            location_id: a.id.clone(),
        })
        .await,
        Code::FailedPrecondition,
        "at most 2",
    );
    let del = |id: &str| pb::DeleteLocationSecretRequest {
        location_id: a.id.clone(),
        secret_id: id.into(),
    };
    assert_code(
        app.delete_location_secret(del(&uuid_like())).await,
        Code::NotFound,
        "secret",
    );
    assert_code(
        app.delete_location_secret(del("")).await,
        Code::InvalidArgument,
        "secret_id",
    );
    app.delete_location_secret(del(&first[0].id)).await.unwrap();
    let auth = app
        .location_auth(pb::LocationAuthRequest {
            location_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .auth
        .unwrap();
    assert_eq!(auth.secrets.len(), 1);
    assert_ne!(auth.secrets[0].id, first[0].id);
    assert_code(
        app.delete_location_secret(del(&auth.secrets[0].id)).await,
        Code::FailedPrecondition,
        "last secret",
    );
    assert_code(
        app.location_auth(pb::LocationAuthRequest {
            location_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "location_id",
    );
}

// -- Machines and parts -----------------------------------------------------------------------

#[tokio::test]
async fn new_robot_creates_its_main_part_and_names_are_unique() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let a = location(&mut app, &org, "A", None).await;
    let b = location(&mut app, &org, "B", None).await;
    let id = robot(&mut app, "arm-01", &a.id).await;
    let ps = parts(&mut app, &id).await;
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].name, "arm-01-main");
    assert!(ps[0].main_part);
    assert_eq!(ps[0].robot, id);
    assert_eq!(ps[0].location_id, a.id);
    assert!(ps[0].robot_config.is_some());
    assert_code(
        app.new_robot(pb::NewRobotRequest {
            name: "arm-01".into(),
            location: a.id.clone(),
        })
        .await,
        Code::AlreadyExists,
        "arm-01",
    );
    assert_code(
        app.new_robot(pb::NewRobotRequest {
            name: "".into(),
            location: a.id.clone(),
        })
        .await,
        Code::InvalidArgument,
        "name",
    );
    assert_code(
        app.new_robot(pb::NewRobotRequest {
            name: "x".into(),
            location: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "location",
    );
    // Same name elsewhere is fine.
    let other = robot(&mut app, "arm-01", &b.id).await;

    let get = app
        .get_robot(pb::GetRobotRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .robot
        .unwrap();
    assert_eq!(
        (get.name.as_str(), get.location.as_str()),
        ("arm-01", a.id.as_str())
    );
    assert_code(
        app.get_robot(pb::GetRobotRequest { id: uuid_like() }).await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        app.get_robot(pb::GetRobotRequest { id: "x".into() }).await,
        Code::InvalidArgument,
        "id",
    );

    let upd = |name: &str, loc: &str| pb::UpdateRobotRequest {
        id: id.clone(),
        name: name.into(),
        location: loc.into(),
    };
    // Moving into B where arm-01 exists is refused; rename then move works.
    assert_code(
        app.update_robot(upd("", &b.id)).await,
        Code::AlreadyExists,
        "arm-01",
    );
    let r = app
        .update_robot(upd("arm-02", ""))
        .await
        .unwrap()
        .into_inner()
        .robot
        .unwrap();
    assert_eq!(
        (r.name.as_str(), r.location.as_str()),
        ("arm-02", a.id.as_str())
    );
    // Its main part is still `arm-01-main`, and part names are unique per location.
    assert_code(
        app.update_robot(upd("", &b.id)).await,
        Code::AlreadyExists,
        "arm-01-main",
    );
    let main = parts(&mut app, &id).await.remove(0);
    app.update_robot_part(pb::UpdateRobotPartRequest {
        id: main.id,
        name: "arm-02-main".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = app
        .update_robot(upd("", &b.id))
        .await
        .unwrap()
        .into_inner()
        .robot
        .unwrap();
    assert_eq!(
        (r.name.as_str(), r.location.as_str()),
        ("arm-02", b.id.as_str())
    );
    assert_eq!(parts(&mut app, &id).await[0].location_id, b.id);

    let in_b = app
        .list_robots(pb::ListRobotsRequest {
            location_id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .robots;
    assert_eq!(in_b.len(), 2);
    let in_a = app
        .list_robots(pb::ListRobotsRequest {
            location_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .robots;
    assert!(in_a.is_empty());
    let all = app
        .list_robots_for_org(pb::ListRobotsForOrgRequest {
            org_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .robots;
    assert_eq!(all.len(), 2);

    let main_part = parts(&mut app, &other).await.remove(0).id;
    app.delete_robot(pb::DeleteRobotRequest { id: other.clone() })
        .await
        .unwrap();
    assert_code(
        app.get_robot_part(pb::GetRobotPartRequest { id: main_part })
            .await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        app.delete_robot(pb::DeleteRobotRequest { id: other }).await,
        Code::NotFound,
        "not found",
    );
}

#[tokio::test]
async fn parts_main_rules() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let a = location(&mut app, &cloud.org_id, "A", None).await;
    let id = robot(&mut app, "rover", &a.id).await;
    let main = parts(&mut app, &id).await.remove(0);
    let second = app
        .new_robot_part(pb::NewRobotPartRequest {
            robot_id: id.clone(),
            part_name: "rover-aux".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .part_id;
    assert_code(
        app.new_robot_part(pb::NewRobotPartRequest {
            robot_id: id.clone(),
            part_name: "rover-aux".into(),
        })
        .await,
        Code::AlreadyExists,
        "rover-aux",
    );
    assert_code(
        app.new_robot_part(pb::NewRobotPartRequest {
            robot_id: id.clone(),
            part_name: "".into(),
        })
        .await,
        Code::InvalidArgument,
        "part_name",
    );
    assert_code(
        app.new_robot_part(pb::NewRobotPartRequest {
            robot_id: uuid_like(),
            part_name: "p".into(),
        })
        .await,
        Code::NotFound,
        "not found",
    );

    let del = |p: &str| pb::DeleteRobotPartRequest { part_id: p.into() };
    assert_code(
        app.delete_robot_part(del(&main.id)).await,
        Code::FailedPrecondition,
        "main part",
    );
    app.mark_part_as_main(pb::MarkPartAsMainRequest {
        part_id: second.clone(),
    })
    .await
    .unwrap();
    let ps = parts(&mut app, &id).await;
    assert_eq!(ps.iter().filter(|p| p.main_part).count(), 1);
    assert!(ps.iter().find(|p| p.id == second).unwrap().main_part);
    app.delete_robot_part(del(&main.id)).await.unwrap();
    assert_eq!(parts(&mut app, &id).await.len(), 1);
    assert_code(
        app.delete_robot_part(del(&main.id)).await,
        Code::NotFound,
        "not found",
    );
    assert_code(
        app.mark_part_as_main(pb::MarkPartAsMainRequest {
            part_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "part_id",
    );

    let got = app
        .get_robot_part(pb::GetRobotPartRequest { id: second.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.part.unwrap().name, "rover-aux");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.config_json).unwrap(),
        json!({})
    );
}

#[tokio::test]
async fn update_robot_part_is_optimistic_and_keeps_history() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let a = location(&mut app, &cloud.org_id, "A", None).await;
    let id = robot(&mut app, "arm", &a.id).await;
    let p0 = parts(&mut app, &id).await.remove(0);
    let config = json!({"components": [{"name": "arm", "model": "fake", "attributes": {"speed": 2.5, "n": 3}}]});
    let upd = |name: &str, cfg: Option<serde_json::Value>, lku: Option<prost_types::Timestamp>| {
        pb::UpdateRobotPartRequest {
            id: p0.id.clone(),
            name: name.into(),
            robot_config: cfg.map(json_struct),
            last_known_update: lku,
            robot_config_json: None,
        }
    };
    assert_code(
        app.update_robot_part(upd("", None, None)).await,
        Code::InvalidArgument,
        "name",
    );
    let p1 = app
        .update_robot_part(upd("arm-main", Some(config.clone()), p0.last_updated))
        .await
        .unwrap()
        .into_inner()
        .part
        .unwrap();
    assert!(micros(&p1.last_updated) > micros(&p0.last_updated));
    let got = app
        .get_robot_part(pb::GetRobotPartRequest { id: p0.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.config_json).unwrap(),
        config
    );

    // A stale precondition is refused and nothing is written.
    let stale = app
        .update_robot_part(upd("renamed", Some(json!({"x": 1})), p0.last_updated))
        .await;
    assert_code(
        stale,
        Code::FailedPrecondition,
        "modified since last_known_update",
    );
    let after = app
        .get_robot_part(pb::GetRobotPartRequest { id: p0.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.part.as_ref().unwrap().name, "arm-main");
    assert_eq!(after.part.unwrap().last_updated, p1.last_updated);

    // Unset config keeps the config; a rename alone still bumps last_updated and records history.
    let p2 = app
        .update_robot_part(upd("arm-main-2", None, None))
        .await
        .unwrap()
        .into_inner()
        .part
        .unwrap();
    assert!(micros(&p2.last_updated) > micros(&p1.last_updated));
    let got = app
        .get_robot_part(pb::GetRobotPartRequest { id: p0.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.config_json).unwrap(),
        config
    );

    let hist = app
        .get_robot_part_history(pb::GetRobotPartHistoryRequest {
            id: p0.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hist.history.len(), 2);
    assert_eq!(
        hist.history[0].old.as_ref().unwrap().name,
        "arm-main",
        "newest first"
    );
    assert_eq!(hist.history[1].old.as_ref().unwrap().name, "arm-main");
    assert_eq!(
        hist.history[1].old.as_ref().unwrap().robot_config,
        Some(json_struct(json!({})))
    );
    let editor = hist.history[0].edited_by.as_ref().unwrap();
    assert_eq!(editor.value, cloud.key_id);
    assert_eq!(editor.r#type, pb::AuthenticationType::ApiKey as i32);
    assert_eq!(hist.next_page_token, "");
    let page = app
        .get_robot_part_history(pb::GetRobotPartHistoryRequest {
            id: p0.id.clone(),
            page_limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.history.len(), 1);
    let rest = app
        .get_robot_part_history(pb::GetRobotPartHistoryRequest {
            id: p0.id.clone(),
            page_token: Some(page.next_page_token.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.history.len(), 1);
    assert_eq!(rest.history[0].when, hist.history[1].when);

    // robot_config_json takes precedence and must be an object.
    let mut r = upd("arm-main-2", None, None);
    r.robot_config_json = Some("[1]".into());
    assert_code(
        app.update_robot_part(r).await,
        Code::InvalidArgument,
        "robot_config_json",
    );

    // Part names are unique per location.
    let other = robot(&mut app, "other", &a.id).await;
    let other_main = parts(&mut app, &other).await.remove(0);
    let mut clash = upd("arm-main-2", None, None);
    clash.id = other_main.id;
    assert_code(
        app.update_robot_part(clash).await,
        Code::AlreadyExists,
        "arm-main-2",
    );
}

// -- Logs -------------------------------------------------------------------------------------

#[tokio::test]
async fn logs_page_newest_first_with_filters() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let mut robot_svc = cloud.robot().await;
    let a = location(&mut app, &cloud.org_id, "A", None).await;
    let id = robot(&mut app, "arm", &a.id).await;
    let part = parts(&mut app, &id).await.remove(0).id;
    let batch: Vec<LogEntry> = (0..250)
        .map(|i| {
            log(
                if i % 10 == 0 { "error" } else { "info" },
                &format!("msg {i}"),
            )
        })
        .collect();
    robot_svc
        .log(pb::LogRequest {
            id: part.clone(),
            logs: batch,
        })
        .await
        .unwrap();
    assert_code(
        robot_svc
            .log(pb::LogRequest {
                id: uuid_like(),
                logs: vec![],
            })
            .await,
        Code::NotFound,
        "not found",
    );

    let get = |token: Option<String>| pb::GetRobotPartLogsRequest {
        id: part.clone(),
        filter: Some(String::new()),
        page_token: Some(token.unwrap_or_default()),
        ..Default::default()
    };
    let mut all = vec![];
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = app
            .get_robot_part_logs(get(token.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        all.extend(page.logs);
        if page.next_page_token.is_empty() {
            break;
        }
        token = Some(page.next_page_token);
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 250);
    assert_eq!(all[0].message, "msg 249");
    assert_eq!(all[249].message, "msg 0");

    let errors = app
        .get_robot_part_logs(pb::GetRobotPartLogsRequest {
            id: part.clone(),
            levels: vec!["ERROR".into()],
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors.logs.len(), 25);
    #[allow(deprecated)]
    let errors_only = app
        .get_robot_part_logs(pb::GetRobotPartLogsRequest {
            id: part.clone(),
            errors_only: true,
            limit: Some(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors_only.logs.len(), 5);
    assert!(errors_only.logs.iter().all(|l| l.level == "error"));
    let filtered = app
        .get_robot_part_logs(pb::GetRobotPartLogsRequest {
            id: part.clone(),
            filter: Some("msg 24".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let msgs: Vec<_> = filtered.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "msg 249", "msg 248", "msg 247", "msg 246", "msg 245", "msg 244", "msg 243", "msg 242",
            "msg 241", "msg 240", "msg 24"
        ]
    );
    assert_code(
        app.get_robot_part_logs(pb::GetRobotPartLogsRequest {
            id: part.clone(),
            page_token: Some("garbage".into()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "page_token",
    );
}

#[tokio::test]
async fn tail_streams_new_entries_and_never_empty_batches() {
    use tokio_stream::StreamExt;
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let mut robot_svc = cloud.robot().await;
    let a = location(&mut app, &cloud.org_id, "A", None).await;
    let id = robot(&mut app, "arm", &a.id).await;
    let part = parts(&mut app, &id).await.remove(0).id;
    robot_svc
        .log(pb::LogRequest {
            id: part.clone(),
            logs: vec![log("error", "before")],
        })
        .await
        .unwrap();
    let mut stream = app
        .tail_robot_part_logs(pb::TailRobotPartLogsRequest {
            id: part.clone(),
            errors_only: true,
            filter: Some(String::new()),
        })
        .await
        .unwrap()
        .into_inner();
    // Only info entries: filtered out, and no empty batch is sent for them.
    robot_svc
        .log(pb::LogRequest {
            id: part.clone(),
            logs: vec![log("info", "quiet")],
        })
        .await
        .unwrap();
    robot_svc
        .log(pb::LogRequest {
            id: part.clone(),
            logs: vec![log("info", "a"), log("error", "boom")],
        })
        .await
        .unwrap();
    let batch = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("a batch in time")
        .expect("stream open")
        .expect("ok");
    let msgs: Vec<_> = batch.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(msgs, ["boom"]);
    assert_code(
        app.tail_robot_part_logs(pb::TailRobotPartLogsRequest {
            id: uuid_like(),
            errors_only: false,
            filter: None,
        })
        .await
        .map(|_| ()),
        Code::NotFound,
        "not found",
    );
}

// -- Fragments --------------------------------------------------------------------------------

#[tokio::test]
async fn fragments_count_their_parts() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let f = app
        .create_fragment(pb::CreateFragmentRequest {
            name: "camera-kit".into(),
            config: Some(json_struct(json!({"components": [{"name": "cam"}]}))),
            organization_id: org.clone(),
            visibility: None,
        })
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(f.visibility, pb::FragmentVisibility::Private as i32);
    assert_eq!(f.organization_name, "test-org");
    assert_code(
        app.create_fragment(pb::CreateFragmentRequest {
            name: "".into(),
            config: None,
            organization_id: org.clone(),
            visibility: None,
        })
        .await,
        Code::InvalidArgument,
        "name",
    );
    let a = location(&mut app, &org, "A", None).await;
    for (i, form) in [json!([{"id": f.id}]), json!([f.id])]
        .into_iter()
        .enumerate()
    {
        let id = robot(&mut app, &format!("m{i}"), &a.id).await;
        let p = parts(&mut app, &id).await.remove(0);
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: p.id,
            name: p.name,
            robot_config: Some(json_struct(json!({"fragments": form}))),
            last_known_update: None,
            robot_config_json: None,
        })
        .await
        .unwrap();
    }
    let got = app
        .get_fragment(pb::GetFragmentRequest {
            id: f.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(got.robot_part_count, 2);
    assert_eq!(got.organization_count, 1);
    assert_code(
        app.delete_fragment(pb::DeleteFragmentRequest { id: f.id.clone() })
            .await,
        Code::FailedPrecondition,
        "used by 2",
    );

    let upd = app
        .update_fragment(pb::UpdateFragmentRequest {
            fragment_config_json: None,
            id: f.id.clone(),
            name: "camera-kit-v2".into(),
            config: None,
            public: None,
            visibility: Some(pb::FragmentVisibility::PublicUnlisted as i32),
            last_known_update: f.last_updated,
        })
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(upd.name, "camera-kit-v2");
    assert_eq!(
        upd.visibility,
        pb::FragmentVisibility::PublicUnlisted as i32
    );
    assert_eq!(upd.fragment, f.fragment, "unset config is kept");
    assert_code(
        app.update_fragment(pb::UpdateFragmentRequest {
            id: f.id.clone(),
            name: "x".into(),
            last_known_update: f.last_updated,
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "modified since",
    );
    let list = app
        .list_fragments(pb::ListFragmentsRequest {
            organization_id: org.clone(),
            show_public: false,
            fragment_visibility: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .fragments;
    assert_eq!(list.len(), 1);
    let only_private = app
        .list_fragments(pb::ListFragmentsRequest {
            organization_id: org.clone(),
            show_public: false,
            fragment_visibility: vec![pb::FragmentVisibility::Private as i32],
        })
        .await
        .unwrap()
        .into_inner()
        .fragments;
    assert!(only_private.is_empty());
    let empty = app
        .create_fragment(pb::CreateFragmentRequest {
            name: "empty".into(),
            config: None,
            organization_id: org.clone(),
            visibility: None,
        })
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    app.delete_fragment(pb::DeleteFragmentRequest {
        id: empty.id.clone(),
    })
    .await
    .unwrap();
    assert_code(
        app.get_fragment(pb::GetFragmentRequest {
            id: empty.id,
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "not found",
    );
}

// -- Persistence ------------------------------------------------------------------------------

#[tokio::test]
async fn state_survives_a_restart_on_the_same_file() {
    let mut cloud = Cloud::start().await;
    let org = cloud.org_id.clone();
    let (loc_id, robot_id) = {
        let mut app = cloud.app().await;
        let a = location(&mut app, &org, "A", None).await;
        let id = robot(&mut app, "arm", &a.id).await;
        let p = parts(&mut app, &id).await.remove(0);
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: p.id,
            name: p.name,
            robot_config: Some(json_struct(json!({"k": "v"}))),
            last_known_update: None,
            robot_config_json: None,
        })
        .await
        .unwrap();
        (a.id, id)
    };
    cloud.restart().await;
    let mut app = cloud.app().await;
    let locs = app
        .list_locations(pb::ListLocationsRequest {
            organization_id: org,
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].id, loc_id);
    let ps = parts(&mut app, &robot_id).await;
    assert_eq!(ps[0].robot_config, Some(json_struct(json!({"k": "v"}))));
    let hist = app
        .get_robot_part_history(pb::GetRobotPartHistoryRequest {
            id: ps[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hist.history.len(), 1);
}

// -- Fault injection --------------------------------------------------------------------------

#[tokio::test]
async fn faults_fail_before_or_after_the_write() {
    let faults = fleetform::localcloud::Faults {
        error_rate: 1.0,
        ..Default::default()
    };
    let cloud = Cloud::start_with(faults).await;
    // Authentication is never failed on purpose.
    let mut app = cloud.app().await;
    let r = app
        .create_location(pb::CreateLocationRequest {
            organization_id: cloud.org_id.clone(),
            name: "A".into(),
            parent_location_id: None,
        })
        .await;
    assert_code(r, Code::Unavailable, "injected");

    let faults = fleetform::localcloud::Faults {
        drop_after_commit_rate: 1.0,
        ..Default::default()
    };
    let cloud2 = Cloud::start_with(faults).await;
    let mut app = cloud2.app().await;
    let r = app
        .create_location(pb::CreateLocationRequest {
            organization_id: cloud2.org_id.clone(),
            name: "A".into(),
            parent_location_id: None,
        })
        .await;
    assert_code(r, Code::Unavailable, "after the call was handled");
    // The write happened: visible after a restart without faults.
    let mut cloud2 = cloud2;
    cloud2.restart().await;
    let mut app = cloud2.app().await;
    let locs = app
        .list_locations(pb::ListLocationsRequest {
            organization_id: cloud2.org_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].name, "A");
}

// -- Fragment versions, tags, history and usage ------------------------------------------------

async fn fragment(
    app: &mut common::App,
    org: &str,
    name: &str,
    config: serde_json::Value,
) -> pb::Fragment {
    app.create_fragment(pb::CreateFragmentRequest {
        name: name.into(),
        config: Some(json_struct(config)),
        organization_id: org.into(),
        visibility: None,
    })
    .await
    .expect("create fragment")
    .into_inner()
    .fragment
    .expect("fragment")
}

fn update_fragment_json(f: &pb::Fragment, text: &str) -> pb::UpdateFragmentRequest {
    pb::UpdateFragmentRequest {
        id: f.id.clone(),
        name: f.name.clone(),
        fragment_config_json: Some(text.into()),
        ..Default::default()
    }
}

async fn get_fragment(
    app: &mut common::App,
    id: &str,
    version: Option<&str>,
) -> pb::GetFragmentResponse {
    app.get_fragment(pb::GetFragmentRequest {
        id: id.into(),
        current_organization_id: String::new(),
        version: version.map(String::from),
    })
    .await
    .expect("get fragment")
    .into_inner()
}

fn tag(tag: &str, revision: &str) -> pb::FragmentTag {
    pb::FragmentTag {
        tag: tag.into(),
        revision: revision.into(),
    }
}

#[tokio::test]
async fn fragment_updates_make_revisions_that_tags_point_at() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let f = fragment(&mut app, &org, "camera-kit", json!({"v": 1})).await;
    assert_eq!(f.revision, "1");
    assert_eq!(f.fragment_config_json.as_deref(), Some(r#"{"v":1}"#));

    // Every update is a new revision; the JSON text is stored as written.
    let text2 = "{\"z\": 8,\n \"a\": 8.0, \"ü\": [1, 2.5]}";
    let f2 = app
        .update_fragment(update_fragment_json(&f, text2))
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(f2.revision, "2");
    assert_eq!(f2.fragment_config_json.as_deref(), Some(text2));
    assert_eq!(
        f2.fragment,
        Some(json_struct(json!({"z": 8, "a": 8.0, "ü": [1, 2.5]})))
    );
    let f3 = app
        .update_fragment(pb::UpdateFragmentRequest {
            id: f.id.clone(),
            name: "camera-kit-v3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(f3.revision, "3", "a rename is a revision too");
    assert_eq!(
        f3.fragment_config_json.as_deref(),
        Some(text2),
        "config unchanged"
    );

    // A stale last_known_update is refused and makes no revision.
    assert_code(
        app.update_fragment(pb::UpdateFragmentRequest {
            last_known_update: f2.last_updated,
            ..update_fragment_json(&f, "{}")
        })
        .await,
        Code::FailedPrecondition,
        "last_known_update",
    );
    let now = get_fragment(&mut app, &f.id, None).await;
    assert_eq!(now.fragment.unwrap().revision, "3");
    let revisions: Vec<String> = now.revisions.iter().map(|r| r.revision.clone()).collect();
    assert_eq!(revisions, ["1", "2", "3"]);
    assert!(now.revisions.iter().all(|r| r.created_at.is_some()));
    assert!(now.tags.is_empty());

    // Tags: set, move, list sorted, delete.
    let set = |tag: &str, revision: &str| pb::SetFragmentTagRequest {
        fragment_id: f.id.clone(),
        tag: tag.into(),
        revision: revision.into(),
    };
    let tags = app
        .set_fragment_tag(set("stable", "1"))
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, [tag("stable", "1")]);
    for rev in ["2", "3"] {
        let tags = app
            .set_fragment_tag(set("stable", rev))
            .await
            .unwrap()
            .into_inner()
            .tags;
        assert_eq!(tags, [tag("stable", rev)], "stable moves to {rev}");
    }
    let tags = app
        .set_fragment_tag(set("beta", "2"))
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, [tag("beta", "2"), tag("stable", "3")]);
    assert_code(
        app.set_fragment_tag(set("stable", "9")).await,
        Code::NotFound,
        "revision 9",
    );
    assert_code(
        app.set_fragment_tag(set("stable", "two")).await,
        Code::InvalidArgument,
        "revision",
    );
    assert_code(
        app.set_fragment_tag(set("7", "1")).await,
        Code::InvalidArgument,
        "number",
    );
    assert_code(
        app.set_fragment_tag(set("", "1")).await,
        Code::InvalidArgument,
        "tag",
    );

    // GetFragment by tag or revision serves that revision.
    let beta = get_fragment(&mut app, &f.id, Some("beta")).await;
    let beta = beta.fragment.unwrap();
    assert_eq!(beta.revision, "2");
    assert_eq!(beta.fragment_config_json.as_deref(), Some(text2));
    assert_eq!(beta.name, "camera-kit");
    let first = get_fragment(&mut app, &f.id, Some("1"))
        .await
        .fragment
        .unwrap();
    assert_eq!(first.fragment_config_json.as_deref(), Some(r#"{"v":1}"#));
    assert_eq!(first.fragment, Some(json_struct(json!({"v": 1}))));
    assert_code(
        app.get_fragment(pb::GetFragmentRequest {
            id: f.id.clone(),
            current_organization_id: String::new(),
            version: Some("nightly".into()),
        })
        .await,
        Code::NotFound,
        "nightly",
    );

    let del = |tag: &str| pb::DeleteFragmentTagRequest {
        fragment_id: f.id.clone(),
        tag: tag.into(),
    };
    let tags = app
        .delete_fragment_tag(del("beta"))
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags, [tag("stable", "3")]);
    assert_code(
        app.delete_fragment_tag(del("beta")).await,
        Code::NotFound,
        "beta",
    );
    let tags = get_fragment(&mut app, &f.id, None).await.tags;
    assert_eq!(tags, [tag("stable", "3")]);
}

#[tokio::test]
async fn fragment_history_pages_newest_first() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let f = fragment(&mut app, &org, "kit", json!({"n": 0})).await;
    for n in 1..=4 {
        app.update_fragment(update_fragment_json(&f, &format!("{{\"n\": {n}}}")))
            .await
            .unwrap();
    }
    let page = |token: Option<String>| pb::GetFragmentHistoryRequest {
        id: f.id.clone(),
        page_token: token,
        page_limit: Some(3),
    };
    let first = app
        .get_fragment_history(page(None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.history.len(), 3);
    assert!(!first.next_page_token.is_empty());
    let second = app
        .get_fragment_history(page(Some(first.next_page_token.clone())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.history.len(), 1);
    assert_eq!(second.next_page_token, "");
    let all: Vec<&pb::FragmentHistoryEntry> = first.history.iter().chain(&second.history).collect();
    for (entry, n) in all.iter().zip([4, 3, 2, 1]) {
        // Each entry: the revision the edit made, its config, and the fragment before it.
        assert_eq!(entry.fragment, f.id);
        assert_eq!(entry.revision, (n + 1).to_string());
        assert_eq!(entry.config, Some(json_struct(json!({"n": n}))));
        let old = entry.old.as_ref().unwrap();
        assert_eq!(old.revision, n.to_string());
        assert_eq!(old.fragment, Some(json_struct(json!({"n": n - 1}))));
        assert!(entry.edited_on.is_some());
        let editor = entry.edited_by.as_ref().unwrap();
        assert_eq!(editor.r#type, pb::AuthenticationType::ApiKey as i32);
        assert_eq!(editor.value, cloud.key_id);
    }
    assert_code(
        app.get_fragment_history(page(Some("garbage".into()))).await,
        Code::InvalidArgument,
        "page_token",
    );
    let default = app
        .get_fragment_history(pb::GetFragmentHistoryRequest {
            id: f.id.clone(),
            page_token: None,
            page_limit: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default.history.len(), 4);
}

#[tokio::test]
async fn fragment_usage_counts_machines_by_imported_version() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let f = fragment(&mut app, &org, "kit", json!({})).await;
    let other = fragment(&mut app, &org, "other", json!({})).await;
    let site = location(&mut app, &org, "Site", None).await;
    let imports = [
        ("m1", vec![json!(f.id)]),
        (
            "m2",
            vec![json!({"id": f.id, "version": "stable", "prefix": "front"})],
        ),
        (
            "m3",
            vec![json!({"id": f.id, "version": "2"}), json!(other.id)],
        ),
        ("m4", vec![json!({"id": f.id})]),
        ("m5", vec![json!(other.id)]),
    ];
    for (name, fragments) in imports {
        let id = robot(&mut app, name, &site.id).await;
        let p = parts(&mut app, &id).await.remove(0);
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: p.id,
            name: p.name,
            robot_config_json: Some(json!({"fragments": fragments}).to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // A second part of m4 importing the same fragment counts m4 once.
    let m4 = app
        .list_robots(pb::ListRobotsRequest {
            location_id: site.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .robots
        .into_iter()
        .find(|r| r.name == "m4")
        .unwrap();
    let extra = app
        .new_robot_part(pb::NewRobotPartRequest {
            robot_id: m4.id.clone(),
            part_name: "m4-extra".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .part_id;
    app.update_robot_part(pb::UpdateRobotPartRequest {
        id: extra,
        name: "m4-extra".into(),
        robot_config_json: Some(json!({"fragments": [f.id]}).to_string()),
        ..Default::default()
    })
    .await
    .unwrap();

    let usage = app
        .get_fragment_usage(pb::GetFragmentUsageRequest {
            fragment_id: f.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .version_usages;
    let summary: Vec<(Option<String>, i32, i32, i32)> = usage
        .iter()
        .map(|u| {
            (
                u.version.clone(),
                u.machines,
                u.organizations,
                u.machines_in_current_org,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (None, 2, 1, 2),
            (Some("2".to_string()), 1, 1, 1),
            (Some("stable".to_string()), 1, 1, 1),
        ]
    );
    assert!(usage.iter().all(|u| u.fragment_id == f.id));
    // GetFragment carries the totals: each machine counted once over all versions.
    let total = get_fragment(&mut app, &f.id, None)
        .await
        .fragment_usage
        .unwrap();
    assert_eq!(
        (
            total.version,
            total.machines,
            total.organizations,
            total.machines_in_current_org
        ),
        (None, 4, 1, 4)
    );
    let other_usage = app
        .get_fragment_usage(pb::GetFragmentUsageRequest {
            fragment_id: other.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .version_usages;
    assert_eq!(other_usage.len(), 1);
    assert_eq!(other_usage[0].machines, 2);
    assert_code(
        app.get_fragment_usage(pb::GetFragmentUsageRequest {
            fragment_id: uuid_like(),
        })
        .await,
        Code::NotFound,
        "fragment",
    );
}

/// `(version, machines)` per imported version of fragment `id`.
async fn usage_by_version(app: &mut common::App, id: &str) -> Vec<(Option<String>, i32)> {
    app.get_fragment_usage(pb::GetFragmentUsageRequest {
        fragment_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .version_usages
    .into_iter()
    .map(|u| (u.version, u.machines))
    .collect()
}

async fn set_fragments(app: &mut common::App, part: &pb::RobotPart, fragments: serde_json::Value) {
    app.update_robot_part(pb::UpdateRobotPartRequest {
        id: part.id.clone(),
        name: part.name.clone(),
        robot_config_json: Some(json!({"fragments": fragments}).to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn fragment_usage_follows_every_config_write_and_a_version_5_store_is_counted() {
    let mut cloud = Cloud::start().await;
    let org = cloud.org_id.clone();
    let mut app = cloud.app().await;
    let f = fragment(&mut app, &org, "kit", json!({})).await;
    let site = location(&mut app, &org, "Site", None).await;
    let m1 = robot(&mut app, "m1", &site.id).await;
    let m2 = robot(&mut app, "m2", &site.id).await;
    let p1 = parts(&mut app, &m1).await.remove(0);
    let p2 = parts(&mut app, &m2).await.remove(0);
    set_fragments(&mut app, &p1, json!([f.id])).await;
    set_fragments(&mut app, &p2, json!([{"id": f.id, "version": 3}])).await;
    let before = vec![(None, 1), (Some("3".to_string()), 1)];
    assert_eq!(usage_by_version(&mut app, &f.id).await, before);

    // A store written by version 5 had no recorded imports: they are read from the configs.
    drop(app);
    cloud
        .reopen_after(
            "DROP TABLE fragment_imports;
             UPDATE meta SET value = '5' WHERE key = 'schema_version';",
        )
        .await;
    let mut app = cloud.app().await;
    assert_eq!(usage_by_version(&mut app, &f.id).await, before);

    // Every write that changes what a part imports changes the usage at once.
    set_fragments(&mut app, &p1, json!([{"id": f.id, "version": "stable"}])).await;
    assert_eq!(
        usage_by_version(&mut app, &f.id).await,
        [(Some("3".to_string()), 1), (Some("stable".to_string()), 1)]
    );
    set_fragments(&mut app, &p2, json!([])).await;
    assert_eq!(
        usage_by_version(&mut app, &f.id).await,
        [(Some("stable".to_string()), 1)]
    );
    // A renamed part (no config sent) keeps its imports.
    app.update_robot_part(pb::UpdateRobotPartRequest {
        id: p1.id.clone(),
        name: "renamed".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        usage_by_version(&mut app, &f.id).await,
        [(Some("stable".to_string()), 1)]
    );
    app.delete_robot(pb::DeleteRobotRequest { id: m1 })
        .await
        .unwrap();
    assert_eq!(usage_by_version(&mut app, &f.id).await, []);
    let total = get_fragment(&mut app, &f.id, None)
        .await
        .fragment_usage
        .unwrap();
    assert_eq!(total.machines, 0);
}

// -- Locations' organizations and ListRobotsForLocations ----------------------------------------

#[tokio::test]
async fn locations_name_their_primary_organization_and_list_robots_together() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let a = location(&mut app, &org, "A", None).await;
    let b = location(&mut app, &org, "B", Some(&a.id)).await;
    let c = location(&mut app, &org, "C", None).await;
    let ours = vec![pb::LocationOrganization {
        organization_id: org.clone(),
        primary: true,
    }];
    assert_eq!(a.organizations, ours);
    let listed = app
        .list_locations(pb::ListLocationsRequest {
            organization_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert!(listed.iter().all(|l| l.organizations == ours));
    let got = app
        .get_location(pb::GetLocationRequest {
            location_id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    assert_eq!(got.organizations, ours);

    let ra = robot(&mut app, "ra", &a.id).await;
    let rb = robot(&mut app, "rb", &b.id).await;
    robot(&mut app, "rc", &c.id).await;
    let list = |ids: Vec<String>| pb::ListRobotsForLocationsRequest { location_ids: ids };
    let robots = app
        .list_robots_for_locations(list(vec![a.id.clone(), b.id.clone(), a.id.clone()]))
        .await
        .unwrap()
        .into_inner()
        .robots;
    let ids: Vec<&str> = robots.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [ra.as_str(), rb.as_str()]);
    assert!(
        app.list_robots_for_locations(list(vec![]))
            .await
            .unwrap()
            .into_inner()
            .robots
            .is_empty()
    );
    assert_code(
        app.list_robots_for_locations(list(vec![a.id.clone(), "zzzzzzzzzz".into()]))
            .await,
        Code::NotFound,
        "zzzzzzzzzz",
    );
    assert_code(
        app.list_robots_for_locations(list(vec!["Not An Id".into()]))
            .await,
        Code::InvalidArgument,
        "location_ids",
    );
}

// -- Organization default fragments -------------------------------------------------------------

#[tokio::test]
async fn update_organization_sets_default_fragments() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let get = |org: &str| pb::GetOrganizationRequest {
        organization_id: org.into(),
    };
    let before = app
        .get_organization(get(&org))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(before.default_fragments, None, "absent until set");
    let f = fragment(&mut app, &org, "base", json!({})).await;
    #[allow(deprecated)]
    let import = pb::FragmentImport {
        fragment_id: f.id.clone(),
        version: "stable".into(),
        prefix: Some("front".into()),
        variables: [("site".to_string(), "hq".to_string())].into(),
        fragment_variables: Some(json_struct(json!({"rate": 8}))),
    };
    let update = |fragments: Vec<pb::FragmentImport>| pb::UpdateOrganizationRequest {
        organization_id: org.clone(),
        default_fragments: Some(pb::FragmentImportList { fragments }),
        ..Default::default()
    };
    let updated = app
        .update_organization(update(vec![import.clone()]))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let want = Some(pb::FragmentImportList {
        fragments: vec![import.clone()],
    });
    assert_eq!(updated.default_fragments, want);
    let read = app
        .get_organization(get(&org))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(read.default_fragments, want);
    assert_eq!(read.name, "test-org", "other fields unchanged");

    // A name-only update keeps them; an empty list clears them (present, empty).
    app.update_organization(pb::UpdateOrganizationRequest {
        organization_id: org.clone(),
        name: Some("acme".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let read = app
        .get_organization(get(&org))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(
        (read.name.as_str(), read.default_fragments.clone()),
        ("acme", want)
    );
    app.update_organization(update(vec![])).await.unwrap();
    let read = app
        .get_organization(get(&org))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(
        read.default_fragments,
        Some(pb::FragmentImportList::default())
    );

    let unknown = pb::FragmentImport {
        fragment_id: uuid_like(),
        ..import
    };
    assert_code(
        app.update_organization(update(vec![unknown])).await,
        Code::NotFound,
        "fragment",
    );
    assert_code(
        app.update_organization(pb::UpdateOrganizationRequest {
            organization_id: org.clone(),
            public_namespace: Some("Bad NS".into()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "public_namespace",
    );
}

// -- Configs as JSON text ---------------------------------------------------------------------

#[tokio::test]
async fn robot_config_json_is_stored_and_served_as_written() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    let a = location(&mut app, &org, "A", None).await;
    let id = robot(&mut app, "arm", &a.id).await;
    let p = parts(&mut app, &id).await.remove(0);
    let text =
        "{\"z\": 1,\n  \"a\": [8.0, 8, 1e3],  \"ünïcode\": \"✓\", \"n\": {\"b\": 2, \"a\": 1}}";
    let updated = app
        .update_robot_part(pb::UpdateRobotPartRequest {
            id: p.id.clone(),
            name: p.name.clone(),
            robot_config: Some(json_struct(json!({"ignored": "the JSON text wins"}))),
            robot_config_json: Some(text.into()),
            last_known_update: None,
        })
        .await
        .unwrap()
        .into_inner()
        .part
        .unwrap();
    assert_eq!(updated.robot_config_json.as_deref(), Some(text));
    let read = parts(&mut app, &id).await.remove(0);
    assert_eq!(read.robot_config_json.as_deref(), Some(text));
    assert_eq!(
        read.robot_config,
        Some(json_struct(
            json!({"z": 1, "a": [8.0, 8, 1000], "ünïcode": "✓", "n": {"b": 2, "a": 1}})
        ))
    );
    let got = app
        .get_robot_part(pb::GetRobotPartRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.part.unwrap().robot_config_json.as_deref(), Some(text));
    let served: serde_json::Value = serde_json::from_str(&got.config_json).unwrap();
    let keys: Vec<&String> = served.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z", "a", "ünïcode", "n"], "key order kept");
    for bad in ["not json", "[1, 2]"] {
        assert_code(
            app.update_robot_part(pb::UpdateRobotPartRequest {
                id: p.id.clone(),
                name: p.name.clone(),
                robot_config_json: Some(bad.into()),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "robot_config_json",
        );
    }
}

// -- ListFragments visibility ---------------------------------------------------------------

#[tokio::test]
async fn list_fragments_filters_by_visibility_and_owner() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let org = cloud.org_id.clone();
    // A second organization in the same cloud, with one fragment of each visibility.
    let other = fleetform::localcloud::init(&cloud.db, "other-org", "other@example.com").unwrap();
    let mut app2 = common::connect_app(&cloud.endpoint(), &other.key_id, other.key.expose()).await;
    for (name, vis) in [
        ("their-private", pb::FragmentVisibility::Private),
        ("their-public", pb::FragmentVisibility::Public),
        ("their-unlisted", pb::FragmentVisibility::PublicUnlisted),
    ] {
        app2.create_fragment(pb::CreateFragmentRequest {
            name: name.into(),
            config: None,
            organization_id: other.org_id.clone(),
            visibility: Some(vis as i32),
        })
        .await
        .unwrap();
    }
    fragment(&mut app, &org, "ours-private", json!({})).await;
    app.create_fragment(pb::CreateFragmentRequest {
        name: "ours-unlisted".into(),
        config: None,
        organization_id: org.clone(),
        visibility: Some(pb::FragmentVisibility::PublicUnlisted as i32),
    })
    .await
    .unwrap();

    let mut list = async |show_public: bool, vis: &[pb::FragmentVisibility]| -> Vec<String> {
        let mut names: Vec<String> = app
            .list_fragments(pb::ListFragmentsRequest {
                organization_id: org.clone(),
                show_public,
                fragment_visibility: vis.iter().map(|v| *v as i32).collect(),
            })
            .await
            .unwrap()
            .into_inner()
            .fragments
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        names
    };
    use pb::FragmentVisibility::{Private, Public, PublicUnlisted};
    assert_eq!(list(false, &[]).await, ["ours-private", "ours-unlisted"]);
    assert_eq!(
        list(true, &[]).await,
        ["ours-private", "ours-unlisted", "their-public"]
    );
    assert_eq!(
        list(false, &[Private, Public, PublicUnlisted]).await,
        ["ours-private", "ours-unlisted", "their-public"]
    );
    assert_eq!(
        list(true, &[Private]).await,
        ["ours-private"],
        "visibilities take precedence"
    );
    assert_eq!(list(false, &[PublicUnlisted]).await, ["ours-unlisted"]);

    // Who uses a fragment: nobody, then only its owner, then its owner and us.
    let theirs = app2
        .list_fragments(pb::ListFragmentsRequest {
            organization_id: other.org_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fragments
        .into_iter()
        .find(|f| f.name == "their-public")
        .unwrap();
    let used = async |app: &mut common::App| {
        let f = get_fragment(app, &theirs.id, None).await.fragment.unwrap();
        (
            f.robot_part_count,
            f.organization_count,
            f.only_used_by_owner,
        )
    };
    assert_eq!(used(&mut app2).await, (0, 0, true));
    // A part importing it twice (two versions) is one part.
    let twice = json!([{"id": theirs.id, "version": "1"}, theirs.id]);
    let site = location(&mut app2, &other.org_id, "Theirs", None).await;
    let id = robot(&mut app2, "m", &site.id).await;
    let part = parts(&mut app2, &id).await.remove(0);
    set_fragments(&mut app2, &part, twice.clone()).await;
    assert_eq!(used(&mut app2).await, (1, 1, true), "only the owner's part");
    let site = location(&mut app, &org, "Ours", None).await;
    let id = robot(&mut app, "m", &site.id).await;
    let part = parts(&mut app, &id).await.remove(0);
    set_fragments(&mut app, &part, twice).await;
    assert_eq!(
        used(&mut app).await,
        (2, 2, false),
        "the owner's part and ours"
    );
}

// -- Schema migration ---------------------------------------------------------------------------

#[tokio::test]
async fn a_version_1_store_is_migrated_and_a_newer_one_refused() {
    let mut cloud = Cloud::start().await;
    let org = cloud.org_id.clone();
    let f = {
        let mut app = cloud.app().await;
        fragment(&mut app, &org, "kit", json!({"k": 1})).await
    };
    cloud.server.take().unwrap().shutdown().await.unwrap();
    // Make the store what version 1 wrote: no revisions, tags, history or new columns.
    {
        let db = rusqlite::Connection::open(&cloud.db).unwrap();
        db.execute_batch(
            "DROP TABLE fragment_revisions; DROP TABLE fragment_tags; DROP TABLE fragment_history;
             ALTER TABLE orgs DROP COLUMN default_fragments;
             ALTER TABLE fragments DROP COLUMN revision;
             ALTER TABLE invites DROP COLUMN send_email;
             DROP TABLE key_auths; ALTER TABLE api_keys DROP COLUMN name;
             ALTER TABLE parts DROP COLUMN config_pb;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let server =
        fleetform::localcloud::start(&fleetform::localcloud::ServerOptions::new(&cloud.db))
            .await
            .expect("a version 1 store opens");
    cloud.server = Some(server);
    let mut app = cloud.app().await;
    let got = get_fragment(&mut app, &f.id, None).await;
    assert_eq!(got.fragment.unwrap().revision, "1");
    assert_eq!(got.revisions.len(), 1);
    let f2 = app
        .update_fragment(update_fragment_json(&f, r#"{"k": 2}"#))
        .await
        .unwrap()
        .into_inner()
        .fragment
        .unwrap();
    assert_eq!(f2.revision, "2");
    let first = get_fragment(&mut app, &f.id, Some("1"))
        .await
        .fragment
        .unwrap();
    assert_eq!(first.fragment, Some(json_struct(json!({"k": 1}))));
    cloud.server.take().unwrap().shutdown().await.unwrap();

    rusqlite::Connection::open(&cloud.db)
        .unwrap()
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = fleetform::localcloud::start(&fleetform::localcloud::ServerOptions::new(&cloud.db))
        .await
        .err()
        .expect("a newer store is refused");
    assert!(err.to_string().contains("schema version"), "{err}");
}

/// Version 4 stored part configs only as JSON text; opening such a store encodes each one, and
/// `GetRobotParts` (answered from the encodings) serves the same parts as before.
#[tokio::test]
async fn a_version_4_store_gets_its_part_configs_encoded() {
    let mut cloud = Cloud::start().await;
    let org = cloud.org_id.clone();
    let (robots, before) = {
        let mut app = cloud.app().await;
        let a = location(&mut app, &org, "A", None).await;
        let written = robot(&mut app, "arm", &a.id).await;
        let untouched = robot(&mut app, "cam", &a.id).await;
        let p = parts(&mut app, &written).await.remove(0);
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: p.id.clone(),
            name: p.name.clone(),
            robot_config_json: Some(
                r#"{"components": [{"name": "c", "attributes": {"x": [1, 2.5, null, true, "s", {}]}}], "z": {}}"#
                    .into(),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
        let robots = [written, untouched];
        let mut before = vec![];
        for id in &robots {
            before.push(parts(&mut app, id).await);
        }
        (robots, before)
    };
    assert!(before[0][0].robot_config.as_ref().unwrap().fields.len() == 2);
    cloud
        .reopen_after(
            "ALTER TABLE parts DROP COLUMN config_pb;
             UPDATE meta SET value = '4' WHERE key = 'schema_version';",
        )
        .await;
    let unfilled: i64 = rusqlite::Connection::open(&cloud.db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM parts WHERE config_pb IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unfilled, 0);
    let mut app = cloud.app().await;
    for (id, before) in robots.iter().zip(before) {
        assert_eq!(parts(&mut app, id).await, before);
    }
}

// -- Shared locations ---------------------------------------------------------------------------

/// Asserts a change was refused because only the location's owner may make it.
#[track_caller]
fn denied<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    assert_code(r, Code::PermissionDenied, "only");
}

#[tokio::test]
async fn shared_locations_are_readable_but_not_changeable_by_the_other_organization() {
    let cloud = Cloud::start().await;
    let mut owner = cloud.app().await;
    let org = cloud.org_id.clone();
    let other = fleetform::localcloud::init(&cloud.db, "partner", "p@example.com").unwrap();
    let mut partner =
        common::connect_app(&cloud.endpoint(), &other.key_id, other.key.expose()).await;
    let l = location(&mut owner, &org, "Shared", None).await;
    let rid = robot(&mut owner, "arm", &l.id).await;
    let share = |o: &str| pb::ShareLocationRequest {
        location_id: l.id.clone(),
        organization_id: o.into(),
    };
    let unshare = |o: &str| pb::UnshareLocationRequest {
        location_id: l.id.clone(),
        organization_id: o.into(),
    };
    let partner_locations = async |app: &mut common::App| -> Vec<pb::Location> {
        app.list_locations(pb::ListLocationsRequest {
            organization_id: other.org_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations
    };
    assert!(partner_locations(&mut partner).await.is_empty());
    assert_code(
        partner.share_location(share(&other.org_id)).await,
        Code::NotFound,
        "location",
    );
    owner.share_location(share(&other.org_id)).await.unwrap();
    assert_code(
        owner.share_location(share(&other.org_id)).await,
        Code::AlreadyExists,
        "already shared",
    );
    assert_code(
        owner.share_location(share(&org)).await,
        Code::InvalidArgument,
        "owns",
    );
    assert_code(
        owner.share_location(share(&uuid_like())).await,
        Code::NotFound,
        "organization",
    );

    // The partner lists it, with the owner as primary, and reads it and its machines.
    let listed = partner_locations(&mut partner).await;
    assert_eq!(listed.len(), 1);
    let orgs: Vec<(String, bool)> = listed[0]
        .organizations
        .iter()
        .map(|o| (o.organization_id.clone(), o.primary))
        .collect();
    assert_eq!(orgs, [(org.clone(), true), (other.org_id.clone(), false)]);
    partner
        .get_location(pb::GetLocationRequest {
            location_id: l.id.clone(),
        })
        .await
        .unwrap();
    let robots = partner
        .list_robots_for_locations(pb::ListRobotsForLocationsRequest {
            location_ids: vec![l.id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .robots;
    assert_eq!(robots.len(), 1);
    let ps = parts(&mut partner, &rid).await;
    assert_eq!(ps.len(), 1);

    // Changes stay with the owner.
    denied(
        partner
            .update_location(pb::UpdateLocationRequest {
                location_id: l.id.clone(),
                name: Some("Mine".into()),
                ..Default::default()
            })
            .await,
    );
    denied(
        partner
            .delete_location(pb::DeleteLocationRequest {
                location_id: l.id.clone(),
            })
            .await,
    );
    denied(
        partner
            .new_robot(pb::NewRobotRequest {
                name: "intruder".into(),
                location: l.id.clone(),
            })
            .await,
    );
    denied(
        partner
            .update_robot_part(pb::UpdateRobotPartRequest {
                id: ps[0].id.clone(),
                name: ps[0].name.clone(),
                robot_config_json: Some("{}".into()),
                ..Default::default()
            })
            .await,
    );
    denied(
        partner
            .location_auth(pb::LocationAuthRequest {
                location_id: l.id.clone(),
            })
            .await,
    );

    owner
        .unshare_location(unshare(&other.org_id))
        .await
        .unwrap();
    assert!(partner_locations(&mut partner).await.is_empty());
    assert_code(
        owner.unshare_location(unshare(&other.org_id)).await,
        Code::NotFound,
        "not shared",
    );
    assert_code(
        partner
            .get_location(pb::GetLocationRequest {
                location_id: l.id.clone(),
            })
            .await,
        Code::NotFound,
        "location",
    );
}
