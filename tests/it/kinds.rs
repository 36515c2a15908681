//! More of the organization as code (issue 17), one kind at a time, against the local cloud:
//! create, update, delete, the import round trip and the guard rails of each kind.

use crate::common::{self, Cloud, manifest, plan_for};
use fleetform::apply::{ApplyOptions, Report, apply, check_preconditions};
use fleetform::cloud::observe::{ObserveOptions, observe_for_import};
use fleetform::cloud::{CloudApi, Code};
use fleetform::kinds::members::MemberRoles;
use fleetform::model::{Desired, Metadata, MetadataTarget};
use fleetform::plan::{Action, Kind, Plan};
use fleetform::proto::viam::app::v1 as pb;
use serde_json::json;
use std::sync::Arc;

async fn run(api: Arc<dyn CloudApi>, p: &Plan) -> Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = apply(api, p, &ApplyOptions::default(), None, stop).await;
    assert!(report.is_success(), "{}", common::failures(&report));
    report
}

/// Plans and applies `d`, then checks that a second plan is empty.
async fn converge(api: &Arc<dyn CloudApi>, d: &Desired) -> Plan {
    let p = plan_for(api.as_ref(), d).await;
    run(Arc::clone(api), &p).await;
    let again = plan_for(api.as_ref(), d).await;
    assert!(
        again.is_empty(),
        "not converged: {:#?}",
        again
            .changes
            .iter()
            .map(|c| (&c.kind, &c.path, &c.reason, &c.details))
            .collect::<Vec<_>>()
    );
    p
}

fn map(v: serde_json::Value) -> Metadata {
    v.as_object().expect("an object").clone()
}

fn metadata_changes(p: &Plan) -> Vec<(&str, &str)> {
    p.changes
        .iter()
        .filter(|c| c.kind == Kind::Metadata)
        .map(|c| (c.path.as_str(), c.reason.as_str()))
        .collect()
}

/// The ids of the location, machine and part a test manifest declares.
async fn ids(api: &dyn CloudApi, org: &str) -> (String, String, String) {
    let l = api.list_locations(org).await.unwrap();
    let hq = l.iter().find(|l| l.name == "HQ").expect("HQ").id.clone();
    let m = api.list_machines(&hq).await.unwrap();
    let arm = m.iter().find(|m| m.name == "arm").expect("arm").id.clone();
    let parts = api.get_parts(&arm).await.unwrap();
    let main = parts.iter().find(|p| p.main).expect("main").id.clone();
    (hq, arm, main)
}

const WITH_METADATA: &str = r#"
version: 1
organization:
  name: test-org
  metadata: { team: robotics, cost_center: 42 }
locations:
  - name: HQ
    metadata: { floor: 2, tags: [a, b], nested: { ratio: 1.5, on: true } }
    machines:
      - name: arm
        metadata: { serial: "SN-1" }
        parts:
          - name: arm-main
            metadata: { slot: 3 }
"#;

#[tokio::test]
async fn metadata_is_created_updated_cleared_and_left_alone_when_unmanaged() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let d = manifest(WITH_METADATA);

    // Create: the organization's metadata and that of the new location, machine and part.
    let p = converge(&api, &d).await;
    let mut made = metadata_changes(&p);
    made.sort();
    assert_eq!(
        made,
        vec![
            ("HQ", "metadata of a new resource"),
            ("HQ/arm", "metadata of a new resource"),
            ("HQ/arm/arm-main", "metadata of a new resource"),
            ("test-org", "metadata differs"),
        ]
    );
    let org = p.organization_id.clone();
    let (hq, arm, main) = ids(api.as_ref(), &org).await;
    let got = |t: MetadataTarget| {
        let api = Arc::clone(&api);
        async move { api.get_metadata(&t).await.unwrap() }
    };
    assert_eq!(
        got(MetadataTarget::Organization(org.clone())).await,
        map(json!({"team": "robotics", "cost_center": 42}))
    );
    assert_eq!(
        got(MetadataTarget::Location(hq.clone())).await,
        map(json!({"floor": 2, "tags": ["a", "b"], "nested": {"ratio": 1.5, "on": true}}))
    );
    assert_eq!(
        got(MetadataTarget::Machine(arm.clone())).await,
        map(json!({"serial": "SN-1"}))
    );
    assert_eq!(
        got(MetadataTarget::Part(main.clone())).await,
        map(json!({"slot": 3}))
    );

    // Update: one key changes, one is added; the plan names them.
    let updated =
        WITH_METADATA.replace(r#"{ serial: "SN-1" }"#, r#"{ serial: "SN-2", owner: ops }"#);
    let p = converge(&api, &manifest(&updated)).await;
    assert_eq!(metadata_changes(&p), vec![("HQ/arm", "metadata differs")]);
    let c = p.changes.iter().find(|c| c.kind == Kind::Metadata).unwrap();
    assert_eq!(c.action, Action::Update);
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = c
        .details
        .iter()
        .map(|d| (d.field.as_str(), d.before.as_deref(), d.after.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("metadata.owner", None, Some("ops")),
            ("metadata.serial", Some("SN-1"), Some("SN-2")),
        ]
    );
    assert_eq!(
        got(MetadataTarget::Machine(arm.clone())).await,
        map(json!({"serial": "SN-2", "owner": "ops"}))
    );

    // Delete: `{}` empties it.
    let cleared = updated.replace("metadata: { slot: 3 }", "metadata: {}");
    let p = converge(&api, &manifest(&cleared)).await;
    assert_eq!(
        metadata_changes(&p),
        vec![("HQ/arm/arm-main", "metadata differs")]
    );
    assert_eq!(
        got(MetadataTarget::Part(main.clone())).await,
        Metadata::new()
    );

    // Unmanaged: without the key nothing is planned and the cloud keeps what it has, even
    // when it changes by hand.
    let unmanaged = cleared.replace(
        "    metadata: { floor: 2, tags: [a, b], nested: { ratio: 1.5, on: true } }\n",
        "",
    );
    let d = manifest(&unmanaged);
    api.update_metadata(
        &MetadataTarget::Location(hq.clone()),
        &map(json!({"by": "hand"})),
    )
    .await
    .unwrap();
    assert!(metadata_changes(&plan_for(api.as_ref(), &d).await).is_empty());
    assert_eq!(
        got(MetadataTarget::Location(hq.clone())).await,
        map(json!({"by": "hand"}))
    );

    // Drift on a managed owner is planned back.
    api.update_metadata(
        &MetadataTarget::Machine(arm.clone()),
        &map(json!({"serial": "X"})),
    )
    .await
    .unwrap();
    let p = plan_for(api.as_ref(), &d).await;
    assert_eq!(metadata_changes(&p), vec![("HQ/arm", "metadata differs")]);
}

