//! fleetform's client (`cloud::Client`, the `CloudApi` implementation) against the local cloud:
//! domain round trips, re-authentication, retries and what errors may say.

use crate::common;

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
    assert_eq!(parts[0].config.to_value(), json!({}));
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
        updated.config.to_value(),
        cfg,
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
    assert_eq!(
        c.get_part(&parts[0].id).await.unwrap().config.to_value(),
        cfg
    );
    let history = c.part_history(&parts[0].id, None).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].old.config.to_value(), json!({}));
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

/// Configs as a user writes them: integers and floats, keys out of order, unicode, nesting,
/// importing fragments `f1` (pinned, prefixed) and `f2` (a bare id).
fn unusual_config(f1: &str, f2: &str) -> serde_json::Value {
    let text = r#"{"z_last_first": 1, "fragments": [{"id": "F1", "version": "1", "prefix": "front"}, "F2"],
            "components": [{"name": "motor", "attributes": {"max_rpm": 8, "ratio": 8.0, "pid": [0.5, 1, -2]}}],
            "ünïcode": "✓ ok", "a": {"y": null, "x": true}}"#;
    serde_json::from_str(&text.replace("F1", f1).replace("F2", f2)).unwrap()
}

#[tokio::test]
async fn configs_round_trip_as_json_text_with_order_and_number_forms() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;
    let empty = json!({});
    let f1 = c
        .create_fragment(org, "f1", &empty, Visibility::Private)
        .await
        .unwrap();
    let f2 = c
        .create_fragment(org, "f2", &empty, Visibility::Private)
        .await
        .unwrap();
    let config = unusual_config(&f1.id, &f2.id);
    let text = serde_json::to_string(&config).unwrap();
    assert!(text.contains(r#""ratio":8.0"#) && text.contains(r#""max_rpm":8,"#));

    // Parts: written and read back byte-equal, through every read.
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    let machine = c.new_machine("arm-01", &hq.id).await.unwrap();
    let part = c.get_parts(&machine).await.unwrap().remove(0);
    let written = c
        .update_part(&part.id, &part.name, Some(&config), part.last_updated)
        .await
        .unwrap();
    for read in [
        written,
        c.get_part(&part.id).await.unwrap(),
        c.get_parts(&machine).await.unwrap().remove(0),
    ] {
        assert_eq!(serde_json::to_string(&read.config).unwrap(), text);
    }
    let old = &c.part_history(&part.id, Some(1)).await.unwrap()[0].old;
    assert_eq!(old.config.to_value(), json!({}));

    // Fragments: created (the struct cannot carry this config, so the JSON text follows at
    // once) and updated, byte-equal on every read.
    let f = c
        .create_fragment(org, "kit", &config, Visibility::Private)
        .await
        .unwrap();
    assert_eq!(serde_json::to_string(&f.config).unwrap(), text);
    let read = c.get_fragment(&f.id).await.unwrap();
    assert_eq!(serde_json::to_string(&read.config).unwrap(), text);
    let mut changed = config.clone();
    changed["z_last_first"] = json!(2.5);
    let f2 = c
        .update_fragment(&f.id, "kit", Some(&changed), None, f.last_updated)
        .await
        .unwrap();
    let changed_text = serde_json::to_string(&changed).unwrap();
    assert_eq!(serde_json::to_string(&f2.config).unwrap(), changed_text);
    let listed = c.list_fragments(org).await.unwrap();
    let listed = listed.iter().find(|x| x.id == f.id).unwrap();
    assert_eq!(serde_json::to_string(&listed.config).unwrap(), changed_text);

    // A config the struct carries exactly is created in one call, as revision 1.
    c.reset_rpc_counts();
    let plain = c
        .create_fragment(
            org,
            "plain",
            &json!({"a": 1, "b": [true]}),
            Visibility::Private,
        )
        .await
        .unwrap();
    assert_eq!(plain.revision, "1");
    assert_eq!(c.rpc_counts().get("UpdateFragment"), None);
}

#[tokio::test]
async fn fragment_versions_tags_history_and_usage_through_the_client() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;
    let f = c
        .create_fragment(org, "kit", &json!({"n": 0}), Visibility::Private)
        .await
        .unwrap();
    assert_eq!(f.revision, "1");
    let mut last = f.last_updated;
    for n in 1..=3 {
        let updated = c
            .update_fragment(&f.id, "kit", Some(&json!({"n": n})), None, last)
            .await
            .unwrap();
        assert_eq!(updated.revision, (n + 1).to_string());
        last = updated.last_updated;
    }
    // A stale write is a conflict, recognised by its code.
    let err = c
        .update_fragment(&f.id, "kit", Some(&json!({"n": 9})), None, f.last_updated)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let tags = c.set_fragment_tag(&f.id, "stable", "2").await.unwrap();
    assert_eq!(tags.len(), 1);
    let tags = c.set_fragment_tag(&f.id, "beta", "4").await.unwrap();
    assert_eq!(
        tags.iter()
            .map(|t| (t.tag.as_str(), t.revision.as_str()))
            .collect::<Vec<_>>(),
        [("beta", "4"), ("stable", "2")]
    );
    let v = c
        .get_fragment_versions(&f.id, Some("stable"))
        .await
        .unwrap();
    assert_eq!(v.fragment.revision, "2");
    assert_eq!(v.fragment.config, json!({"n": 1}));
    assert_eq!(v.revisions.len(), 4);
    assert_eq!(v.tags.len(), 2);
    let latest = c.get_fragment_versions(&f.id, None).await.unwrap();
    assert_eq!(latest.fragment.config, json!({"n": 3}));
    let tags = c.delete_fragment_tag(&f.id, "beta").await.unwrap();
    assert_eq!(tags.len(), 1);
    let err = c.delete_fragment_tag(&f.id, "beta").await.unwrap_err();
    assert_eq!(err.code, Code::NotFound);

    // History: newest first, paged through by the client.
    let all = c.fragment_history(&f.id, None).await.unwrap();
    let revisions: Vec<&str> = all.iter().map(|h| h.revision.as_str()).collect();
    assert_eq!(revisions, ["4", "3", "2"]);
    assert_eq!(all[0].old.config, json!({"n": 2}));
    assert_eq!(all[0].config, Some(json!({"n": 3})));
    assert_eq!(all[0].edited_by.as_ref().unwrap().value, cloud.key_id);
    let two = c.fragment_history(&f.id, Some(2)).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[1].revision, "3");

    // Usage by version.
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    for (name, import) in [
        ("a", json!(f.id)),
        ("b", json!({"id": f.id, "version": "stable"})),
    ] {
        let m = c.new_machine(name, &hq.id).await.unwrap();
        let p = c.get_parts(&m).await.unwrap().remove(0);
        c.update_part(&p.id, &p.name, Some(&json!({"fragments": [import]})), None)
            .await
            .unwrap();
    }
    let usage = c.fragment_usage(&f.id).await.unwrap();
    let summary: Vec<(Option<&str>, i32)> = usage
        .iter()
        .map(|u| (u.version.as_deref(), u.machines))
        .collect();
    assert_eq!(summary, [(None, 1), (Some("stable"), 1)]);
}

