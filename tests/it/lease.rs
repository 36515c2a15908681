//! The organization's lease (issue 13, point 1): one writer at a time, across processes.

use crate::common;

use common::Cloud;
use fleetform::cloud::CloudApi;
use fleetform::lease::{self, LeaseError};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Takes the lease of `org` for `operation`, without waiting.
async fn take(
    api: &Arc<dyn CloudApi>,
    org: &str,
    operation: &str,
) -> Result<lease::Lease, LeaseError> {
    lease::acquire(
        Arc::clone(api),
        org,
        operation,
        Duration::ZERO,
        lease::DEFAULT_TTL,
    )
    .await
}

#[tokio::test]
async fn a_second_taker_is_refused_naming_the_holder_until_release() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let first = take(&api, &cloud.org_id, "apply")
        .await
        .expect("free at first");
    let err = take(&api, &cloud.org_id, "watch")
        .await
        .err()
        .expect("held");
    let text = err.to_string();
    assert!(matches!(err, LeaseError::Held { .. }), "{text}");
    assert!(text.contains(first.holder()), "{text}");
    assert!(text.contains("apply on"), "{text}");
    assert!(
        text.contains(&format!("force-unlock {}", first.fragment_id())),
        "{text}"
    );
    lease::check(api.as_ref(), first.fragment_id(), first.holder())
        .await
        .expect("still ours");
    first.release().await;
    let second = take(&api, &cloud.org_id, "watch")
        .await
        .expect("free after release");
    // One lease fragment, whatever happened.
    let leases = api
        .list_fragments(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .filter(lease::is_lease)
        .count();
    assert_eq!(leases, 1);
    second.release().await;
}

#[tokio::test]
async fn a_lease_taken_over_is_lost_and_fencing_sees_it() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut first = take(&api, &cloud.org_id, "apply").await.unwrap();
    let was = lease::force_unlock(api.as_ref(), first.fragment_id())
        .await
        .unwrap()
        .expect("it was held");
    assert_eq!(was.holder, first.holder());
    let second = take(&api, &cloud.org_id, "apply").await.unwrap();
    assert!(matches!(
        lease::check(api.as_ref(), first.fragment_id(), first.holder()).await,
        Err(LeaseError::Lost(_))
    ));
    assert!(matches!(first.renew().await, Err(LeaseError::Lost(by)) if by == second.holder()));
}

#[tokio::test]
async fn concurrent_first_takers_agree_on_one_lease() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let tries = (0..6).map(|_| {
        let api = Arc::clone(&api);
        let org = cloud.org_id.clone();
        tokio::spawn(async move {
            lease::acquire(api, &org, "apply", Duration::ZERO, lease::DEFAULT_TTL).await
        })
    });
    let mut held = 0;
    for t in tries {
        if t.await.unwrap().is_ok() {
            held += 1;
        }
    }
    assert_eq!(
        held, 1,
        "exactly one of the concurrent takers holds the lease"
    );
}

const FLEET: &str = "version: 1
organization: local
locations:
  - name: HQ
    machines:
      - { name: arm-1, parts: [ { name: arm-1-main } ] }
      - { name: arm-2, parts: [ { name: arm-2-main } ] }
      - { name: arm-3, parts: [ { name: arm-3-main } ] }
  - name: Lab
  - name: Depot
fragments:
  - name: kit
";

