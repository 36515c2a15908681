//! `cloud::observe` against the local cloud: scope, RPC economy, bounded concurrency, errors
//! and drift attribution.

use crate::common;

use common::Cloud;
use fleetform::cloud::observe::{
    ObserveError, ObserveOptions, attribute, observe, observe_after, read_early, read_lists_leased,
};
use fleetform::cloud::{Client, ClientOptions, CloudApi, Code, Credentials, RetryPolicy};
use fleetform::localcloud::Faults;
use fleetform::model::{
    Config, Desired, DesiredLocation, DesiredMachine, DesiredPart, Grant, Identity, Observed,
    OrgRef, ResourceKind, Role, Timestamp, Visibility,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as _;
use std::time::Duration;

/// Ids of what [`build_fleet`] made.
struct Fleet {
    hq: String,
    assembly: String,
    line1: String,
    spare: String,
    lab: String,
    /// Machine name → id.
    machines: BTreeMap<&'static str, String>,
}

/// ```text
/// HQ                       cam-01 (1 part)
/// HQ/Assembly              arm-01 (2 parts)
/// HQ/Assembly/Line1        arm-02 (2 parts)
/// HQ/Spare                 spare-01          (undeclared child of a managed location)
/// Lab                      lab-01, lab-02    (undeclared top-level location: out of scope)
/// ```
/// plus fragments `camera-kit` and `lidar-kit` and an invite for `ops@acme.example`.
async fn build_fleet(c: &Client, org: &str) -> Fleet {
    let hq = c.create_location(org, "HQ", None).await.unwrap().id;
    let assembly = c
        .create_location(org, "Assembly", Some(&hq))
        .await
        .unwrap()
        .id;
    let line1 = c
        .create_location(org, "Line1", Some(&assembly))
        .await
        .unwrap()
        .id;
    let spare = c.create_location(org, "Spare", Some(&hq)).await.unwrap().id;
    let lab = c.create_location(org, "Lab", None).await.unwrap().id;

    let mut machines = BTreeMap::new();
    for (name, location, extra_part) in [
        ("cam-01", &hq, false),
        ("arm-01", &assembly, true),
        ("arm-02", &line1, true),
        ("spare-01", &spare, false),
        ("lab-01", &lab, false),
        ("lab-02", &lab, true),
    ] {
        let id = c.new_machine(name, location).await.unwrap();
        if extra_part {
            c.new_part(&id, &format!("{name}-aux")).await.unwrap();
        }
        machines.insert(name, id);
    }

    for name in ["camera-kit", "lidar-kit"] {
        c.create_fragment(org, name, &json!({"components": []}), Visibility::Private)
            .await
            .unwrap();
    }
    c.create_invite(
        org,
        "ops@acme.example",
        &[Grant {
            role: Role::Operator,
            resource_kind: ResourceKind::Location,
            resource_id: hq.clone(),
        }],
        false,
    )
    .await
    .unwrap();

    Fleet {
        hq,
        assembly,
        line1,
        spare,
        lab,
        machines,
    }
}

fn location(
    path: &str,
    locations: Vec<DesiredLocation>,
    machines: Vec<DesiredMachine>,
) -> DesiredLocation {
    DesiredLocation {
        name: path.rsplit('/').next().unwrap().to_string(),
        path: path.to_string(),
        identity: Identity::default(),
        rotate_secrets_after: None,
        locations,
        machines,
    }
}

fn machine(path: &str, identity: Identity) -> DesiredMachine {
    let name = path.rsplit('/').next().unwrap().to_string();
    DesiredMachine {
        name: name.clone(),
        path: path.to_string(),
        identity,
        parts: vec![DesiredPart {
            name: format!("{name}-main"),
            path: format!("{path}/{name}-main"),
            identity: Identity::default(),
            main: true,
            config: Config::from(json!({})),
            fragments: vec![],
            ignore: vec![],
        }],
    }
}

/// Declares `HQ` (with `cam-01`) and `HQ/Assembly` (secrets rotated every 90 days, with
/// `arm-01`); `HQ/Assembly/Line1`, `HQ/Spare` and `Lab` are not declared.
fn desired(organization: OrgRef) -> Desired {
    let mut assembly = location(
        "HQ/Assembly",
        vec![],
        vec![machine("HQ/Assembly/arm-01", Identity::default())],
    );
    assembly.rotate_secrets_after = Some(Duration::from_secs(90 * 86_400));
    Desired {
        organization,
        locations: vec![location(
            "HQ",
            vec![assembly],
            vec![machine("HQ/cam-01", Identity::default())],
        )],
        ..Default::default()
    }
}

fn ids<'a>(it: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    it.into_iter().cloned().collect()
}