#[tokio::test]
async fn fragments_listed_are_only_the_organizations_own() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let other = fleetform::localcloud::init(&cloud.db, "other-org", "o@example.com").unwrap();
    let theirs = Client::connect(ClientOptions::new(
        cloud.endpoint(),
        Credentials::new(&other.key_id, other.key.expose()),
    ))
    .await
    .unwrap();
    theirs
        .create_fragment(
            &other.org_id,
            "their-public",
            &json!({}),
            Visibility::Public,
        )
        .await
        .unwrap();
    for (name, vis) in [
        ("ours", Visibility::Private),
        ("ours-public", Visibility::Public),
        ("ours-unlisted", Visibility::PublicUnlisted),
    ] {
        c.create_fragment(&cloud.org_id, name, &json!({}), vis)
            .await
            .unwrap();
    }
    let mut names: Vec<String> = c
        .list_fragments(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    assert_eq!(names, ["ours", "ours-public", "ours-unlisted"]);
}

#[tokio::test]
async fn organization_defaults_invites_and_locations_through_the_client() {
    use fleetform::model::FragmentImport;
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;
    assert_eq!(
        c.get_organization(org).await.unwrap().default_fragments,
        None
    );
    let f = c
        .create_fragment(org, "base", &json!({}), Visibility::Private)
        .await
        .unwrap();
    let imports = vec![
        FragmentImport {
            fragment_id: f.id.clone(),
            version: Some("stable".into()),
            prefix: Some("front".into()),
            variables: [("site".to_string(), "hq".to_string())].into(),
            fragment_variables: Some(json!({"rate": 8})),
        },
        FragmentImport {
            fragment_id: f.id.clone(),
            ..Default::default()
        },
    ];
    let updated = c
        .update_organization_default_fragments(org, &imports)
        .await
        .unwrap();
    assert_eq!(updated.default_fragments.as_ref(), Some(&imports));
    assert_eq!(
        c.get_organization(org).await.unwrap().default_fragments,
        Some(imports)
    );

    // An invite without grants is an owner invite.
    let inv = c
        .create_invite(org, "boss@acme.example", &[], true)
        .await
        .unwrap();
    assert_eq!(
        inv.grants,
        [Grant {
            role: Role::Owner,
            resource_kind: ResourceKind::Organization,
            resource_id: org.clone(),
        }]
    );

    // Locations say which organization owns them; machines list per location set.
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    assert_eq!(hq.primary_organization(), Some(org.as_str()));
    let m = c.new_machine("arm", &hq.id).await.unwrap();
    let machines = c
        .list_machines_for_locations(std::slice::from_ref(&hq.id))
        .await
        .unwrap();
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0].id, m);
}