fn apply(
    dir: &std::path::Path,
    env: &(String, String, String),
    extra: &[&str],
) -> std::process::Child {
    crate::common::fleetform_command()
        .args(["apply", "fleet.yaml", "--yes"])
        .args(extra)
        .current_dir(dir)
        .env("FLEETFORM_CLOUD", &env.0)
        .env("VIAM_API_KEY_ID", &env.1)
        .env("VIAM_API_KEY", &env.2)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A client of the `cloud serve` child that `env` (endpoint, key id, key) names.
async fn connect(env: &(String, String, String)) -> fleetform::cloud::Client {
    fleetform::cloud::Client::connect(fleetform::cloud::ClientOptions::new(
        &env.0,
        fleetform::cloud::Credentials::new(&env.1, &env.2),
    ))
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Two applies at once: one applies, the other refuses naming the holder (or, having started
/// after the first finished, finds nothing to do). Never a duplicate.
#[tokio::test]
async fn two_applies_at_once_never_duplicate_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &["--latency", "15ms"]);
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let env = (endpoint.clone(), key_id.clone(), key.clone());
    for round in 0..2 {
        let a = apply(dir.path(), &env, &[]);
        let b = apply(dir.path(), &env, &[]);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for o in [&a, &b] {
            let t = text(o);
            assert!(
                o.status.success() || t.contains("the organization is locked by"),
                "round {round}: {t}"
            );
        }
        assert!(
            a.status.success() || b.status.success(),
            "one of them applied"
        );
    }
    // A waiting apply gets its turn.
    let a = apply(dir.path(), &env, &[]);
    let b = apply(dir.path(), &env, &["--lock-timeout", "2m"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(b.status.success(), "{}", text(&b));
    let _ = a;

    let client = connect(&env).await;
    let org = client.list_organizations().await.unwrap().remove(0);
    let locations = client.list_locations(&org.id).await.unwrap();
    assert_eq!(locations.len(), 3, "{locations:#?}");
    let machines = client.list_machines_for_org(&org.id).await.unwrap();
    assert_eq!(machines.len(), 3);
    let fragments = client.list_fragments(&org.id).await.unwrap();
    assert_eq!(fragments.iter().filter(|f| f.name == "kit").count(), 1);
    assert_eq!(fragments.iter().filter(|f| lease::is_lease(f)).count(), 1);

    // The lease is never planned: with prune, nothing is to be deleted.
    let plan = crate::common::fleetform_command()
        .args(["plan", "fleet.yaml", "--prune", "--detailed-exitcode"])
        .current_dir(dir.path())
        .env("FLEETFORM_CLOUD", &endpoint)
        .env("VIAM_API_KEY_ID", &key_id)
        .env("VIAM_API_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(!text(&plan).contains("fleetform-lease"));
}

/// Two first runs with `--cloud local` at once make one organization, and (holding the
/// lease in turn) one fleet.
#[test]
fn two_first_local_runs_make_one_organization() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleet.yaml"),
        FLEET.replace("organization: local", "organization: acme"),
    )
    .unwrap();
    let run = || {
        crate::common::fleetform_command()
            .args(["apply", "fleet.yaml", "--yes", "--lock-timeout", "2m"])
            .current_dir(dir.path())
            .env("FLEETFORM_CLOUD", "local")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(o.status.success(), "{}", text(&o));
    }
    let db = rusqlite::Connection::open(dir.path().join(".fleetform/cloud.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM orgs WHERE name = 'acme'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM locations"), 3);
}

/// A holder whose lease is taken over (after `force-unlock`) raises its stop signal within
/// seconds, so it starts no new write.
#[tokio::test]
async fn a_guard_notices_a_takeover_and_raises_stop() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let guard = lease::Guard::take(Arc::clone(&api), &cloud.org_id, "apply", Duration::ZERO)
        .await
        .unwrap();
    let mut stop = guard.stop.subscribe();
    let leases = api.list_fragments(&cloud.org_id).await.unwrap();
    let id = leases
        .iter()
        .find(|f| lease::is_lease(f))
        .unwrap()
        .id
        .clone();
    lease::force_unlock(api.as_ref(), &id).await.unwrap();
    let _other = take(&api, &cloud.org_id, "apply").await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), stop.wait_for(|s| *s))
        .await
        .expect("the takeover is noticed")
        .unwrap();
    guard.release().await;
}

/// Fencing in the apply engine: a lease taken over while apply runs stops it from starting
/// changes; what it started before is all that was written, and nothing is duplicated.
#[tokio::test]
async fn an_apply_whose_lease_is_taken_over_starts_no_more_changes() {
    let cloud = Cloud::start_with(fleetform::localcloud::Faults {
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut text = String::from("version: 1\norganization: test-org\nlocations:\n");
    for i in 0..60 {
        text.push_str(&format!("  - name: site-{i}\n"));
    }
    let desired =
        fleetform::manifest::parse_str(&text, std::path::Path::new("fleet.yaml"), &|_| None)
            .unwrap();
    let guard = lease::Guard::take_for(
        Arc::clone(&api),
        &cloud.org_id,
        "apply",
        Duration::ZERO,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let observed = fleetform::cloud::observe::observe(api.as_ref(), &desired, &Default::default())
        .await
        .unwrap();
    let p = fleetform::plan::plan(&desired, &observed, &Default::default()).unwrap();
    assert_eq!(p.changes.len(), 60);
    // Another fleetform takes the lease over once the first change has applied.
    let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let thief = {
        let api = Arc::clone(&api);
        let org = cloud.org_id.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if matches!(e, fleetform::apply::Event::Finished { .. }) {
                    break;
                }
            }
            let f = api
                .list_fragments(&org)
                .await
                .unwrap()
                .into_iter()
                .find(lease::is_lease)
                .unwrap();
            lease::force_unlock(api.as_ref(), &f.id).await.unwrap();
            take(&api, &org, "apply").await.unwrap()
        })
    };
    let opts = fleetform::apply::ApplyOptions {
        parallelism: 1,
        ..Default::default()
    };
    let report = fleetform::apply::apply(
        Arc::clone(&api),
        &p,
        &opts,
        Some(events),
        guard.stop.subscribe(),
    )
    .await;
    let other = thief.await.unwrap();
    assert!(guard.lost(), "the takeover was noticed");
    assert!(report.interrupted);
    let applied = report.applied();
    let not_started = report.count(|o| *o == fleetform::apply::Outcome::NotStarted);
    assert!(applied >= 1 && not_started > 0, "{applied} applied");
    assert_eq!(applied + not_started, 60, "nothing failed or was skipped");
    // Exactly what apply reported as applied is in the cloud.
    let locations = api.list_locations(&cloud.org_id).await.unwrap();
    assert_eq!(locations.len(), applied);
    common::assert_no_duplicates(api.as_ref(), &cloud.org_id).await;
    other.release().await;
    guard.release().await;
}

