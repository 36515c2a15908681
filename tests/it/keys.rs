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
async fn a_machine_owner_key_reaches_that_machine_and_its_parts_only() {
    let cloud = Cloud::start().await;
    let owner = cloud.client().await;
    let org = cloud.org_id.as_str();
    let hq = owner.create_location(org, "HQ", None).await.unwrap();
    let arm = owner.new_machine("arm", &hq.id).await.unwrap();
    let cam = owner.new_machine("cam", &hq.id).await.unwrap();
    let kit = owner
        .create_fragment(
            org,
            "kit",
            &serde_json::json!({}),
            fleetform::model::Visibility::Private,
        )
        .await
        .unwrap();
    let made = owner
        .create_key(org, "arm", &[grant(Role::Owner, ResourceKind::Robot, &arm)])
        .await
        .unwrap();
    let key = client_with(&cloud, &made.id, made.key.expose()).await;

    // Its machine, its parts and their metadata.
    assert_eq!(key.get_machine(&arm).await.unwrap().name, "arm");
    let part = key.get_parts(&arm).await.unwrap().remove(0);
    let target = fleetform::model::MetadataTarget::Part(part.id.clone());
    let data = serde_json::json!({"slot": 1}).as_object().unwrap().clone();
    key.update_metadata(&target, &data).await.unwrap();
    assert_eq!(key.get_metadata(&target).await.unwrap(), data);
    // It may read the organization's fragments (a part imports them), not change them.
    assert_eq!(key.get_fragment(&kit.id).await.unwrap().name, "kit");
    let err = key
        .create_fragment(
            org,
            "mine",
            &serde_json::json!({}),
            fleetform::model::Visibility::Private,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::PermissionDenied, "{err}");

    // Not its location, not the other machine, not the organization's settings.
    let err = key.get_location(&hq.id).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = key.get_parts(&cam).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = key.delete_machine(&cam).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = key
        .update_organization_settings(org, Some("renamed"), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::PermissionDenied, "{err}");
    let machines: Vec<String> = key
        .list_machines_for_org(org)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        machines,
        std::slice::from_ref(&arm),
        "only its machine is listed"
    );
    // Organization-wide reads any key may make: the organization itself.
    assert_eq!(key.get_organization(org).await.unwrap().id, org);
    // The machine goes, and the key's role with it: it then reaches nothing.
    owner.delete_machine(&arm).await.unwrap();
    let keys = owner.list_keys(org).await.unwrap();
    let listed = keys.iter().find(|k| k.id == made.id).unwrap();
    assert!(listed.grants.is_empty(), "{:?}", listed.grants);
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
             ALTER TABLE parts DROP COLUMN config_pb;
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

// -- The manifest's `access: keys:` ---------------------------------------------------------

use crate::common::{manifest, plan_for};
use fleetform::apply::{ApplyOptions, NewKey, apply};
use fleetform::model::Desired;
use fleetform::plan::{Action, Kind, Op, Plan};
use std::sync::Arc;

fn with_keys(keys: &str, prune: bool) -> Desired {
    manifest(&format!(
        "version: 1\norganization: test-org\nprune: {prune}\nlocations:\n  - name: HQ\n    locations: [{{name: Line}}]\n  - name: Lab\naccess:\n  keys:\n{keys}"
    ))
}

/// Applies `p`, returning the keys it created with their secrets.
async fn run(api: &Arc<dyn CloudApi>, p: &Plan) -> Vec<NewKey> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = ApplyOptions {
        new_keys: Some(tx),
        ..Default::default()
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let report = apply(Arc::clone(api), p, &opts, None, stop).await;
    assert!(report.is_success(), "{}", crate::common::failures(&report));
    drop(opts);
    let mut made = vec![];
    while let Some(k) = rx.recv().await {
        made.push(k);
    }
    made
}

/// Plans and applies `d`, checks that a second plan is empty; the plan and the new keys.
async fn converge(api: &Arc<dyn CloudApi>, d: &Desired) -> (Plan, Vec<NewKey>) {
    let p = plan_for(api.as_ref(), d).await;
    let made = run(api, &p).await;
    let again = plan_for(api.as_ref(), d).await;
    assert!(again.is_empty(), "not converged: {:#?}", again.changes);
    (p, made)
}

fn key_changes(p: &Plan) -> Vec<(Action, &str, crate::common::Details<'_>)> {
    crate::common::changes_of(p, Kind::ApiKey)
}

const LINE_OPERATOR: &str =
    "    - name: line-robot\n      grants: [{role: operator, location: HQ}]\n";