#[tokio::test]
async fn metadata_compares_semantically_and_a_changed_owner_makes_a_saved_plan_stale() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    converge(&api, &manifest(WITH_METADATA)).await;
    // Same maps written with other key order and number spelling: no change.
    let respelled = WITH_METADATA
        .replace(
            "{ team: robotics, cost_center: 42 }",
            "{ cost_center: 42.0, team: robotics }",
        )
        .replace(
            "{ floor: 2, tags: [a, b], nested: { ratio: 1.5, on: true } }",
            "{ nested: { on: true, ratio: 1.50 }, tags: [a, b], floor: 2.0 }",
        );
    assert!(
        plan_for(api.as_ref(), &manifest(&respelled))
            .await
            .is_empty()
    );

    // A saved plan that sets the machine's metadata is stale once someone else changes it.
    let changed = WITH_METADATA.replace(r#"{ serial: "SN-1" }"#, r#"{ serial: "SN-9" }"#);
    let saved = plan_for(api.as_ref(), &manifest(&changed)).await;
    assert_eq!(metadata_changes(&saved).len(), 1);
    assert!(
        check_preconditions(Arc::clone(&api), &saved)
            .await
            .unwrap()
            .is_empty()
    );
    let org = saved.organization_id.clone();
    let (_, arm, _) = ids(api.as_ref(), &org).await;
    api.update_metadata(
        &MetadataTarget::Machine(arm),
        &map(json!({"serial": "by-hand"})),
    )
    .await
    .unwrap();
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, Kind::Metadata);
    assert!(
        stale[0].what.contains("metadata changed"),
        "{}",
        stale[0].what
    );
}

#[tokio::test]
async fn imported_metadata_round_trips_to_a_plan_with_no_changes() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let p = converge(&api, &manifest(WITH_METADATA)).await;
    // A second machine without metadata stays without a `metadata:` key.
    let org = api.get_organization(&p.organization_id).await.unwrap();
    let (hq, _, _) = ids(api.as_ref(), &org.id).await;
    api.new_machine("bare", &hq).await.unwrap();

    let (observed, shared) =
        observe_for_import(api.as_ref(), &org, &[hq], &ObserveOptions::default())
            .await
            .unwrap();
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    let text = fleetform::manifest::export::export(&built.desired, &Default::default()).manifest;
    assert_eq!(text.matches("metadata:").count(), 4, "{text}");
    let back = manifest(&text);
    assert_eq!(back.metadata, built.desired.metadata);
    let again = plan_for(api.as_ref(), &back).await;
    assert!(again.is_empty(), "{:#?}\n{text}", again.changes);
}