fn count(counts: &BTreeMap<&'static str, u64>, rpc: &str) -> u64 {
    counts.get(rpc).copied().unwrap_or(0)
}

/// `counts` after early reads, checked against `once` (the same observation without them):
/// the early step may also read each of the organization's `fragments` fragments' usage and
/// versions once, whether the manifest declares it or not (in the slots the machine listing
/// leaves free); every other call is made exactly as often.
fn same_calls_but_fragments_ahead(
    mut counts: BTreeMap<&'static str, u64>,
    once: &BTreeMap<&'static str, u64>,
    fragments: u64,
) {
    for rpc in ["GetFragment", "GetFragmentUsage"] {
        let (made, wanted) = (count(&counts, rpc), count(once, rpc));
        assert!(
            (wanted..=wanted.max(fragments)).contains(&made),
            "{made} {rpc} for {wanted} wanted, {fragments} fragments"
        );
        counts.remove(rpc);
    }
    let mut once = once.clone();
    once.remove("GetFragment");
    once.remove("GetFragmentUsage");
    assert_eq!(counts, once);
}

/// `observed` without its timestamp, for comparing two observations.
fn timeless(mut o: Observed) -> Observed {
    o.observed_at = Timestamp::default();
    o
}

/// The reads made before the manifest is known (`plan` makes them while it loads) serve the
/// observation: together they are the calls of one observation, and observe the same.
#[tokio::test]
async fn early_reads_serve_the_observation() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    build_fleet(&c, &cloud.org_id).await;
    let d = desired(OrgRef::Name("test-org".into()));
    let opts = ObserveOptions::default();

    c.reset_rpc_counts();
    let plain = observe(&c, &d, &opts).await.unwrap();
    let once = c.rpc_counts();
    // Without a guess of the organization, with the right one, and with a wrong one (whose
    // lists fail and are made again for the organization the key sees).
    for (guess, opts, wasted) in guesses(&opts, &cloud.org_id) {
        let guess = guess.as_deref();
        c.reset_rpc_counts();
        let before = Timestamp::now();
        let early = read_early(&shared(&c), Some(&opts))
            .await
            .expect("early reads");
        let early_counts = c.rpc_counts();
        assert_eq!(count(&early_counts, "ListOrganizations"), 1);
        assert_eq!(count(&early_counts, "ListLocations"), 1 + wasted);
        assert_eq!(count(&early_counts, "ListRobotsForLocations"), 1);
        // A guess also lists the organization's machines, whose parts are then read ahead
        // (a right guess) from that listing.
        let guessed = u64::from(guess.is_some());
        assert_eq!(count(&early_counts, "ListRobotsForOrg"), guessed);
        if guess == Some(cloud.org_id.as_str()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let ahead = count(&c.rpc_counts(), "GetRobotParts");
            assert!(ahead > 0, "{ahead} read ahead");
        }
        let after = observe_after(&c, &d, &opts, Some(early)).await.unwrap();
        let mut counts = c.rpc_counts();
        for rpc in ["ListLocations", "ListFragments"] {
            *counts.get_mut(rpc).unwrap() -= wasted;
        }
        assert_eq!(counts.remove("ListRobotsForOrg").unwrap_or(0), guessed);
        // The machines outside the manifest's scope (the two of `Lab`) may have been read
        // ahead before the scope was known.
        let parts = count(&counts, "GetRobotParts");
        let wanted = count(&once, "GetRobotParts");
        assert!(
            (wanted..=wanted + 2).contains(&parts),
            "{parts} GetRobotParts"
        );
        counts.insert("GetRobotParts", wanted);
        let fragments = c.list_fragments(&cloud.org_id).await.unwrap().len() as u64;
        assert!(
            fragments > 0,
            "the fleet has fragments the manifest does not declare"
        );
        same_calls_but_fragments_ahead(counts, &once, fragments);
        assert!(after.observed_at >= before && after.observed_at <= Timestamp::now());
        assert_eq!(timeless(after), timeless(plain.clone()), "{guess:?}");
    }

    // The organizations alone (what `apply` reads before it takes the lease): the
    // observation lists the rest itself.
    c.reset_rpc_counts();
    let orgs_only = read_early(&shared(&c), None).await.expect("early reads");
    assert_eq!(orgs_only.organizations().len(), 1);
    let after = observe_after(&c, &d, &opts, Some(orgs_only)).await.unwrap();
    assert_eq!(c.rpc_counts(), once);
    assert_eq!(timeless(after), timeless(plain));
}

