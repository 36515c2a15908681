//! fleetform's client (`cloud::Client`, the `CloudApi` implementation) against the local cloud:
//! domain round trips, re-authentication, retries and what errors may say.

mod common;

use common::Cloud;
use fleetform::cloud::{
    Client, ClientOptions, CloudApi, Code, Credentials, ParentChange, RetryPolicy,
};
use fleetform::localcloud::Faults;
use fleetform::model::{Grant, LogEntry, LogQuery, ResourceKind, Role, Visibility};
use serde_json::json;
use std::time::Duration;

fn entry(level: &str, message: &str) -> LogEntry {
    LogEntry {
        host: "arm-01".into(),
        level: level.into(),
        time: None,
        logger_name: "rdk".into(),
        message: message.into(),
        caller: Some(json!({"File": "main.go", "Line": 12})),
        stack: String::new(),
        fields: vec![],
    }
}

#[tokio::test]
async fn domain_round_trip_through_every_area() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;

    let orgs = c.list_organizations().await.unwrap();
    assert_eq!(orgs[0].id, *org);
    assert_eq!(c.get_organization(org).await.unwrap().name, "test-org");
    assert!(c.namespace_available("acme-robots").await.unwrap());

    // Locations, nested, moved, secrets.
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    assert_eq!(hq.parent_id, None);
    assert_eq!(hq.secrets.len(), 1);
    let asm = c
        .create_location(org, "Assembly", Some(&hq.id))
        .await
        .unwrap();
    assert_eq!(asm.parent_id.as_deref(), Some(hq.id.as_str()));
    let moved = c
        .update_location(&asm.id, Some("Assembly-2"), ParentChange::Root)
        .await
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.parent_id.as_deref()),
        ("Assembly-2", None)
    );
    let back = c
        .update_location(&asm.id, None, ParentChange::To(hq.id.clone()))
        .await
        .unwrap();
    assert_eq!(
        (back.name.as_str(), back.parent_id.as_deref()),
        ("Assembly-2", Some(hq.id.as_str()))
    );
    assert_eq!(c.list_locations(org).await.unwrap().len(), 2);
    let secrets = c.create_location_secret(&asm.id).await.unwrap();
    assert_eq!(secrets.len(), 2);
    c.delete_location_secret(&asm.id, &secrets[0].id)
        .await
        .unwrap();
    assert_eq!(c.location_secrets(&asm.id).await.unwrap().len(), 1);
    assert!(
        !format!("{secrets:?}").contains(secrets[0].secret.expose()),
        "secrets never print"
    );

    // Machines and parts.
    let m = c.new_machine("arm-01", &asm.id).await.unwrap();
    let parts = c.get_parts(&m).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].main);
    assert_eq!(parts[0].name, "arm-01-main");
    assert_eq!(parts[0].config, json!({}));
    let cfg = json!({"components": [{"name": "arm", "attributes": {"speed": 2.5, "joints": 6}}]});
    let updated = c
        .update_part(
            &parts[0].id,
            "arm-01-main",
            Some(&cfg),
            parts[0].last_updated,
        )
        .await
        .unwrap();
    assert_eq!(
        updated.config, cfg,
        "integers stay integers, floats stay floats"
    );
    assert!(updated.last_updated > parts[0].last_updated);
    let stale = c
        .update_part(
            &parts[0].id,
            "arm-01-main",
            Some(&json!({})),
            parts[0].last_updated,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code, Code::FailedPrecondition);
    assert_eq!(c.get_part(&parts[0].id).await.unwrap().config, cfg);
    let history = c.part_history(&parts[0].id, None).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].old.config, json!({}));
    assert_eq!(history[0].edited_by.as_ref().unwrap().value, cloud.key_id);
    let aux = c.new_part(&m, "arm-01-aux").await.unwrap();
    c.mark_part_main(&aux).await.unwrap();
    c.delete_part(&parts[0].id).await.unwrap();
    let parts = c.get_parts(&m).await.unwrap();
    assert_eq!((parts.len(), parts[0].main), (1, true));
    let renamed = c.update_machine(&m, Some("arm-02"), None).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.location_id.as_str()),
        ("arm-02", asm.id.as_str())
    );
    assert_eq!(c.get_machine(&m).await.unwrap().name, "arm-02");
    assert_eq!(c.list_machines(&asm.id).await.unwrap().len(), 1);
    assert_eq!(c.list_machines_for_org(org).await.unwrap().len(), 1);

    // Logs.
    let entries: Vec<LogEntry> = (0..30)
        .map(|i| {
            entry(
                if i % 3 == 0 { "error" } else { "info" },
                &format!("line {i}"),
            )
        })
        .collect();
    c.push_logs(&aux, &entries).await.unwrap();
    let page = c
        .part_logs(
            &aux,
            &LogQuery {
                limit: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 20);
    assert_eq!(page.entries[0].message, "line 29");
    assert_eq!(
        page.entries[0].caller,
        Some(json!({"File": "main.go", "Line": 12}))
    );
    let rest = c
        .part_logs(
            &aux,
            &LogQuery {
                limit: Some(20),
                page_token: page.next_page_token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 10);
    assert_eq!(rest.next_page_token, None);
    let errors = c
        .part_logs(
            &aux,
            &LogQuery {
                errors_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(errors.entries.len(), 10);

    // Fragments.
    let frag_cfg = json!({"components": [{"name": "cam", "model": "webcam"}]});
    let f = c
        .create_fragment(org, "camera-kit", &frag_cfg, Visibility::Private)
        .await
        .unwrap();
    assert_eq!(
        (f.config.clone(), f.visibility),
        (frag_cfg.clone(), Visibility::Private)
    );
    c.update_part(
        &aux,
        "arm-01-aux",
        Some(&json!({"fragments": [{"id": f.id}]})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(c.get_fragment(&f.id).await.unwrap().robot_part_count, 1);
    let f2 = c
        .update_fragment(
            &f.id,
            "camera-kit",
            None,
            Some(Visibility::PublicUnlisted),
            f.last_updated,
        )
        .await
        .unwrap();
    assert_eq!(
        (f2.visibility, f2.config),
        (Visibility::PublicUnlisted, frag_cfg)
    );
    assert_eq!(c.list_fragments(org).await.unwrap().len(), 1);
    assert_eq!(
        c.delete_fragment(&f.id).await.unwrap_err().code,
        Code::FailedPrecondition
    );

    // Invites.
    let g = |role, kind, id: &str| Grant {
        role,
        resource_kind: kind,
        resource_id: id.into(),
    };
    let inv = c
        .create_invite(
            org,
            "ops@acme.example",
            &[g(Role::Operator, ResourceKind::Location, &hq.id)],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        inv.grants,
        vec![g(Role::Operator, ResourceKind::Location, &hq.id)]
    );
    let inv = c
        .update_invite_grants(
            org,
            "ops@acme.example",
            &[g(Role::Owner, ResourceKind::Robot, &m)],
            &[g(Role::Operator, ResourceKind::Location, &hq.id)],
        )
        .await
        .unwrap();
    assert_eq!(inv.grants, vec![g(Role::Owner, ResourceKind::Robot, &m)]);
    let (members, invites) = c.list_members(org).await.unwrap();
    assert_eq!((members.len(), invites.len()), (1, 1));
    c.delete_invite(org, "ops@acme.example").await.unwrap();

    // Deletes, in reverse order.
    c.delete_machine(&m).await.unwrap();
    c.delete_location(&asm.id).await.unwrap();
    c.delete_location(&hq.id).await.unwrap();
    let gone = c.get_location(&hq.id).await.unwrap_err();
    assert_eq!(gone.code, Code::NotFound);
    assert!(gone.is_not_found());
}

#[tokio::test]
async fn tail_delivers_entries_pushed_after_it_started() {
    use tokio_stream::StreamExt;
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let loc = c.create_location(&cloud.org_id, "A", None).await.unwrap();
    let m = c.new_machine("m", &loc.id).await.unwrap();
    let part = c.get_parts(&m).await.unwrap().remove(0).id;
    let mut stream = c.tail_part_logs(&part, false, Some("hello")).await.unwrap();
    c.push_logs(
        &part,
        &[entry("info", "noise"), entry("warn", "hello world")],
    )
    .await
    .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].message, "hello world");
}

#[tokio::test]
async fn reauthenticates_after_the_server_forgets_its_token() {
    let mut cloud = Cloud::start().await;
    let c = cloud.client().await;
    c.list_organizations().await.unwrap();
    // A restarted server has no memory of issued tokens.
    cloud.restart().await;
    c.list_organizations().await.unwrap();
    let counts = c.rpc_counts();
    assert_eq!(counts.get("Authenticate"), Some(&2));
    assert_eq!(counts.get("ListOrganizations"), Some(&3));
}

#[tokio::test]
async fn reads_retry_transient_failures_and_writes_do_not() {
    let cloud = Cloud::start_with(Faults {
        error_rate: 0.5,
        ..Default::default()
    })
    .await;
    let creds = Credentials::new(&cloud.key_id, &cloud.key);
    let mut opts = ClientOptions::new(cloud.endpoint(), creds);
    opts.retry = RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let c = Client::connect(opts).await.unwrap();
    for _ in 0..40 {
        c.list_locations(&cloud.org_id)
            .await
            .expect("reads retry until they succeed");
    }
    let attempts = c.rpc_counts()["ListLocations"];
    assert!(
        attempts > 40,
        "with a 50% error rate some reads needed retries ({attempts})"
    );

    let always = Cloud::start_with(Faults {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let c = always.client().await;
    let err = c
        .create_location(&always.org_id, "A", None)
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Unavailable);
    assert!(err.outcome_unknown());
    assert_eq!(
        c.rpc_counts()["CreateLocation"],
        1,
        "a write is never retried blindly"
    );
}

#[tokio::test]
async fn errors_name_the_key_id_but_never_the_key() {
    let cloud = Cloud::start().await;
    let creds = Credentials::new(&cloud.key_id, "definitely-the-wrong-key-0123456789");
    let c = Client::connect(ClientOptions::new(cloud.endpoint(), creds))
        .await
        .unwrap();
    let err = c.list_organizations().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains(&cloud.key_id), "{text}");
    assert!(!text.contains("definitely-the-wrong-key"), "{text}");
    assert_eq!(err.code, Code::PermissionDenied);
    assert!(!format!("{c:?}").contains("definitely-the-wrong-key"));
}

#[tokio::test]
async fn endpoints_are_checked() {
    let creds = Credentials::new("00000000-0000-4000-8000-000000000000", "k");
    let err = Client::connect(ClientOptions::new("ftp://example.com", creds.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument);
    assert!(err.message.contains("https://"), "{}", err.message);
    // Nothing listens on port 1 of loopback.
    let mut opts = ClientOptions::new("http://127.0.0.1:1", creds);
    opts.connect_timeout = Duration::from_secs(5);
    let err = Client::connect(opts).await.unwrap_err();
    assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
}

#[tokio::test]
async fn expired_tokens_are_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let key = fleetform::localcloud::init(&db, "o", "a@b.example").unwrap();
    let mut opts = fleetform::localcloud::ServerOptions::new(&db);
    opts.token_ttl = Duration::from_millis(1000);
    let server = fleetform::localcloud::start(&opts).await.unwrap();
    let creds = Credentials::new(&key.key_id, key.key.expose());
    let c = Client::connect(ClientOptions::new(server.endpoint(), creds))
        .await
        .unwrap();
    c.list_organizations().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    c.list_organizations().await.unwrap();
    assert_eq!(c.rpc_counts()["Authenticate"], 2);
    server.shutdown().await.unwrap();
}