#[tokio::test]
async fn the_local_cloud_scopes_metadata_to_the_callers_organization() {
    let cloud = Cloud::start().await;
    let api = cloud.client().await;
    // A second organization in the same cloud, with a machine and a location it shares with
    // ours.
    let other = fleetform::localcloud::init(&cloud.db, "other-org", "other@example.com").unwrap();
    let mut theirs =
        common::connect_app(&cloud.endpoint(), &other.key_id, other.key.expose()).await;
    let shared = theirs
        .create_location(pb::CreateLocationRequest {
            organization_id: other.org_id.clone(),
            name: "Shared".into(),
            parent_location_id: None,
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap()
        .id;
    theirs
        .share_location(pb::ShareLocationRequest {
            location_id: shared.clone(),
            organization_id: cloud.org_id.clone(),
        })
        .await
        .unwrap();
    let robot = theirs
        .new_robot(pb::NewRobotRequest {
            name: "their-bot".into(),
            location: shared.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;

    let code = |r: Result<_, fleetform::cloud::CloudError>| r.map(|_: ()| ()).unwrap_err().code;
    let data = map(json!({"k": "v"}));
    // Another organization's metadata: neither read nor written.
    let their_org = MetadataTarget::Organization(other.org_id.clone());
    assert_eq!(
        api.get_metadata(&their_org).await.unwrap_err().code,
        Code::PermissionDenied
    );
    assert_eq!(
        code(api.update_metadata(&their_org, &data).await),
        Code::PermissionDenied
    );
    // A location shared with us is readable, but only its owner writes its metadata.
    let loc = MetadataTarget::Location(shared.clone());
    assert_eq!(api.get_metadata(&loc).await.unwrap(), Metadata::new());
    assert_eq!(
        code(api.update_metadata(&loc, &data).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            api.update_metadata(&MetadataTarget::Machine(robot.clone()), &data)
                .await
        ),
        Code::PermissionDenied
    );
    // Unknown ids are NOT_FOUND.
    assert_eq!(
        api.get_metadata(&MetadataTarget::Location("abcdefghij".into()))
            .await
            .unwrap_err()
            .code,
        Code::NotFound
    );
    assert_eq!(
        code(
            api.update_metadata(
                &MetadataTarget::Part("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into()),
                &data,
            )
            .await
        ),
        Code::NotFound
    );
}

// -- Organization settings ----------------------------------------------------------------------

fn org_changes(p: &Plan) -> Vec<(&str, &str)> {
    p.changes
        .iter()
        .filter(|c| c.kind == Kind::Organization)
        .map(|c| (c.path.as_str(), c.reason.as_str()))
        .collect()
}

#[tokio::test]
async fn organization_settings_set_rename_and_round_trip_through_import() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);

    // Unmanaged settings plan nothing.
    let plain = manifest("version: 1\norganization: { name: test-org }\n");
    assert!(plan_for(api.as_ref(), &plain).await.is_empty());

    // The public namespace is set; the region already is what the manifest says.
    let d = manifest(
        "version: 1\norganization: { name: test-org, public_namespace: acme-robots, region: local }\n",
    );
    let p = converge(&api, &d).await;
    assert_eq!(
        org_changes(&p),
        vec![("test-org", "public namespace differs")]
    );
    let detail = &p.changes[0].details[0];
    assert_eq!(
        (
            detail.field.as_str(),
            detail.before.as_deref(),
            detail.after.as_deref()
        ),
        ("public_namespace", None, Some("acme-robots"))
    );
    let org = api.get_organization(&cloud.org_id).await.unwrap();
    assert_eq!(org.public_namespace, "acme-robots");

    // Rename: found by id, `name:` is the wanted name.
    let renamed = format!(
        "version: 1\norganization: {{ id: {}, name: acme, public_namespace: acme-robots }}\n",
        cloud.org_id
    );
    let d = manifest(&renamed);
    let saved = plan_for(api.as_ref(), &d).await;
    assert_eq!(org_changes(&saved), vec![("acme", "renamed")]);
    assert_eq!(saved.changes[0].from_path.as_deref(), Some("test-org"));
    converge(&api, &d).await;
    assert_eq!(
        api.get_organization(&cloud.org_id).await.unwrap().name,
        "acme"
    );
    // The saved rename is stale now that the name changed.
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(
        stale[0].what.contains("settings changed"),
        "{}",
        stale[0].what
    );

    // Import writes the namespace and the region; the round trip plans nothing.
    let org = api.get_organization(&cloud.org_id).await.unwrap();
    let (observed, shared) =
        observe_for_import(api.as_ref(), &org, &[], &ObserveOptions::default())
            .await
            .unwrap();
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    let text = fleetform::manifest::export::export(&built.desired, &Default::default()).manifest;
    assert!(text.contains("public_namespace: acme-robots"), "{text}");
    assert!(text.contains("region: local"), "{text}");
    let back = manifest(&text);
    assert_eq!(back.settings, built.desired.settings);
    let again = plan_for(api.as_ref(), &back).await;
    assert!(again.is_empty(), "{:#?}\n{text}", again.changes);

    // And an export of a managed name writes `id:` back.
    let text = fleetform::manifest::export::export(&d, &Default::default()).manifest;
    assert!(text.contains(&format!("id: {}", cloud.org_id)), "{text}");
    assert_eq!(manifest(&text).settings, d.settings);
}

#[tokio::test]
async fn organization_settings_the_cloud_refuses_are_reported_by_apply() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let d = manifest("version: 1\norganization: { name: test-org, region: us-east-1 }\n");
    let p = plan_for(api.as_ref(), &d).await;
    assert_eq!(org_changes(&p), vec![("test-org", "region differs")]);
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = apply(Arc::clone(&api), &p, &ApplyOptions::default(), None, stop).await;
    assert!(!report.is_success());
    let failures = common::failures(&report);
    assert!(failures.contains("region"), "{failures}");
    // A manifest `id:` that is not a UUID is a validation error.
    let err = fleetform::manifest::parse_str(
        "version: 1\norganization: { id: not-a-uuid, name: acme }\n",
        std::path::Path::new("fleet.yaml"),
        &|_| None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("organization"), "{err}");
}

// -- Member roles: the local cloud and the client -------------------------------------------------

#[tokio::test]
async fn member_roles_are_listed_added_removed_and_the_last_owner_stays() {
    use fleetform::model::{Grant, ResourceKind, Role};
    let cloud = Cloud::start().await;
    let api = cloud.client().await;
    let org = cloud.org_id.clone();
    let (members, _) = api.list_members(&org).await.unwrap();
    let owner = members[0].user_id.clone();
    let org_owner = Grant {
        role: Role::Owner,
        resource_kind: ResourceKind::Organization,
        resource_id: org.clone(),
    };
    let roles = api.list_member_roles(&org).await.unwrap();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(
        (roles[0].identity_id.as_str(), &roles[0].grant),
        (owner.as_str(), &org_owner)
    );

    // A location operator role is added, refused twice, and goes with its location.
    let loc = api.create_location(&org, "HQ", None).await.unwrap();
    let operator = Grant {
        role: Role::Operator,
        resource_kind: ResourceKind::Location,
        resource_id: loc.id.clone(),
    };
    api.add_member_role(&org, &owner, &operator).await.unwrap();
    assert_eq!(api.list_member_roles(&org).await.unwrap().len(), 2);
    assert_eq!(
        api.add_member_role(&org, &owner, &operator)
            .await
            .unwrap_err()
            .code,
        Code::AlreadyExists
    );
    api.remove_member_role(&org, &owner, &operator)
        .await
        .unwrap();
    assert_eq!(
        api.remove_member_role(&org, &owner, &operator)
            .await
            .unwrap_err()
            .code,
        Code::NotFound
    );
    api.add_member_role(&org, &owner, &operator).await.unwrap();
    api.delete_location(&loc.id).await.unwrap();
    assert_eq!(api.list_member_roles(&org).await.unwrap().len(), 1);

    // The last owner cannot be removed; someone who is not a member gets no role.
    let err = api
        .remove_member_role(&org, &owner, &org_owner)
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::FailedPrecondition, "{err}");
    assert_eq!(api.list_member_roles(&org).await.unwrap().len(), 1);
    let stranger = "3b4e28ba-2fa1-11d2-883f-0016d3cca427";
    assert_eq!(
        api.add_member_role(&org, stranger, &org_owner)
            .await
            .unwrap_err()
            .code,
        Code::NotFound
    );
}

#[tokio::test]
async fn a_version_2_store_gives_its_members_the_owner_role() {
    let mut cloud = Cloud::start().await;
    cloud.server.take().unwrap().shutdown().await.unwrap();
    // What version 2 wrote: no roles and no metadata.
    {
        let db = rusqlite::Connection::open(&cloud.db).unwrap();
        db.execute_batch(
            "DROP TABLE member_roles; DROP TABLE metadata;
             DROP TABLE key_auths; ALTER TABLE api_keys DROP COLUMN name;
             ALTER TABLE parts DROP COLUMN config_pb;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let server =
        fleetform::localcloud::start(&fleetform::localcloud::ServerOptions::new(&cloud.db))
            .await
            .expect("a version 2 store opens");
    cloud.server = Some(server);
    let api = cloud.client().await;
    let (members, _) = api.list_members(&cloud.org_id).await.unwrap();
    let roles = api.list_member_roles(&cloud.org_id).await.unwrap();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0].identity_id, members[0].user_id);
    assert_eq!(roles[0].grant.resource_id, cloud.org_id);
    let org = MetadataTarget::Organization(cloud.org_id.clone());
    assert_eq!(api.get_metadata(&org).await.unwrap(), Metadata::new());
}

fn member_changes(p: &Plan) -> Vec<(Action, &str, common::Details<'_>)> {
    common::changes_of(p, Kind::Member)
}

fn with_members(members: &str, prune: bool) -> Desired {
    manifest(&format!(
        "version: 1\norganization: test-org\nprune: {prune}\nlocations: [{{name: HQ}}]\naccess:\n  members:\n{members}"
    ))
}

async fn try_plan(api: &dyn CloudApi, d: &Desired) -> Result<Plan, fleetform::plan::PlanErrors> {
    let o = fleetform::cloud::observe::observe(api, d, &ObserveOptions::default())
        .await
        .expect("observe");
    fleetform::plan::plan(d, &o, &fleetform::plan::Options::default())
}

const OWNER_AND_OPERATOR: &str = "    - email: Owner@Example.com
      grants: [{role: owner, organization: true}, {role: operator, location: HQ}]
";

#[tokio::test]
async fn member_roles_are_added_changed_and_removed() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);

    // Add: a role on a location the same plan creates.
    let p = converge(&api, &with_members(OWNER_AND_OPERATOR, false)).await;
    assert_eq!(
        member_changes(&p),
        [(
            Action::Update,
            "owner@example.com",
            vec![(None, Some("operator on location HQ"))]
        )]
    );
    let roles = api.list_member_roles(&cloud.org_id).await.unwrap();
    assert_eq!(roles.len(), 2, "{roles:?}");

    // Change: operator on HQ becomes owner of HQ.
    let changed = "    - email: owner@example.com
      grants: [{role: owner, organization: true}, {role: owner, location: HQ}]
