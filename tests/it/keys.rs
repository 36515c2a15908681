//! API keys (issue 17): the local cloud's key RPCs and the roles it enforces on keys, the
//! manifest's `access: keys:` through plan, apply and import, and `fleetform keys`.

use crate::common::{Cloud, assert_code};
use fleetform::cloud::{CloudApi, Code, Credentials};
use fleetform::model::{Grant, ResourceKind, Role};
use fleetform::proto::viam::app::v1 as pb;

fn grant(role: Role, resource_kind: ResourceKind, id: &str) -> Grant {
    Grant {
        role,
        resource_kind,
        resource_id: id.to_string(),
    }
}

/// A fleetform client authenticated with another key of the same local cloud.
async fn client_with(cloud: &Cloud, key_id: &str, key: &str) -> fleetform::cloud::Client {
    fleetform::cloud::Client::connect(fleetform::cloud::ClientOptions::new(
        cloud.endpoint(),
        Credentials::new(key_id, key),
    ))
    .await
    .expect("connect")
}

#[tokio::test]
async fn a_location_operator_key_reaches_its_location_only() {
    let cloud = Cloud::start().await;
    let owner = cloud.client().await;
    let org = cloud.org_id.as_str();
    let hq = owner.create_location(org, "HQ", None).await.unwrap();
    let line = owner
        .create_location(org, "Line", Some(&hq.id))
        .await
        .unwrap();
    let lab = owner.create_location(org, "Lab", None).await.unwrap();
    let arm = owner.new_machine("arm", &line.id).await.unwrap();
    let probe = owner.new_machine("probe", &lab.id).await.unwrap();

    let made = owner
        .create_key(
            org,
            "hq-operator",
            &[grant(Role::Operator, ResourceKind::Location, &hq.id)],
        )
        .await
        .unwrap();
    let scoped = client_with(&cloud, &made.id, made.key.expose()).await;

    // Reads and writes inside HQ (and its nested location) work.
    assert_eq!(scoped.get_location(&line.id).await.unwrap().name, "Line");
    let parts = scoped.get_parts(&arm).await.unwrap();
    scoped
        .update_part(
            &parts[0].id,
            &parts[0].name,
            Some(&serde_json::json!({"components": []})),
            None,
        )
        .await
        .unwrap();
    scoped.new_machine("cam", &hq.id).await.unwrap();
    let listed: Vec<String> = scoped
        .list_locations(org)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        listed,
        ["HQ", "Line"],
        "only what the key reaches is listed"
    );

    // Everything else is refused.
    let err = scoped.get_location(&lab.id).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = scoped.get_parts(&probe).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = scoped.new_machine("intruder", &lab.id).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = scoped.create_location(org, "Top", None).await.unwrap_err();
    assert_eq!(err.code, Code::PermissionDenied, "{err}");
    let err = scoped.list_keys(org).await.unwrap_err();
    assert_eq!(err.code, Code::PermissionDenied, "{err}");
    let err = scoped
        .create_key(
            org,
            "escalate",
            &[grant(Role::Owner, ResourceKind::Organization, org)],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::PermissionDenied, "{err}");

    // The owner key sees all of it, including the new key (never its secret).
    let keys = owner.list_keys(org).await.unwrap();
    let listed = keys.iter().find(|k| k.id == made.id).expect("listed");
    assert_eq!(listed.name, "hq-operator");
    assert_eq!(
        listed.grants,
        [grant(Role::Operator, ResourceKind::Location, &hq.id)]
    );
    assert_eq!(owner.list_locations(org).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_key_changes_roles_rotates_and_goes_away_at_once() {
    let cloud = Cloud::start().await;
    let owner = cloud.client().await;
    let org = cloud.org_id.as_str();
    let lab = owner.create_location(org, "Lab", None).await.unwrap();
    let made = owner
        .create_key(
            org,
            "robot",
            &[grant(Role::Owner, ResourceKind::Organization, org)],
        )
        .await
        .unwrap();
    let mut a = crate::common::connect_app(&cloud.endpoint(), &made.id, made.key.expose()).await;

    // Narrowed to a location the key does not hold: the same token loses the rest at once.
    let hq = owner.create_location(org, "HQ", None).await.unwrap();
    let location_op = grant(Role::Operator, ResourceKind::Location, &hq.id);
    owner
        .add_key_role(org, &made.id, &location_op)
        .await
        .unwrap();
    owner
        .remove_key_role(
            org,
            &made.id,
            &grant(Role::Owner, ResourceKind::Organization, org),
        )
        .await
        .unwrap();
    assert_code(
        a.get_location(pb::GetLocationRequest {
            location_id: lab.id.clone(),
        })
        .await,
        tonic::Code::NotFound,
        "not found",
    );
    a.get_location(pb::GetLocationRequest {
        location_id: hq.id.clone(),
    })
    .await
    .expect("still reaches HQ");

    // Rotation keeps the id; the old secret stops working.
    owner.rename_key(&made.id, "robot-2").await.unwrap();
    let rotated = owner.rotate_key(&made.id).await.unwrap();
    assert_eq!(rotated.id, made.id);
    assert_ne!(rotated.key, made.key);
    let err = crate::common::authenticate(&cloud.channel().await, &made.id, made.key.expose())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let fresh = client_with(&cloud, &rotated.id, rotated.key.expose()).await;
    assert_eq!(fresh.get_location(&hq.id).await.unwrap().name, "HQ");

    // Deleted: its live token is refused.
    owner.delete_key(&made.id).await.unwrap();
    assert_code(
        a.get_location(pb::GetLocationRequest {
            location_id: hq.id.clone(),
        })
        .await,
        tonic::Code::Unauthenticated,
        "no longer exists",
    );
    assert!(
        owner
            .list_keys(org)
            .await
            .unwrap()
            .iter()
            .all(|k| k.id != made.id)
    );

    // The last key that owns the organization stays.
    let err = owner.delete_key(&cloud.key_id).await.unwrap_err();
    assert_eq!(err.code, Code::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_version_3_store_gives_its_keys_the_owner_role() {
    let mut cloud = Cloud::start().await;
    cloud.server.take().unwrap().shutdown().await.unwrap();
    // What version 3 wrote: keys without names or roles.
    {
        let db = rusqlite::Connection::open(&cloud.db).unwrap();
        db.execute_batch(
            "DROP TABLE key_auths; ALTER TABLE api_keys DROP COLUMN name;
             UPDATE meta SET value = '3' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let server =
        fleetform::localcloud::start(&fleetform::localcloud::ServerOptions::new(&cloud.db))
            .await
            .expect("a version 3 store opens");
    cloud.server = Some(server);
    let api = cloud.client().await;
    let keys = api.list_keys(&cloud.org_id).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].id, cloud.key_id);
    assert_eq!(keys[0].name, "");
    assert_eq!(
        keys[0].grants,
        [grant(
            Role::Owner,
            ResourceKind::Organization,
            &cloud.org_id
        )]
    );
}