/// A guessed organization's lists go out together with `ListOrganizations`, not after its
/// answer: with the organizations unlistable, they were asked all the same (and, unconfirmed,
/// are not used: there are no early reads).
#[tokio::test]
async fn a_guessed_organization_is_listed_with_the_organizations() {
    let cloud = Cloud::start_with(Faults {
        unimplemented: &["ListOrganizations"],
        ..Faults::default()
    })
    .await;
    let c = cloud.client().await;
    for guess in [None, Some(cloud.org_id.clone())] {
        let opts = ObserveOptions {
            organization_guess: guess.clone(),
            ..ObserveOptions::default()
        };
        let with_guess = u64::from(guess.is_some());
        c.reset_rpc_counts();
        assert!(read_early(&shared(&c), Some(&opts)).await.is_none());
        let counts = c.rpc_counts();
        assert_eq!(count(&counts, "ListLocations"), with_guess, "{guess:?}");
        assert_eq!(count(&counts, "ListFragments"), with_guess, "{guess:?}");

        c.reset_rpc_counts();
        let api: std::sync::Arc<dyn CloudApi> = std::sync::Arc::new(c.clone());
        let lease = |_org: String, _listed| async { Some(((), true)) };
        assert!(read_lists_leased(&api, &opts, lease).await.is_none());
        let counts = c.rpc_counts();
        assert_eq!(count(&counts, "ListLocations"), 0, "{guess:?}");
        assert_eq!(count(&counts, "ListFragments"), with_guess, "{guess:?}");
    }
}

/// Parts read ahead while the manifest loads serve the observation: a manifest of the whole
/// organization reads each machine once, as without them; one of part of it observes exactly
/// its scope, having read at most the machines outside it that the read-ahead started before
/// the scope was known.
#[tokio::test]
async fn parts_read_ahead_serve_the_observation() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    build_fleet(&c, &cloud.org_id).await;
    let opts = ObserveOptions::default();
    let part_of_org = desired(OrgRef::Name("test-org".into()));
    let mut whole_org = part_of_org.clone();
    whole_org.locations.push(location("Lab", vec![], vec![]));

    for (d, outside_scope) in [(&whole_org, 0), (&part_of_org, 2)] {
        c.reset_rpc_counts();
        let plain = observe(&c, d, &opts).await.unwrap();
        let once = c.rpc_counts();
        c.reset_rpc_counts();
        let mut early = read_early(&shared(&c), Some(&opts))
            .await
            .expect("early reads");
        early.read_parts_ahead(std::sync::Arc::new(c.clone()), opts.read_concurrency);
        let after = observe_after(&c, d, &opts, Some(early)).await.unwrap();
        assert_eq!(timeless(after), timeless(plain));
        let mut counts = c.rpc_counts();
        let parts = count(&counts, "GetRobotParts");
        let wanted = count(&once, "GetRobotParts");
        assert!(
            (wanted..=wanted + outside_scope).contains(&parts),
            "{parts} GetRobotParts for {wanted} machines in scope"
        );
        counts.insert("GetRobotParts", wanted);
        let fragments = c.list_fragments(&cloud.org_id).await.unwrap().len() as u64;
        same_calls_but_fragments_ahead(counts, &once, fragments);
    }
}

/// The early reads of a command that takes the lease (`apply`) serve the observation too: the
/// parts read ahead from the organization's machine listing (`ListRobotsForOrg`) are each
/// machine's one read. A cloud without that listing reads the parts in the observation
/// instead, and observes the same.
#[tokio::test]
async fn leased_early_reads_serve_the_observation() {
    for unimplemented in [&[][..], &["ListRobotsForOrg"][..]] {
        let cloud = Cloud::start_with(Faults {
            unimplemented,
            ..Faults::default()
        })
        .await;
        let c = cloud.client().await;
        build_fleet(&c, &cloud.org_id).await;
        let mut d = desired(OrgRef::Name("test-org".into()));
        d.locations.push(location("Lab", vec![], vec![]));
        let opts = ObserveOptions::default();
        c.reset_rpc_counts();
        let plain = observe(&c, &d, &opts).await.unwrap();
        let once = c.rpc_counts();

        // Without a guess of the organization, with the right one, and with a wrong one
        // (whose fragment listing fails and is made again).
        for (guess, opts, wasted) in guesses(&opts, &cloud.org_id) {
            c.reset_rpc_counts();
            let api: std::sync::Arc<dyn CloudApi> = std::sync::Arc::new(c.clone());
            let lease = |_org: String, _listed| async { Some(((), true)) };
            let (early, held) = read_lists_leased(&api, &opts, lease).await.expect("listed");
            assert!(held.is_some());
            // With the organization's listing, the parts are being read already.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let ahead = count(&c.rpc_counts(), "GetRobotParts");
            assert_eq!(ahead > 0, unimplemented.is_empty(), "{ahead} read ahead");
            let after = observe_after(&c, &d, &opts, Some(early)).await.unwrap();
            assert_eq!(timeless(after), timeless(plain.clone()), "{guess:?}");
            let mut counts = c.rpc_counts();
            assert_eq!(
                counts.remove("ListRobotsForOrg"),
                Some(1),
                "{unimplemented:?}"
            );
            *counts.get_mut("ListFragments").unwrap() -= wasted;
            assert_eq!(
                count(&counts, "GetRobotParts"),
                count(&once, "GetRobotParts")
            );
            let fragments = c.list_fragments(&cloud.org_id).await.unwrap().len() as u64;
            same_calls_but_fragments_ahead(counts, &once, fragments);
        }
    }
}