";
    let p = converge(&api, &with_members(changed, false)).await;
    assert_eq!(
        member_changes(&p),
        [(
            Action::Update,
            "owner@example.com",
            vec![
                (None, Some("owner on location HQ")),
                (Some("operator on location HQ"), None)
            ]
        )]
    );

    // Remove: a role the manifest no longer lists; by user id this time.
    let (members, _) = api.list_members(&cloud.org_id).await.unwrap();
    let by_id = format!(
        "    - user_id: {}\n      grants: [{{role: owner, organization: true}}]\n",
        members[0].user_id
    );
    let p = converge(&api, &with_members(&by_id, false)).await;
    assert_eq!(
        member_changes(&p),
        [(
            Action::Update,
            members[0].user_id.as_str(),
            vec![(Some("owner on location HQ"), None)]
        )]
    );
    assert_eq!(api.list_member_roles(&cloud.org_id).await.unwrap().len(), 1);

    // Import writes the members' roles, and the round trip plans nothing.
    converge(&api, &with_members(OWNER_AND_OPERATOR, false)).await;
    let org = api.get_organization(&cloud.org_id).await.unwrap();
    let hq = api.list_locations(&org.id).await.unwrap()[0].id.clone();
    let (observed, shared) =
        observe_for_import(api.as_ref(), &org, &[hq], &ObserveOptions::default())
            .await
            .unwrap();
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    let members = fleetform::kinds::members::declared(&built.desired).expect("members imported");
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].grants.len(), 2, "{members:?}");
    let text = fleetform::manifest::export::export(&built.desired, &Default::default()).manifest;
    let again = plan_for(api.as_ref(), &manifest(&text)).await;
    assert!(again.is_empty(), "{text}\n{:?}", again.changes);
}

