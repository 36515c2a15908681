//! Apply against the local cloud: convergence, dependency order, faults, conflicts, and a
//! property test over random fleets.

use crate::common;

use common::{Cloud, assert_no_duplicates, failures};
use fleetform::apply::{ApplyOptions, Outcome, Report, apply};
use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials, RetryPolicy};
use fleetform::localcloud::Faults;
use fleetform::model::Desired;
use fleetform::plan::{Options, Plan, plan};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn manifest(text: &str) -> Desired {
    fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("bad test manifest: {e}\n{text}"))
}

async fn plan_for(api: &dyn CloudApi, d: &Desired) -> Plan {
    let observed = observe(api, d, &ObserveOptions::default())
        .await
        .expect("observe");
    plan(d, &observed, &Options::default()).expect("plan")
}

async fn run(api: Arc<dyn CloudApi>, p: &Plan, parallelism: usize) -> Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    apply(
        api,
        p,
        &ApplyOptions {
            parallelism,
            ..Default::default()
        },
        None,
        stop,
    )
    .await
}

/// Applies until the plan is empty (at most `tries` applies); returns how many it took.
async fn converge(api: Arc<dyn CloudApi>, d: &Desired, tries: usize) -> usize {
    for i in 1..=tries {
        let p = plan_for(api.as_ref(), d).await;
        if p.is_empty() {
            return i - 1;
        }
        run(Arc::clone(&api), &p, 10).await;
    }
    let p = plan_for(api.as_ref(), d).await;
    assert!(
        p.is_empty(),
        "not converged after {tries} applies: {:#?}",
        p.changes
            .iter()
            .map(|c| (&c.id, &c.path, &c.reason))
            .collect::<Vec<_>>()
    );
    tries
}

const FLEET: &str = r#"
version: 1
organization: test-org
fragments:
  - name: camera-kit
    config: { components: [ { name: cam, model: webcam } ] }
locations:
  - name: Factory
    secrets: { rotate_after: 90d }
    locations:
      - name: Assembly
        locations:
          - name: Line-1
            machines:
              - name: arm-01
                parts:
                  - name: arm-01-main
                    main: true
                    config: { components: [ { name: arm, model: ur5e, attributes: { speed: 2.5 } } ] }
                  - name: arm-01-cam
                    fragments: [camera-kit]
      - name: Packing
        machines:
          - name: packer
            parts:
              - name: packer-brain
                config: { components: [ { name: belt, model: conveyor } ] }
access:
  invites:
    - email: ops@acme.example
      grants:
        - { role: operator, location: Factory/Assembly }
        - { role: owner, machine: Factory/Packing/packer }
"#;

#[tokio::test]
async fn a_fleet_applies_and_then_plans_empty() {
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let d = manifest(FLEET);
    let p = plan_for(client.as_ref(), &d).await;
    assert!(!p.is_empty());
    let report = run(Arc::clone(&client), &p, 10).await;
    assert!(report.is_success(), "{}", failures(&report));
    let again = plan_for(client.as_ref(), &d).await;
    assert!(again.is_empty(), "{:#?}", again.changes);

    // Everything landed where the manifest says.
    let org = &cloud.org_id;
    let locs = client.list_locations(org).await.unwrap();
    assert_eq!(locs.len(), 4);
    let machines = client.list_machines_for_org(org).await.unwrap();
    assert_eq!(machines.len(), 2);
    let arm = machines.iter().find(|m| m.name == "arm-01").unwrap();
    let parts = client.get_parts(&arm.id).await.unwrap();
    let names: BTreeMap<_, _> = parts.iter().map(|p| (p.name.as_str(), p.main)).collect();
    assert_eq!(
        names,
        BTreeMap::from([("arm-01-main", true), ("arm-01-cam", false)])
    );
    let frag = client.list_fragments(org).await.unwrap().remove(0);
    assert_eq!(frag.robot_part_count, 1);
    let (_, invites) = client.list_members(org).await.unwrap();
    assert_eq!(invites[0].grants.len(), 2);
}