/// A holder cut off from the cloud gives its lease up (raises stop) before the lease can
/// expire for the others, so a partitioned writer never overlaps the next one.
#[tokio::test]
async fn a_partitioned_holder_gives_its_lease_up() {
    let mut cloud = Cloud::start().await;
    let mut opts = fleetform::cloud::ClientOptions::new(
        cloud.endpoint(),
        fleetform::cloud::Credentials::new(&cloud.key_id, &cloud.key),
    );
    opts.call_timeout = Duration::from_millis(500);
    opts.connect_timeout = Duration::from_millis(500);
    opts.retry.max_attempts = 1;
    let api: Arc<dyn CloudApi> = Arc::new(fleetform::cloud::Client::connect(opts).await.unwrap());
    let guard = lease::Guard::take_for(
        Arc::clone(&api),
        &cloud.org_id,
        "watch",
        Duration::ZERO,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let mut stop = guard.stop.subscribe();
    if let Some(s) = cloud.server.take() {
        s.shutdown().await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), stop.wait_for(|s| *s))
        .await
        .expect("the partitioned holder gives the lease up")
        .unwrap();
    assert!(guard.lost());
}

/// `apply` takes the lease while the manifest loads (a key of one organization); a manifest
/// that then fails to load, or names an unknown `--target`, frees it before the command ends.
#[tokio::test]
async fn an_apply_whose_manifest_fails_frees_the_lease_it_took_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &["--latency", "15ms"]);
    let env = (endpoint.clone(), key_id.clone(), key.clone());
    let client = connect(&env).await;
    let org = client.list_organizations().await.unwrap().remove(0);
    let api: Arc<dyn CloudApi> = Arc::new(client);

    std::fs::write(dir.path().join("fleet.yaml"), "organization: [not a name\n").unwrap();
    let bad = apply(dir.path(), &env, &[]).wait_with_output().unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("fleet.yaml:"), "{}", text(&bad));

    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let unknown = apply(dir.path(), &env, &["--target", "location.nowhere"])
        .wait_with_output()
        .unwrap();
    assert!(!unknown.status.success(), "{}", text(&unknown));
    assert!(text(&unknown).contains("nowhere"), "{}", text(&unknown));

    // The lease was taken (its fragment exists) and is free again: taken at once.
    let fragments = api.list_fragments(&org.id).await.unwrap();
    assert_eq!(fragments.iter().filter(|f| lease::is_lease(f)).count(), 1);
    let held = take(&api, &org.id, "test")
        .await
        .expect("the lease is free");
    held.release().await;
    // Nothing else was written.
    assert!(api.list_locations(&org.id).await.unwrap().is_empty());
}

/// Taking the lease from a listing the caller read: `true` only when the compare-and-swap
/// against the lease as listed took it, so that nobody took the lease since the listing.
#[tokio::test]
async fn a_lease_taken_from_a_listing_says_whether_the_listing_still_held() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let org = cloud.org_id.as_str();
    let listed = || async { api.list_fragments(org).await.unwrap() };
    let take_listed = |listing| {
        lease::Guard::take_listed(Arc::clone(&api), org, "apply", Duration::ZERO, listing)
    };

    // No lease fragment yet: it is made, so the listing did not show the lease.
    let (guard, from_listing) = take_listed(listed().await).await.unwrap();
    assert!(!from_listing);
    guard.release().await;

    // Free as listed, untouched since: taken from the listing.
    let (guard, from_listing) = take_listed(listed().await).await.unwrap();
    assert!(from_listing);
    guard.release().await;

    // Another run took and freed the lease after the listing: the listing is stale, the
    // lease is read again and taken, and the caller is told its reads must be made again.
    let before = listed().await;
    take(&api, org, "other").await.unwrap().release().await;
    let (guard, from_listing) = take_listed(before).await.unwrap();
    assert!(!from_listing);

    // Held by someone else: refused at once, naming the holder.
    let refused = take_listed(listed().await).await;
    match refused {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder.holder, guard.holder()),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a held lease was taken"),
    }
    guard.release().await;
}