#[tokio::test]
async fn a_key_from_the_manifest_reads_its_location_and_is_refused_elsewhere() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let (p, made) = converge(&api, &with_keys(LINE_OPERATOR, false)).await;
    assert_eq!(
        key_changes(&p),
        [(
            Action::Create,
            "line-robot",
            vec![(None, Some("operator on location HQ"))]
        )]
    );
    // Neither the plan nor its JSON holds a secret.
    assert_eq!(made.len(), 1);
    let secret = made[0].secret.key.expose();
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains(secret), "the plan never holds a secret");
    assert_eq!(made[0].name, "line-robot");

    let org = cloud.org_id.as_str();
    let locations = api.list_locations(org).await.unwrap();
    let id_of = |name: &str| {
        locations
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.id.clone())
            .unwrap()
    };
    let robot = client_with(&cloud, &made[0].secret.id, secret).await;
    assert_eq!(robot.get_location(&id_of("HQ")).await.unwrap().name, "HQ");
    assert_eq!(
        robot.get_location(&id_of("Line")).await.unwrap().name,
        "Line"
    );
    let err = robot.get_location(&id_of("Lab")).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    let err = robot.new_machine("x", &id_of("Lab")).await.unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
    robot.new_machine("x", &id_of("Line")).await.unwrap();
}

#[tokio::test]
async fn key_roles_change_in_place_and_prune_deletes_undeclared_keys() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let (_, made) = converge(&api, &with_keys(LINE_OPERATOR, false)).await;
    let id = made[0].secret.id.clone();

    // Update: the key keeps its id and secret; one role added, one taken.
    let (p, again) = converge(
        &api,
        &with_keys(
            "    - name: line-robot\n      grants: [{role: owner, location: Lab}]\n",
            false,
        ),
    )
    .await;
    assert!(again.is_empty(), "no new secret for a role change");
    assert_eq!(
        key_changes(&p),
        [(
            Action::Update,
            "line-robot",
            vec![
                (None, Some("owner on location Lab")),
                (Some("operator on location HQ"), None)
            ]
        )]
    );
    assert!(matches!(&p.changes[0].op, Op::UpdateKeyRoles { key_id, .. } if key_id == &id));
    let robot = client_with(&cloud, &id, made[0].secret.key.expose()).await;
    assert!(
        robot
            .list_locations(&cloud.org_id)
            .await
            .unwrap()
            .iter()
            .all(|l| l.name == "Lab")
    );

    // Without prune, an undeclared key is unmanaged; with it, deleted. fleetform's own key is
    // declared, so prune keeps it.
    let own = "    - name: fleetform\n      grants: [{role: owner, organization: true}]\n";
    let p = plan_for(api.as_ref(), &with_keys(own, false)).await;
    assert!(key_changes(&p).is_empty(), "{:#?}", p.changes);
    assert!(
        p.unmanaged
            .iter()
            .any(|u| u.kind == Kind::ApiKey && u.path == "line-robot")
    );
    let (p, _) = converge(&api, &with_keys(own, true)).await;
    assert_eq!(key_changes(&p), [(Action::Delete, "line-robot", vec![])]);
    let keys = api.list_keys(&cloud.org_id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, cloud.key_id);
}

#[tokio::test]
async fn the_own_key_is_never_deleted_or_downgraded_and_protect_holds() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let try_plan = |d: Desired| {
        let api = Arc::clone(&api);
        async move {
            let o = fleetform::cloud::observe::observe(
                api.as_ref(),
                &d,
                &fleetform::cloud::observe::ObserveOptions::default(),
            )
            .await
            .unwrap();
            fleetform::plan::plan(&d, &o, &fleetform::plan::Options::default())
        }
    };
    // Prune would delete the key fleetform runs with: a plan error naming it.
    let err = try_plan(with_keys(LINE_OPERATOR, true))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("API key fleetform"), "{err}");
    assert!(err.contains(&cloud.key_id), "{err}");
    assert!(err.contains("authenticated with"), "{err}");
    // Declared with fewer roles: a downgrade, refused.
    let err = try_plan(with_keys(
        "    - name: fleetform\n      grants: [{role: operator, location: HQ}]\n",
        false,
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("would take away owner on organization"),
        "{err}"
    );

    // protect: true refuses taking a role away from a declared key.
    converge(&api, &with_keys(
        "    - name: line-robot\n      protect: true\n      grants: [{role: operator, location: HQ}, {role: operator, location: Lab}]\n",
        false,
    ))
    .await;
    let err = try_plan(with_keys(
        "    - name: line-robot\n      protect: true\n      grants: [{role: operator, location: HQ}]\n",
        false,
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("protect: true"), "{err}");
}

#[tokio::test]
async fn imported_keys_round_trip_to_a_plan_with_no_changes() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let (p, _) = converge(&api, &with_keys(LINE_OPERATOR, false)).await;
    let org = api.get_organization(&p.organization_id).await.unwrap();
    let roots: Vec<String> = api
        .list_locations(&org.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.parent_id.is_none())
        .map(|l| l.id)
        .collect();
    // The key `cloud init` made has no name until it is given one.
    api.rename_key(&cloud.key_id, "fleetform").await.unwrap();
    let (observed, shared) = fleetform::cloud::observe::observe_for_import(
        api.as_ref(),
        &org,
        &roots,
        &fleetform::cloud::observe::ObserveOptions::default(),
    )
    .await
    .unwrap();
    let built = fleetform::manifest::from_observed::build(&observed, None, shared);
    let keys = built.desired.keys.clone().expect("keys imported");
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["fleetform", "line-robot"]
    );
    let text = fleetform::manifest::export::export(&built.desired, &Default::default()).manifest;
    assert!(text.contains("keys:"), "{text}");
    let back = manifest(&text);
    assert_eq!(back.keys, built.desired.keys);
    let again = plan_for(api.as_ref(), &back).await;
    assert!(again.is_empty(), "{:#?}\n{text}", again.changes);
}