#[tokio::test]
async fn changes_then_renames_moves_and_prune() {
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    converge(Arc::clone(&client), &manifest(FLEET), 1).await;
    // Rename a machine (moved_from), move a location, change a config, drop a part, prune.
    let next = r#"
version: 1
organization: test-org
prune: true
fragments:
  - name: camera-kit
    config: { components: [ { name: cam, model: webcam } ] }
locations:
  - name: Factory
    secrets: { rotate_after: 90d }
    locations:
      - name: Assembly
        locations:
          - name: Line-1
            machines:
              - name: arm-02
                moved_from: Factory/Assembly/Line-1/arm-01
                parts:
                  - name: arm-01-main
                    config: { components: [ { name: arm, model: ur5e, attributes: { speed: 3 } } ] }
  - name: Packing
    moved_from: Factory/Packing
    machines:
      - name: packer
        parts:
          - name: packer-brain
            config: { components: [ { name: belt, model: conveyor } ] }
access:
  invites:
    - email: ops@acme.example
      grants:
        - { role: operator, location: Factory/Assembly }
        - { role: owner, machine: Packing/packer }
"#;
    let d = manifest(next);
    let p = plan_for(client.as_ref(), &d).await;
    let summary = p.summary();
    assert_eq!((summary.create, summary.delete), (0, 1), "{:#?}", p.changes);
    let report = run(Arc::clone(&client), &p, 4).await;
    assert!(report.is_success(), "{}", failures(&report));
    assert!(plan_for(client.as_ref(), &d).await.is_empty());
    let machines = client.list_machines_for_org(&cloud.org_id).await.unwrap();
    assert!(machines.iter().any(|m| m.name == "arm-02"));
    let locs = client.list_locations(&cloud.org_id).await.unwrap();
    assert!(
        locs.iter()
            .any(|l| l.name == "Packing" && l.parent_id.is_none())
    );
}