/// Dropping the early reads (a manifest that does not load) stops the parts read ahead:
/// nothing more is started.
#[tokio::test]
async fn dropping_the_early_reads_stops_the_parts_read_ahead() {
    let cloud = Cloud::start_with(Faults {
        latency: Duration::from_millis(60),
        ..Faults::default()
    })
    .await;
    let c = cloud.client().await;
    let fleet = build_fleet(&c, &cloud.org_id).await;
    let opts = ObserveOptions::default();
    let mut early = read_early(&shared(&c), Some(&opts))
        .await
        .expect("early reads");
    c.reset_rpc_counts();
    // One read at a time: reading all six machines takes six round trips.
    early.read_parts_ahead(std::sync::Arc::new(c.clone()), 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(early);
    let started = count(&c.rpc_counts(), "GetRobotParts");
    assert!(
        started < fleet.machines.len() as u64,
        "{started} reads started"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&c.rpc_counts(), "GetRobotParts"), started);
}

#[tokio::test]
async fn observes_the_whole_org_and_reads_parts_only_in_scope() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let fleet = build_fleet(&c, &cloud.org_id).await;
    let m = &fleet.machines;
    let opts = ObserveOptions::default();

    c.reset_rpc_counts();
    let before = Timestamp::now();
    let o = observe(&c, &desired(OrgRef::Name("test-org".into())), &opts)
        .await
        .unwrap();
    let counts = c.rpc_counts();

    // The organization, resolved by name; everything listed.
    assert_eq!(o.organization.id, cloud.org_id);
    assert!(o.observed_at >= before && o.observed_at <= Timestamp::now());
    assert_eq!(
        ids(o.locations.iter().map(|l| &l.id)),
        ids([
            &fleet.hq,
            &fleet.assembly,
            &fleet.line1,
            &fleet.spare,
            &fleet.lab
        ])
    );
    assert_eq!(ids(o.machines.iter().map(|m| &m.id)), ids(m.values()));
    let fragment_names: BTreeSet<&str> = o.fragments.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(fragment_names, BTreeSet::from(["camera-kit", "lidar-kit"]));

    // Parts for every machine in the managed locations (HQ and all its descendants, declared
    // or not), none for the machines in the undeclared top-level Lab.
    assert_eq!(
        ids(o.parts.keys()),
        ids([&m["cam-01"], &m["arm-01"], &m["arm-02"], &m["spare-01"]])
    );
    assert_eq!(o.parts[&m["arm-01"]].len(), 2);
    assert_eq!(o.parts[&m["arm-02"]].len(), 2);
    assert_eq!(o.parts[&m["cam-01"]].len(), 1);
    assert!(
        o.parts[&m["arm-01"]]
            .iter()
            .any(|p| p.main && p.name == "arm-01-main")
    );

    // Secrets only for HQ/Assembly (the one location with a rotation policy).
    assert_eq!(ids(o.secrets.keys()), ids([&fleet.assembly]));
    assert_eq!(o.secrets[&fleet.assembly].len(), 1);

    // No `access:` section: invites are not read.
    assert_eq!(o.invites, None);
    assert!(o.members.is_empty());

    // RPC economy: list calls, one GetRobotParts per managed machine, nothing per resource.
    assert_eq!(count(&counts, "ListOrganizations"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListLocations"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListRobotsForLocations"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListRobotsForOrg"), 0, "{counts:?}");
    assert_eq!(count(&counts, "ListFragments"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListRobots"), 0, "{counts:?}");
    assert_eq!(count(&counts, "GetRobot"), 0, "{counts:?}");
    assert_eq!(count(&counts, "GetRobotPart"), 0, "{counts:?}");
    assert_eq!(count(&counts, "GetLocation"), 0, "{counts:?}");
    assert_eq!(count(&counts, "GetFragment"), 0, "{counts:?}");
    assert_eq!(count(&counts, "GetRobotParts"), 4, "{counts:?}");
    assert_eq!(count(&counts, "LocationAuth"), 1, "{counts:?}");
    assert_eq!(count(&counts, "ListOrganizationMembers"), 0, "{counts:?}");

    // Resolved by id, the same observation.
    let by_id = observe(&c, &desired(OrgRef::Id(cloud.org_id.clone())), &opts)
        .await
        .unwrap();
    assert_eq!(timeless(by_id), timeless(o.clone()));

    // Bounded concurrency: with 2 reads in flight, the result is identical.
    let narrow = observe(
        &c,
        &desired(OrgRef::Name("test-org".into())),
        &ObserveOptions {
            read_concurrency: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(timeless(narrow), timeless(o.clone()));
    let serial = observe(
        &c,
        &desired(OrgRef::Name("test-org".into())),
        &ObserveOptions {
            read_concurrency: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(timeless(serial), timeless(o));
}

#[tokio::test]
async fn invites_are_read_only_when_access_is_managed() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    build_fleet(&c, &cloud.org_id).await;

    let mut d = desired(OrgRef::Name("test-org".into()));
    d.invites = Some(vec![]);
    c.reset_rpc_counts();
    let o = observe(&c, &d, &ObserveOptions::default()).await.unwrap();
    assert_eq!(count(&c.rpc_counts(), "ListOrganizationMembers"), 1);
    let invites = o.invites.expect("invites read");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].email, "ops@acme.example");
    assert!(
        o.members
            .iter()
            .any(|m| m.emails.iter().any(|e| e == "owner@example.com")),
        "{:?}",
        o.members
    );
}

#[tokio::test]
async fn members_roles_are_read_only_when_members_are_managed() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    build_fleet(&c, &cloud.org_id).await;

    let mut d = desired(OrgRef::Name("test-org".into()));
    c.reset_rpc_counts();
    let o = observe(&c, &d, &ObserveOptions::default()).await.unwrap();
    assert_eq!(count(&c.rpc_counts(), "ListAuthorizations"), 0);
    assert_eq!(fleetform::kinds::members::roles(&o), None);

    d.kinds.insert("member".into(), serde_json::json!([]));
    c.reset_rpc_counts();
    let o = observe(&c, &d, &ObserveOptions::default()).await.unwrap();
    assert_eq!(count(&c.rpc_counts(), "ListAuthorizations"), 1);
    assert_eq!(o.invites, None, "invites stay unmanaged");
    let owner = o
        .members
        .iter()
        .find(|m| m.emails.iter().any(|e| e == "owner@example.com"))
        .expect("the founding member is listed");
    let roles = fleetform::kinds::members::roles(&o).expect("roles read");
    assert!(
        roles.iter().any(|r| r.identity_id == owner.user_id
            && r.grant.role == fleetform::model::Role::Owner
            && r.grant.resource_id == cloud.org_id),
        "{roles:?}"
    );
}

#[tokio::test]
async fn pinned_and_moved_machines_outside_scope_are_read() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let fleet = build_fleet(&c, &cloud.org_id).await;
    let m = &fleet.machines;

    // Lab/lab-01 is pinned by a machine declared in HQ, Lab/lab-02 was moved to HQ; a
    // top-level location pinned by id to Line1 brings Line1 into scope on its own.
    let mut d = desired(OrgRef::Name("test-org".into()));
    d.locations[0].machines.push(machine(
        "HQ/camera-pinned",
        Identity {
            id: Some(m["lab-01"].clone()),
            ..Default::default()
        },
    ));
    d.locations[0].machines.push(machine(
        "HQ/lab-02",
        Identity {
            moved_from: Some("Lab/lab-02".into()),
            ..Default::default()
        },
    ));
    c.reset_rpc_counts();
    let o = observe(&c, &d, &ObserveOptions::default()).await.unwrap();
    assert_eq!(
        ids(o.parts.keys()),
        ids([
            &m["cam-01"],
            &m["arm-01"],
            &m["arm-02"],
            &m["spare-01"],
            &m["lab-01"],
            &m["lab-02"]
        ])
    );
    assert_eq!(count(&c.rpc_counts(), "GetRobotParts"), 6);

    // Only Line1, pinned by id under a new name: Line1 and its machine are managed, HQ is not.
    let mut line = location("Moved-Line", vec![], vec![]);
    line.identity.id = Some(fleet.line1.clone());
    line.rotate_secrets_after = Some(Duration::from_secs(86_400));
    let d = Desired {
        locations: vec![line],
        ..desired(OrgRef::Name("test-org".into()))
    };
    let o = observe(&c, &d, &ObserveOptions::default()).await.unwrap();
    assert_eq!(ids(o.parts.keys()), ids([&m["arm-02"]]));
    assert_eq!(ids(o.secrets.keys()), ids([&fleet.line1]));
}

#[tokio::test]
async fn unknown_organization_lists_what_the_key_can_see() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let err = observe(
        &c,
        &desired(OrgRef::Name("acme".into())),
        &ObserveOptions::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, ObserveError::OrganizationNotFound { wanted, visible }
            if wanted == "acme" && visible == &[("test-org".to_string(), cloud.org_id.clone())]),
        "{err:?}"
    );
    assert!(text.contains("`acme` not found"), "{text}");
    assert!(text.contains("`test-org`"), "{text}");
    assert!(text.contains(&cloud.org_id), "{text}");
    assert!(text.contains("hint:"), "{text}");
    assert!(!text.contains(&cloud.key), "never the key: {text}");

    let err = observe(
        &c,
        &desired(OrgRef::Id("00000000-0000-4000-8000-000000000000".into())),
        &ObserveOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ObserveError::OrganizationNotFound { .. }));
}