// -- The CLI: `apply` writes a new key's secret once; `keys list|rotate` ---------------------

/// The `export VIAM_API_KEY_ID=…` and `export VIAM_API_KEY=…` values of a key file.
fn key_file(text: &str) -> (String, String) {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    (value("VIAM_API_KEY_ID"), value("VIAM_API_KEY"))
}

#[tokio::test]
async fn apply_writes_a_new_keys_secret_once_to_a_private_file() {
    let env = crate::common::CliEnv::start(&[]);
    env.write(
        "fleet.yaml",
        &format!(
            "version: 1\norganization: local\nlocations: [{{name: HQ}}, {{name: Lab}}]\naccess:\n  keys:\n{LINE_OPERATOR}"
        ),
    );
    let plan = env.ok(&["plan", "fleet.yaml"]);
    assert!(plan.contains("API key line-robot"), "{plan}");
    let applied = env.ok(&["apply", "fleet.yaml", "--yes"]);
    let file = env.dir.path().join(".fleetform/keys/line-robot.env");
    let (id, secret) = key_file(&std::fs::read_to_string(&file).unwrap());
    assert!(
        !applied.contains(&secret),
        "the secret is not shown:\n{applied}"
    );
    assert!(
        applied.contains(".fleetform/keys/line-robot.env"),
        "{applied}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The key in the file works, and only where its role says.
    let cloud = env.client().await;
    let hq = cloud
        .list_locations(&cloud.list_organizations().await.unwrap()[0].id)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == "HQ")
        .unwrap();
    let robot = fleetform::cloud::Client::connect(fleetform::cloud::ClientOptions::new(
        &env.endpoint,
        Credentials::new(&id, &secret),
    ))
    .await
    .unwrap();
    assert_eq!(robot.get_location(&hq.id).await.unwrap().name, "HQ");

    // `keys list` names it, never a secret; the running key is marked.
    let listed = env.ok(&["keys", "list"]);
    assert!(
        listed.contains("line-robot") && listed.contains(&id),
        "{listed}"
    );
    assert!(listed.contains("operator on location"), "{listed}");
    assert!(listed.contains("(this key)"), "{listed}");
    assert!(!listed.contains(&secret), "{listed}");

    // `keys rotate` replaces the file's secret; the old one stops working.
    env.ok(&["keys", "rotate", "line-robot", "--yes"]);
    let (same_id, new_secret) = key_file(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(same_id, id);
    assert_ne!(new_secret, secret);
    let err = crate::common::authenticate(&cloud_channel(&env.endpoint).await, &id, &secret)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // --show-secrets prints export lines instead of writing a file.
    let shown = env.run(&["keys", "rotate", "line-robot", "--yes", "--show-secrets"]);
    assert!(shown.status.success());
    let (_, printed) = key_file(&String::from_utf8_lossy(&shown.stdout));
    assert_ne!(printed, new_secret);
    // `apply --show-secrets` prints a new key's export lines once (after the summary) and
    // writes no file; with JSON output it is refused, before anything is applied.
    env.write(
        "fleet.yaml",
        &format!(
            "version: 1\norganization: local\nlocations: [{{name: HQ}}, {{name: Lab}}]\naccess:\n  keys:\n{LINE_OPERATOR}    - name: lab-robot\n      grants: [{{role: operator, location: Lab}}]\n"
        ),
    );
    let refused = env.run(&[
        "apply",
        "fleet.yaml",
        "--yes",
        "--show-secrets",
        "-o",
        "json",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--keys-out"));
    let shown = env.run(&["apply", "fleet.yaml", "--yes", "--show-secrets"]);
    assert!(shown.status.success());
    let stdout = String::from_utf8_lossy(&shown.stdout);
    let (lab_id, _) = key_file(&stdout);
    assert!(stdout.contains("# API key \"lab-robot\""), "{stdout}");
    assert!(
        !env.dir
            .path()
            .join(".fleetform/keys/lab-robot.env")
            .exists()
    );
    assert!(env.ok(&["keys", "list"]).contains(&lab_id));
    // The key the command runs with is refused.
    let own = env.run(&["keys", "rotate", &env.key_id, "--yes"]);
    assert!(!own.status.success());
    let err = String::from_utf8_lossy(&own.stderr);
    assert!(err.contains("the key this command runs with"), "{err}");
}

async fn cloud_channel(endpoint: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

// -- Included files ---------------------------------------------------------------------------

fn load_tree(files: &[(&str, &str)]) -> Result<Desired, String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fleetform::manifest::load_with_env(&dir.path().join("fleet.yaml"), &|_| None)
        .map_err(|e| e.to_string())
}

#[test]
fn members_and_keys_may_be_declared_in_included_files() {
    let main = "version: 1\norganization: acme\ninclude: [sites/*.yaml]\nlocations: [{name: HQ}]\naccess:\n  keys:\n    - {name: ci, grants: [{role: owner, organization: true}]}\n";
    let site = "locations: [{name: A}]\naccess:\n  members:\n    - {email: lead@acme.example, grants: [{role: operator, location: A}]}\n  keys:\n    - {name: site-a, grants: [{role: operator, location: A}]}\n";
    let d = load_tree(&[("fleet.yaml", main), ("sites/a.yaml", site)]).unwrap();
    let keys: Vec<&str> = d.keys.iter().flatten().map(|k| k.name.as_str()).collect();
    assert_eq!(keys, ["ci", "site-a"]);
    assert_eq!(
        fleetform::kinds::members::declared(&d)
            .as_ref()
            .map(Vec::len),
        Some(1)
    );

    // A key declared in two files is reported like one declared twice in one file.
    let twice = "access:\n  keys:\n    - {name: ci, grants: [{role: operator, location: HQ}]}\n";
    let err = load_tree(&[("fleet.yaml", main), ("sites/a.yaml", twice)]).unwrap_err();
    assert!(err.contains("duplicate API key `ci`"), "{err}");
    // Anything else under `access` in an included file is refused, naming what is allowed.
    let odd = "access:\n  robots: []\n";
    let err = load_tree(&[("fleet.yaml", main), ("sites/a.yaml", odd)]).unwrap_err();
    assert!(err.contains("allowed: invites, "), "{err}");
    assert_lists_access_keys(&err);
}

#[tokio::test]
async fn watch_writes_a_created_keys_secret_to_its_file() {
    use fleetform::watch::{self, Metrics, PassResult, Source, WatchOptions};
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\norganization: test-org\nlocations: [{{name: HQ}}]\naccess:\n  keys:\n{LINE_OPERATOR}"
        ),
    )
    .unwrap();
    let keys_out = dir.path().join("secrets");
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = WatchOptions {
        keys_out: keys_out.clone(),
        ..WatchOptions::default()
    };
    let task = tokio::spawn(watch::run(
        Arc::clone(&api),
        Source::File(path),
        opts,
        Arc::clone(&metrics),
        async {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while metrics.passes(PassResult::Success) < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a successful pass (likely stuck)");
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("watch stops (likely deadlocked)")
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(keys_out.join("line-robot.env")).expect("the key file");
    let (id, secret) = key_file(&text);
    let robot = client_with(&cloud, &id, &secret).await;
    let hq = robot.list_locations(&cloud.org_id).await.unwrap();
    assert_eq!(hq.len(), 1);
    assert_eq!(hq[0].name, "HQ");
}

#[tokio::test]
async fn a_saved_key_plan_is_stale_once_the_key_changes_or_appears() {
    use fleetform::apply::check_preconditions;
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    // A saved create is stale once a key with the name exists.
    let create = plan_for(api.as_ref(), &with_keys(LINE_OPERATOR, false)).await;
    assert!(
        check_preconditions(Arc::clone(&api), &create)
            .await
            .unwrap()
            .is_empty()
    );
    let (_, made) = converge(&api, &with_keys(LINE_OPERATOR, false)).await;
    let stale = check_preconditions(Arc::clone(&api), &create)
        .await
        .unwrap();
    let key: Vec<&str> = stale
        .iter()
        .filter(|s| s.kind == Kind::ApiKey)
        .map(|s| s.what.as_str())
        .collect();
    assert_eq!(key, ["an API key with this name now exists; plan again"]);

    // A saved role change is stale once someone else changes the key's roles.
    let lab = "    - name: line-robot\n      grants: [{role: operator, location: Lab}]\n";
    let saved = plan_for(api.as_ref(), &with_keys(lab, false)).await;
    assert_eq!(key_changes(&saved).len(), 1);
    let org = cloud.org_id.as_str();
    let line = api
        .list_locations(org)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == "Line")
        .unwrap();
    api.add_key_role(
        org,
        &made[0].secret.id,
        &grant(Role::Owner, ResourceKind::Location, &line.id),
    )
    .await
    .unwrap();
    let stale = check_preconditions(Arc::clone(&api), &saved).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, Kind::ApiKey);
    assert!(stale[0].what.contains("roles changed"), "{}", stale[0].what);
}

/// `err`'s hint names every key of `access:`: invites, keys and each registered kind's
/// section.
#[track_caller]
fn assert_lists_access_keys(err: &str) {
    let hint = err
        .lines()
        .find(|l| l.contains("hint:"))
        .unwrap_or_default();
    let sections = fleetform::kinds::KINDS.iter().map(|k| k.section());
    for key in ["invites", "keys"].into_iter().chain(sections) {
        assert!(hint.contains(key), "{key} is not listed: {err}");
    }
}

#[test]
fn key_declarations_are_checked_with_positions_and_hints() {
    let bad = |text: &str| {
        fleetform::manifest::parse_str(text, std::path::Path::new("fleet.yaml"), &|_| None)
            .expect_err("invalid")
            .to_string()
    };
    let err = bad("version: 1\norganization: a\naccess:\n  robots: []\n");
    assert!(err.contains("fleet.yaml:4:3"), "{err}");
    assert!(err.contains("allowed keys: "), "{err}");
    assert_lists_access_keys(&err);
    let err = bad(
        "version: 1\norganization: a\nlocations: [{name: HQ}]\naccess:\n  keys:\n    - {name: x, grants: []}\n    - {name: y, grants: [{role: operator, location: Nope}]}\n    - {name: y, grants: [{role: owner, organization: true}]}\n    - {name: z, grants: [{role: admin, organization: true}]}\n",
    );
    assert!(err.contains("API key `x` has no grants"), "{err}");
    assert!(err.contains("grant on undeclared location `Nope`"), "{err}");
    assert!(
        err.contains("duplicate API key `y` (first at line 7)"),
        "{err}"
    );
    assert!(err.contains("unknown role `admin`"), "{err}");
    // The secret is never part of a declaration.
    let err = bad(
        "version: 1\norganization: a\naccess:\n  keys:\n    - {name: x, key: hunter2, grants: [{role: owner, organization: true}]}\n",
    );
    assert!(err.contains("unknown key `key`"), "{err}");
}

#[tokio::test]
async fn moved_from_renames_a_key_keeping_its_id_and_secret() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let (_, made) = converge(&api, &with_keys(LINE_OPERATOR, false)).await;
    let renamed = "    - name: hq-robot\n      moved_from: line-robot\n      grants: [{role: operator, location: HQ}, {role: operator, location: Lab}]\n    - name: fleetform\n      grants: [{role: owner, organization: true}]\n";
    let (p, again) = converge(&api, &with_keys(renamed, true)).await;
    assert!(again.is_empty(), "a rename makes no new secret");
    assert_eq!(
        key_changes(&p),
        [
            (
                Action::Move,
                "hq-robot",
                vec![(Some("line-robot"), Some("hq-robot"))]
            ),
            (
                Action::Update,
                "hq-robot",
                vec![(None, Some("operator on location Lab"))]
            ),
        ],
        "under prune, the old name is not an undeclared key"
    );
    let keys = api.list_keys(&cloud.org_id).await.unwrap();
    let key = keys.iter().find(|k| k.id == made[0].secret.id).unwrap();
    assert_eq!(key.name, "hq-robot");
    let robot = client_with(&cloud, &key.id, made[0].secret.key.expose()).await;
    assert_eq!(robot.list_locations(&cloud.org_id).await.unwrap().len(), 3);
}