#[tokio::test]
async fn a_part_edited_after_planning_is_a_conflict_and_the_rest_applies() {
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    converge(Arc::clone(&client), &manifest(FLEET), 1).await;
    let d = manifest(
        &FLEET
            .replace("speed: 2.5", "speed: 9")
            .replace("model: conveyor", "model: conveyor-v2"),
    );
    let p = plan_for(client.as_ref(), &d).await;
    assert_eq!(p.changes.len(), 2);
    // Someone edits arm-01-main in the app between plan and apply.
    let arm = client
        .list_machines_for_org(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "arm-01")
        .unwrap();
    let part = client
        .get_parts(&arm.id)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.main)
        .unwrap();
    client
        .update_part(
            &part.id,
            &part.name,
            Some(&serde_json::json!({"components": []})),
            None,
        )
        .await
        .unwrap();

    let report = run(Arc::clone(&client), &p, 10).await;
    let arm_result = report
        .results
        .iter()
        .find(|r| r.path.ends_with("arm-01-main"))
        .unwrap();
    match &arm_result.outcome {
        Outcome::Conflict { cause } => assert!(cause.contains("changed in the cloud"), "{cause}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let packer = report
        .results
        .iter()
        .find(|r| r.path.ends_with("packer-brain"))
        .unwrap();
    assert_eq!(packer.outcome, Outcome::Applied);
    // The hand edit was not overwritten.
    assert_eq!(
        client.get_part(&part.id).await.unwrap().config.to_value(),
        serde_json::json!({"components": []})
    );
}

/// `reconcile::apply` reads every precondition again before its first write and refuses a
/// stale plan whoever prepared it: a plan prepared a moment ago, and the same plan saved to a
/// file and read back. Nothing is written; a fresh plan then applies.
#[tokio::test]
async fn reconcile_apply_refuses_a_stale_plan_fresh_or_saved() {
    use fleetform::reconcile::{self, ApplyError, Prepared};
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    converge(Arc::clone(&api), &manifest(FLEET), 1).await;
    let d = manifest(&FLEET.replace("speed: 2.5", "speed: 9"));
    let opts = reconcile::Options::default();
    let fresh = reconcile::prepare(api.as_ref(), &d, &opts).await.unwrap();
    assert_eq!(fresh.plan().changes.len(), 1);
    assert!(fresh.refusals().is_empty());
    let (saved, salt) = reconcile::saved::read(&reconcile::saved::to_json(fresh.plan()))
        .expect("a plan file")
        .expect("reads back");
    assert!(salt.is_none(), "nothing sensitive");
    // Someone edits the part in the app after planning.
    let part_id = fresh.plan().changes[0].resource_id.clone().unwrap();
    let part = api.get_part(&part_id).await.unwrap();
    let by_hand = serde_json::json!({"components": []});
    api.update_part(&part.id, &part.name, Some(&by_hand), None)
        .await
        .unwrap();
    client.reset_rpc_counts();

    for prepared in [fresh, Prepared::saved(saved, &opts)] {
        let (_tx, stop) = tokio::sync::watch::channel(false);
        match reconcile::apply(Arc::clone(&api), prepared, &opts, None, stop).await {
            Err(ApplyError::Stale(stale)) => {
                assert_eq!(stale.len(), 1, "{stale:?}");
                assert!(stale[0].path.ends_with("arm-01-main"), "{stale:?}");
            }
            other => panic!("expected a stale plan, got {other:?}"),
        }
    }
    let writes: Vec<_> = client
        .rpc_counts()
        .into_keys()
        .filter(|rpc| rpc.starts_with("Update") || rpc.starts_with("Create"))
        .collect();
    assert!(writes.is_empty(), "a stale plan wrote: {writes:?}");
    assert_eq!(
        api.get_part(&part.id).await.unwrap().config.to_value(),
        by_hand
    );

    // Prepared again, the plan is fresh and applies.
    let again = reconcile::prepare(api.as_ref(), &d, &opts).await.unwrap();
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = reconcile::apply(Arc::clone(&api), again, &opts, None, stop)
        .await
        .expect("not stale");
    assert!(report.is_success(), "{}", failures(&report));
}

/// `reconcile::prepare_checked` (apply without a prompt): the drift attribution, the caller's
/// fence and the stale-plan check in one step. A hand edit is attributed and the fresh plan
/// applies; the fence's failure comes back as it was; the verdicts still refuse.
#[tokio::test]
async fn prepare_checked_attributes_checks_and_passes_the_fence_through() {
    use fleetform::reconcile::{self, ApplyError, Step};
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    let d = manifest(FLEET);
    converge(Arc::clone(&api), &d, 1).await;
    let org = api.list_organizations().await.unwrap().remove(0);
    let mut part = None;
    for m in api.list_machines_for_org(&org.id).await.unwrap() {
        let parts = api.get_parts(&m.id).await.unwrap();
        part = part.or(parts.into_iter().find(|p| p.name == "arm-01-main"));
    }
    let part = part.expect("arm-01-main");
    api.update_part(
        &part.id,
        &part.name,
        Some(&serde_json::json!({"components": []})),
        None,
    )
    .await
    .unwrap();
    let opts = reconcile::Options::default();
    let quiet = |_: Step| {};
    let fence = async { Ok::<(), String>(()) };
    let (prechecked, fence) =
        reconcile::prepare_checked(Arc::clone(&api), &d, &opts, &quiet, None, fence)
            .await
            .unwrap();
    assert_eq!(fence, Ok(()));
    let changes = &prechecked.prepared().plan().changes;
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert!(changes[0].attribution.is_some(), "{changes:#?}");
    let checked = prechecked.into_checked().expect("fresh");
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = reconcile::apply_checked(Arc::clone(&api), checked, &opts, None, stop)
        .await
        .unwrap();
    assert!(report.is_success(), "{}", failures(&report));

    // The fence's own failure is the caller's to report.
    let lost = async { Err::<(), _>("lease lost".to_string()) };
    let (_, fence) = reconcile::prepare_checked(Arc::clone(&api), &d, &opts, &quiet, None, lost)
        .await
        .unwrap();
    assert_eq!(fence, Err("lease lost".to_string()));

    // The verdicts refuse as `reconcile::check` does: more deletes than the budget allows.
    let pruned = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: Factory\n",
    );
    let budget = reconcile::Options {
        deletes: reconcile::DeleteBudget {
            max_deletes: 1,
            allow_deletes: false,
        },
        ..Default::default()
    };
    let (prechecked, _) =
        reconcile::prepare_checked(Arc::clone(&api), &pruned, &budget, &quiet, None, async {
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    assert!(matches!(
        prechecked.into_checked(),
        Err(ApplyError::Refused(_))
    ));
}

/// The safety verdicts travel with the plan: a plan beyond the delete budget, or one that
/// an empty manifest would use to delete, is refused by `reconcile::apply` even when the
/// caller never looks at `refusals`; a saved plan meets the same budget.
#[tokio::test]
async fn reconcile_apply_refuses_what_the_safety_verdicts_forbid() {
    use fleetform::reconcile::{self, ApplyError, DeleteBudget, Prepared, Refusal};
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    converge(Arc::clone(&client), &manifest(FLEET), 1).await;
    let budget = |max_deletes| reconcile::Options {
        deletes: DeleteBudget {
            max_deletes,
            allow_deletes: false,
        },
        ..Default::default()
    };
    let pruned = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: Factory\n",
    );
    let p = reconcile::prepare(client.as_ref(), &pruned, &budget(1))
        .await
        .unwrap();
    let deletes = p.plan().summary().delete;
    assert!(deletes > 1, "{:#?}", p.plan().changes);
    assert_eq!(
        p.refusals(),
        [Refusal::DeleteBudget {
            deletes,
            max_deletes: 1
        }]
    );
    let saved = Prepared::saved(p.plan().clone(), &budget(1));
    assert_eq!(saved.refusals(), p.refusals());
    for prepared in [p, saved] {
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let refused = reconcile::apply(Arc::clone(&client), prepared, &budget(1), None, stop).await;
        assert!(
            matches!(refused, Err(ApplyError::Refused(_))),
            "{refused:?}"
        );
    }

    // A manifest that declares nothing (it manages invites as "none"): never used to delete
    // the fleet's invite, whatever the budget.
    let empty =
        manifest("version: 1\norganization: test-org\nprune: true\naccess:\n  invites: []\n");
    assert!(empty.is_empty());
    let p = reconcile::prepare(client.as_ref(), &empty, &budget(1000))
        .await
        .unwrap();
    assert_eq!(
        p.refusals(),
        [Refusal::EmptyManifest {
            deletes: p.plan().summary().delete
        }]
    );
    assert!(p.plan().summary().delete >= 1, "{:#?}", p.plan().changes);
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let refused = reconcile::apply(Arc::clone(&client), p, &budget(1000), None, stop).await;
    assert!(
        matches!(refused, Err(ApplyError::Refused(_))),
        "{refused:?}"
    );
    // Nothing was deleted.
    assert_eq!(
        plan_for(client.as_ref(), &manifest(FLEET))
            .await
            .changes
            .len(),
        0
    );
}

#[tokio::test]
async fn a_failed_change_skips_its_dependents_and_independent_branches_continue() {
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: HQ\n";
    converge(Arc::clone(&client), &manifest(base), 1).await;
    let two = format!(
        "{base}    machines:\n      - name: m1\n        parts:\n          - name: m1-main\n            main: true\n          - name: m1-aux\n      - name: m2\n        parts:\n          - name: m2-main\n            main: true\n          - name: m2-aux\n"
    );
    let d = manifest(&two);
    let p = plan_for(client.as_ref(), &d).await;
    // Someone creates m1 by hand after the plan was made: creating it again must fail.
    let hq = client
        .list_locations(&cloud.org_id)
        .await
        .unwrap()
        .remove(0);
    client.new_machine("m1", &hq.id).await.unwrap();
    let report = run(Arc::clone(&client), &p, 10).await;
    let outcome = |path: &str| {
        report
            .results
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.outcome.clone())
            .unwrap()
    };
    assert!(
        matches!(outcome("HQ/m1"), Outcome::Conflict { .. }),
        "{:?}",
        outcome("HQ/m1")
    );
    assert!(matches!(outcome("HQ/m1/m1-aux"), Outcome::Skipped { .. }));
    assert_eq!(outcome("HQ/m2"), Outcome::Applied);
    assert_eq!(outcome("HQ/m2/m2-aux"), Outcome::Applied);
    // A second apply converges (the hand-made m1 is adopted by name).
    converge(Arc::clone(&client), &d, 1).await;
}