/// A cloud answering `UNIMPLEMENTED` to `unimplemented`, with fleet built on it.
async fn fleet_on(unimplemented: &'static [&'static str]) -> (Cloud, Client, Fleet) {
    let cloud = Cloud::start_with(Faults {
        unimplemented,
        ..Default::default()
    })
    .await;
    let c = cloud.client().await;
    let fleet = build_fleet(&c, &cloud.org_id).await;
    (cloud, c, fleet)
}

#[tokio::test]
async fn machines_are_listed_on_clouds_lacking_a_list_rpc() {
    // Every machine build_fleet makes, in and out of scope.
    let reference = ["arm-01", "arm-02", "cam-01", "lab-01", "lab-02", "spare-01"];
    let cases: [(&'static [&'static str], &str, u64); 2] = [
        (&["ListRobotsForLocations"], "ListRobotsForOrg", 1),
        (
            &["ListRobotsForLocations", "ListRobotsForOrg"],
            "ListRobots",
            5,
        ),
    ];
    for (missing, used, calls) in cases {
        let (cloud, c, fleet) = fleet_on(missing).await;
        c.reset_rpc_counts();
        let o = observe(
            &c,
            &desired(OrgRef::Id(cloud.org_id.clone())),
            &ObserveOptions::default(),
        )
        .await
        .unwrap();
        let counts = c.rpc_counts();
        let mut names: Vec<String> = o.machines.iter().map(|m| m.name.clone()).collect();
        names.sort();
        assert_eq!(names, reference, "{missing:?}");
        assert_eq!(count(&counts, used), calls, "{missing:?}: {counts:?}");
        for m in missing {
            assert_eq!(
                count(&counts, m),
                1,
                "asked once, then not again: {counts:?}"
            );
        }
        assert!(o.parts.contains_key(&fleet.machines["arm-01"]));
    }
}