#[tokio::test]
async fn unlisted_members_are_left_alone_and_the_last_owner_stays() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);

    // Without prune a member the manifest does not list keeps their roles.
    let d = manifest(
        "version: 1\norganization: test-org\nlocations: [{name: HQ}]\naccess: {members: []}\n",
    );
    let p = plan_for(api.as_ref(), &d).await;
    assert!(member_changes(&p).is_empty(), "{:?}", member_changes(&p));
    assert!(
        p.unmanaged
            .iter()
            .any(|u| u.kind == Kind::Member && u.path == "owner@example.com"),
        "{:?}",
        p.unmanaged
    );

    // Under prune that would remove the only owner: a plan error, nothing applied.
    let mut pruned = d.clone();
    pruned.prune = true;
    let err = try_plan(api.as_ref(), &pruned)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("without an owner"), "{err}");
    // So would demoting the only owner.
    let demoted =
        "    - email: owner@example.com\n      grants: [{role: operator, organization: true}]\n";
    let err = try_plan(api.as_ref(), &with_members(demoted, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("without an owner"), "{err}");
    assert_eq!(api.list_member_roles(&cloud.org_id).await.unwrap().len(), 1);

    // A protected member's roles are never removed; unknown members are a plan error.
    converge(&api, &with_members(OWNER_AND_OPERATOR, false)).await;
    let protected = "    - email: owner@example.com\n      protect: true\n      grants: [{role: owner, organization: true}]\n";
    let err = try_plan(api.as_ref(), &with_members(protected, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("protect: true"), "{err}");
    let stranger = "    - email: nobody@example.com\n";
    let err = try_plan(api.as_ref(), &with_members(stranger, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a member of the organization"), "{err}");
}

#[tokio::test]
async fn a_member_whose_roles_changed_makes_a_saved_plan_stale() {
    use fleetform::model::{Grant, ResourceKind, Role};
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let hq = api
        .create_location(&cloud.org_id, "HQ", None)
        .await
        .unwrap();
    let saved = plan_for(api.as_ref(), &with_members(OWNER_AND_OPERATOR, false)).await;
    assert_eq!(member_changes(&saved).len(), 1);
    assert!(
        check_preconditions(Arc::clone(&api), &saved)
            .await
            .unwrap()
            .is_empty()
    );
    let (members, _) = api.list_members(&cloud.org_id).await.unwrap();
    let grant = Grant {
        role: Role::Operator,
        resource_kind: ResourceKind::Location,
        resource_id: hq.id.clone(),
    };
    api.add_member_role(&cloud.org_id, &members[0].user_id, &grant)
        .await
        .unwrap();
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, Kind::Member);
    assert!(stale[0].what.contains("roles changed"), "{}", stale[0].what);
}

#[tokio::test]
async fn prune_takes_the_roles_of_a_second_member_who_is_not_listed() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    converge(&api, &with_members(OWNER_AND_OPERATOR, false)).await;
    // A second member: invited, then accepting (the local cloud's stand-in for the Viam app).
    let hq = api.list_locations(&cloud.org_id).await.unwrap()[0]
        .id
        .clone();
    let operator = fleetform::model::Grant {
        role: fleetform::model::Role::Operator,
        resource_kind: fleetform::model::ResourceKind::Location,
        resource_id: hq,
    };
    api.create_invite(
        &cloud.org_id,
        "second@example.com",
        std::slice::from_ref(&operator),
        false,
    )
    .await
    .unwrap();
    let second =
        fleetform::localcloud::accept_invite(&cloud.db, &cloud.org_id, "second@example.com")
            .unwrap();
    let (members, invites) = api.list_members(&cloud.org_id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(invites.is_empty(), "the invite is gone once accepted");
    let held = |roles: &[fleetform::model::MemberRole]| {
        roles
            .iter()
            .filter(|r| r.identity_id == second)
            .map(|r| r.grant.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held(&api.list_member_roles(&cloud.org_id).await.unwrap()),
        [operator]
    );

    // Without prune the unlisted member keeps their role; with it, the role goes (a delete).
    let p = plan_for(api.as_ref(), &with_members(OWNER_AND_OPERATOR, false)).await;
    assert!(member_changes(&p).is_empty(), "{:#?}", p.changes);
    let p = converge(&api, &with_members(OWNER_AND_OPERATOR, true)).await;
    assert_eq!(
        member_changes(&p),
        [(
            Action::Delete,
            "second@example.com",
            vec![(Some("operator on location HQ"), None)]
        )]
    );
    assert!(held(&api.list_member_roles(&cloud.org_id).await.unwrap()).is_empty());
}

// -- OAuth apps: a registered kind with RPCs and a table of its own. -------------------------

const DASHBOARD: &str = "    - name: fleet-dashboard
      redirect_uris: [https://dash.example.com/callback]
      origin_uris: [https://dash.example.com]
      logout_uri: https://dash.example.com/logout
      client_authentication: required
      pkce: required
      url_validation: exact_match
      grants: [authorization_code, refresh_token]
";

fn with_apps(apps: &str, prune: bool) -> Desired {
    manifest(&format!(
        "version: 1\norganization: test-org\nprune: {prune}\naccess:\n  oauth_apps:\n{apps}"
    ))
}

fn app_changes(p: &Plan) -> Vec<(Action, &str, Vec<&str>)> {
    p.changes
        .iter()
        .filter(|c| c.kind == Kind::OAuthApp)
        .map(|c| {
            let fields = c.details.iter().map(|d| d.field.as_str()).collect();
            (c.action, c.path.as_str(), fields)
        })
        .collect()
}

fn oauth_config(redirect: &str) -> pb::OAuthConfig {
    pb::OAuthConfig {
        client_authentication: pb::ClientAuthentication::NotRequired as i32,
        pkce: pb::Pkce::Required as i32,
        url_validation: pb::UrlValidation::AllowWildcards as i32,
        redirect_uris: vec![redirect.to_string()],
        enabled_grants: vec![pb::EnabledGrant::Implicit as i32],
        ..Default::default()
    }
}

/// Creates app `name` by hand (as in the Viam app); returns its client id and secret.
async fn create_app(app: &mut common::App, org: &str, name: &str) -> (String, String) {
    let made = app
        .create_o_auth_app(pb::CreateOAuthAppRequest {
            org_id: org.to_string(),
            client_name: name.to_string(),
            oauth_config: Some(oauth_config("https://hand.example/cb")),
        })
        .await
        .unwrap()
        .into_inner();
    (made.client_id, made.client_secret)
}

async fn read_app(app: &mut common::App, org: &str, id: &str) -> pb::ReadOAuthAppResponse {
    app.read_o_auth_app(pb::ReadOAuthAppRequest {
        org_id: org.to_string(),
        client_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn app_ids(app: &mut common::App, org: &str) -> Vec<String> {
    app.list_o_auth_apps(pb::ListOAuthAppsRequest {
        org_id: org.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .client_ids
}

#[tokio::test]
async fn oauth_apps_are_created_updated_corrected_and_deleted_with_prune() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();

    // Create.
    let p = converge(&api, &with_apps(DASHBOARD, false)).await;
    assert_eq!(
        app_changes(&p),
        [(
            Action::Create,
            "fleet-dashboard",
            vec![
                "redirect_uris",
                "origin_uris",
                "logout_uri",
                "client_authentication",
                "pkce",
                "url_validation",
                "grants"
            ]
        )]
    );
    let ids = app_ids(&mut raw, &org).await;
    assert_eq!(ids.len(), 1);
    let read = read_app(&mut raw, &org, &ids[0]).await;
    assert_eq!(read.client_name, "fleet-dashboard");
    assert_eq!(
        read.client_secret.len(),
        32,
        "a new app gets a random secret"
    );
    let config = read.oauth_config.unwrap();
    assert_eq!(config.redirect_uris, ["https://dash.example.com/callback"]);
    assert_eq!(config.logout_uri, "https://dash.example.com/logout");
    assert_eq!(
        config.enabled_grants,
        [
            pb::EnabledGrant::AuthorizationCode as i32,
            pb::EnabledGrant::RefreshToken as i32
        ]
    );

    // Update: grants and a redirect change; the plan names those fields only.
    let updated = DASHBOARD
        .replace(
            "[authorization_code, refresh_token]",
            "[authorization_code]",
        )
        .replace("callback]", "callback, https://dash.example.com/cb2]");
    let p = converge(&api, &with_apps(&updated, false)).await;
    assert_eq!(
        app_changes(&p),
        [(
            Action::Update,
            "fleet-dashboard",
            vec!["redirect_uris", "grants"]
        )]
    );
    assert_eq!(app_ids(&mut raw, &org).await, ids, "updated in place");

    // Drift: a change by hand is planned back.
    raw.update_o_auth_app(pb::UpdateOAuthAppRequest {
        org_id: org.clone(),
        client_id: ids[0].clone(),
        client_name: "fleet-dashboard".into(),
        oauth_config: Some(oauth_config("https://evil.example/cb")),
    })
    .await
    .unwrap();
    let p = converge(&api, &with_apps(&updated, false)).await;
    assert_eq!(app_changes(&p).len(), 1);
    assert_eq!(p.changes[0].reason, "config differs");
    let config = read_app(&mut raw, &org, &ids[0])
        .await
        .oauth_config
        .unwrap();
    assert_eq!(config.url_validation, pb::UrlValidation::ExactMatch as i32);

    // Unmanaged: an app made by hand is reported and kept; with prune it is deleted.
    let (by_hand, _) = create_app(&mut raw, &org, "by-hand").await;
    let p = plan_for(api.as_ref(), &with_apps(&updated, false)).await;
    assert!(app_changes(&p).is_empty(), "{:#?}", p.changes);
    let unmanaged: Vec<(&str, &str)> = p
        .unmanaged
        .iter()
        .filter(|u| u.kind == Kind::OAuthApp)
        .map(|u| (u.path.as_str(), u.id.as_str()))
        .collect();
    assert_eq!(unmanaged, [("by-hand", by_hand.as_str())]);
    let p = converge(&api, &with_apps(&updated, true)).await;
    assert_eq!(app_changes(&p), [(Action::Delete, "by-hand", vec![])]);
    assert_eq!(app_ids(&mut raw, &org).await, ids);

    // Without the section, OAuth apps are not read at all.
    let none = manifest("version: 1\norganization: test-org\n");
    assert!(plan_for(api.as_ref(), &none).await.unmanaged.is_empty());
}

#[tokio::test]
async fn a_changed_oauth_app_makes_a_saved_plan_stale() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();

    // A create is stale once an app of its name exists.
    let saved = plan_for(api.as_ref(), &with_apps(DASHBOARD, false)).await;
    assert!(
        check_preconditions(Arc::clone(&api), &saved)
            .await
            .unwrap()
            .is_empty()
    );
    let (id, _) = create_app(&mut raw, &org, "fleet-dashboard").await;
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, Kind::OAuthApp);
    assert!(stale[0].what.contains("created since"), "{}", stale[0].what);

    // An update is stale once the app changed, and once it is gone.
    let saved = plan_for(api.as_ref(), &with_apps(DASHBOARD, false)).await;
    assert_eq!(app_changes(&saved).len(), 1);
    assert_eq!(saved.changes[0].action, Action::Update);
    raw.update_o_auth_app(pb::UpdateOAuthAppRequest {
        org_id: org.clone(),
        client_id: id.clone(),
        client_name: "fleet-dashboard".into(),
        oauth_config: Some(oauth_config("https://other.example/cb")),
    })
    .await
    .unwrap();
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].what.contains("changed since"), "{}", stale[0].what);
    raw.delete_o_auth_app(pb::DeleteOAuthAppRequest {
        org_id: org.clone(),
        client_id: id,
    })
    .await
    .unwrap();
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert!(stale[0].what.contains("deleted since"), "{}", stale[0].what);
}

#[tokio::test]
async fn imported_oauth_apps_round_trip_and_two_of_one_name_are_refused() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();
    converge(&api, &with_apps(DASHBOARD, false)).await;
    let (_, secret) = create_app(&mut raw, &org, "by-hand").await;

    let o = api.get_organization(&org).await.unwrap();
    let (observed, shared) = observe_for_import(api.as_ref(), &o, &[], &ObserveOptions::default())
        .await
        .unwrap();
    let observed_json = serde_json::to_string(&observed).unwrap();
    assert!(!observed_json.contains(&secret), "no secret is observed");
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    let text = fleetform::manifest::export::export(&built.desired, &Default::default()).manifest;
    assert!(text.contains("oauth_apps:"), "{text}");
    assert!(text.contains("name: by-hand"), "{text}");
    assert!(text.contains("grants:\n        - implicit"), "{text}");
    assert!(!text.contains(&secret), "{text}");
    let back = manifest(&text);
    let again = plan_for(api.as_ref(), &back).await;
    assert!(again.is_empty(), "{:#?}\n{text}", again.changes);

    // A second app of a declared name: the plan refuses to guess, naming both.
    let (twin, _) = create_app(&mut raw, &org, "fleet-dashboard").await;
    let o2 = fleetform::cloud::observe::observe(
        api.as_ref(),
        &with_apps(DASHBOARD, false),
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    let e = fleetform::plan::plan(
        &with_apps(DASHBOARD, false),
        &o2,
        &fleetform::plan::Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fleet-dashboard") && e.contains(&twin), "{e}");
    assert!(e.contains("does not guess"), "{e}");
    // Import leaves both out, with a warning.
    let (observed, shared) = observe_for_import(api.as_ref(), &o, &[], &ObserveOptions::default())
        .await
        .unwrap();
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    assert!(
        built.warnings.iter().any(|w| w.contains(&twin)),
        "{:?}",
        built.warnings
    );
}

#[test]
fn oauth_app_sections_are_checked_where_they_are_written() {
    let text = "version: 1\norganization: test-org\naccess:\n  oauth_apps:\n    - name: a\n      pkce: requird\n      grants: [refresh_tokn]\n    - name: a\n      grants: [implicit]\n      redirect_uris: ['has space']\n";
    let e = fleetform::manifest::parse_str(text, std::path::Path::new("fleet.yaml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `required`"), "{e}");
    assert!(e.contains("did you mean `refresh_token`"), "{e}");
    assert!(
        e.contains("duplicate OAuth app `a` (first at line 5)"),
        "{e}"
    );
    assert!(e.contains("is not a URI"), "{e}");
    assert!(e.contains("fleet.yaml:6"), "positioned: {e}");
}

#[tokio::test]
async fn the_oauth_client_secret_is_never_printed_or_saved() {
    let env = crate::common::CliEnv::start(&[]);
    let manifest_text =
        |apps: &str| format!("version: 1\norganization: local\naccess:\n  oauth_apps:\n{apps}");
    env.write("fleet.yaml", &manifest_text(DASHBOARD));
    let applied = env.ok(&["apply", "fleet.yaml", "--yes"]);
    let client = env.client().await;
    let org = client.list_organizations().await.unwrap()[0].id.clone();
    let mut raw = common::connect_app(&env.endpoint, &env.key_id, &env.key).await;
    let id = app_ids(&mut raw, &org).await.remove(0);
    let secret = read_app(&mut raw, &org, &id).await.client_secret;
    assert!(!secret.is_empty());
    // Drift, so that the plan has an update of the app.
    raw.update_o_auth_app(pb::UpdateOAuthAppRequest {
        org_id: org.clone(),
        client_id: id.clone(),
        client_name: "fleet-dashboard".into(),
        oauth_config: Some(oauth_config("https://evil.example/cb")),
    })
    .await
    .unwrap();
    let text = env.ok(&["plan", "fleet.yaml"]);
    assert!(text.contains("OAuth app fleet-dashboard"), "{text}");
    let json = env.ok(&["plan", "fleet.yaml", "--output", "json"]);
    env.ok(&["plan", "fleet.yaml", "--out", "plan.json"]);
    let saved = std::fs::read_to_string(env.dir.path().join("plan.json")).unwrap();
    assert!(saved.contains("update_oauth_app"), "{saved}");
    let reapplied = env.ok(&["apply", "plan.json", "--yes"]);
    let imported = env.ok(&["import"]);
    assert!(imported.contains("fleet-dashboard"), "{imported}");
    for (what, out) in [
        ("apply", &applied),
        ("plan", &text),
        ("plan JSON", &json),
        ("saved plan", &saved),
        ("apply of the saved plan", &reapplied),
        ("import", &imported),
    ] {
        assert!(!out.contains(&secret), "{what} shows the secret:\n{out}");
    }
}

#[tokio::test]
async fn the_local_cloud_lets_only_owners_manage_oauth_apps_of_their_organization() {
    use fleetform::model::{Grant, ResourceKind, Role};
    let cloud = Cloud::start().await;
    let owner = cloud.client().await;
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();
    let (id, _) = create_app(&mut raw, &org, "ours").await;

    // An operator of the whole organization may not list, read, create, update or delete.
    let operator = owner
        .create_key(
            &org,
            "operator",
            &[Grant {
                role: Role::Operator,
                resource_kind: ResourceKind::Organization,
                resource_id: org.clone(),
            }],
        )
        .await
        .unwrap();
    let mut op = common::connect_app(&cloud.endpoint(), &operator.id, operator.key.expose()).await;
    let denied = tonic::Code::PermissionDenied;
    let list = op
        .list_o_auth_apps(pb::ListOAuthAppsRequest {
            org_id: org.clone(),
        })
        .await;
    common::assert_code(
        list,
        denied,
        "listing OAuth apps needs the organization owner role",
    );
    let read = op
        .read_o_auth_app(pb::ReadOAuthAppRequest {
            org_id: org.clone(),
            client_id: id.clone(),
        })
        .await;
    common::assert_code(read, denied, "reading OAuth apps");
    let create = op
        .create_o_auth_app(pb::CreateOAuthAppRequest {
            org_id: org.clone(),
            client_name: "x".into(),
            oauth_config: Some(oauth_config("https://x.example/cb")),
        })
        .await;
    common::assert_code(create, denied, "creating OAuth apps");
    let update = op
        .update_o_auth_app(pb::UpdateOAuthAppRequest {
            org_id: org.clone(),
            client_id: id.clone(),
            client_name: "x".into(),
            oauth_config: Some(oauth_config("https://x.example/cb")),
        })
        .await;
    common::assert_code(update, denied, "updating OAuth apps");
    let delete = op
        .delete_o_auth_app(pb::DeleteOAuthAppRequest {
            org_id: org.clone(),
            client_id: id.clone(),
        })
        .await;
    common::assert_code(delete, denied, "deleting OAuth apps");

    // Another organization's owner: our organization is denied, our app is not found in
    // theirs.
    let other = fleetform::localcloud::init(&cloud.db, "other-org", "other@example.com").unwrap();
    let mut theirs =
        common::connect_app(&cloud.endpoint(), &other.key_id, other.key.expose()).await;
    let read = theirs
        .read_o_auth_app(pb::ReadOAuthAppRequest {
            org_id: org.clone(),
            client_id: id.clone(),
        })
        .await;
    common::assert_code(read, denied, "no access to organization");
    let read = theirs
        .read_o_auth_app(pb::ReadOAuthAppRequest {
            org_id: other.org_id.clone(),
            client_id: id.clone(),
        })
        .await;
    common::assert_code(read, tonic::Code::NotFound, "not found");
    let delete = theirs
        .delete_o_auth_app(pb::DeleteOAuthAppRequest {
            org_id: other.org_id.clone(),
            client_id: id.clone(),
        })
        .await;
    common::assert_code(delete, tonic::Code::NotFound, "not found");
    assert!(app_ids(&mut theirs, &other.org_id).await.is_empty());

    // Arguments are checked; nothing was changed by any of the refused calls.
    let bad = raw
        .create_o_auth_app(pb::CreateOAuthAppRequest {
            org_id: org.clone(),
            client_name: "y".into(),
            oauth_config: None,
        })
        .await;
    common::assert_code(
        bad,
        tonic::Code::InvalidArgument,
        "oauth_config is required",
    );
    assert_eq!(app_ids(&mut raw, &org).await, std::slice::from_ref(&id));
    assert_eq!(read_app(&mut raw, &org, &id).await.client_name, "ours");
}

/// `(service, method)` of every RPC `file` declares.
fn rpcs_of(file: &str) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(format!("{}/proto/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut service = String::new();
    let mut out = vec![];
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.trim_end_matches('{').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let method = rest.split('(').next().unwrap().trim().to_string();
            out.push((service.clone(), method));
        }
    }
    out
}

/// Calls `path` with an empty request as the key of `cloud` (or no one); the answer's code.
async fn raw_call(cloud: &Cloud, path: &str, token: Option<&str>) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(cloud.channel().await);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(req, path.parse().unwrap(), codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn every_rpc_of_the_protos_is_served() {
    let cloud = Cloud::start().await;
    let token = cloud.token().await;
    let mut rpcs = rpcs_of("viam/app/v1/app.proto");
    rpcs.extend(rpcs_of("viam/app/v1/robot.proto"));
    assert!(rpcs.len() > 60, "{rpcs:?}");
    let kinds = fleetform::localcloud::kind::served_methods();
    assert!(kinds.contains(&"ListOAuthApps"), "{kinds:?}");
    for (service, method) in &rpcs {
        let path = format!("/viam.app.v1.{service}/{method}");
        let code = raw_call(&cloud, &path, Some(&token)).await;
        assert_ne!(code, tonic::Code::Unimplemented, "{path} is not served");
    }
    // An RPC of Viam's API the local cloud does not serve is still UNIMPLEMENTED, and a
    // kind's RPC needs the same authentication as every other.
    let unknown = "/viam.app.v1.AppService/CreateOAuthAppUser";
    assert_eq!(
        raw_call(&cloud, unknown, Some(&token)).await,
        tonic::Code::Unimplemented
    );
    for path in [
        "/viam.app.v1.AppService/ListOAuthApps",
        "/viam.app.v1.AppService/GetOrganization",
    ] {
        assert_eq!(
            raw_call(&cloud, path, None).await,
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            raw_call(&cloud, path, Some("not-a-token")).await,
            tonic::Code::Unauthenticated
        );
    }
}

#[tokio::test]
async fn the_router_leaves_other_rpcs_alone_and_kinds_get_the_same_fault_layer() {
    let cloud = Cloud::start_with(fleetform::localcloud::Faults {
        unimplemented: &["ListOAuthApps"],
        ..Default::default()
    })
    .await;
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();
    // A kind's RPC goes through the fault layer like every other.
    let listed = raw
        .list_o_auth_apps(pb::ListOAuthAppsRequest {
            org_id: org.clone(),
        })
        .await;
    common::assert_code(listed, tonic::Code::Unimplemented, "ListOAuthApps");
    // The other kind RPCs and the generated service's RPCs answer as before.
    let (id, _) = create_app(&mut raw, &org, "ours").await;
    assert_eq!(read_app(&mut raw, &org, &id).await.client_name, "ours");
    let got = raw
        .get_organization(pb::GetOrganizationRequest {
            organization_id: org.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(got.name, "test-org");
    let parts = raw
        .get_robot_parts(pb::GetRobotPartsRequest {
            robot_id: "0".repeat(2000),
        })
        .await;
    common::assert_code(parts, tonic::Code::InvalidArgument, "robot_id");
}

#[tokio::test]
async fn a_store_from_before_a_kind_gains_its_table_when_opened() {
    let mut cloud = Cloud::start().await;
    cloud.server.take().unwrap().shutdown().await.unwrap();
    // A store of the same schema version, written before the kind existed.
    {
        let db = rusqlite::Connection::open(&cloud.db).unwrap();
        db.execute_batch("DROP TABLE oauth_apps;").unwrap();
    }
    let opts = fleetform::localcloud::ServerOptions::new(&cloud.db);
    cloud.server = Some(fleetform::localcloud::start(&opts).await.unwrap());
    let mut raw = cloud.app().await;
    let org = cloud.org_id.clone();
    let (id, _) = create_app(&mut raw, &org, "after").await;
    assert_eq!(app_ids(&mut raw, &org).await, std::slice::from_ref(&id));
}