#[tokio::test]
async fn converges_under_injected_faults_without_duplicates_or_lost_updates() {
    let cloud = Cloud::start_with(Faults {
        error_rate: 0.1,
        drop_after_commit_rate: 0.02,
        ..Default::default()
    })
    .await;
    let client = fast_client(&cloud, 8).await;
    let mut text = String::from("version: 1\norganization: test-org\nprune: true\nlocations:\n");
    for s in 0..4 {
        text.push_str(&format!("  - name: site-{s}\n    machines:\n"));
        for m in 0..6 {
            text.push_str(&format!(
                "      - name: m{s}-{m}\n        parts:\n          - name: m{s}-{m}-main\n            main: true\n            config: {{ components: [ {{ name: c, model: fake, attributes: {{ n: {m} }} }} ] }}\n          - name: m{s}-{m}-aux\n"
            ));
        }
    }
    let d = manifest(&text);
    let applies = converge(Arc::clone(&client), &d, 3).await;
    assert!(applies <= 3);
    assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
    // A second round of updates under faults: no update is lost.
    let d2 = manifest(&text.replace("n: 3", "n: 33"));
    converge(Arc::clone(&client), &d2, 3).await;
    assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
}

/// A client with short retry delays and `attempts` attempts per read.
/// Applies `p` once with the default options and no stop request.
async fn apply_once(client: &Arc<dyn CloudApi>, p: &Plan) -> Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    apply(Arc::clone(client), p, &ApplyOptions::default(), None, stop).await
}