#[tokio::test]
async fn machines_of_many_locations_are_listed_in_batches() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let n = fleetform::cloud::observe::LOCATIONS_PER_CALL + 3;
    let mut ids = vec![];
    for i in 0..n {
        let l = c
            .create_location(&cloud.org_id, &format!("site-{i}"), None)
            .await
            .unwrap();
        c.new_machine(&format!("m-{i}"), &l.id).await.unwrap();
        ids.push(l.id);
    }
    c.reset_rpc_counts();
    let machines = fleetform::cloud::observe::list_machines(&c, &cloud.org_id, &ids, 4)
        .await
        .unwrap();
    assert_eq!(machines.len(), n);
    assert_eq!(count(&c.rpc_counts(), "ListRobotsForLocations"), 2);
    let none = fleetform::cloud::observe::list_machines(&c, &cloud.org_id, &[], 4)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(
        count(&c.rpc_counts(), "ListRobotsForLocations"),
        2,
        "no call for no locations"
    );
}

#[tokio::test]
async fn observed_locations_carry_their_organizations() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    build_fleet(&c, &cloud.org_id).await;
    let o = observe(
        &c,
        &desired(OrgRef::Id(cloud.org_id.clone())),
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    for l in &o.locations {
        assert_eq!(
            l.primary_organization(),
            Some(cloud.org_id.as_str()),
            "{l:?}"
        );
        assert_eq!(l.organizations.len(), 1);
    }
}