#[tokio::test]
async fn real_form_configs_survive_the_wire_byte_for_byte() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;
    let corpus = common::real_configs_in(&c, org).await;
    assert!(corpus.len() >= 12, "{} configs", corpus.len());
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    for (i, (name, text)) in corpus.iter().enumerate() {
        let config: &serde_json::Value = &serde_json::from_str(text).unwrap();
        let written = serde_json::to_string(config).unwrap();
        let machine = c.new_machine(&format!("m-{i}"), &hq.id).await.unwrap();
        let part = c.get_parts(&machine).await.unwrap().remove(0);
        c.update_part(&part.id, &part.name, Some(config), part.last_updated)
            .await
            .unwrap();
        let read = c.get_part(&part.id).await.unwrap();
        assert_eq!(
            serde_json::to_string(&read.config).unwrap(),
            written,
            "{name}"
        );
        let listed = c.get_parts(&machine).await.unwrap().remove(0);
        assert_eq!(
            serde_json::to_string(&listed.config).unwrap(),
            written,
            "{name}"
        );
        let f = c
            .create_fragment(org, &format!("frag-{i}"), config, Visibility::Private)
            .await
            .unwrap();
        let read = c.get_fragment(&f.id).await.unwrap();
        assert_eq!(
            serde_json::to_string(&read.config).unwrap(),
            written,
            "{name} as a fragment"
        );
    }
}

/// A random JSON value: nested objects (keys in random order, some unicode) and lists,
/// integers (some beyond 2^53), floats (some integral, like `3.0`), strings, booleans, nulls.
fn random_json(rng: &mut fastrand::Rng, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    let leaf = depth == 0 || rng.u8(..4) == 0;
    match if leaf { rng.u8(..6) } else { rng.u8(6..8) } {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => match rng.u8(..3) {
            0 => json!(rng.i64(-1000..1000)),
            1 => json!(rng.u64(9_007_199_254_740_993..u64::MAX)),
            _ => json!(rng.i64(..)),
        },
        3 => {
            let f = if rng.bool() {
                rng.i32(-100..100) as f64
            } else {
                (rng.f64() - 0.5) * 10f64.powi(rng.i32(-8..12))
            };
            json!(f)
        }
        4 | 5 => {
            let alphabet = ['a', 'z', '0', ' ', 'ü', '✓', '"', '\\', '\n', '日'];
            Value::String(
                (0..rng.usize(..8))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect(),
            )
        }
        6 => Value::Array(
            (0..rng.usize(..5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => random_object(rng, depth - 1),
    }
}

fn random_object(rng: &mut fastrand::Rng, depth: u32) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.usize(..6) {
        let key: String = (0..rng.usize(1..6))
            .map(|_| ['z', 'b', 'a', 'ß', '_', '9'][rng.usize(..6)])
            .collect();
        map.insert(key, random_json(rng, depth));
    }
    serde_json::Value::Object(map)
}

#[tokio::test]
async fn random_configs_survive_the_wire_unchanged() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let org = &cloud.org_id;
    let hq = c.create_location(org, "HQ", None).await.unwrap();
    let machine = c.new_machine("m", &hq.id).await.unwrap();
    let part = c.get_parts(&machine).await.unwrap().remove(0);
    let f = c
        .create_fragment(org, "kit", &json!({}), Visibility::Private)
        .await
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    for case in 0..150 {
        let config = random_object(&mut rng, 4);
        let written = serde_json::to_string(&config).unwrap();
        let p = c
            .update_part(&part.id, &part.name, Some(&config), None)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_string(&p.config).unwrap(),
            written,
            "case {case}"
        );
        let read = c.get_part(&part.id).await.unwrap();
        assert_eq!(read.config.to_value(), config, "case {case}");
        assert_eq!(
            serde_json::to_string(&read.config).unwrap(),
            written,
            "case {case}"
        );
        let g = c
            .update_fragment(&f.id, "kit", Some(&config), None, None)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_string(&g.config).unwrap(),
            written,
            "case {case}"
        );
    }
}