async fn fast_client(cloud: &Cloud, attempts: u32) -> Arc<dyn CloudApi> {
    let mut opts = ClientOptions::new(
        cloud.endpoint(),
        Credentials::new(&cloud.key_id, &cloud.key),
    );
    opts.retry = RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    opts.call_timeout = Duration::from_secs(5);
    opts.connect_timeout = Duration::from_secs(2);
    Arc::new(Client::connect(opts).await.unwrap())
}

/// `sites` locations of `machines` machines of two parts each.
fn grid(sites: usize, machines: usize) -> String {
    let mut text = String::from("version: 1\norganization: test-org\nlocations:\n");
    for s in 0..sites {
        text.push_str(&format!("  - name: site-{s}\n    machines:\n"));
        for m in 0..machines {
            text.push_str(&format!(
                "      - name: m{s}-{m}\n        parts:\n          - name: m{s}-{m}-main\n            main: true\n            config: {{ components: [ {{ name: c, model: fake }} ] }}\n          - name: m{s}-{m}-aux\n"
            ));
        }
    }
    text
}

#[tokio::test]
async fn a_dead_cloud_stops_apply_after_consecutive_transport_failures() {
    let mut cloud = Cloud::start().await;
    let client = fast_client(&cloud, 2).await;
    let d = manifest(&grid(30, 1));
    let p = plan_for(client.as_ref(), &d).await;
    assert!(p.changes.len() > 60, "{}", p.changes.len());
    // The server dies after planning: every call is refused from now on.
    if let Some(s) = cloud.server.take() {
        s.shutdown().await.unwrap();
    }
    let parallelism = 3;
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let opts = ApplyOptions {
        parallelism,
        unreachable_after: 5,
        ..Default::default()
    };
    let report = apply(Arc::clone(&client), &p, &opts, None, stop).await;
    let cause = report.unreachable.as_deref().expect("reported unreachable");
    assert!(
        cause.contains("UNAVAILABLE") || cause.contains("TRANSPORT") || cause.contains("DEADLINE"),
        "{cause}"
    );
    assert!(!report.interrupted);
    assert_eq!(report.applied(), 0);
    // The 5th failure stops it; only the changes already in flight then finish.
    let failed = report.count(|o| matches!(o, Outcome::Failed { .. }));
    assert!(
        (5..5 + parallelism).contains(&failed),
        "failed {failed}\n{}",
        failures(&report)
    );
    let not_started = report.count(|o| *o == Outcome::NotStarted);
    assert!(not_started > p.changes.len() / 2, "{}", failures(&report));
}