/// `desired` declaring the fragment `camera-kit`, managing its tags when `tags` is given.
fn desired_with_camera_kit(
    org: &str,
    tags: Option<Vec<(String, fleetform::model::TagTarget)>>,
) -> Desired {
    let mut d = desired(OrgRef::Id(org.to_string()));
    d.fragments.push(fleetform::model::DesiredFragment {
        name: "camera-kit".into(),
        identity: Identity::default(),
        visibility: Visibility::Private,
        config: Config::from(json!({"components": []})),
        tags,
    });
    d
}

#[tokio::test]
async fn declared_fragments_have_their_tags_and_usage_read() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let fleet = build_fleet(&c, &cloud.org_id).await;
    let kit = c
        .list_fragments(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.name == "camera-kit")
        .unwrap();
    c.update_fragment(
        &kit.id,
        "camera-kit",
        Some(&json!({"components": [1]})),
        None,
        None,
    )
    .await
    .unwrap();
    c.set_fragment_tag(&kit.id, "stable", "1").await.unwrap();
    let part = c
        .get_parts(&fleet.machines["cam-01"])
        .await
        .unwrap()
        .remove(0);
    c.update_part(
        &part.id,
        &part.name,
        Some(&json!({"fragments": [{"id": kit.id, "version": "stable"}]})),
        None,
    )
    .await
    .unwrap();

    // Usage for the declared fragment; tags only when the manifest manages them.
    c.reset_rpc_counts();
    let o = observe(
        &c,
        &desired_with_camera_kit(&cloud.org_id, None),
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    let counts = c.rpc_counts();
    assert!(o.fragment_tags.is_empty());
    assert_eq!(o.fragment_usage.len(), 1, "only the declared fragment");
    assert_eq!(count(&counts, "GetFragment"), 0, "{counts:?}");
    c.reset_rpc_counts();
    let tags = vec![(
        "stable".to_string(),
        fleetform::model::TagTarget::Revision("1".into()),
    )];
    let o = observe(
        &c,
        &desired_with_camera_kit(&cloud.org_id, Some(tags)),
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    let counts = c.rpc_counts();
    assert_eq!(o.fragment_tags.len(), 1, "only the declared fragment");
    assert_eq!(o.fragment_revisions[&kit.id], ["1", "2"]);
    assert_eq!(o.fragment_tags[&kit.id][0].tag, "stable");
    assert_eq!(o.fragment_tags[&kit.id][0].revision, "1");
    let usage = &o.fragment_usage[&kit.id];
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].version.as_deref(), usage[0].machines),
        (Some("stable"), 1)
    );
    let current = o.fragments.iter().find(|f| f.id == kit.id).unwrap();
    assert_eq!(current.revision, "2");
    assert_eq!(count(&counts, "GetFragment"), 1, "{counts:?}");
    assert_eq!(count(&counts, "GetFragmentUsage"), 1, "{counts:?}");

    // Read while the machines are listed (the early reads), they serve the observation and
    // are not made again: one read of each per fragment of the organization.
    let with_tags = desired_with_camera_kit(
        &cloud.org_id,
        Some(vec![(
            "stable".to_string(),
            fleetform::model::TagTarget::Revision("1".into()),
        )]),
    );
    let opts = ObserveOptions::default();
    c.reset_rpc_counts();
    let early = read_early(&shared(&c), Some(&opts))
        .await
        .expect("early reads");
    let ahead = observe_after(&c, &with_tags, &opts, Some(early))
        .await
        .unwrap();
    let counts = c.rpc_counts();
    assert_eq!(timeless(ahead), timeless(o));
    assert_eq!(count(&counts, "GetFragment"), 2, "{counts:?}");
    assert_eq!(count(&counts, "GetFragmentUsage"), 2, "{counts:?}");

    // A cloud without fragment usage: observed all the same, with the blast radius unknown.
    let (old_cloud, old, _) = fleet_on(&["GetFragmentUsage"]).await;
    let o = observe(
        &old,
        &desired_with_camera_kit(&old_cloud.org_id, None),
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    assert!(o.fragment_usage.is_empty());
    assert_eq!(o.fragments.len(), 2);
}