#[tokio::test]
async fn scattered_transport_failures_do_not_stop_apply_and_it_converges_within_3_runs() {
    // At 30% errors some calls fail, and now and then a change, but never ten changes in a
    // row: apply never takes the cloud for unreachable, and three runs converge.
    let mut cloud = Cloud::start_with(Faults {
        error_rate: 0.3,
        ..Default::default()
    })
    .await;
    let client = fast_client(&cloud, 5).await;
    let d = manifest(&grid(8, 4));
    let mut runs = 0;
    loop {
        let p = plan_for(client.as_ref(), &d).await;
        if p.is_empty() {
            break;
        }
        assert!(
            runs < 3,
            "not converged in 3 runs: {} changes left",
            p.changes.len()
        );
        runs += 1;
        let report = apply_once(&client, &p).await;
        assert_eq!(report.unreachable, None, "{}", failures(&report));
    }
    // Counted on the same store served without faults, so the check itself cannot fail.
    cloud.restart().await;
    let healthy = cloud.client().await;
    assert_no_duplicates(&healthy, &cloud.org_id).await;
}

#[tokio::test]
async fn observation_spends_its_retry_budget_instead_of_failing_on_one_exhausted_read() {
    // Two attempts per read at 20% errors: about one read in 25 exhausts the client's
    // retries, and an observation of the 60 machines makes about 70 reads, so without the
    // budget 19 observations in 20 would fail; with it (a read fails only if four rounds in
    // a row do: about 1 in 400,000), all five succeed. (At 30% errors a read failed 1 in
    // 15,000 times, and the five observations together about 1 run in 40.)
    let cloud = Cloud::start().await;
    let healthy = fast_client(&cloud, 5).await;
    let d = manifest(&grid(6, 10));
    converge(Arc::clone(&healthy), &d, 2).await;
    let mut faulty_cloud = cloud;
    let addr = faulty_cloud.server.as_ref().unwrap().addr();
    if let Some(s) = faulty_cloud.server.take() {
        s.shutdown().await.unwrap();
    }
    let mut opts = fleetform::localcloud::ServerOptions::new(&faulty_cloud.db);
    opts.listen = addr;
    opts.faults = Faults {
        error_rate: 0.2,
        ..Default::default()
    };
    faulty_cloud.server = Some(fleetform::localcloud::start(&opts).await.unwrap());
    let client = fast_client(&faulty_cloud, 2).await;
    for _ in 0..5 {
        let o = observe(client.as_ref(), &d, &ObserveOptions::default())
            .await
            .expect("observe within the retry budget");
        assert_eq!(o.parts.len(), 60);
        assert!(plan(&d, &o, &Options::default()).unwrap().is_empty());
    }
}

/// A tiny deterministic generator of random fleets.
fn random_fleet(rng: &mut fastrand::Rng) -> String {
    let mut t = String::from("version: 1\norganization: test-org\nprune: true\n");
    let frags: Vec<String> = (0..rng.usize(0..3)).map(|i| format!("kit-{i}")).collect();
    if !frags.is_empty() {
        t.push_str("fragments:\n");
        for f in &frags {
            t.push_str(&format!(
                "  - name: {f}\n    config: {{ v: {} }}\n",
                rng.u8(0..3)
            ));
        }
    }
    t.push_str("locations:\n");
    fn loc(
        t: &mut String,
        rng: &mut fastrand::Rng,
        depth: usize,
        indent: usize,
        prefix: &str,
        frags: &[String],
    ) {
        let pad = " ".repeat(indent);
        for i in 0..rng.usize(1..3) {
            let name = format!("{prefix}{}", ["a", "b", "c"][i]);
            t.push_str(&format!("{pad}- name: {name}\n"));
            let machines = rng.usize(0..3);
            if machines > 0 {
                t.push_str(&format!("{pad}  machines:\n"));
                for m in 0..machines {
                    let mname = format!("{name}-m{m}{}", ["", "x"][rng.usize(0..2)]);
                    t.push_str(&format!("{pad}    - name: {mname}\n{pad}      parts:\n"));
                    let parts = rng.usize(1..3);
                    let main = rng.usize(0..parts);
                    for p in 0..parts {
                        t.push_str(&format!(
                            "{pad}        - name: {mname}-p{p}{}\n",
                            ["", "y"][rng.usize(0..2)]
                        ));
                        if parts > 1 && p == main {
                            t.push_str(&format!("{pad}          main: true\n"));
                        }
                        t.push_str(&format!(
                            "{pad}          config: {{ k: {} }}\n",
                            rng.u8(0..3)
                        ));
                        if !frags.is_empty() && rng.bool() {
                            t.push_str(&format!(
                                "{pad}          fragments: [{}]\n",
                                frags[rng.usize(0..frags.len())]
                            ));
                        }
                    }
                }
            }
            if depth < 3 && rng.bool() {
                t.push_str(&format!("{pad}  locations:\n"));
                loc(t, rng, depth + 1, indent + 4, &format!("{name}-"), frags);
            }
        }
    }
    loc(&mut t, rng, 1, 2, "L", &frags);
    t
}

#[tokio::test]
async fn property_apply_a_then_b_converges_to_b() {
    let seed: u64 = std::env::var("FLEETFORM_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let cases: usize = std::env::var("FLEETFORM_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = fastrand::Rng::with_seed(seed);
    for case in 0..cases {
        let a = random_fleet(&mut rng);
        let b = random_fleet(&mut rng);
        let cloud = Cloud::start().await;
        let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
        let (da, db) = (manifest(&a), manifest(&b));
        let pa = plan_for(client.as_ref(), &da).await;
        let ra = run(Arc::clone(&client), &pa, 8).await;
        assert!(
            ra.is_success(),
            "case {case} (seed {seed}) A failed:\n{}\n--- A\n{a}",
            failures(&ra)
        );
        let pb = plan_for(client.as_ref(), &db).await;
        let rb = run(Arc::clone(&client), &pb, 8).await;
        assert!(
            rb.is_success(),
            "case {case} (seed {seed}) B failed:\n{}\n--- A\n{a}\n--- B\n{b}",
            failures(&rb)
        );
        let again = plan_for(client.as_ref(), &db).await;
        assert!(
            again.is_empty(),
            "case {case} (seed {seed}): not converged to B:\n{:#?}\n--- A\n{a}\n--- B\n{b}",
            again
                .changes
                .iter()
                .map(|c| (&c.path, &c.reason))
                .collect::<Vec<_>>()
        );
        // The cloud holds exactly B's machines (top-level locations of A not in B are out of
        // scope and stay; everything inside B's locations is B's).
        let machines = client.list_machines_for_org(&cloud.org_id).await.unwrap();
        let declared: usize = db.all_machines().len();
        let in_scope = {
            let paths = fleetform::model::location_paths(
                &client.list_locations(&cloud.org_id).await.unwrap(),
            );
            let tops: HashSet<&str> = db.locations.iter().map(|l| l.name.as_str()).collect();
            machines
                .iter()
                .filter(|m| {
                    paths
                        .get(&m.location_id)
                        .is_some_and(|p| tops.contains(p.split('/').next().unwrap_or("")))
                })
                .count()
        };
        assert_eq!(in_scope, declared, "case {case}: machines in B's scope");
        assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
    }
}

#[tokio::test]
async fn a_failed_main_part_lookup_fails_only_that_update_and_the_machine_stays_created() {
    // The cloud refuses every parts read: a cold apply creates the machines, then the
    // lookups of their main parts (made outside the write slots) fail, and so does each
    // main-part update, with that error (and the parts created after it are skipped); the
    // locations and machines stay created.
    let cloud = Cloud::start_with(Faults {
        unimplemented: &["GetRobotParts"],
        ..Default::default()
    })
    .await;
    let client = fast_client(&cloud, 1).await;
    let d = manifest(&grid(2, 3));
    let p = plan_for(client.as_ref(), &d).await;
    let report = apply_once(&client, &p).await;
    assert_eq!(report.unreachable, None);
    for r in &report.results {
        let is_part = r.kind == fleetform::plan::Kind::Part;
        match &r.outcome {
            Outcome::Failed { cause } if is_part && r.path.ends_with("-main") => {
                assert!(cause.contains("UNIMPLEMENTED"), "{cause}")
            }
            // A machine's other parts are created after its main part is settled.
            Outcome::Skipped { .. } if is_part && r.path.ends_with("-aux") => {}
            Outcome::Applied if !is_part => {}
            other => panic!(
                "{} {:?}: {other:?}\n{}",
                r.path,
                r.action,
                failures(&report)
            ),
        }
    }
    assert_eq!(report.failed(), 6, "{}", failures(&report));
    // The two locations and six machines were created.
    assert_eq!(report.applied(), 8, "{}", failures(&report));
}