#[tokio::test]
async fn a_location_shared_by_another_organization_is_observed_with_its_owner() {
    let cloud = Cloud::start().await;
    let owner = cloud.client().await;
    let hq = owner
        .create_location(&cloud.org_id, "HQ", None)
        .await
        .unwrap();
    owner.new_machine("cam-01", &hq.id).await.unwrap();
    let partner_key = fleetform::localcloud::init(&cloud.db, "partner", "p@example.com").unwrap();
    let mut app = cloud.app().await;
    app.share_location(fleetform::proto::viam::app::v1::ShareLocationRequest {
        location_id: hq.id.clone(),
        organization_id: partner_key.org_id.clone(),
    })
    .await
    .unwrap();
    let partner = Client::connect(ClientOptions::new(
        cloud.endpoint(),
        Credentials::new(&partner_key.key_id, partner_key.key.expose()),
    ))
    .await
    .unwrap();
    // The partner's manifest names HQ (with a secret rotation policy): observation works, the
    // location says who owns it, and its secrets (the owner's) are not read.
    let mut d = desired(OrgRef::Id(partner_key.org_id.clone()));
    d.locations[0].rotate_secrets_after = Some(Duration::from_secs(86_400));
    let o = observe(&partner, &d, &ObserveOptions::default())
        .await
        .unwrap();
    assert_eq!(o.locations.len(), 1);
    assert_eq!(
        o.locations[0].primary_organization(),
        Some(cloud.org_id.as_str())
    );
    assert_eq!(o.machines.len(), 1);
    assert_eq!(
        o.parts.len(),
        1,
        "machines of a shared location can be read"
    );
    assert!(o.secrets.is_empty());
}

#[tokio::test]
async fn cloud_failures_name_what_was_read() {
    let cloud = Cloud::start_with(Faults {
        error_rate: 1.0,
        ..Default::default()
    })
    .await;
    let creds = Credentials::new(&cloud.key_id, &cloud.key);
    let mut opts = ClientOptions::new(cloud.endpoint(), creds);
    opts.retry = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    };
    let c = Client::connect(opts).await.unwrap();
    let err = observe(
        &c,
        &desired(OrgRef::Name("test-org".into())),
        &ObserveOptions::default(),
    )
    .await
    .unwrap_err();
    let ObserveError::Read { what, source } = &err else {
        panic!("expected a read error, got {err:?}");
    };
    assert!(what.contains("organizations"), "{what}");
    assert_eq!(source.rpc, "ListOrganizations");
    assert_eq!(source.code, Code::Unavailable);
    assert!(err.to_string().contains("could not read the organizations"));
    let cause = err
        .source()
        .expect("the cloud error is the source")
        .to_string();
    assert!(cause.contains("UNAVAILABLE"), "{cause}");
    assert!(!format!("{err} {err:?} {cause}").contains(&cloud.key));
}

#[tokio::test]
async fn attribute_returns_the_newest_history_entry() {
    let cloud = Cloud::start().await;
    let c = cloud.client().await;
    let hq = c.create_location(&cloud.org_id, "HQ", None).await.unwrap();
    let touched = c.new_machine("arm-01", &hq.id).await.unwrap();
    let untouched = c.new_machine("arm-02", &hq.id).await.unwrap();
    let touched = c.get_parts(&touched).await.unwrap().remove(0);
    let untouched = c.get_parts(&untouched).await.unwrap().remove(0);
    let first = json!({"components": [{"name": "arm", "attributes": {"speed": 1}}]});
    let second = json!({"components": [{"name": "arm", "attributes": {"speed": 2}}]});
    c.update_part(&touched.id, &touched.name, Some(&first), None)
        .await
        .unwrap();
    c.update_part(&touched.id, &touched.name, Some(&second), None)
        .await
        .unwrap();

    c.reset_rpc_counts();
    let got = attribute(
        &c,
        &[touched.id.clone(), untouched.id.clone()],
        &ObserveOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ids(got.keys()), ids([&touched.id]));
    let newest = &got[&touched.id];
    assert_eq!(
        newest.old.config.to_value(),
        first,
        "the newest entry holds the state before the last edit"
    );
    assert_eq!(newest.edited_by.as_ref().unwrap().value, cloud.key_id);
    assert_eq!(count(&c.rpc_counts(), "GetRobotPartHistory"), 2);

    assert!(
        attribute(&c, &[], &ObserveOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A client as the shared `CloudApi` the early reads take.
fn shared(c: &Client) -> std::sync::Arc<dyn CloudApi> {
    std::sync::Arc::new(c.clone())
}

/// `opts` without a guess of the organization, with the right one (`org_id`) and with a wrong
/// one: each with the guess and how many of each first list a wrong guess wastes.
fn guesses(opts: &ObserveOptions, org_id: &str) -> Vec<(Option<String>, ObserveOptions, u64)> {
    let wrong = "00000000-0000-4000-8000-000000000000";
    [(None, 0), (Some(org_id), 0), (Some(wrong), 1)]
        .into_iter()
        .map(|(guess, wasted)| {
            let opts = ObserveOptions {
                organization_guess: guess.map(String::from),
                ..opts.clone()
            };
            (guess.map(String::from), opts, wasted)
        })
        .collect()
}
